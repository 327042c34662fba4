#!/usr/bin/env bash
# run.sh runs the operator scale benchmark against a real API server:
# SANDBOXMESH_SCALE sandboxes (default 1000) of one fork each must converge.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOFLAGS=${GOFLAGS:--mod=mod}
KUBEBUILDER_ASSETS=$(hack/testbed.sh | tail -n 1)
export KUBEBUILDER_ASSETS
SANDBOXMESH_SCALE=${SANDBOXMESH_SCALE:-1000} go test -count=1 -run TestScale -v -timeout 20m ./bench/operator/
