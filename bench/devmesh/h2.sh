#!/usr/bin/env bash
# h2c and gRPC through devmesh vs nginx (grpc_pass to h2c upstreams), same header routing, in one run:
# h2load drives both (gRPC as unary calls: a framed JSON message POSTed with application/grpc+json),
# half of the connections with the routing key in baggage (-> fork), half without (-> baseline).
# Usage: bench/devmesh/h2.sh   (env: DURATION=10 CONNS="64 4" STREAMS=1 ROUNDS=1 ROUTES=10000 PROXY_CPU=0
#                               LOAD_CPU=1 PORT_BASE=19080 NICE=0 OUT=bench/devmesh/out/h2)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-10}
CONNS=${CONNS:-64 4}
STREAMS=${STREAMS:-1}
ROUNDS=${ROUNDS:-1}
ROUTES=${ROUTES:-10000}
NICE=${NICE:-0}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PB=${PORT_BASE:-19080}
OUT=${OUT:-$ROOT/bench/devmesh/out/h2}
BASE_H2=$((PB + 1)) FORK_H2=$((PB + 2)) BASE_GRPC=$((PB + 3)) FORK_GRPC=$((PB + 4))
NGINX_H2=$((PB + 10)) NGINX_GRPC=$((PB + 11)) DM_H2=$((PB + 12)) DM_GRPC=$((PB + 13)) ADMIN=$((PB + 14))
RS_GRPC=$((PB + 15)) RS_HTTP=$((PB + 16))
mkdir -p "$OUT/bin" "$OUT/nginx"

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v curl >/dev/null || need+=(curl)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin
echo "versions: $(nginx -v 2>&1) | $(h2load --version | head -1) | $(go version) | load $(cut -d' ' -f1-3 /proc/loadavg)"

go build -o "$OUT/bin/backend" ./bench/devmesh/backend
go build -o "$OUT/bin/routesrv" ./bench/devmesh/routesrv
go build -o "$OUT/bin/devmesh" ./cmd/devmesh

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start() { # start NAME CPU CMD...
  local name=$1 cpu=$2; shift 2
  nice -n "$NICE" taskset -c "$cpu" "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$OUT/$name.pid"
}
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }

GOMAXPROCS=1 start h2-baseline "$LOAD_CPU" "$OUT/bin/backend" -mode h2c -listen 127.0.0.1:$BASE_H2 -name baseline
GOMAXPROCS=1 start h2-fork "$LOAD_CPU" "$OUT/bin/backend" -mode h2c -listen 127.0.0.1:$FORK_H2 -name fork
GOMAXPROCS=1 start grpc-baseline "$LOAD_CPU" "$OUT/bin/backend" -mode grpc -listen 127.0.0.1:$BASE_GRPC -name baseline
GOMAXPROCS=1 start grpc-fork "$LOAD_CPU" "$OUT/bin/backend" -mode grpc -listen 127.0.0.1:$FORK_GRPC -name fork
GOMAXPROCS=1 start routesrv "$LOAD_CPU" "$OUT/bin/routesrv" -grpc 127.0.0.1:$RS_GRPC -http 127.0.0.1:$RS_HTTP \
  -routes "$ROUTES" -app-port $BASE_H2 -fork-port $FORK_H2 -port-map $BASE_GRPC:$FORK_GRPC
for p in $BASE_H2 $FORK_H2 $BASE_GRPC $FORK_GRPC $RS_HTTP; do wait_port $p; done

