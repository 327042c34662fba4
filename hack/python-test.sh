#!/usr/bin/env bash
# python-test.sh is `make test-python`: the Python SDK's tests (sdk/python/tests,
# python3 -m unittest) against a real control plane built here from
# cmd/controlplane and started by the tests on SQLite on a free loopback port.
# python3 comes from Debian when missing under CI (CI=true); elsewhere a missing
# python3 skips the tests with a message saying how to install it.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
if ! command -v python3 >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo ">> installing python3 from Debian (CI)" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >&2
  else
    echo "SKIPPED: the Python SDK tests (sdk/python) need python3 >= 3.9, which is not installed; install it (apt-get install python3) and run make test-python. Under CI=true it is installed instead."
    exit 0
  fi
fi
if ! python3 -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)'; then
  echo "python3 is $(python3 --version 2>&1); the Python SDK needs 3.9 or later" >&2
  exit 1
fi
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
# The one non-race build configuration (internal/devenv/images.GoBuild), so after make test's vet this only links.
CGO_ENABLED=0 go build -trimpath -o "$bin/controlplane" ./cmd/controlplane
echo ">> $(python3 --version 2>&1): python3 -m unittest (sdk/python/tests) against $bin/controlplane"
cd sdk/python
SANDBOXMESH_CONTROLPLANE_BIN="$bin/controlplane" PYTHONDONTWRITEBYTECODE=1 python3 -m unittest discover -s tests -t . -v
