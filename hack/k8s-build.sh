#!/usr/bin/env bash
# k8s-build.sh builds Kubernetes components from the k8s.io/kubernetes Go module
# into a cache outside the repository and prints the folder holding them.
#
#   hack/k8s-build.sh [component ...]     (default: kube-apiserver)
#
# The version follows k8s.io/api in go.mod (v0.X.Y -> v1.X.Y). A throwaway module
# requires k8s.io/kubernetes and replaces every staging k8s.io/* module with its
# published v0.X.Y release. Binaries already in the cache are reused.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
api_version=$(cd "$root" && go list -m -f '{{.Version}}' k8s.io/api)
k8s_version="v1${api_version#v0}"
cache="${SANDBOXMESH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sandboxmesh}/k8s/${k8s_version}"
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(kube-apiserver)

missing=()
for c in "${components[@]}"; do
  [ -x "$cache/bin/$c" ] || missing+=("$c")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "$cache/bin"
  exit 0
fi

mod="$cache/src"
mkdir -p "$mod" "$cache/bin"
if [ ! -f "$mod/go.sum" ]; then
  echo ">> preparing build module for Kubernetes ${k8s_version} in $mod" >&2
  gomod=$(cd "$mod" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${k8s_version}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  {
    echo "module sandboxmesh.dev/k8sbuild"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes ${k8s_version}"
    echo
    echo "replace ("
    grep -E '^\s*k8s.io/[^ ]+ => ./staging/' "$gomod" | awk -v v="$api_version" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > "$mod/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package tools"
    echo
    echo "import ("
    for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy; do
      echo "	_ \"k8s.io/kubernetes/cmd/$c\""
    done
    echo ")"
  } > "$mod/tools.go"
  (cd "$mod" && go mod tidy >&2)
fi
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=${k8s_version} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$k8s_version" | cut -d. -f2) -X k8s.io/component-base/version.gitTreeState=clean"
# One `go build` for every missing component: the go command schedules all their
# packages in one action graph (shared packages compiled once, links overlap
# compiles), which is faster on a cold machine than one invocation per component.
pkgs=()
for c in "${missing[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
echo ">> building ${missing[*]} ${k8s_version} (cold: ~13 min for kube-apiserver alone on 2 cores, ~4 min more for the others)" >&2
start=$(date +%s)
tmp="$cache/bin/.build.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
(cd "$mod" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}" >&2)
for c in "${missing[@]}"; do mv "$tmp/$c" "$cache/bin/$c"; done
rm -rf "$tmp"
echo ">> built ${missing[*]} in $(( $(date +%s) - start ))s" >&2
echo "$cache/bin"
