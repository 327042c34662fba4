#!/usr/bin/env bash
# helm.sh runs the real helm, built once from the helm.sh/helm/v3 module
# pinned in hack/tools/go.mod (its own module: helm's dependencies never touch
# the project's go.mod), cached outside the repository.
#
#   hack/helm.sh template sandboxmesh deploy/helm/sandboxmesh
#   hack/helm.sh --print-path        # build if needed, print the binary's path
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's/^require helm.sh\/helm\/v3 \(v[0-9.]*\)$/\1/p' "$root/hack/tools/go.mod")
cache="${SANDBOXMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandboxmesh}/tools/helm-${version}"
bin="$cache/helm"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo ">> building helm ${version} from helm.sh/helm/v3 (first use: a few minutes)" >&2
  start=$(date +%s)
  (cd "$root/hack/tools" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=${version}" -o "$bin.$$.tmp" helm.sh/helm/v3/cmd/helm >&2)
  mv -f "$bin.$$.tmp" "$bin"  # atomic: concurrent first uses each build and the last rename wins
  echo ">> helm ${version} built in $(( $(date +%s) - start ))s: $bin" >&2
fi
if [ "${1:-}" = "--print-path" ]; then
  echo "$bin"
  exit 0
fi
exec "$bin" "$@"
