// Better Auth on the server: email + password sign-up, and the jwt plugin,
// which signs short-lived JWTs (EdDSA) that tasks-api verifies through this
// app's JWKS at /api/auth/jwks. Users and sessions live in SQLite.
import Database from "better-sqlite3";
import { betterAuth, type BetterAuthOptions } from "better-auth";
import { jwt } from "better-auth/plugins";
import { nextCookies } from "better-auth/next-js";

export const authOptions = {
  database: new Database(process.env.AUTH_DB_PATH ?? "auth.db"),
  emailAndPassword: { enabled: true },
  plugins: [jwt(), nextCookies()],
} satisfies BetterAuthOptions;

export const auth = betterAuth(authOptions);
