#!/usr/bin/env bash
# Benchmark devmesh against nginx and HAProxy (Debian packages) on loopback, in one run, with the same
# backend, the same request mix and the same fixed connection count, each proxy pinned to the same CPU.
# Usage: bench/devmesh/run.sh            (env: DURATION=10s CONNS=64 LAT_CONNS=4 ROUNDS=1 ROUTES=10000
#                                          PROXY_CPU=0 LOAD_CPU=1 PORT_BASE=18080 OUT=bench/devmesh/out
#                                          NICE=0: e.g. -10 to run every benchmark process, proxies and
#                                          load generator alike, ahead of other work on a shared machine)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
LAT_CONNS=${LAT_CONNS:-4}
ROUNDS=${ROUNDS:-1}
ROUTES=${ROUTES:-10000}
NICE=${NICE:-0}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PB=${PORT_BASE:-18080}
OUT=${OUT:-$ROOT/bench/devmesh/out}
BASE_PORT=$((PB + 1)) FORK_PORT=$((PB + 2)) NGINX_PORT=$((PB + 10)) HAPROXY_PORT=$((PB + 11))
DEVMESH_PORT=$((PB + 12)) ADMIN_PORT=$((PB + 13)) RS_GRPC=$((PB + 14)) RS_HTTP=$((PB + 15))
NETHTTP_PORT=$((PB + 16)) NETHTTP_ADMIN=$((PB + 17))
LOOP_PORT=$((PB + 18)) LOOP_ADMIN=$((PB + 19)) LOOPNP_PORT=$((PB + 20)) LOOPNP_ADMIN=$((PB + 21))
mkdir -p "$OUT/bin"

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v taskset >/dev/null || need+=(util-linux)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
command -v pgrep >/dev/null || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} from Debian"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
export PATH=$PATH:/usr/sbin
echo "versions: $(nginx -v 2>&1) | $(haproxy -v | head -1) | $(wrk -v 2>&1 | head -1) | $(go version)"

go build -o "$OUT/bin/backend" ./bench/devmesh/backend
go build -o "$OUT/bin/routesrv" ./bench/devmesh/routesrv
go build -o "$OUT/bin/devmesh" ./cmd/devmesh

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start() { # start NAME CPU CMD...: background process pinned to CPU
  local name=$1 cpu=$2; shift 2
  nice -n "$NICE" taskset -c "$cpu" "$@" >"$OUT/$name.log" 2>&1 &
  PIDS+=($!)
  echo $! >"$OUT/$name.pid"
}
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }

# Backends (baseline and fork) share the load-generator CPU, as in every run.
GOMAXPROCS=1 start backend-baseline "$LOAD_CPU" "$OUT/bin/backend" -listen 127.0.0.1:$BASE_PORT -name baseline
GOMAXPROCS=1 start backend-fork "$LOAD_CPU" "$OUT/bin/backend" -listen 127.0.0.1:$FORK_PORT -name fork
GOMAXPROCS=1 start routesrv "$LOAD_CPU" "$OUT/bin/routesrv" -grpc 127.0.0.1:$RS_GRPC -http 127.0.0.1:$RS_HTTP \
  -routes "$ROUTES" -app-port $BASE_PORT -fork-port $FORK_PORT
wait_port $BASE_PORT; wait_port $FORK_PORT; wait_port $RS_HTTP

# nginx: one worker, route by the baggage member with a map.
mkdir -p "$OUT/nginx"
cat >"$OUT/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $OUT/nginx/nginx.pid;
error_log $OUT/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $OUT/nginx/body; proxy_temp_path $OUT/nginx/proxy;
  fastcgi_temp_path $OUT/nginx/fcgi; uwsgi_temp_path $OUT/nginx/uwsgi; scgi_temp_path $OUT/nginx/scgi;
  map \$http_baggage \$sm_upstream {
    default baseline;
    "~(^|,)\s*sm-routing-key\s*=\s*benchkey\s*(;|,|\$)" fork;
  }
  upstream baseline { server 127.0.0.1:$BASE_PORT; keepalive 128; }
  upstream fork { server 127.0.0.1:$FORK_PORT; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINX_PORT reuseport backlog=4096;
    location / {
      proxy_pass http://\$sm_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For \$remote_addr;
    }
  }
}
EOF
# HAProxy: one thread; req.hdr() iterates the comma-separated baggage members of every baggage header.
cat >"$OUT/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  acl sandbox req.hdr(baggage) -m reg '^[[:space:]]*sm-routing-key[[:space:]]*=[[:space:]]*benchkey[[:space:]]*(;.*)?\$'
  option forwardfor
  use_backend fork if sandbox
  default_backend baseline
