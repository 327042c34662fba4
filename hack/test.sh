#!/usr/bin/env bash
# test.sh is `make test`: test bed, vet, generated-files check, race tests, short fuzz pass.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
step() { echo; echo "==> $*"; }
step "test bed"
KUBEBUILDER_ASSETS=$(hack/testbed.sh | tail -n 1)
export KUBEBUILDER_ASSETS
echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
if [ -x hack/postgres-test.sh ] && [ -z "${SANDBOXMESH_TEST_POSTGRES_DSN:-}" ]; then
  step "PostgreSQL for the store tests"
  SANDBOXMESH_TEST_POSTGRES_DSN=$(hack/postgres-test.sh | tail -n 1)
  export SANDBOXMESH_TEST_POSTGRES_DSN
fi
step "go vet"
go vet ./...
step "generated files"
hack/verify.sh
step "go test -race"
go test -race -count=1 -timeout 30m ./...
step "fuzz (${FUZZTIME:-5s} per target)"
FUZZTIME=${FUZZTIME:-5s} hack/fuzz.sh
echo; echo "all tests passed"
