#!/usr/bin/env bash
# Contract fuzzing: runs schemathesis against the real server, once per backend.
#
#   bash tests/contract/run.sh                      # SQLite only
#   TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test bash tests/contract/run.sh
#
# For each backend: start $TASKS_API_BIN (default target/debug/tasks-api; it is
# not built here) on a free port with a fresh database (a temp SQLite file, or
# a fresh schema in TEST_DATABASE_URL, dropped afterwards), mint a token for
# `fuzz-user`, and fuzz every operation of /openapi.json with the conformance
# checks below. Ends with `N passed, M failed` (backend runs); exits non-zero
# when any backend failed.
#
# Knobs (environment): CONTRACT_MAX_EXAMPLES (test cases per operation and
# phase, default below), CONTRACT_SEED, CONTRACT_TIMEOUT (hard cap in seconds
# for one schemathesis run; hitting it is a failure), CONTRACT_KEEP_RATE_LIMITS=1
# (run the server with its default request budgets, see below).
#
# Schemathesis' own files (JUnit, NDJSON with every request/response) and the
# server log of each backend run are kept in target/contract-report/<backend>/.
#
# Exclusions: none. No operation, check or phase is excluded. Generation is
# only steered so that the fuzzing reaches the handlers instead of stopping at
# 403/404: schemathesis.toml sets the compat routes' {user_id} mostly to the
# token's subject, and contract_hooks.py (SCHEMATHESIS_HOOKS) sends about two
# thirds of the positive task-route cases to a task that exists; see there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

