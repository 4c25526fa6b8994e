#!/usr/bin/env bash
# The PostgreSQL half of the HTTP suite again, through PgBouncer in
# transaction mode on a random port (never 6432 or 6543, so the server does
# not recognise it as a pooler) with DB_PREPARED_STATEMENTS unset (auto):
# every test must pass as it does on a direct connection. Each test gets a
# database of its own (see tests/api/helpers.rs, TEST_PGBOUNCER_PORT).
# Needs TEST_DATABASE_URL (a server on 127.0.0.1:5432) and PGBOUNCER_BIN
# (.ci/postgres-extras.sh prints both). Run from the repository root.
set -euo pipefail

bin="${PGBOUNCER_BIN:-/usr/sbin/pgbouncer}"
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
while [ "$port" = 6432 ] || [ "$port" = 6543 ]; do port=$(free_port); done

dir=$(mktemp -d)
# PgBouncer refuses to run as root; -u drops to postgres, which must read
# the configuration and write the log.
chmod 777 "$dir"
printf '"postgres" ""\n' > "$dir/users.txt"
cat > "$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=5432
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
; Fewer server connections than the app's pool (8): transactions of one
; app really do move between server connections.
default_pool_size = 4
max_client_conn = 1000
ignore_startup_parameters = extra_float_digits,options
logfile = $dir/pgbouncer.log
EOF
chmod 644 "$dir/users.txt" "$dir/pgbouncer.ini"
user=()
[ "$(id -u)" = 0 ] && user=(-u postgres)
"$bin" "${user[@]}" "$dir/pgbouncer.ini" > /dev/null 2>&1 &
bouncer=$!
cleanup() {
  kill "$bouncer" 2>/dev/null || true
  wait "$bouncer" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$bouncer" 2>/dev/null || { cat "$dir/pgbouncer.log" >&2; exit 1; }
  sleep 0.05
done
echo "$("$bin" --version | head -n1) in transaction mode on port $port"

out=$(mktemp)
status=0
env -u DB_PREPARED_STATEMENTS TEST_PGBOUNCER_PORT="$port" \
  cargo test --locked --test api '::postgres::' 2>&1 | tee "$out" || status=$?
# A `postgres` module may sit one level down (e.g. events::configured::).
pg=$(grep -cE '^test ([a-z_]+::)+postgres::[a-z0-9_]+ \.\.\. ok$' "$out" || true)
other=$(grep -E '^test .* \.\.\. ' "$out" | grep -vcE '^test ([a-z_]+::)+postgres::' || true)
rm -f "$out"
if [ "$status" -ne 0 ]; then
  tail -n 40 "$dir/pgbouncer.log" >&2
  exit "$status"
fi
# Each test's database, as PgBouncer saw it: the tests did go through it.
databases=$(grep -oE 'registered new auto-database: db=t_[0-9a-f]+' "$dir/pgbouncer.log" | sort -u | wc -l)
echo "through the pooler: postgres=$pg tests, $databases test databases seen by PgBouncer (other tests selected: $other)"
if [ "$pg" -eq 0 ] || [ "$other" -ne 0 ]; then
  echo "the filter must select exactly the ::postgres:: tests" >&2
  exit 1
fi
if [ "$databases" -lt "$pg" ]; then
  echo "only $databases test databases went through PgBouncer for $pg tests" >&2
  exit 1
fi
