#!/usr/bin/env bash
# fuzz.sh runs every `func FuzzXxx` target of the module for FUZZTIME (default 10s).
#
#   hack/fuzz.sh [package-dir ...]      (default: every package with fuzz targets)
#
# FUZZ_MAX_DEPS=N skips packages whose tests link more than N non-standard
# packages (the instrumented build of Kubernetes' libraries costs minutes on a
# cold machine): `make test` fuzzes the light, network-facing parsers (HTTP
# heads, baggage, route tables, preview hosts, cursors) this way and leaves the
# rest to `make fuzz`; every target's seed corpus runs in `go test` anyway.
#
# Each package's test binary is built once with the fuzzing instrumentation
# (`go test -c -fuzz`) and then runs each of its targets in turn, so a package
# with several targets is compiled and linked once (the instrumented dependency
# packages are shared through the build cache). Targets run in the package's
# folder, as `go test` runs them: a failing input is written under
# <pkg>/testdata/fuzz/<FuzzName>/ and fails the run at once.
#
# Go's fuzzing engine sometimes ends a run with "context deadline exceeded" and
# no failing input when -fuzztime expires while it minimizes a new interesting
# input (the run found nothing). Such a run is retried once.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log="$work/log"
gocache=$(go env GOCACHE)
if [ $# -gt 0 ]; then
  dirs=("$@")
else
  mapfile -t dirs < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . | xargs -n1 dirname | sort -u)
fi
for dir in "${dirs[@]}"; do
  names=$(grep -hoE '^func Fuzz[A-Za-z0-9_]+' "$dir"/*_test.go | sed 's/^func //' | sort)
  [ -n "$names" ] || continue
  pkg=$(go list "$dir")
  if [ -n "${FUZZ_MAX_DEPS:-}" ]; then
    deps=$(go list -deps -test "$dir" | grep -c '\.' || true)
    if [ "$deps" -gt "$FUZZ_MAX_DEPS" ]; then
      echo ">> skip $pkg: $deps non-standard packages > FUZZ_MAX_DEPS=$FUZZ_MAX_DEPS (make fuzz runs it)"
      continue
    fi
  fi
  bin="$work/$(echo "$pkg" | tr '/' '_').test"
  echo ">> build $pkg (fuzzing instrumentation)"
  go test -c -fuzz=. -o "$bin" "$dir"
  for name in $names; do
    for attempt in 1 2; do
      echo ">> fuzz $dir $name ($fuzztime)"
      if (cd "$dir" && "$bin" -test.run='^$' -test.fuzz="^${name}\$" -test.fuzztime="$fuzztime" \
            -test.fuzzcachedir="$gocache/fuzz/$pkg") 2>&1 | tee "$log"; then
        break
      fi
      if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
        echo ">> $name: the engine timed out without a failing input; retrying once"
        continue
      fi
      exit 1
    done
  done
done
