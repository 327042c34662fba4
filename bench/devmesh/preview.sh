#!/usr/bin/env bash
# The preview path (control plane -> agent tunnel -> Service) vs the same request sent directly to the
# Service and through plain TCP forwarding (what kubectl port-forward gives, without its API-server hop),
# in one run: BenchmarkPreview in controlplane/api (real HTTP server, real agent tunnel over WebSocket,
# loopback), sequential and with 50 concurrent clients. Prints ns/op, req/s, p50/p99 and the ratios.
# Usage: bench/devmesh/preview.sh   (env: BENCHTIME=2s ROUNDS=1 OUT=bench/devmesh/out/preview)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/bench/devmesh/out/preview}
mkdir -p "$OUT"
echo "$(go version) | load $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench '^BenchmarkPreview$' -benchtime "${BENCHTIME:-2s}" -count "${ROUNDS:-1}" ./controlplane/api | tee "$OUT/bench.txt"
python3 - "$OUT/bench.txt" <<'PY'
import re, sys, statistics as st
data = {}
for l in open(sys.argv[1]):
    m = re.match(r"BenchmarkPreview/([\w-]+)/(\w+)-\d+\s+\d+\s+([\d.]+) ns/op(.*)", l)
    if not m: continue
    mode, kind, ns, rest = m.group(1), m.group(2), float(m.group(3)), m.group(4)
    d = dict(ns=ns)
    for v, k in re.findall(r"([\d.]+) ([\w/-]+)", rest): d[k] = float(v)
    data.setdefault((kind, mode), []).append(d)
med = lambda kind, mode, k: st.median(x.get(k, float("nan")) for x in data[(kind, mode)])
for kind in ("sequential", "concurrent50"):
    if (kind, "preview") not in data: continue
    print(f"\n== {kind} ==")
    for mode in ("direct", "tcp-forward", "preview"):
        if (kind, mode) in data:
            extra = f" {med(kind, mode, 'req/s'):9.0f} req/s  p50 {med(kind, mode, 'p50-ms'):.3f} ms  p99 {med(kind, mode, 'p99-ms'):.3f} ms" if kind != "sequential" else ""
            print(f"{mode:12} {med(kind, mode, 'ns'):10.0f} ns/op{extra}")
    for peer in ("direct", "tcp-forward"):
        if (kind, peer) in data:
            print(f"preview/{peer}: {med(kind, 'preview', 'ns') / med(kind, peer, 'ns'):.2f}x time per request")
PY
