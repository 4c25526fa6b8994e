#!/usr/bin/env node
// Interop test: tasks-api against a real Better Auth server (see NOTES.md).
//
//   TASKS_API_BIN=/path/to/tasks-api node interop.mjs
//   TASKS_API_BIN=... TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test node interop.mjs
//   node interop.mjs --auth-only     # only the Better Auth side (no tasks-api)
//
// Exits non-zero on any failure; the last line is `N passed, M failed`.

import { spawn, spawnSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import * as jose from "jose";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ALGS = ["EdDSA", "ES256", "ES512", "RS256", "PS256"];
const AUTH_ONLY = process.argv.includes("--auth-only");
const BIN = process.env.TASKS_API_BIN;
const PG_URL = process.env.TEST_DATABASE_URL || null;
const WAIT_MS = 30_000; // upper bound for any readiness or "eventually" wait
const POLL_MS = 100;

// ---------------------------------------------------------------- reporting

let passed = 0;
let failed = 0;
let runFailed = false;

function check(name, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok - ${name}`);
  } else {
    failed++;
    runFailed = true;
    console.log(`not ok - ${name}${detail ? `: ${detail}` : ""}`);
  }
  return ok;
}

function info(message) {
  console.log(`# ${message}`);
}

function finish(code) {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(code ?? (failed > 0 || passed === 0 ? 1 : 0));
}

// ---------------------------------------------------------------- processes

const children = new Set();
const tempDirs = [];
const schemas = [];

function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Spawns a child whose combined output is kept (last 64 KiB) for diagnostics. */
function startChild(label, command, args, options) {
  const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  child.label = label;
  child.output = "";
  const keep = (chunk) => {
    child.output = (child.output + chunk).slice(-65536);
  };
  child.stderr.setEncoding("utf8").on("data", keep);
  child.exited = new Promise((resolve) => child.once("exit", resolve));
  child.once("error", (err) => keep(`spawn error: ${err.message}\n`));
  children.add(child);
  child.once("exit", () => children.delete(child));
  return child;
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await child.exited;
  clearTimeout(timer);
}

function dumpOutput(child) {
  const lines = child.output.trimEnd().split("\n").slice(-40);
  console.log(`# --- last output of ${child.label} (pid ${child.pid}) ---`);
  for (const line of lines) console.log(`#   ${line}`);
}

function cleanupSync() {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
  for (const schema of schemas.splice(0)) psql(`drop schema if exists ${schema} cascade`, false);
  if (!process.env.KEEP_TMP) for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

process.on("exit", cleanupSync);
for (const sig of ["SIGINT", "SIGTERM"]) {
  process.on(sig, () => {
    console.log(`# interrupted by ${sig}`);
    failed++;
    finish(130);
  });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a truthy value or WAIT_MS passes; returns [value, elapsedMs]. */
async function eventually(probe, timeoutMs = WAIT_MS) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    last = await probe();
    if (last) return [last, Date.now() - start];
    await sleep(POLL_MS);
  }
  return [last, Date.now() - start];
}

// ---------------------------------------------------------------- HTTP

async function request(method, url, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const res = await fetch(url, {
    method,
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {}
  return { status: res.status, headers: res.headers, json, text };
}

const brief = (r) => `HTTP ${r.status} ${r.text.slice(0, 300)}`;

// ---------------------------------------------------------------- Better Auth

/** Starts auth-server.mjs on a free loopback port; resolves once it printed its ready line. */
async function startAuthServer(alg, secret, label) {
  const dir = tempDir("ba-auth-");
  const child = startChild(label, process.execPath, [path.join(HERE, "auth-server.mjs")], {
    cwd: HERE,
    env: { ...process.env, PORT: "0", ALG: alg, DB: path.join(dir, "auth.db"), SECRET: secret, BASE_URL: "", ROTATION_INTERVAL: "", GRACE_PERIOD: "" },
  });
  const lines = readline.createInterface({ input: child.stdout });
  const ready = new Promise((resolve) => lines.once("line", resolve));
  const line = await Promise.race([ready, child.exited.then(() => null), sleep(WAIT_MS).then(() => null)]);
  child.stdout.resume();
  if (!line) {
    dumpOutput(child);
    throw new Error(`${label} did not start`);
  }
  const { baseURL } = JSON.parse(line);
  return { child, baseURL, jwksURL: `${baseURL}/api/auth/jwks` };
}

/** Signs a user up with email + password; returns the user, session cookie and JWT. */
async function signUp(auth, email, name) {
  const res = await fetch(`${auth.baseURL}/api/auth/sign-up/email`, {
    method: "POST",
    headers: { origin: auth.baseURL, "content-type": "application/json" },
    body: JSON.stringify({ email, name, password: `pw-${crypto.randomBytes(8).toString("hex")}` }),
    signal: AbortSignal.timeout(10_000),
  });
  const body = await res.json().catch(() => null);
  if (res.status !== 200 || !body?.user?.id) throw new Error(`sign-up of ${email}: HTTP ${res.status} ${JSON.stringify(body)}`);
  const cookie = res.headers
    .getSetCookie()
    .map((c) => c.split(";")[0])
    .join("; ");
  const token = await getToken(auth, cookie);
  return { id: body.user.id, email, name, cookie, token };
}

/** A fresh JWT for a signed-in user, from GET /api/auth/token. */
async function getToken(auth, cookie) {
  const r = await request("GET", `${auth.baseURL}/api/auth/token`, { headers: { cookie } });
  if (r.status !== 200 || typeof r.json?.token !== "string") throw new Error(`GET /api/auth/token: ${brief(r)}`);
  return r.json.token;
}

const header = (token) => jose.decodeProtectedHeader(token);
const claims = (token) => jose.decodeJwt(token);

async function jwksKids(auth) {
  const r = await request("GET", auth.jwksURL);
  return (r.json?.keys ?? []).map((k) => k.kid);
}

/** Verifies like a careful resource server would, with a fresh key set each time. */
async function verifyWithJose(auth, token, alg) {
  try {
    const jwks = jose.createRemoteJWKSet(new URL(auth.jwksURL));
    const { payload } = await jose.jwtVerify(token, jwks, { issuer: auth.baseURL, audience: auth.baseURL, algorithms: [alg] });
    return payload;
  } catch (err) {
    return { error: `${err.code ?? err.name}: ${err.message}` };
  }
}

/** Better Auth side: token shape, JWKS, and jose verification. */
async function checkBetterAuthToken(tag, auth, user, alg) {
  const h = header(user.token);
  check(`${tag} token header alg is ${alg}`, h.alg === alg, JSON.stringify(h));
  const kids = await jwksKids(auth);
  check(`${tag} token kid is published in the JWKS`, typeof h.kid === "string" && kids.includes(h.kid), `kid ${h.kid}, jwks ${kids}`);
  const payload = await verifyWithJose(auth, user.token, alg);
  check(
    `${tag} token verifies with jose against the JWKS (iss = aud = base URL)`,
    !payload.error && payload.sub === user.id && payload.email === user.email,
    payload.error ?? JSON.stringify(payload),
  );
  const session = await fetch(`${auth.baseURL}/api/auth/get-session`, { headers: { cookie: user.cookie }, signal: AbortSignal.timeout(10_000) });
  await session.arrayBuffer();
  const fromHeader = session.headers.get("set-auth-jwt");
  const p2 = fromHeader ? await verifyWithJose(auth, fromHeader, alg) : { error: "no set-auth-jwt header" };
  check(`${tag} get-session's set-auth-jwt header verifies too`, !p2.error && p2.sub === user.id, p2.error);
}

function describeToken(alg, token) {
  const h = header(token);
  const c = claims(token);
  info(
    `${alg}: header ${JSON.stringify(h)} (kid ${h.kid?.length} chars); claims [${Object.keys(c).join(", ")}]; ` +
      `iss ${JSON.stringify(c.iss)}, aud ${JSON.stringify(c.aud)}, lifetime ${c.exp - c.iat}s`,
  );
}

// ---------------------------------------------------------------- tasks-api

function psql(sql, strict = true) {
  const r = spawnSync("psql", [PG_URL, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql], { encoding: "utf8" });
  if (strict && r.status !== 0) throw new Error(`psql ${sql}: ${r.error?.message ?? r.stderr}`);
}

function withSearchPath(url, schema) {
  return `${url}${url.includes("?") ? "&" : "?"}options=-c%20search_path%3D${schema}`;
}

/** A fresh database URL: a temp SQLite file, or a new schema in TEST_DATABASE_URL. */
function freshDatabase(dir) {
  if (!PG_URL) return `sqlite://${dir}/tasks.db`;
  const schema = `ba_${crypto.randomBytes(8).toString("hex")}`;
  psql(`create schema ${schema}`);
  schemas.push(schema);
  return withSearchPath(PG_URL, schema);
}

/** Starts the tasks-api binary and waits for GET /ready == 200. */
async function startTasksApi(label, auth, secret, extraEnv = {}) {
  const dir = tempDir("ba-tasks-");
  const port = await freePort();
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME ?? dir,
    RUST_LOG: process.env.RUST_LOG ?? "info",
    BETTER_AUTH_URL: auth.baseURL,
    BETTER_AUTH_SECRET: secret,
    DATABASE_URL: freshDatabase(dir),
    HOST: "127.0.0.1",
    PORT: String(port),
    JWKS_CACHE_TTL_SECONDS: "1", // refresh the key set every second
    JWKS_REFETCH_INTERVAL_SECONDS: "1", // least time between unknown-kid refetches
    ...extraEnv,
  };
  // cwd = a temp dir, so no stray .env is read.
  const child = startChild(label, BIN, ["serve"], { cwd: dir, env });
  child.stdout.setEncoding("utf8").on("data", (chunk) => {
    child.output = (child.output + chunk).slice(-65536);
  });
  const base = `http://127.0.0.1:${port}`;
  const [ready, ms] = await eventually(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return `exited with ${child.exitCode ?? child.signalCode}`;
    try {
      return (await fetch(`${base}/ready`, { signal: AbortSignal.timeout(2000) })).status === 200 ? "ready" : null;
    } catch {
      return null;
    }
  }, 60_000);
  if (ready !== "ready") {
    dumpOutput(child);
    throw new Error(`${label} not ready (${ready ?? "timeout"} after ${ms} ms)`);
  }
  info(`${label} ready on ${base} after ${ms} ms`);
  return { child, base, api: `${base}/api/v1` };
}

const isInvalidToken = (r) => r.status === 401 && /^Bearer\b.*error="invalid_token"/i.test(r.headers.get("www-authenticate") ?? "");

/** The CRUD and isolation walk for users A and B. */
async function crudAndIsolation(tag, tasks, a, b) {
  const created = await request("POST", `${tasks.api}/tasks`, { token: a.token, body: { title: `Buy milk (${tag})` } });
  if (!check(`${tag} A creates a task: 201`, created.status === 201 && Number.isInteger(created.json?.id), brief(created))) return;
  const id = created.json.id;
  check(`${tag} the task belongs to A's Better Auth user id`, created.json.user_id === a.id, `user_id ${created.json.user_id}, sub ${a.id}`);

  const listA = await request("GET", `${tasks.api}/tasks`, { token: a.token });
  check(`${tag} A lists it`, listA.status === 200 && listA.json?.items?.some((t) => t.id === id), brief(listA));

  const patched = await request("PATCH", `${tasks.api}/tasks/${id}`, { token: a.token, body: { title: "Buy oat milk" } });
  check(`${tag} A patches it: 200`, patched.status === 200 && patched.json?.title === "Buy oat milk", brief(patched));

  const me = await request("GET", `${tasks.api}/me`, { token: a.token });
  check(
    `${tag} /me carries A's id, email and name from the claims`,
    me.status === 200 && me.json?.id === a.id && me.json?.email === a.email && me.json?.name === a.name,
    brief(me),
  );

  const peek = await request("GET", `${tasks.api}/tasks/${id}`, { token: b.token });
  check(`${tag} B gets A's task: 404`, peek.status === 404, brief(peek));

  const listB = await request("GET", `${tasks.api}/tasks`, { token: b.token });
  check(`${tag} B's list is empty`, listB.status === 200 && Array.isArray(listB.json?.items) && listB.json.items.length === 0, brief(listB));

  const deleted = await request("DELETE", `${tasks.api}/tasks/${id}`, { token: a.token });
  check(`${tag} A deletes it: 204`, deleted.status === 204, brief(deleted));
}

/** An HS256 token as a Next.js front end mints it with the shared secret. */
function mintHs256(secret, { id, email, name }) {
  return new jose.SignJWT({ email, name })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setSubject(id)
    .setIssuedAt()
    .setExpirationTime("15m")
    .sign(new TextEncoder().encode(secret));
}

async function hs256SameUser(tag, tasks, secret, a) {
  const hs = await mintHs256(secret, a);
  const created = await request("POST", `${tasks.api}/tasks`, { token: hs, body: { title: "minted by the front end" } });
  if (!check(`${tag} HS256 token (jose, shared secret) creates a task: 201`, created.status === 201, brief(created))) return;
  const list = await request("GET", `${tasks.api}/tasks`, { token: a.token });
  check(
    `${tag} the same user sees it with the Better Auth token`,
    list.status === 200 && list.json?.items?.some((t) => t.id === created.json.id),
    brief(list),
  );
  await request("DELETE", `${tasks.api}/tasks/${created.json.id}`, { token: hs });
}

// ---------------------------------------------------------------- one algorithm

async function runAlgorithm(alg) {
  const tag = `[${alg}]`;
  const secret = crypto.randomBytes(32).toString("hex");
  const mine = [];
  runFailed = false;
  try {
    const auth = await startAuthServer(alg, secret, `auth-server ${alg}`);
    mine.push(auth.child);
    const a = await signUp(auth, `alice-${alg.toLowerCase()}@example.com`, "Alice");
    const b = await signUp(auth, `bob-${alg.toLowerCase()}@example.com`, "Bob");
    describeToken(alg, a.token);
    await checkBetterAuthToken(`${tag} A's`, auth, a, alg);
    await checkBetterAuthToken(`${tag} B's`, auth, b, alg);

    // A second Better Auth server: same secret, same alg, other base URL and keys.
    const other = await startAuthServer(alg, secret, `second auth-server ${alg}`);
    mine.push(other.child);
    const c = await signUp(other, `carol-${alg.toLowerCase()}@example.com`, "Carol");
    const foreign = await verifyWithJose(auth, c.token, alg);
    check(`${tag} control: the second server's token does not verify against the first JWKS`, Boolean(foreign.error));

    let tasks = null;
    if (!AUTH_ONLY) {
      tasks = await startTasksApi(`tasks-api ${alg}`, auth, secret);
      mine.push(tasks.child);
      await crudAndIsolation(tag, tasks, a, b);
      await hs256SameUser(tag, tasks, secret, a);
      const r = await request("GET", `${tasks.api}/tasks`, { token: c.token });
      check(`${tag} a token from the second Better Auth server: 401 invalid_token`, isInvalidToken(r), `${brief(r)} www-authenticate: ${r.headers.get("www-authenticate")}`);
    }

    if (alg === "EdDSA") await rotation(tag, auth, secret, a, tasks, mine);
  } catch (err) {
    check(`${tag} run completed`, false, err.stack ?? String(err));
  } finally {
    if (runFailed) for (const child of mine) dumpOutput(child);
    await Promise.all(mine.map(stopChild));
  }
}

// ---------------------------------------------------------------- key rotation

async function rotation(tag, auth, secret, a, tasks, mine) {
  tag = `${tag} rotation:`;
  const oldToken = a.token;
  const oldKid = header(oldToken).kid;

  // A second tasks-api with a long cache TTL: it can only learn the new key by
  // refetching the JWKS on an unknown kid.
  let longTtl = null;
  if (tasks) {
    longTtl = await startTasksApi("tasks-api EdDSA (JWKS TTL 3600 s)", auth, secret, { JWKS_CACHE_TTL_SECONDS: "3600" });
    mine.push(longTtl.child);
    for (const t of [tasks, longTtl]) {
      const r = await request("GET", `${t.api}/tasks`, { token: oldToken });
      check(`${tag} before rotating, the old token works (${t.child.label})`, r.status === 200, brief(r));
    }
  }

  const rotated = await request("POST", `${auth.baseURL}/test/rotate`);
  if (!check(`${tag} the auth server mints a new key`, rotated.status === 200 && rotated.json?.expired?.includes(oldKid), brief(rotated))) return;
  const newKid = rotated.json.kid;
  const newToken = await getToken(auth, a.cookie);
  check(`${tag} new tokens carry the new kid`, header(newToken).kid === newKid && newKid !== oldKid, JSON.stringify(header(newToken)));
  const kids = await jwksKids(auth);
  check(`${tag} the JWKS publishes both keys`, kids.includes(oldKid) && kids.includes(newKid), String(kids));
  const vOld = await verifyWithJose(auth, oldToken, "EdDSA");
  const vNew = await verifyWithJose(auth, newToken, "EdDSA");
  check(`${tag} jose verifies the old and the new token`, !vOld.error && !vNew.error, vOld.error ?? vNew.error);

  if (tasks) {
    for (const t of [tasks, longTtl]) {
      const r = await request("GET", `${t.api}/tasks`, { token: oldToken });
      check(`${tag} after rotating, the old token still works (${t.child.label})`, r.status === 200, brief(r));
      // A refetch on an unknown kid may be rate-limited: allow it a few seconds.
      const [last, ms] = await eventually(async () => {
        const res = await request("GET", `${t.api}/tasks`, { token: newToken });
        return res.status === 200 ? res : null;
      }, 15_000);
      check(`${tag} the new-kid token works without a restart (${t.child.label}, ${ms} ms)`, Boolean(last));
    }
  }

  const dropped = await request("POST", `${auth.baseURL}/test/drop?kid=${encodeURIComponent(oldKid)}`);
  check(`${tag} the auth server drops the old key`, dropped.status === 200, brief(dropped));
  const after = await jwksKids(auth);
  check(`${tag} the JWKS now publishes only the new key`, !after.includes(oldKid) && after.includes(newKid), String(after));
  const gone = await verifyWithJose(auth, oldToken, "EdDSA");
  check(`${tag} control: jose refuses the old token now`, Boolean(gone.error));

  if (tasks) {
    // tasks (TTL 1 s) must notice on its next refresh.
    const [refused, ms] = await eventually(async () => {
      const res = await request("GET", `${tasks.api}/tasks`, { token: oldToken });
      return isInvalidToken(res) ? res : null;
    }, 15_000);
    check(`${tag} the old token is refused once the key is dropped (401 invalid_token after ${ms} ms)`, Boolean(refused));
    const r = await request("GET", `${tasks.api}/tasks`, { token: newToken });
    check(`${tag} the new token still works`, r.status === 200, brief(r));
  }
}

// ---------------------------------------------------------------- main

if (!AUTH_ONLY) {
  if (!BIN) {
    console.log("not ok - TASKS_API_BIN is not set (path to the tasks-api binary; or pass --auth-only)");
    failed++;
    finish(2);
  }
  if (!fs.existsSync(BIN)) {
    console.log(`not ok - TASKS_API_BIN ${BIN} does not exist`);
    failed++;
    finish(2);
  }
}
info(`better-auth ${JSON.parse(fs.readFileSync(path.join(HERE, "node_modules/better-auth/package.json"), "utf8")).version}, node ${process.version}`);
info(AUTH_ONLY ? "Better Auth side only (--auth-only)" : `tasks-api ${BIN} on ${PG_URL ? "PostgreSQL (fresh schema per instance)" : "SQLite (temp file per instance)"}`);
for (const alg of ALGS) await runAlgorithm(alg);
cleanupSync();
finish();
