#!/usr/bin/env bash
# The tests talk to a real PostgreSQL (GRANULA_TEST_ADMIN_URL, default postgres@127.0.0.1:5432).
# Start the machine's cluster when it is installed but not running.
set -euo pipefail
url=${GRANULA_TEST_ADMIN_URL:-postgresql://postgres@127.0.0.1:5432/postgres}
if psql "$url" -qAtc 'select 1' >/dev/null 2>&1; then
  exit 0
fi
if command -v pg_ctlcluster >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -n | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi
for _ in $(seq 1 30); do
  psql "$url" -qAtc 'select 1' >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "PostgreSQL is not reachable at $url: start it, or set GRANULA_TEST_ADMIN_URL" >&2
exit 1
