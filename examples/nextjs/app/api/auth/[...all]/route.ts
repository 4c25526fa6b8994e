// Better Auth's endpoints: /api/auth/sign-up/email, /api/auth/token,
// /api/auth/jwks (what tasks-api fetches), ...
import { toNextJsHandler } from "better-auth/next-js";
import { auth } from "@/lib/auth";

export const { GET, POST } = toNextJsHandler(auth);
