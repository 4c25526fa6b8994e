#!/usr/bin/env bash
# End-to-end browser test of this example against a real tasks-api: installs
# the example (npm ci), builds it (next build, skipped when nothing changed),
# starts tasks-api (SQLite) and `next start` on free loopback ports, runs the
# Playwright test in Debian's Chromium, and stops everything it started.
#
# Usage (from anywhere): bash examples/nextjs/e2e/run.sh
# Env: TASKS_API_BIN (default <repo>/target/debug/tasks-api; not built here),
#      SCREENSHOT (default <repo>/target/nextjs-tasks.png),
#      KEEP_TMP=1 (keep the logs, databases and Playwright's traces),
#      NEXTJS_E2E_CACHE (default ~/.cache/tasks-api-nextjs-e2e: node_modules
#      and .next kept between runs, also across clones, keyed by content hash).
set -euo pipefail
cd "$(dirname "$0")/.."
APP=$PWD
ROOT=$(cd ../.. && pwd)
BIN=${TASKS_API_BIN:-$ROOT/target/debug/tasks-api}
SCREENSHOT=${SCREENSHOT:-$ROOT/target/nextjs-tasks.png}
CACHE=${NEXTJS_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/tasks-api-nextjs-e2e}
# No telemetry, no browser download; node-gyp builds better-sqlite3 against
# the installed Node headers instead of downloading them.
export NEXT_TELEMETRY_DISABLED=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
export npm_config_nodedir=${npm_config_nodedir:-/usr}

TMP=$(mktemp -d)
GROUPS_STARTED=()
SUMMARY=

cleanup() {
  local rc=$?
  # Each server runs in its own process group (setsid): stop the whole group.
  for pgid in "${GROUPS_STARTED[@]}"; do kill -TERM -- "-$pgid" 2>/dev/null || true; done
  for pgid in "${GROUPS_STARTED[@]}"; do
    for _ in $(seq 50); do kill -0 -- "-$pgid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pgid" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ]; then
    for log in "$TMP"/*.log; do
      [ -f "$log" ] || continue
      echo "--- $(basename "$log") (last 30 lines) ---"
      tail -n 30 "$log"
    done
  fi
  if [ -n "${KEEP_TMP:-}" ]; then echo "kept $TMP"; else rm -rf "$TMP"; fi
  [ -n "$SUMMARY" ] || echo "0 passed, 1 failed"
  exit "$rc"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
hash_files() { LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-16; }
free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
t0=$SECONDS
step() { printf '# [%ss] %s\n' "$((SECONDS - t0))" "$*"; }

# Copies directory $1 to $2 through a temporary name, so $2 is whole or absent.
save_copy() {
  rm -rf "$2.tmp" && mkdir -p "$(dirname "$2")" && cp -a "$1" "$2.tmp" && rm -rf "$2" && mv "$2.tmp" "$2"
}

# 1. Chromium from Debian (Playwright cannot download its own browser here).
if [ ! -x /usr/bin/chromium ]; then
  step "installing Debian's chromium"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# 2. Dependencies: npm ci when the lock file (or Node) changed, or a copy of
#    an earlier install of the same lock file (better-sqlite3 compiles ~1 min).
deps_key=$( { printf '%s\n' package-lock.json; } | hash_files)-$(node --version)
if [ "$(cat node_modules/.e2e-key 2>/dev/null)" != "$deps_key" ]; then
  rm -rf node_modules
  if [ -d "$CACHE/node_modules-$deps_key" ]; then
    step "node_modules from the cache ($deps_key)"
    cp -a "$CACHE/node_modules-$deps_key" node_modules
  else
    step "npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    rm -rf "$CACHE"/node_modules-*
    save_copy node_modules "$CACHE/node_modules-$deps_key"
  fi
  echo "$deps_key" > node_modules/.e2e-key
fi

# 3. The production build, skipped when the sources, configuration and lock
#    file hash to the stamp of the last build.
build_key=$(find app lib instrumentation.ts next.config.ts tsconfig.json package.json package-lock.json \
  -type f | hash_files)
if [ "$(cat .next/.e2e-key 2>/dev/null)" != "$build_key" ]; then
  rm -rf .next
  if [ -d "$CACHE/next-$build_key" ]; then
    step "the build from the cache ($build_key)"
    cp -a "$CACHE/next-$build_key" .next
  else
    step "next build"
    # Placeholders: the build loads lib/auth.ts, which reads these; the real
    # values are read again when the server starts.
    BETTER_AUTH_SECRET=build-time-placeholder-secret-0123456789 BETTER_AUTH_URL=http://127.0.0.1:3000 \
      AUTH_DB_PATH="$TMP/build-auth.db" node_modules/.bin/next build > "$TMP/next-build.log" 2>&1 \
      || { cat "$TMP/next-build.log"; fail "next build failed"; }
    rm -rf "$CACHE"/next-*
    save_copy .next "$CACHE/next-$build_key"
  fi
  echo "$build_key" > .next/.e2e-key
else
  step "build unchanged ($build_key)"
fi

# 4. tasks-api and the Next.js server, on free loopback ports. tasks-api
#    verifies the jwt plugin's tokens through the app's JWKS (BETTER_AUTH_URL)
#    and the app's HS256 tokens with the shared secret.
[ -x "$BIN" ] || fail "no server binary at $BIN (build it, or set TASKS_API_BIN)"
WEB_PORT=$(free_port)
API_PORT=$(free_port)
while [ "$API_PORT" = "$WEB_PORT" ]; do API_PORT=$(free_port); done
WEB=http://127.0.0.1:$WEB_PORT
API=http://127.0.0.1:$API_PORT
SECRET=$(hex 32)

# Waits until $1 answers 2xx, while the server started last is alive.
wait_for() {
  for _ in $(seq 300); do   # up to ~30 s
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    kill -0 "${GROUPS_STARTED[-1]}" 2>/dev/null || fail "the server for $1 exited during start-up"
    sleep 0.1
  done
  fail "$1 not ready after 30 s"
}

# The app first: tasks-api fetches its JWKS at start.
setsid env BETTER_AUTH_SECRET="$SECRET" BETTER_AUTH_URL="$WEB" AUTH_DB_PATH="$TMP/auth.db" \
  TASKS_API_URL="$API" node_modules/.bin/next start -H 127.0.0.1 -p "$WEB_PORT" > "$TMP/next.log" 2>&1 &
GROUPS_STARTED+=("$!")
step "waiting for Next.js on $WEB"
wait_for "$WEB/api/auth/jwks"
(cd "$TMP" && exec setsid env DATABASE_URL="sqlite://$TMP/tasks.db" BETTER_AUTH_SECRET="$SECRET" \
  BETTER_AUTH_URL="$WEB" CORS_ORIGINS="$WEB" HOST=127.0.0.1 PORT="$API_PORT" "$BIN" serve) \
  > "$TMP/tasks-api.log" 2>&1 &
GROUPS_STARTED+=("$!")
step "waiting for tasks-api on $API"
wait_for "$API/ready"

# 5. The browser test.
step "playwright"
mkdir -p "$(dirname "$SCREENSHOT")"
if BASE_URL=$WEB SCREENSHOT=$SCREENSHOT PLAYWRIGHT_OUTPUT_DIR="$TMP/test-results" \
   timeout 300 node_modules/.bin/playwright test; then
  SUMMARY="1 passed, 0 failed"
else
  SUMMARY="0 passed, 1 failed"
fi
step "done"
echo "$SUMMARY"
[ "$SUMMARY" = "1 passed, 0 failed" ]
