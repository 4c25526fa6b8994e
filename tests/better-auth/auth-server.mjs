#!/usr/bin/env node
// A real Better Auth server for interop tests: email + password sign-up and
// the `jwt` plugin, on SQLite (better-sqlite3), served by node:http on loopback.
//
//   node auth-server.mjs [--port=N] [--alg=EdDSA|ES256|ES512|RS256|PS256]
//                        [--db=/path/auth.db] [--secret=32+chars] [--base-url=URL]
//                        [--rotation-interval=SECONDS] [--grace-period=SECONDS]
//
// Each option can also come from the environment: PORT, ALG, DB, SECRET,
// BASE_URL, ROTATION_INTERVAL, GRACE_PERIOD (the last two are Better Auth's own
// `jwks.rotationInterval` / `jwks.gracePeriod`; unset = no rotation, 30 days).
// PORT 0 (the default) picks a free port; BASE_URL defaults to
// http://127.0.0.1:PORT with the port actually bound. Migrations run at start,
// no CLI step. When serving, one JSON line is printed on stdout:
//   {"ready":true,"baseURL":"http://127.0.0.1:PORT","port":PORT,"alg":"EdDSA"}
//
// Better Auth endpoints (all under /api/auth): POST /sign-up/email (needs an
// Origin header equal to the base URL), GET /token (session cookie) -> {token},
// GET /get-session -> `set-auth-jwt` header, GET /jwks.
//
// Test-only key rotation endpoints (loopback only, never in a real deployment):
//   POST /test/rotate   marks every live signing key expired, as Better Auth's
//                       own `jwks.rotationInterval` does when it elapses, and
//                       mints a new key with Better Auth's own createJwk. The
//                       old key stays in the JWKS (grace period), new tokens
//                       are signed with the new key. -> {"kid": newKid, "expired": [oldKids]}
//   POST /test/drop?kid=K  moves key K's expiry back past the grace period, so
//                       Better Auth's JWKS endpoint stops publishing it (what
//                       happens when `jwks.gracePeriod` ends). -> {"dropped": K}
//   GET  /test/keys     the jwks rows (id, alg, createdAt, expiresAt), no secrets.

import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import crypto from "node:crypto";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { betterAuth } from "better-auth";
import { jwt, createJwk } from "better-auth/plugins/jwt";
import { getMigrations } from "better-auth/db/migration";
import { toNodeHandler } from "better-auth/node";

const ALGS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"];

const { values: args } = parseArgs({
  options: {
    port: { type: "string" },
    alg: { type: "string" },
    db: { type: "string" },
    secret: { type: "string" },
    "base-url": { type: "string" },
    "rotation-interval": { type: "string" },
    "grace-period": { type: "string" },
  },
});
// An option from --name=value or the environment; empty means unset.
const opt = (name, envName) => [args[name], process.env[envName]].find((v) => v !== undefined && v !== "");
const port = Number(opt("port", "PORT") ?? 0);
const alg = opt("alg", "ALG") ?? "EdDSA";
const dbPath = opt("db", "DB") ?? path.join(fs.mkdtempSync(path.join(os.tmpdir(), "better-auth-")), "auth.db");
const secret = opt("secret", "SECRET") ?? crypto.randomBytes(32).toString("hex");
const seconds = (v) => (v === undefined ? undefined : Number(v));
const rotationInterval = seconds(opt("rotation-interval", "ROTATION_INTERVAL"));
const gracePeriod = seconds(opt("grace-period", "GRACE_PERIOD"));
// Better Auth's default JWKS grace period is 30 days.
const GRACE_PERIOD_SECONDS = gracePeriod ?? 30 * 24 * 3600;

function fail(message) {
  console.error(`auth-server: ${message}`);
  process.exit(2);
}
if (!ALGS.includes(alg)) fail(`ALG must be one of ${ALGS.join(", ")}, got ${JSON.stringify(alg)}`);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad PORT ${port}`);
if (secret.length < 32) fail("SECRET must be at least 32 characters");
for (const [name, v] of [["ROTATION_INTERVAL", rotationInterval], ["GRACE_PERIOD", gracePeriod]])
  if (v !== undefined && !(Number.isFinite(v) && v > 0)) fail(`${name} must be a positive number of seconds`);

const keyPairConfig =
  alg === "EdDSA"
    ? { alg, crv: "Ed25519" }
    : alg === "RS256" || alg === "PS256"
      ? { alg, modulusLength: 2048 }
      : { alg };
const jwtOptions = { jwks: { keyPairConfig, rotationInterval, gracePeriod } };

// Bind first, so BASE_URL can carry the real port when PORT is 0.
let handler = (_req, res) => {
  res.writeHead(503).end("starting");
};
const server = http.createServer((req, res) => handler(req, res));
await new Promise((resolve, reject) => {
  server.once("error", reject);
  server.listen(port, "127.0.0.1", resolve);
});
const boundPort = server.address().port;
const baseURL = (opt("base-url", "BASE_URL") ?? `http://127.0.0.1:${boundPort}`).replace(/\/$/, "");

const options = {
  appName: "tasks-api interop",
  baseURL,
  secret,
  database: new Database(dbPath),
  emailAndPassword: { enabled: true },
  plugins: [jwt(jwtOptions)],
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
  logger: { level: process.env.AUTH_LOG_LEVEL || "warn" },
};
const { runMigrations } = await getMigrations(options);
await runMigrations();
const auth = betterAuth(options);
const authHandler = toNodeHandler(auth);

function json(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
}

async function testRoute(req, res, url) {
  const ctx = await auth.$context;
  const keys = () => ctx.adapter.findMany({ model: "jwks" });
  const setExpiry = (id, expiresAt) =>
    ctx.adapter.update({ model: "jwks", where: [{ field: "id", value: id }], update: { expiresAt } });

  if (req.method === "GET" && url.pathname === "/test/keys") {
    const rows = await keys();
    return json(res, 200, rows.map(({ id, alg, crv, createdAt, expiresAt }) => ({ id, alg, crv, createdAt, expiresAt })));
  }
  if (req.method === "POST" && url.pathname === "/test/rotate") {
    const now = new Date();
    const live = (await keys()).filter((k) => !k.expiresAt || k.expiresAt > now);
    for (const k of live) await setExpiry(k.id, now);
    // createJwk stamps createdAt = now; make sure it sorts after the old key.
    await new Promise((r) => setTimeout(r, 5));
    const created = await createJwk({ context: ctx }, jwtOptions);
    return json(res, 200, { kid: created.id, expired: live.map((k) => k.id) });
  }
  if (req.method === "POST" && url.pathname === "/test/drop") {
    const kid = url.searchParams.get("kid");
    if (!(await keys()).some((k) => k.id === kid)) return json(res, 404, { error: "no such kid" });
    await setExpiry(kid, new Date(Date.now() - (GRACE_PERIOD_SECONDS + 60) * 1000));
    return json(res, 200, { dropped: kid });
  }
  return json(res, 404, { error: "not found" });
}

handler = (req, res) => {
  const url = new URL(req.url, baseURL);
  if (url.pathname.startsWith("/test/")) {
    testRoute(req, res, url).catch((err) => {
      console.error(err);
      json(res, 500, { error: String(err) });
    });
    return;
  }
  if (url.pathname === "/health") return json(res, 200, { ok: true });
  authHandler(req, res);
};

for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    server.close();
    process.exit(0);
  });
}
console.log(JSON.stringify({ ready: true, baseURL, port: boundPort, alg }));