cat >"$OUT/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $OUT/nginx/body; proxy_temp_path $OUT/nginx/proxy;
  fastcgi_temp_path $OUT/nginx/fcgi; uwsgi_temp_path $OUT/nginx/uwsgi; scgi_temp_path $OUT/nginx/scgi;
  http2_max_concurrent_streams 1000;
  map \$http_baggage \$sm_h2 {
    default h2base;
    "~(^|,)\s*sm-routing-key\s*=\s*benchkey\s*(;|,|\$)" h2fork;
  }
  map \$http_baggage \$sm_grpc {
    default grpcbase;
    "~(^|,)\s*sm-routing-key\s*=\s*benchkey\s*(;|,|\$)" grpcfork;
  }
  upstream h2base { server 127.0.0.1:$BASE_H2; keepalive 128; }
  upstream h2fork { server 127.0.0.1:$FORK_H2; keepalive 128; }
  upstream grpcbase { server 127.0.0.1:$BASE_GRPC; keepalive 128; }
  upstream grpcfork { server 127.0.0.1:$FORK_GRPC; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_H2 http2;
    location / { grpc_pass grpc://\$sm_h2; grpc_set_header X-Forwarded-For \$remote_addr; }
  }
  server {
    listen 127.0.0.1:$NGINX_GRPC http2;
    location / { grpc_pass grpc://\$sm_grpc; grpc_set_header X-Forwarded-For \$remote_addr; }
  }
}
NGX
start nginx "$PROXY_CPU" nginx -c "$OUT/nginx/nginx.conf"
GOMAXPROCS=1 start devmesh "$PROXY_CPU" env SANDBOXMESH_NAMESPACE=bench SANDBOXMESH_WORKLOAD=bench \
  SANDBOXMESH_ROUTE_SERVER=127.0.0.1:$RS_GRPC SANDBOXMESH_PORTS=$DM_H2:$BASE_H2/h2c,$DM_GRPC:$BASE_GRPC/grpc \
  SANDBOXMESH_LISTEN_HOST=127.0.0.1 SANDBOXMESH_ADMIN_LISTEN=127.0.0.1:$ADMIN SANDBOXMESH_LOG_LEVEL=warn "$OUT/bin/devmesh"
for p in $NGINX_H2 $NGINX_GRPC $DM_H2 $DM_GRPC; do wait_port $p; done
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/routes" | grep -q '"connected":true' && break; sleep 0.1; done

KEYED='userId=alice, sm-routing-key=benchkey;ttl=60, isProduction=false, tenant=acme'
PLAIN='userId=bob, isProduction=false, tenant=acme'
# One gRPC message (uncompressed flag, big-endian length, JSON payload) for bench.Echo/Call.
python3 -c 'import struct,sys; m=b"{\"text\":\"hello from the benchmark\"}"; sys.stdout.buffer.write(b"\0"+struct.pack(">I",len(m))+m)' >"$OUT/grpc-msg.bin"
GRPC_H=(-H 'content-type: application/grpc+json' -H 'te: trailers')

backend_of() { # backend_of URL BAGGAGE [grpc]
  local extra=()
  [ "${3:-}" = grpc ] && extra=(-X POST --data-binary @"$OUT/grpc-msg.bin" "${GRPC_H[@]}")
  curl -s --http2-prior-knowledge -o /dev/null -D - -H "baggage: $2" "${extra[@]}" "$1" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-backend"{print $2}'
}
for name_url in direct-h2c:http://127.0.0.1:$BASE_H2/ nginx-h2c:http://127.0.0.1:$NGINX_H2/ devmesh-h2c:http://127.0.0.1:$DM_H2/ \
  direct-grpc:http://127.0.0.1:$BASE_GRPC/bench.Echo/Call nginx-grpc:http://127.0.0.1:$NGINX_GRPC/bench.Echo/Call devmesh-grpc:http://127.0.0.1:$DM_GRPC/bench.Echo/Call; do
  name=${name_url%%:*} url=${name_url#*:}
  g=""; [[ $name == *grpc ]] && g=grpc
  k=$(backend_of "$url" "$KEYED" $g) n=$(backend_of "$url" "$PLAIN" $g)
  echo "routing check $name: keyed -> $k, other -> $n"
  if [[ $name != direct* ]] && { [ "$k" != fork ] || [ "$n" != baseline ]; }; then echo "routing check failed for $name" >&2; exit 1; fi
done

pids_of() {
  case $1 in
    nginx*) pgrep -P "$(cat "$OUT/nginx.pid")" -d ' ' nginx 2>/dev/null; echo " $(cat "$OUT/nginx.pid")";;
    devmesh*) pgrep -P "$(cat "$OUT/devmesh.pid")" -d ' ' 2>/dev/null; echo " $(cat "$OUT/devmesh.pid")";;
    *) echo "";;
  esac
}
cpu_ticks() { local t=0; for p in $(pids_of "$1"); do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
HZ=$(getconf CLK_TCK)

# run NAME URL CONNS [grpc]: two h2load processes (keyed, plain), CONNS/2 connections each; prints
# "requests duration_s p50_us p99_us errors proxy_cpu_s".
run() {
  local name=$1 url=$2 c=$3 g=${4:-} half=$(( $3 / 2 )) extra=()
  [ "$g" = grpc ] && extra=(-d "$OUT/grpc-msg.bin" "${GRPC_H[@]}")
  nice -n "$NICE" taskset -c "$LOAD_CPU" h2load -c "$half" -m "$STREAMS" -n $(( half * 200 )) "${extra[@]}" "$url" >/dev/null 2>&1 # warm-up
  local t0; t0=$(cpu_ticks "$name")
  nice -n "$NICE" taskset -c "$LOAD_CPU" h2load -c "$half" -m "$STREAMS" -D "$DURATION" -H "baggage: $KEYED" "${extra[@]}" \
    --log-file="$OUT/log-$name-c$c-keyed.tsv" "$url" >"$OUT/h2load-$name-c$c-keyed.txt" 2>&1 &
  local a=$!
  nice -n "$NICE" taskset -c "$LOAD_CPU" h2load -c "$half" -m "$STREAMS" -D "$DURATION" -H "baggage: $PLAIN" "${extra[@]}" \
    --log-file="$OUT/log-$name-c$c-plain.tsv" "$url" >"$OUT/h2load-$name-c$c-plain.txt" 2>&1
  wait $a
  local t1; t1=$(cpu_ticks "$name")
  python3 - "$OUT/log-$name-c$c-keyed.tsv" "$OUT/log-$name-c$c-plain.tsv" "$DURATION" $(( t1 - t0 )) "$HZ" <<'PY'
import sys
lat, err = [], 0
for f in sys.argv[1:3]:
    for l in open(f):
        p = l.split()
        if len(p) < 3: continue
        if p[1] != "200": err += 1
        lat.append(int(p[2]))
lat.sort()
pct = lambda q: lat[int((len(lat) - 1) * q)] if lat else 0
print(len(lat), sys.argv[3], pct(0.5), pct(0.99), err, int(sys.argv[4]) / int(sys.argv[5]))
PY
}

RESULTS="$OUT/results.txt"; : >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for c in $CONNS; do
    for proto in h2c grpc; do
      for who in direct nginx devmesh; do
        case $who-$proto in
          direct-h2c) url=http://127.0.0.1:$BASE_H2/api/items;; nginx-h2c) url=http://127.0.0.1:$NGINX_H2/api/items;;
          devmesh-h2c) url=http://127.0.0.1:$DM_H2/api/items;;
          direct-grpc) url=http://127.0.0.1:$BASE_GRPC/bench.Echo/Call;; nginx-grpc) url=http://127.0.0.1:$NGINX_GRPC/bench.Echo/Call;;
          devmesh-grpc) url=http://127.0.0.1:$DM_GRPC/bench.Echo/Call;;
        esac
        g=""; [ "$proto" = grpc ] && g=grpc
        echo "$round $c $proto $who $(run "$who-$proto" "$url" "$c" $g)" | tee -a "$RESULTS"
      done
    done
  done
