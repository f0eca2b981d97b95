#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the test suites that run over PostgreSQL (tests/run.sh):
#   env=$(bash tests/postgres.sh start) && eval "$env"
#       (exports CUSTODIA_TEST_STORE_URL and CUSTODIA_TEST_PG_DIR)
#   bash tests/postgres.sh stop "$CUSTODIA_TEST_PG_DIR"
# The cluster lives in a new directory under /tmp; the server listens on a Unix socket there
# only, on a free port, with fsync and synchronous_commit on. As root, its programs run as the `postgres` user
# (PostgreSQL refuses root). tests/setup.sh installs PostgreSQL.
set -euo pipefail

what=${1:?start or stop}
initdb=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
bin=$(dirname "$initdb")
as_postgres=()
if [ "$(id -u)" = 0 ]; then
  as_postgres=(runuser -u postgres --)
fi

case "$what" in
  start)
    dir=$(mktemp -d /tmp/custodia-test-pg.XXXXXX)
    chmod 755 "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres:postgres "$dir"; fi
    "${as_postgres[@]}" "$initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -c listen_addresses='' -c unix_socket_directories='$dir' -c max_connections=400 -c fsync=on -c synchronous_commit=on" \
      start >/dev/null
    echo "export CUSTODIA_TEST_STORE_URL='postgresql://postgres@localhost/postgres?host=$dir&port=$port'"
    echo "export CUSTODIA_TEST_PG_DIR='$dir'"
    ;;
  stop)
    dir=${2:?the cluster directory}
    "${as_postgres[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    rm -rf "$dir"
    ;;
  *)
    echo "tests/postgres.sh: start or stop" >&2
    exit 2
    ;;
esac
