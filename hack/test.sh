#!/usr/bin/env bash
# test.sh is `make test`: test bed, vet, generated-files check, race tests, the Python SDK tests, short fuzz pass.
# With SM_TIMINGS=<file>, each stage appends "<seconds>\t<stage>" to it (.ci/run prints the table).
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS=${GOFLAGS:--mod=mod}
# shellcheck source=hack/lib/stage.sh
. hack/lib/stage.sh
trap 'stage_end' EXIT # a failing stage is timed too
stage "test bed"
KUBEBUILDER_ASSETS=$(hack/testbed.sh | tail -n 1)
export KUBEBUILDER_ASSETS
echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
if [ -x hack/postgres-test.sh ] && [ -z "${SANDBOXMESH_TEST_POSTGRES_DSN:-}" ]; then
  stage "PostgreSQL for the store tests"
  SANDBOXMESH_TEST_POSTGRES_DSN=$(hack/postgres-test.sh | tail -n 1)
  export SANDBOXMESH_TEST_POSTGRES_DSN
fi
# static runs a command in the one build configuration of everything but the race tests and the fuzz
# pass: CGO_ENABLED=0 and -trimpath, as the images are built (internal/devenv/images.GoBuild, also used by
# the layering test and the local cluster; make test-e2e, hack/python-test.sh and hack/cluster/sm-cluster.sh
# build so too). Vet compiles every package once in it; those builds then only link.
static() { CGO_ENABLED=0 GOFLAGS="$GOFLAGS -trimpath" "$@"; }
stage "go vet"
static go vet ./...
stage "generated files"
static hack/verify.sh
stage "chromium for the portal's browser test"
hack/chromium.sh
# Screenshots the browser test takes land in _output/test/portal.
SANDBOXMESH_TEST_OUTPUT=${SANDBOXMESH_TEST_OUTPUT:-$PWD/_output/test}
export SANDBOXMESH_TEST_OUTPUT
stage "go test -race"
go test -race -count=1 -timeout 30m ./...
stage "Python SDK tests (make test-python)"
hack/python-test.sh
stage "fuzz (${FUZZTIME:-2s} per target, packages with <= ${FUZZ_MAX_DEPS:-250} dependencies; make fuzz runs all)"
FUZZTIME=${FUZZTIME:-2s} FUZZ_MAX_DEPS=${FUZZ_MAX_DEPS:-250} hack/fuzz.sh
echo; echo "all tests passed"
