#!/usr/bin/env bash
# CI-only PostgreSQL set-up for the production-path tests (idempotent):
# - a role that must authenticate with SCRAM-SHA-256 (the cluster's own
#   users use trust), so channel binding can be exercised over TLS;
# - PgBouncer (Debian's, 1.18) installed for the transaction-pooling test.
# Prints the export lines for the variables the tests read.
set -euo pipefail
psql_admin() { psql -v ON_ERROR_STOP=1 -qAt -h 127.0.0.1 -U postgres -d test "$@"; }

psql_admin -c "do \$\$ begin
  if not exists (select from pg_roles where rolname = 'tasks_scram') then
    create role tasks_scram login password 'scram-test-password';
  end if; end \$\$;" >&2
psql_admin -c "set password_encryption = 'scram-sha-256'; alter role tasks_scram password 'scram-test-password';" >&2
psql_admin -c "grant create on database test to tasks_scram;" >&2
hba=$(psql_admin -c 'show hba_file')
if ! grep -q 'tasks_scram' "$hba"; then
  # First match wins: put the SCRAM lines above the trust ones.
  sed -i '1i host all tasks_scram 127.0.0.1/32 scram-sha-256' "$hba"
  psql_admin -c 'select pg_reload_conf()' >&2
fi
[ "$(psql_admin -c 'show ssl')" = "on" ] || { echo "PostgreSQL has ssl=off" >&2; exit 1; }

if ! command -v pgbouncer >/dev/null 2>&1 && [ ! -x /usr/sbin/pgbouncer ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer) >&2
  # Debian starts a system instance on 6432; the test runs its own.
  (service pgbouncer stop || pkill -x pgbouncer || true) >/dev/null 2>&1
fi

echo "export TEST_SCRAM_DATABASE_URL=postgres://tasks_scram:scram-test-password@127.0.0.1:5432/test"
echo "export PGBOUNCER_BIN=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
