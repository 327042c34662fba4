#!/bin/sh
set -eu
psql -c "CREATE SCHEMA IF NOT EXISTS \"$SCHEMA\""
echo "$PGHOST" > /tmp/host
