#!/bin/sh
# mariadb-database, delete step "drop": drops the database and the user
# create.sh made. The names are computed again from the sandbox and
# resource, so it works even when create never finished. Safe to re-run.
#
# In: MYSQL_HOST MYSQL_TCP_PORT MYSQL_USER MYSQL_PWD (the admin),
#     SANDBOXMESH_SANDBOX_NAME SANDBOXMESH_RESOURCE_NAME SANDBOXMESH_RESOURCE_ID.
set -eu

: "${MYSQL_HOST:?MYSQL_HOST is not set: the admin Secret gives MYSQL_HOST MYSQL_TCP_PORT MYSQL_USER MYSQL_PWD}"
: "${MYSQL_USER:?MYSQL_USER is not set: the admin Secret gives MYSQL_HOST MYSQL_TCP_PORT MYSQL_USER MYSQL_PWD}"
: "${SANDBOXMESH_SANDBOX_NAME:?SANDBOXMESH_SANDBOX_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_NAME:?SANDBOXMESH_RESOURCE_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_ID:?SANDBOXMESH_RESOURCE_ID is not set (the operator sets it)}"
MYSQL_TCP_PORT=${MYSQL_TCP_PORT:-3306}
export MYSQL_PWD

# sanitise VALUE MAX: lower case, [a-z0-9_] only, at most MAX characters.
sanitise() {
	printf '%s' "$1" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_' | cut -c "1-$2"
}
# The same name as in create.sh.
NAME="sm_$(sanitise "$SANDBOXMESH_SANDBOX_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_ID" 8)"

echo "mariadb-database: dropping database and user $NAME on $MYSQL_HOST:$MYSQL_TCP_PORT"
mariadb --no-defaults --protocol=tcp --connect-timeout=10 -h "$MYSQL_HOST" -P "$MYSQL_TCP_PORT" -u "$MYSQL_USER" <<SQL
DROP DATABASE IF EXISTS \`$NAME\`;
DROP USER IF EXISTS '$NAME'@'%';
SQL
echo "mariadb-database: gone"
