#!/usr/bin/env bash
# testbed.sh prepares the envtest binaries (idempotent, no manual steps):
# etcd from Debian (etcd-server) and kube-apiserver built from the k8s.io/kubernetes
# module at the version matching go.mod, cached outside the repository; iptables
# from Debian for the local-workload root-mode tests (localtunnel/hostnet,
# internal/cli TestLocalConnectRootMode), which change a chain of their own.
# The last line printed is the KUBEBUILDER_ASSETS folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v etcd >/dev/null 2>&1; then
  echo ">> installing etcd-server from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends etcd-server >&2
  # Debian's package may start a system etcd on :2379; envtest runs its own on free ports.
  (systemctl disable --now etcd >/dev/null 2>&1 || service etcd stop >/dev/null 2>&1 || true)
fi
if ! command -v iptables-save >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  echo ">> installing iptables from Debian" >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends iptables >&2 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables >&2; }
fi
bin=$("$root/hack/k8s-build.sh" kube-apiserver | tail -n 1)
ln -sf "$(command -v etcd)" "$bin/etcd"
"$bin/kube-apiserver" --version >&2
"$bin/etcd" --version | sed -n 1p >&2
echo "$bin"
