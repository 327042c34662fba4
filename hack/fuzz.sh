#!/usr/bin/env bash
# fuzz.sh runs every `func FuzzXxx` target of the module for FUZZTIME (default 10s).
#
# Go's fuzzing engine sometimes ends a run with "context deadline exceeded" and
# no failing input when -fuzztime expires while it minimizes a new interesting
# input (the run found nothing). Such a run is retried once; a real failure
# writes its input under testdata/fuzz and fails at once.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]+\(' . | sort | while read -r f; do
  dir=$(dirname "$f")
  for name in $(grep -oE '^func Fuzz[A-Za-z0-9_]+' "$f" | sed 's/^func //'); do
    for attempt in 1 2; do
      echo ">> fuzz $dir $name ($fuzztime)"
      if go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$dir" 2>&1 | tee "$log"; then
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
