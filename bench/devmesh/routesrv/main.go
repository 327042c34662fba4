// Command routesrv is the benchmark's route server: it hosts a routeapi.Server (as the operator does),
// publishes N routes for the benchmark workload, and on POST /measure publishes new routes one by one
// and reports how long each took to take effect in a devmesh sidecar (update-to-effect latency).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

func main() {
	grpcAddr := flag.String("grpc", "127.0.0.1:18094", "gRPC listen address")
	httpAddr := flag.String("http", "127.0.0.1:18095", "HTTP listen address (lookup API and /measure)")
	routes := flag.Int("routes", 10000, "number of filler routes for the workload")
	forkHost := flag.String("fork-host", "127.0.0.1", "fork host")
	appPort := flag.Int("app-port", 18081, "baseline app port")
	forkPort := flag.Int("fork-port", 18082, "fork port")
	extra := flag.String("port-map", "", "more app:fork port pairs for the benchmark key (h2c and gRPC ports), comma-separated")
	flag.Parse()
	for pair := range strings.SplitSeq(*extra, ",") {
		if pair == "" {
			continue
		}
		a, f, ok := strings.Cut(pair, ":")
		an, err1 := strconv.Atoi(a)
		fn, err2 := strconv.Atoi(f)
		if !ok || err1 != nil || err2 != nil {
			fmt.Fprintf(os.Stderr, "routesrv: -port-map %q: want app:fork\n", pair)
			os.Exit(2)
		}
		extraPorts = append(extraPorts, routeapi.PortMapping{Port: int32(an), DestinationPort: int32(fn)})
	}
	if err := run(*grpcAddr, *httpAddr, *routes, *forkHost, int32(*appPort), int32(*forkPort)); err != nil {
		fmt.Fprintln(os.Stderr, "routesrv:", err)
		os.Exit(1)
	}
}

// extraPorts are the benchmark key's port mappings beyond app-port -> fork-port.
var extraPorts []routeapi.PortMapping

var workload = routeapi.WorkloadRef{Namespace: "bench", Kind: routeapi.KindDeployment, Name: "bench"}

func route(key, host string, app, fork int32) routeapi.Route {
	return routeapi.Route{Workload: workload, RoutingKey: key, Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "bench", Name: "sb-" + key},
		Kind:    routeapi.DestinationFork, Host: host,
		Ports: []routeapi.PortMapping{{Port: app, DestinationPort: fork}},
	}}
}

func run(grpcAddr, httpAddr string, n int, host string, app, fork int32) error {
	ctx := context.Background()
	s := routeapi.NewServer(routeapi.ServerConfig{})
	bk := route("benchkey", host, app, fork)
	bk.Destination.Ports = append(bk.Destination.Ports, extraPorts...)
	base := []routeapi.Route{bk}
	for i := range n {
		// Filler routes point at an unused port: a misrouted request would fail loudly.
		base = append(base, route("key-"+strconv.Itoa(i), host, app, 1))
	}
	if _, err := s.PublishWorkload(ctx, workload, base); err != nil {
		return err
	}
	lis, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return err
	}
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()

	mux := http.NewServeMux()
	mux.Handle("/v1/", s.LookupHandler())
	mux.HandleFunc("POST /measure", func(w http.ResponseWriter, r *http.Request) {
		count, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if count <= 0 {
			count = 200
		}
		res, err := measure(r.Context(), s, base, r.URL.Query().Get("proxy"), count, host, app, fork, r.URL.Query().Get("mode") == "apply")
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(res)
	})
	fmt.Printf("routesrv: %d routes published, grpc %s, http %s\n", len(base), grpcAddr, httpAddr)
	return http.ListenAndServe(httpAddr, mux)
}

type result struct {
	Mode  string  `json:"mode"`
	N     int     `json:"n"`
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	Maxms float64 `json:"max_ms"`
}

// measure publishes count new keys one at a time and polls the sidecar with the new key until the fork
// answers. Each publish is the workload's full route set (PublishWorkload, diffed by the server), or
// with incremental an add of the one route (Server.Apply).
func measure(ctx context.Context, s *routeapi.Server, base []routeapi.Route, proxyURL string, count int, host string, app, fork int32, incremental bool) (result, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	var lat []time.Duration
	for i := range count {
		key := "upd-" + strconv.Itoa(i) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		routes := append(base[:len(base):len(base)], route(key, host, app, fork))
		start := time.Now()
		var err error
		if incremental {
			_, err = s.Apply(ctx, []routeapi.Change{{Op: routeapi.OpAdd, Route: routes[len(routes)-1]}})
		} else {
			_, err = s.PublishWorkload(ctx, workload, routes)
		}
		if err != nil {
			return result{}, err
		}
		for {
			req, _ := http.NewRequestWithContext(ctx, "GET", proxyURL, nil)
			req.Header.Set("Baggage", "userId=alice,sm-routing-key="+key)
			resp, err := c.Do(req)
			if err != nil {
				return result{}, err
			}
			resp.Body.Close()
			if resp.Header.Get("X-Backend") == "fork" {
				break
			}
			if time.Since(start) > 5*time.Second {
				return result{}, fmt.Errorf("key %s not effective after 5s", key)
			}
			time.Sleep(200 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	_, _ = s.PublishWorkload(ctx, workload, base)
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	mode := "full-set PublishWorkload"
	if incremental {
		mode = "incremental Apply"
	}
	return result{Mode: mode, N: count, P50ms: ms(lat[len(lat)/2]), P99ms: ms(lat[len(lat)*99/100]), Maxms: ms(lat[len(lat)-1])}, nil
}
