#!/usr/bin/env bash
# sm-cluster.sh builds cmd/sm-cluster once into the cache and runs it with the
# given arguments (up, down, status, images, load-image, kubeconfig, deps,
# check-guard). Used by the Makefile targets cluster-up, cluster-down, images.
#
#   hack/cluster/sm-cluster.sh up --images
#   hack/cluster/sm-cluster.sh down
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cache="${SANDBOXMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandboxmesh}"
mkdir -p "$cache/bin"
# The one non-race build configuration (internal/devenv/images.GoBuild), so after make test this only links.
(cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$cache/bin/sm-cluster" ./cmd/sm-cluster)
cd "$root"
if [ "$(id -u)" -ne 0 ]; then
  exec sudo -E "$cache/bin/sm-cluster" "$@"
fi
exec "$cache/bin/sm-cluster" "$@"
