#!/usr/bin/env bash
# verify.sh fails when generated files are stale or Go files are not gofmt'ed.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
paths=(crds deploy/manifests deploy/helm/sandboxmesh/crds deploy/helm/sandboxmesh/files)
for p in "${paths[@]}"; do [ -e "$p" ] && mkdir -p "$tmp/$(dirname "$p")" && cp -a "$p" "$tmp/$p"; done
make -s generate manifests >/dev/null
status=0
for p in "${paths[@]}"; do
  if [ -e "$p" ] && ! diff -ruN "$tmp/$p" "$p"; then status=1; fi
done
if [ $status -ne 0 ]; then
  echo "generated files were stale: run 'make generate manifests' and commit the result" >&2
  exit 1
fi
out=$(gofmt -l $(git ls-files '*.go' | grep -v '^$') 2>/dev/null || true)
if [ -n "$out" ]; then echo "not gofmt'ed:"; echo "$out"; exit 1; fi
echo "generated files up to date"
