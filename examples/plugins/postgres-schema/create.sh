#!/bin/sh
# postgres-schema, create step "provision": a database and a role of the same
# name for one resource of one sandbox, on the PostgreSQL server the admin
# connection names. Safe to re-run: what exists is kept, the role gets a new
# password, the seed is applied once.
#
# In:  PGHOST PGPORT PGUSER PGPASSWORD (the admin: CREATEDB CREATEROLE),
#      SANDBOXMESH_SANDBOX_NAME SANDBOXMESH_RESOURCE_NAME SANDBOXMESH_RESOURCE_ID,
#      optional OUTPUT_HOST (the host the sandbox's pods use; default PGHOST),
#      optional seed SQL in the file $SEED_SQL_FILE (default /tmp/seed.sql).
# Out: $OUTPUT_DIR/{host,port,database,user,password,url} (default /tmp/out).
set -eu

: "${PGHOST:?PGHOST is not set: the admin Secret gives PGHOST PGPORT PGUSER PGPASSWORD}"
: "${PGUSER:?PGUSER is not set: the admin Secret gives PGHOST PGPORT PGUSER PGPASSWORD}"
: "${SANDBOXMESH_SANDBOX_NAME:?SANDBOXMESH_SANDBOX_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_NAME:?SANDBOXMESH_RESOURCE_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_ID:?SANDBOXMESH_RESOURCE_ID is not set (the operator sets it)}"
PGPORT=${PGPORT:-5432}
export PGHOST PGPORT PGUSER PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
OUT=${OUTPUT_DIR:-/tmp/out}
SEED=${SEED_SQL_FILE:-/tmp/seed.sql}

# sanitise VALUE MAX: lower case, [a-z0-9_] only, at most MAX characters.
sanitise() {
	printf '%s' "$1" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_' | cut -c "1-$2"
}
# The same name in delete.sh: sm_<sandbox>_<resource>_<id>, at most 61 characters.
NAME="sm_$(sanitise "$SANDBOXMESH_SANDBOX_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_ID" 8)"
PASSWORD=$(head -c 32 /dev/urandom | sha256sum | cut -c 1-32)

admin() {
	psql -X -q -v ON_ERROR_STOP=1 -v name="$NAME" -v password="$PASSWORD" -d "${PGDATABASE:-postgres}" "$@"
}

echo "postgres-schema: database and role $NAME on $PGHOST:$PGPORT"
admin <<'SQL'
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I LOGIN', :'name') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
ALTER ROLE :"name" LOGIN PASSWORD :'password';
-- PostgreSQL 15: an admin with CREATEROLE must be a member to create a database it owns (and to drop it).
GRANT :"name" TO CURRENT_USER;
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL

# The seed runs once, as the new role, in one transaction with the mark that
# says it ran: a failed seed leaves nothing behind and is tried again.
if [ -s "$SEED" ]; then
	seeded=$(admin -A -t -c "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '$NAME'")
	if [ "$seeded" = "sandboxmesh: seeded" ]; then
		echo "postgres-schema: seed already applied"
	else
		echo "postgres-schema: applying the seed ($(wc -c <"$SEED") bytes)"
		PGUSER=$NAME PGPASSWORD=$PASSWORD psql -X -q -v ON_ERROR_STOP=1 -1 -d "$NAME" -f "$SEED" \
			-c "COMMENT ON DATABASE \"$NAME\" IS 'sandboxmesh: seeded'"
	fi
fi

HOST=${OUTPUT_HOST:-$PGHOST}
case $HOST in *:*) URLHOST="[$HOST]" ;; *) URLHOST=$HOST ;; esac
mkdir -p "$OUT"
printf '%s\n' "$HOST" >"$OUT/host"
printf '%s\n' "$PGPORT" >"$OUT/port"
printf '%s\n' "$NAME" >"$OUT/database"
printf '%s\n' "$NAME" >"$OUT/user"
printf '%s\n' "$PASSWORD" >"$OUT/password"
printf 'postgres://%s:%s@%s:%s/%s?sslmode=%s\n' "$NAME" "$PASSWORD" "$URLHOST" "$PGPORT" "$NAME" "${PGSSLMODE:-prefer}" >"$OUT/url"
echo "postgres-schema: ready"
