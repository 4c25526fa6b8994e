// Better Auth in the browser. `jwtClient()` adds `authClient.token()`, which
// returns a JWT for the signed-in user (GET /api/auth/token).
import { createAuthClient } from "better-auth/react";
import { jwtClient } from "better-auth/client/plugins";

export const authClient = createAuthClient({ plugins: [jwtClient()] });

/** A fresh Better Auth JWT for the tasks-api `Authorization` header. */
export async function jwksToken(): Promise<string> {
  const { data, error } = await authClient.token();
  if (error || !data) throw new Error("Not signed in");
  return data.token;
}

/** An HS256 token minted by this app's /api/token route (shared secret). */
export async function sharedSecretToken(): Promise<string> {
  const res = await fetch("/api/token");
  if (!res.ok) throw new Error("Not signed in");
  return ((await res.json()) as { token: string }).token;
}