done

python3 - "$RESULTS" <<'PY'
import sys, statistics as st
data = {}
for l in open(sys.argv[1]):
    r = l.split()
    if len(r) < 10: continue
    n, dur, p50, p99, err, cpu = int(r[4]), float(r[5]), float(r[6]), float(r[7]), int(r[8]), float(r[9])
    data.setdefault((int(r[1]), r[2], r[3]), []).append(dict(rps=n / dur, p50=p50, p99=p99, err=err, cpu=cpu / dur, pc=(n / cpu if cpu > 0 else float("nan"))))
med = lambda k, key: st.median(x[k] for x in data[key])
for (c, proto) in sorted({(k[0], k[1]) for k in data}, key=lambda x: (-x[0], x[1])):
    print(f"\n== {proto}, {c} connections ==")
    print(f"{'proxy':8} {'req/s':>8} {'proxy CPU':>9} {'req/s per core':>15} {'p50 us':>7} {'p99 us':>7} {'+p50':>6} {'+p99':>6} {'errors':>6}")
    for who in ("direct", "nginx", "devmesh"):
        key = (c, proto, who)
        if key not in data: continue
        d = (c, proto, "direct")
        a50, a99 = med("p50", key) - med("p50", d), med("p99", key) - med("p99", d)
        pc = med("pc", key) if who != "direct" else float("nan")
        print(f"{who:8} {med('rps', key):8.0f} {med('cpu', key):9.2f} {pc:15.0f} {med('p50', key):7.0f} {med('p99', key):7.0f} {a50:6.0f} {a99:6.0f} {int(med('err', key)):6d}")
    n, m = (c, proto, "nginx"), (c, proto, "devmesh")
    if n in data and m in data:
        print(f"devmesh/nginx: req/s per core {med('pc', m) / med('pc', n):.2f}x, raw req/s {med('rps', m) / med('rps', n):.2f}x")
PY
