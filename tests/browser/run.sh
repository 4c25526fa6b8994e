#!/usr/bin/env bash
# Browser test of the offline Swagger UI at /docs/: starts the real server on a
# fresh SQLite database, creates a task with curl, then docs.mjs drives
# headless Chromium through Authorize -> list tasks -> Try it out -> Execute.
# Usage (from anywhere): bash tests/browser/run.sh
# Env: TASKS_API_BIN (default target/debug/tasks-api; it is not built here).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${TASKS_API_BIN:-target/debug/tasks-api}
TMP=$(mktemp -d)
SERVER_PID=
SUMMARY=

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ "$rc" -ne 0 ] && [ -f "$TMP/server.log" ]; then
    echo "--- server log (last 20 lines) ---"
    tail -n 20 "$TMP/server.log"
  fi
  rm -rf "$TMP"
  # Any failure, including one in setup, still ends with the summary line.
  [ -n "$SUMMARY" ] || echo "0 passed, 1 failed"
  [ "$rc" -ne 0 ] || exit 0
  exit "$rc"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

# 1. Chromium from Debian (Playwright cannot download its own browser here).
if [ ! -x /usr/bin/chromium ]; then
  echo "installing Debian's chromium..."
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# 2. Node dependencies, reinstalled only when the lock file changed.
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.installed-lock; then
  (cd tests/browser && npm ci --no-audit --no-fund)
  cp tests/browser/package-lock.json tests/browser/node_modules/.installed-lock
fi

# 3. The server, on a free loopback port with a fresh database and secret.
[ -x "$BIN" ] || fail "no server binary at $BIN (build it, or set TASKS_API_BIN)"
PORT=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
export DATABASE_URL="sqlite://$TMP/tasks.db" BETTER_AUTH_SECRET=$(hex 32) HOST=127.0.0.1 PORT
BASE=http://127.0.0.1:$PORT
"$BIN" serve >"$TMP/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 100); do   # up to ~10 s
  curl -fsS -o /dev/null "$BASE/ready" 2>/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || fail "server exited during start-up"
  sleep 0.1
done
curl -fsS -o /dev/null "$BASE/ready" || fail "server not ready at $BASE/ready after 10 s"

TOKEN=$("$BIN" token --sub browser-user --ttl 15m)
TITLE="Seen through Swagger UI $(hex 6)"
curl -sS --fail-with-body -o "$TMP/created.json" -X POST "$BASE/api/v1/tasks" \
  -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \
  -d "{\"title\":\"$TITLE\"}" || fail "creating the task failed: $(cat "$TMP/created.json")"

# 4. The browser part.
mkdir -p target
if BASE_URL=$BASE TOKEN=$TOKEN TASK_TITLE=$TITLE SCREENSHOT=target/docs-browser.png \
   USER_DATA_DIR="$TMP/chromium-profile" timeout 180 node tests/browser/docs.mjs; then
  SUMMARY="1 passed, 0 failed"
else
  SUMMARY="0 passed, 1 failed"
fi
echo "$SUMMARY"
[ "$SUMMARY" = "1 passed, 0 failed" ]