backend baseline
  http-reuse always
  server b1 127.0.0.1:$BASE_PORT
backend fork
  http-reuse always
  server f1 127.0.0.1:$FORK_PORT
EOF
start nginx "$PROXY_CPU" nginx -c "$OUT/nginx/nginx.conf"
start haproxy "$PROXY_CPU" haproxy -f "$OUT/haproxy.cfg" -db
start_devmesh() { # start_devmesh NAME PORT ADMIN [ENV=VALUE...]: one devmesh, GOMAXPROCS=1, 10,001 routes
  local name=$1 port=$2 admin=$3; shift 3
  GOMAXPROCS=1 start "$name" "$PROXY_CPU" env SANDBOXMESH_NAMESPACE=bench SANDBOXMESH_WORKLOAD=bench \
    SANDBOXMESH_ROUTE_SERVER=127.0.0.1:$RS_GRPC SANDBOXMESH_PORTS=$port:$BASE_PORT \
    SANDBOXMESH_LISTEN_HOST=127.0.0.1 SANDBOXMESH_ADMIN_LISTEN=127.0.0.1:$admin SANDBOXMESH_PPROF=true \
    SANDBOXMESH_LOG_LEVEL=warn "$@" "$OUT/bin/devmesh"
}
# devmesh with its defaults (event loop on a locked thread, --http1-event-loop=thread); the same with a
# goroutine per connection (off), with its loop parked on Go's netpoller (netpoll), and with the HTTP/1.1
# fast path off (everything through net/http's server and transport).
start_devmesh devmesh "$DEVMESH_PORT" "$ADMIN_PORT"
start_devmesh devmesh-noloop "$LOOP_PORT" "$LOOP_ADMIN" SANDBOXMESH_HTTP1_EVENT_LOOP=off
start_devmesh devmesh-loopnp "$LOOPNP_PORT" "$LOOPNP_ADMIN" SANDBOXMESH_HTTP1_EVENT_LOOP=netpoll
start_devmesh devmesh-nethttp "$NETHTTP_PORT" "$NETHTTP_ADMIN" SANDBOXMESH_HTTP1_FAST_PATH=false
wait_port $NGINX_PORT; wait_port $HAPROXY_PORT; wait_port $DEVMESH_PORT; wait_port $NETHTTP_PORT; wait_port $LOOP_PORT; wait_port $LOOPNP_PORT
for a in $ADMIN_PORT $NETHTTP_ADMIN $LOOP_ADMIN $LOOPNP_ADMIN; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$a/routes" | grep -q '"connected":true' && break; sleep 0.1; done
done

# Sanity: every proxy routes the keyed request to the fork and the others to the baseline.
PEERS="direct:$BASE_PORT nginx:$NGINX_PORT haproxy:$HAPROXY_PORT devmesh:$DEVMESH_PORT devmesh-nethttp:$NETHTTP_PORT devmesh-noloop:$LOOP_PORT devmesh-loopnp:$LOOPNP_PORT"
for name_port in $PEERS; do
  name=${name_port%%:*} port=${name_port##*:}
  k=$(curl -s -o /dev/null -D - -H 'Baggage: userId=alice, sm-routing-key=benchkey;ttl=60, isProduction=false' "http://127.0.0.1:$port/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-backend"{print $2}')
  n=$(curl -s -o /dev/null -D - -H 'Baggage: userId=bob, sm-routing-key=benchkeyx' "http://127.0.0.1:$port/" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-backend"{print $2}')
  echo "routing check $name: keyed -> $k, other -> $n"
  if [ "$name" != direct ] && { [ "$k" != fork ] || [ "$n" != baseline ]; }; then echo "routing check failed for $name" >&2; exit 1; fi
done

pids_of() { # all processes of a proxy (nginx master + worker)
  case $1 in
    nginx) pgrep -P "$(cat "$OUT/nginx.pid")" -d ' ' nginx 2>/dev/null; echo " $(cat "$OUT/nginx.pid")";;
    direct) cat "$OUT/backend-baseline.pid" "$OUT/backend-fork.pid" | tr '\n' ' ';;
    devmesh*) pgrep -P "$(cat "$OUT/$1.pid")" -d ' ' 2>/dev/null; echo " $(cat "$OUT/$1.pid")";;
    *) cat "$OUT/$1.pid";;
  esac
}
cpu_ticks() { local t=0; for p in $(pids_of "$1"); do [ -r /proc/$p/stat ] && t=$((t + $(awk '{print $14+$15}' /proc/$p/stat))); done; echo $t; }
HZ=$(getconf CLK_TCK)

