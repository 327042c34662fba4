#!/bin/sh
# mariadb-database, create step "provision": a database and a user of the
# same name for one resource of one sandbox, on the MariaDB server the admin
# connection names. Safe to re-run: what exists is kept, the user gets a new
# password.
#
# In:  MYSQL_HOST MYSQL_TCP_PORT MYSQL_USER MYSQL_PWD (the admin: CREATE,
#      CREATE USER and GRANT OPTION),
#      SANDBOXMESH_SANDBOX_NAME SANDBOXMESH_RESOURCE_NAME SANDBOXMESH_RESOURCE_ID,
#      optional OUTPUT_HOST (the host the sandbox's pods use; default MYSQL_HOST).
# Out: $OUTPUT_DIR/{host,port,database,user,password} (default /tmp/out).
set -eu

: "${MYSQL_HOST:?MYSQL_HOST is not set: the admin Secret gives MYSQL_HOST MYSQL_TCP_PORT MYSQL_USER MYSQL_PWD}"
: "${MYSQL_USER:?MYSQL_USER is not set: the admin Secret gives MYSQL_HOST MYSQL_TCP_PORT MYSQL_USER MYSQL_PWD}"
: "${SANDBOXMESH_SANDBOX_NAME:?SANDBOXMESH_SANDBOX_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_NAME:?SANDBOXMESH_RESOURCE_NAME is not set (the operator sets it)}"
: "${SANDBOXMESH_RESOURCE_ID:?SANDBOXMESH_RESOURCE_ID is not set (the operator sets it)}"
MYSQL_TCP_PORT=${MYSQL_TCP_PORT:-3306}
export MYSQL_PWD
OUT=${OUTPUT_DIR:-/tmp/out}

# sanitise VALUE MAX: lower case, [a-z0-9_] only, at most MAX characters.
sanitise() {
	printf '%s' "$1" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_' '_' | cut -c "1-$2"
}
# The same name in delete.sh: sm_<sandbox>_<resource>_<id>, at most 61 characters.
NAME="sm_$(sanitise "$SANDBOXMESH_SANDBOX_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_NAME" 24)_$(sanitise "$SANDBOXMESH_RESOURCE_ID" 8)"
PASSWORD=$(head -c 32 /dev/urandom | sha256sum | cut -c 1-32)

echo "mariadb-database: database and user $NAME on $MYSQL_HOST:$MYSQL_TCP_PORT"
# --no-defaults: no option file is read (the image has no /etc/mysql);
# the password comes from MYSQL_PWD, never the command line.
mariadb --no-defaults --protocol=tcp --connect-timeout=10 -h "$MYSQL_HOST" -P "$MYSQL_TCP_PORT" -u "$MYSQL_USER" <<SQL
CREATE DATABASE IF NOT EXISTS \`$NAME\`;
CREATE USER IF NOT EXISTS '$NAME'@'%' IDENTIFIED BY '$PASSWORD';
ALTER USER '$NAME'@'%' IDENTIFIED BY '$PASSWORD';
GRANT ALL PRIVILEGES ON \`$NAME\`.* TO '$NAME'@'%';
SQL

HOST=${OUTPUT_HOST:-$MYSQL_HOST}
mkdir -p "$OUT"
printf '%s\n' "$HOST" >"$OUT/host"
printf '%s\n' "$MYSQL_TCP_PORT" >"$OUT/port"
printf '%s\n' "$NAME" >"$OUT/database"
printf '%s\n' "$NAME" >"$OUT/user"
printf '%s\n' "$PASSWORD" >"$OUT/password"
echo "mariadb-database: ready"
