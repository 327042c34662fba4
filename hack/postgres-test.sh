#!/usr/bin/env bash
# postgres-test.sh installs PostgreSQL from Debian (if missing), starts a throw-away
# cluster on loopback (idempotent) and prints the DSN for SANDBOXMESH_TEST_POSTGRES_DSN.
#
#   export SANDBOXMESH_TEST_POSTGRES_DSN="$(hack/postgres-test.sh)"
#
# Env: PGTEST_DIR (default /tmp/sandboxmesh-pgtest), PGTEST_PORT (default 55432).
# All progress goes to stderr; stdout carries only the DSN.
# internal/devenv/dbserver starts servers with the same initdb and server settings
# from Go, one per test (the resource plugin tests, the e2e); this one stays a script
# because it leaves a detached server that later `make test` runs reuse.
set -euo pipefail

DIR="${PGTEST_DIR:-/tmp/sandboxmesh-pgtest}"
PORT="${PGTEST_PORT:-55432}"
DB=sandboxmesh_test

log() { echo "postgres-test: $*" >&2; }

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  return 1
}

BIN="$(find_bin || true)"
if [ -z "$BIN" ]; then
  log "installing postgresql from Debian"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
  BIN="$(find_bin)"
fi

# PostgreSQL refuses to run as root: use the postgres system user then.
RUN=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
  RUN=(runuser -u postgres --)
fi

mkdir -p "$DIR"
[ "$(id -u)" -eq 0 ] && chown postgres "$DIR"

if [ ! -f "$DIR/data/PG_VERSION" ]; then
  log "initdb in $DIR/data"
  "${RUN[@]}" "$BIN/initdb" -D "$DIR/data" -U postgres -A trust --no-sync >&2
fi

if ! "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1; then
  log "starting on 127.0.0.1:$PORT"
  "${RUN[@]}" "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >&2
fi

if ! "${RUN[@]}" "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" postgres | grep -q 1; then
  "${RUN[@]}" "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres "$DB" >&2
fi

echo "postgres://postgres@127.0.0.1:$PORT/$DB?sslmode=disable"
