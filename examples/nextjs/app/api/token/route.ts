// The second way to authenticate to tasks-api: an HS256 token minted here
// with the secret both sides share (tasks-api: BETTER_AUTH_SECRET).
import { SignJWT } from "jose";
import { headers } from "next/headers";
import { auth } from "@/lib/auth";

export async function GET() {
  const session = await auth.api.getSession({ headers: await headers() });
  if (!session) return Response.json({ error: "not signed in" }, { status: 401 });
  const key = new TextEncoder().encode(process.env.BETTER_AUTH_SECRET);
  const token = await new SignJWT({ email: session.user.email, name: session.user.name })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(session.user.id)
    .setIssuedAt()
    .setExpirationTime("15m")
    .sign(key);
  return Response.json({ token });
}