# wrk run: prints "rps p50_us p99_us errors proxy_cpu_seconds"
run_wrk() { # NAME PORT CONNS
  local name=$1 port=$2 c=$3
  local t0; t0=$(cpu_ticks "$name")
  local out; out=$(nice -n "$NICE" taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d"$DURATION" -s "$ROOT/bench/devmesh/mix.lua" "http://127.0.0.1:$port/" 2>&1)
  local t1; t1=$(cpu_ticks "$name")
  echo "$out" >"$OUT/wrk-$name-c$c.txt"
  local j; j=$(echo "$out" | sed -n 's/^JSON //p')
  echo "$j" | awk -v cpu="$(( t1 - t0 ))" -v hz="$HZ" '{print $0, cpu/hz}'
}

RESULTS="$OUT/results.txt"; : >"$RESULTS"
for round in $(seq "$ROUNDS"); do
  for c in "$CONNS" "$LAT_CONNS"; do
    for name_port in $PEERS; do
      name=${name_port%%:*} port=${name_port##*:}
      nice -n "$NICE" taskset -c "$LOAD_CPU" wrk -t1 -c"$c" -d2s -s "$ROOT/bench/devmesh/mix.lua" "http://127.0.0.1:$port/" >/dev/null 2>&1 # warm-up
      echo "$round $c $name $(run_wrk "$name" "$port" "$c")" | tee -a "$RESULTS"
    done
  done
done

# Figures: median over rounds; per-core = requests / proxy CPU seconds.
python3 - "$RESULTS" "$CONNS" "$LAT_CONNS" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
# round conns name rps p50 p99 errors cpu
data = {}
for r in rows:
    data.setdefault((int(r[1]), r[2]), []).append(dict(rps=float(r[3]), p50=float(r[4]), p99=float(r[5]), err=int(r[6]), cpu=float(r[7])))
dur = None
def med(k, c, n): return st.median([x[k] for x in data[(c, n)]])
def percore(c, n):
    xs = data[(c, n)]
    vals = [x["rps"] / (x["cpu"] / DUR) for x in xs if x["cpu"] > 0]
    return st.median(vals) if vals else float("nan")
import os
d = os.environ.get("DURATION", "10s"); DUR = float(d.rstrip("s"))
for c in (int(sys.argv[2]), int(sys.argv[3])):
    print(f"\n== {c} connections, {d} per run, proxy pinned to one CPU ==")
    print(f"{'proxy':15} {'req/s':>9} {'proxy CPU':>9} {'req/s per proxy core':>21} {'p50 us':>8} {'p99 us':>8} {'+p50 us':>8} {'+p99 us':>8} {'errors':>6}")
    for n in ("direct", "nginx", "haproxy", "devmesh", "devmesh-nethttp", "devmesh-noloop", "devmesh-loopnp"):
        if (c, n) not in data: continue
        rps, p50, p99 = med("rps", c, n), med("p50", c, n), med("p99", c, n)
        cpu = med("cpu", c, n) / DUR
        pc = percore(c, n) if n != "direct" else float("nan")
        a50 = p50 - med("p50", c, "direct"); a99 = p99 - med("p99", c, "direct")
        print(f"{n:15} {rps:9.0f} {cpu:9.2f} {pc:21.0f} {p50:8.0f} {p99:8.0f} {a50:8.0f} {a99:8.0f} {int(med('err', c, n)):6d}")
    def ratio(a, b): return f"{a/b:.2f}x" if b > 0 and a == a and b == b else "n/a"
    add = lambda k, n: med(k, c, n) - med(k, c, "direct")
    for me, peer in (("devmesh", "nginx"), ("devmesh", "haproxy"), ("devmesh", "devmesh-nethttp"), ("devmesh", "devmesh-noloop"),
                     ("devmesh-noloop", "nginx"), ("devmesh-loopnp", "nginx")):
        print(f"{me}/{peer}: req/s per core {ratio(percore(c,me), percore(c,peer))}, "
              f"raw req/s {ratio(med('rps',c,me), med('rps',c,peer))}, "
              f"added p50 {ratio(add('p50',me), add('p50',peer))}, "
              f"added p99 {ratio(add('p99',me), add('p99',peer))}")
PY

DPID=$(cat "$OUT/devmesh.pid")
echo; echo "devmesh with $((ROUTES + 1)) routes: RSS now $(awk '/VmRSS/{print $2/1024 " MiB"}' /proc/$DPID/status), peak $(awk '/VmHWM/{print $2/1024 " MiB"}' /proc/$DPID/status)"
curl -s "http://127.0.0.1:$ADMIN_PORT/routes" | python3 -c 'import json,sys; d=json.load(sys.stdin); print("devmesh table:", len(d["routes"]), "routes, version", d["source"]["version"], "connected", d["source"]["connected"])'
echo "route update-to-effect (publish with one new key -> first request routed by it), idle and under load:"
curl -s -X POST "http://127.0.0.1:$RS_HTTP/measure?n=${UPDATES:-200}&proxy=http://127.0.0.1:$DEVMESH_PORT/"
curl -s -X POST "http://127.0.0.1:$RS_HTTP/measure?mode=apply&n=${UPDATES:-200}&proxy=http://127.0.0.1:$DEVMESH_PORT/"
nice -n "$NICE" taskset -c "$LOAD_CPU" wrk -t1 -c"$LAT_CONNS" -d30s -s "$ROOT/bench/devmesh/mix.lua" "http://127.0.0.1:$DEVMESH_PORT/" >/dev/null 2>&1 &
WRKPID=$!
sleep 1
echo -n "under load ($LAT_CONNS connections): "
curl -s -X POST "http://127.0.0.1:$RS_HTTP/measure?n=${UPDATES:-200}&proxy=http://127.0.0.1:$DEVMESH_PORT/"
kill "$WRKPID" 2>/dev/null; wait "$WRKPID" 2>/dev/null || true

profile() { # profile NAME PORT ADMIN: an 8 s CPU profile under CONNS connections; top and cumulative tables
  local name=$1 port=$2 admin=$3
  echo "profiling $name under load (8 s, $CONNS connections)..."
  nice -n "$NICE" taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d10s -s "$ROOT/bench/devmesh/mix.lua" "http://127.0.0.1:$port/" >"$OUT/wrk-profile-$name.txt" 2>&1 &
  local wrkpid=$!
  sleep 1
  curl -s -o "$OUT/$name.cpu.pprof" "http://127.0.0.1:$admin/debug/pprof/profile?seconds=8"
  wait "$wrkpid" || true
  go tool pprof -top -nodecount=30 "$OUT/bin/devmesh" "$OUT/$name.cpu.pprof" 2>/dev/null | tee "$OUT/pprof-top-$name.txt" | head -40
  echo "--- cumulative, by our code and the big blocks ---"
  go tool pprof -top -cum -nodecount=40 "$OUT/bin/devmesh" "$OUT/$name.cpu.pprof" 2>/dev/null | tee "$OUT/pprof-cum-$name.txt" | sed -n '1,50p'
}
profile devmesh "$DEVMESH_PORT" "$ADMIN_PORT"                 # event loop (the default)
profile devmesh-noloop "$LOOP_PORT" "$LOOP_ADMIN"            # a goroutine per connection
