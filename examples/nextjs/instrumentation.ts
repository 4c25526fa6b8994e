// Runs once when the server starts: creates Better Auth's tables (user,
// session, account, verification, jwks) if they are missing, so the example
// needs no separate migration step.
export async function register() {
  if (process.env.NEXT_RUNTIME !== "nodejs") return;
  const { getMigrations } = await import("better-auth/db/migration");
  const { authOptions } = await import("@/lib/auth");
  const { runMigrations } = await getMigrations(authOptions);
  await runMigrations();
}
