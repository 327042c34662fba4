#!/usr/bin/env bash
# run.sh is `make run`: starts the control plane with zero configuration on its
# embedded SQLite database (data in ./sandboxmesh-data), printing a bootstrap
# API key once. `make demo` brings up the whole product on a local cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
exec go run ./cmd/controlplane "$@"