CONTRACT_DIR="$ROOT/tests/contract"
VENV="$ROOT/target/contract-venv"
REPORT_ROOT="$ROOT/target/contract-report"
BIN="${TASKS_API_BIN:-target/debug/tasks-api}"
case "$BIN" in /*) ;; *) BIN="$ROOT/$BIN" ;; esac
MAX_EXAMPLES="${CONTRACT_MAX_EXAMPLES:-250}"
SEED="${CONTRACT_SEED:-20261129}"
RUN_TIMEOUT="${CONTRACT_TIMEOUT:-300}"
SUB="fuzz-user" # must match `own-user` in schemathesis.toml
# Exact check names of schemathesis 4.x (`schemathesis run --help`).
CHECKS="not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"

log() { printf 'contract: %s\n' "$*" >&2; }
die() { log "$*"; exit 2; }

[ -x "$BIN" ] || die "no server binary at $BIN (build it, or set TASKS_API_BIN)"
BIN_INFO="${BIN#"$ROOT"/}, built $(date -u -r "$BIN" +%Y-%m-%dT%H:%M:%SZ)"
command -v curl >/dev/null || die "curl is required"
[ -z "${TEST_DATABASE_URL:-}" ] || command -v psql >/dev/null || die "psql is required when TEST_DATABASE_URL is set"

# ---------------------------------------------------------------- virtualenv
mkdir -p "$ROOT/target"
REQ="$CONTRACT_DIR/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/schemathesis" ] || [ "$(cat "$STAMP" 2>/dev/null || true)" != "$want" ]; then
  PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  log "installing $(grep -m1 '^schemathesis==' "$REQ") into ${VENV#"$ROOT"/}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" >"$STAMP"
fi
ST="$VENV/bin/schemathesis"
ST_VERSION="$("$ST" --version | awk '{print $NF}')"

# ------------------------------------------------------------------- cleanup
TMP="$(mktemp -d "${TMPDIR:-/tmp}/tasks-contract.XXXXXX")"
SERVER_PID=""
PG_SCHEMA=""

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}

drop_schema() {
  if [ -n "$PG_SCHEMA" ]; then
    psql "$TEST_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 \
      -c "drop schema if exists $PG_SCHEMA cascade" >/dev/null 2>&1 ||
      log "could not drop schema $PG_SCHEMA"
    PG_SCHEMA=""
  fi
}

cleanup() {
  stop_server
  drop_schema
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Every backend runs the same binary even if it is rebuilt meanwhile.
cp "$BIN" "$TMP/tasks-api"
BIN="$TMP/tasks-api"

# The per-user request budget (RATE_LIMIT_PER_SECOND, default 20/s, burst 100)
# and the per-IP one for failed authentication (RATE_LIMIT_IP_*) would answer
# most of a fuzzing run 429: one user sending ~100 requests/s is the point of
# the run. They are raised so the checks reach the handlers; the limiter itself
# is covered by tests/api. CONTRACT_KEEP_RATE_LIMITS=1 keeps the defaults
# (then expect 429s, which the checks judge against the document like any
# other response).
RATE_ENV=()
if [ "${CONTRACT_KEEP_RATE_LIMITS:-}" != 1 ]; then
  RATE_ENV=(RATE_LIMIT_PER_SECOND=1000000 RATE_LIMIT_BURST=1000000
    RATE_LIMIT_IP_PER_SECOND=1000000 RATE_LIMIT_IP_BURST=1000000)
fi

rand_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
free_port() {
  "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ------------------------------------------------------------- one backend
# run_backend NAME DATABASE_URL: returns 0 when schemathesis found nothing.
run_backend() {
  local name="$1" db_url="$2"
  local work="$TMP/$name" report="$REPORT_ROOT/$name"
  local secret port base token rc=0 start elapsed generated
  mkdir -p "$work"
  rm -rf "$report"
  mkdir -p "$report"

  secret="$(rand_hex 32)"
  port="$(free_port)"
  base="http://127.0.0.1:$port"

  # The server and the token command run in the temp dir, so that no `.env`
  # of the working tree leaks into the run.
  (
    cd "$work"
    exec env -u JWT_ISSUER -u JWT_AUDIENCE \
      BETTER_AUTH_SECRET="$secret" HOST=127.0.0.1 PORT="$port" \
      DATABASE_URL="$db_url" RUST_LOG="${RUST_LOG:-info}" "${RATE_ENV[@]}" \
      "$BIN" serve
  ) >"$report/server.log" 2>&1 &
  SERVER_PID=$!

  local ready=""
  for _ in $(seq 300); do # at most ~30 s
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    if curl -fsS -o /dev/null --max-time 2 "$base/ready" 2>/dev/null; then ready=1; break; fi
    sleep 0.1
  done
  if [ -z "$ready" ]; then
    log "[$name] server did not become ready; last lines of its log:"
    tail -n 20 "$report/server.log" >&2 || true
    stop_server
    return 1
  fi

  token="$(cd "$work" && env -u JWT_ISSUER -u JWT_AUDIENCE BETTER_AUTH_SECRET="$secret" \
    "$BIN" token --sub "$SUB" --ttl 1h)" || token=""
  if [ -z "$token" ]; then
    log "[$name] could not mint a token"
    stop_server
    return 1
  fi

  # The served document must be valid OpenAPI 3.1 before it is fuzzed.
  curl -fsS "$base/openapi.json" -o "$work/openapi.json"
  if ! "$VENV/bin/openapi-spec-validator" --schema 3.1.0 "$work/openapi.json" >&2; then
    log "[$name] /openapi.json is not valid OpenAPI 3.1"
    stop_server
    return 1
  fi

  local cmd=(
    "$ST" --config-file "$CONTRACT_DIR/schemathesis.toml" --no-color
    run "$base/openapi.json"
    --header "Authorization: Bearer $token"
    --checks "$CHECKS"
    --max-examples "$MAX_EXAMPLES"
    --seed "$SEED"
    --workers 1
    --continue-on-failure
    --generation-database none
    --request-timeout 10
    # An event stream's 200 never ends: schemathesis would wait out its
    # request timeout on every one (and cannot check a stream's body). Its
    # answers are tested over HTTP in tests/api/events.rs.
    --exclude-path /api/v1/events
    --report junit,ndjson --report-dir "$report"
  )
  # Printed without the token.
  log "[$name] schemathesis $ST_VERSION: ${cmd[*]/#Authorization: Bearer */Authorization: Bearer \$TOKEN}"

  start=$SECONDS
  (cd "$work" && SCHEMATHESIS_HOOKS=contract_hooks PYTHONPATH="$CONTRACT_DIR" PYTHONDONTWRITEBYTECODE=1 \
    CONTRACT_BASE_URL="$base" CONTRACT_TOKEN="$token" \
    timeout --kill-after=10 "$RUN_TIMEOUT" "${cmd[@]}") 2>&1 | tee "$report/schemathesis.log" || rc=$?
  elapsed=$((SECONDS - start))
  [ "$rc" -ne 124 ] || log "[$name] schemathesis hit the ${RUN_TIMEOUT}s cap"

  stop_server

  generated="$(grep -oE '[0-9]+ generated' "$report/schemathesis.log" | tail -n1 | awk '{print $1}')"
  RESULTS+=("$name: ${generated:-?} test cases generated in ${elapsed}s, schemathesis exit $rc ($([ "$rc" -eq 0 ] && echo passed || echo failed))")
  return "$rc"
}

# ------------------------------------------------------------------- main
RESULTS=()
passed=0
failed=0

if run_backend sqlite "sqlite://$TMP/tasks.db"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi

if [ -n "${TEST_DATABASE_URL:-}" ]; then
  PG_SCHEMA="st_$(rand_hex 6)"
  if psql "$TEST_DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -c "create schema $PG_SCHEMA" >/dev/null; then
    case "$TEST_DATABASE_URL" in *\?*) sep='&' ;; *) sep='?' ;; esac
    pg_url="${TEST_DATABASE_URL}${sep}options=-c%20search_path%3D${PG_SCHEMA}"
    if run_backend postgres "$pg_url"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  else
    log "[postgres] could not create schema $PG_SCHEMA in TEST_DATABASE_URL"
    PG_SCHEMA=""
    RESULTS+=("postgres: not run (could not create a schema)")
    failed=$((failed + 1))
  fi
  drop_schema
else
  log "TEST_DATABASE_URL not set: PostgreSQL skipped"
fi

echo
echo "contract fuzzing of $BIN_INFO"
echo "(schemathesis $ST_VERSION, seed $SEED, max-examples $MAX_EXAMPLES; reports in ${REPORT_ROOT#"$ROOT"/}/):"
for line in "${RESULTS[@]}"; do echo "  $line"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
