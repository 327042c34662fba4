#!/usr/bin/env bash
# run.sh runs the control-plane load benchmark on SQLite and PostgreSQL side by
# side and prints a Markdown report (RESULTS.md keeps one).
#
# Env: SANDBOXMESH_CP_SANDBOXES (default 10000), SANDBOXMESH_CP_CLIENTS (50),
# SANDBOXMESH_CP_SECONDS per operation (10), SANDBOXMESH_CP_RATE (requests/s of
# the open-loop pass, 100), SANDBOXMESH_TEST_POSTGRES_DSN
# (default: hack/postgres-test.sh starts a throw-away PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOFLAGS=${GOFLAGS:--mod=mod}
if [ -z "${SANDBOXMESH_TEST_POSTGRES_DSN:-}" ]; then
  SANDBOXMESH_TEST_POSTGRES_DSN="$(hack/postgres-test.sh)"
  export SANDBOXMESH_TEST_POSTGRES_DSN
fi
export CI=true # PostgreSQL must run, not be skipped
SANDBOXMESH_CP_BENCH=1 go test -count=1 -run TestLoad -v -timeout 60m ./bench/controlplane/
