#!/bin/sh
# postgres-schema, delete step "drop": drops the database (closing its
# connections) and the role create.sh made. The names are computed again
# from the sandbox and resource, so it works even when create never
# finished. Safe to re-run: what is already gone is skipped.
#
# In: PGHOST PGPORT PGUSER PGPASSWORD (the admin),
#     SANDBOXMESH_SANDBOX_NAME SANDBOXMESH_RESOURCE_NAME SANDBOXMESH_RESOURCE_ID.
set -eu

: "${PGHOST:?PGHOST is not set: the admin Secret gives PGHOST PGPORT PGUSER PGPASSWORD}"
: "${PGUSER:?PGUSER is not set: the admin Secret gives PGHOST PGPORT PGUSER PGPASSWORD}"
: "${SANDBOXMESH_SANDBOX_NAME:?SANDBOXMESH_SANDBOX_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_NAME:?SANDBOXMESH_RESOURCE_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_ID:?SANDBOXMESH_RESOURCE_ID is not set (the operator sets it)}"
PGPORT=${PGPORT:-5432}
export PGHOST PGPORT PGUSER PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}

# sanitise VALUE MAX: lower case, [a-z0-9_] only, at most MAX characters.
sanitise() {
	printf '%s' "$1" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_' | cut -c "1-$2"
}
# The same name as in create.sh.
NAME="sm_$(sanitise "$SANDBOXMESH_SANDBOX_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_ID" 8)"

echo "postgres-schema: dropping database and role $NAME on $PGHOST:$PGPORT"
psql -X -q -v ON_ERROR_STOP=1 -v name="$NAME" -d "${PGDATABASE:-postgres}" <<'SQL'
SET client_min_messages = warning;
-- Membership lets the admin drop a database the role owns.
SELECT format('GRANT %I TO CURRENT_USER', rolname) FROM pg_roles WHERE rolname = :'name' \gexec
DROP DATABASE IF EXISTS :"name" WITH (FORCE);
DROP ROLE IF EXISTS :"name";
SQL
echo "postgres-schema: gone"
