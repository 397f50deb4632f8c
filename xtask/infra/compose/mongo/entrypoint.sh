#!/usr/bin/env bash
# FerretDB and the PostgreSQL it stores into, both in this container (data in /data/db):
# start PostgreSQL on its socket only, make the `ferretdb` database once, run FerretDB;
# a stop signal stops FerretDB, then PostgreSQL (fast shutdown). If either exits, so
# does the container.
set -euo pipefail
PGDATA=/data/db/postgres
if [[ "$(id -u)" == 0 ]]; then
  mkdir -p /data/db /var/run/postgresql
  chown -R postgres:postgres /data/db /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi
if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
  initdb --username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
fi
postgres -D "$PGDATA" -c listen_addresses= -c unix_socket_directories=/var/run/postgresql &
pg=$!
for _ in $(seq 1 100); do
  pg_isready -q -h /var/run/postgresql && break
  sleep 0.2
done
if [[ -z "$(psql -h /var/run/postgresql -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'ferretdb'")" ]]; then
  createdb -h /var/run/postgresql -U postgres ferretdb
fi
mkdir -p "$FERRETDB_STATE_DIR"
ferretdb "$@" &
fdb=$!
stop() {
  kill -TERM "$fdb" 2>/dev/null || true
  wait "$fdb" 2>/dev/null || true
  kill -INT "$pg" 2>/dev/null || true
  wait "$pg" 2>/dev/null || true
}
trap 'stop; exit 0' TERM INT
set +e
wait -n "$fdb" "$pg"
rc=$?
stop
exit "$rc"
