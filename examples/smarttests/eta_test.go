package smarttests

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// startHotrod starts hotrod-lite on loopback with two route services, the baseline and a fork serving
// routing key k1 (as sandbox "new-route"), behind a proxy that routes by the key as the mesh does. It
// returns frontend's address.
func startHotrod(t *testing.T) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(c app.Config) *app.Server {
		t.Helper()
		c.Propagation = app.PropagationOTel
		c.Logger = log
		c.CallTimeout = 30 * time.Second // the machine is shared and slow
		s, err := app.Start(t.Context(), c)
		if err != nil {
			t.Fatalf("start %s: %v", c.Service, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("shutdown %s: %v", c.Service, err)
			}
		})
		return s
	}
	customer := start(app.Config{Service: app.Customer, HTTPAddr: "127.0.0.1:0"})
	route := start(app.Config{Service: app.Route, HTTPAddr: "127.0.0.1:0"})
	fork := start(app.Config{Service: app.Route, HTTPAddr: "127.0.0.1:0",
		Identity: app.Identity{Version: "route-2", Sandbox: "new-route", SandboxRoutingKey: "k1"}})
	baseURL, _ := url.Parse("http://" + route.HTTPAddr())
	forkURL, _ := url.Parse("http://" + fork.HTTPAddr())
	toBase, toFork := httputil.NewSingleHostReverseProxy(baseURL), httputil.NewSingleHostReverseProxy(forkURL)
	mesh := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if key, _ := routingkey.Default.Extract(r.Header); key == "k1" {
			toFork.ServeHTTP(w, r)
			return
		}
		toBase.ServeHTTP(w, r)
	}))
	t.Cleanup(mesh.Close)
	driver := start(app.Config{Service: app.Driver, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		CustomerURL: "http://" + customer.HTTPAddr()})
	frontend := start(app.Config{Service: app.Frontend, HTTPAddr: "127.0.0.1:0", RouteURL: mesh.URL,
		DriverAddr: driver.GRPCAddr()})
	return frontend.HTTPAddr()
}

// clusterTransport dials frontend.hotrod.svc:8080, the address the script names, at addr.
func clusterTransport(addr string) http.RoundTripper {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if a != "frontend.hotrod.svc:8080" {
			return nil, &net.AddrError{Err: "not in the test cluster", Addr: a}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return tr
}

// TestETA runs eta.star against hotrod-lite: every run passes its checks, the target run reaches the fork
// of route (the key travels frontend -> route), the baseline runs the baseline; the diff of the captures
// shows the fork's version as a finding and the per-request trace id as noise.
func TestETA(t *testing.T) {
	src, err := os.ReadFile("eta.star")
	if err != nil {
		t.Fatal(err)
	}
	rep, err := executor.Execute(t.Context(), executor.Config{
		Execution: "eta-1", Filename: "eta.star", Source: string(src), RoutingKey: "k1",
		Transport: clusterTransport(startHotrod(t)), Namespace: "hotrod", Name: "eta-test",
		Limits: script.Config{Timeout: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Runs {
		if r.Error != "" || !r.Result.Passed() || len(r.Result.Checks) != 2 || len(r.Captures) != 1 {
			t.Fatalf("run %s: error %q, result %+v, %d captures", r.Name, r.Error, r.Result, len(r.Captures))
		}
		var tree app.Node
		if err := json.Unmarshal(r.Captures[0].Response.Body, &tree); err != nil {
			t.Fatalf("run %s: %v", r.Name, err)
		}
		wantKey, wantVersion := "", "baseline"
		if r.Name == executor.RunTarget {
			wantKey, wantVersion = "k1", "route-2"
		}
		route := tree.Calls[0]
		if tree.RoutingKey != wantKey || route.Service != "route" || route.RoutingKey != wantKey || route.Version != wantVersion {
			t.Errorf("run %s: frontend saw key %q, route %s %s saw key %q; want key %q at route %s",
				r.Name, tree.RoutingKey, route.Service, route.Version, route.RoutingKey, wantKey, wantVersion)
		}
		if want := "customer 392 eta 7m served by route " + wantVersion; strings.Join(r.Result.Logs, "") != want {
			t.Errorf("run %s: logs %q, want %q", r.Name, r.Result.Logs, want)
		}
	}

	res := diff.Compare(rep.Runs[0].Captures, rep.Runs[1].Captures, rep.Runs[2].Captures, diff.Options{})
	found := map[string]diff.Category{}
	for _, f := range res.Findings {
		found[f.Path] = f.Category
	}
	if found["/response/body/calls/0/version"] == "" || found["/response/body/calls/0/sandbox"] == "" {
		t.Errorf("findings %v: want the fork's version and sandbox", found)
	}
	if _, ok := found["/response/body/calls/0/data/eta"]; ok {
		t.Errorf("findings %v: the ETA is the same in the fork", found)
	}
	noise := false
	for _, p := range res.Points {
		for _, d := range p.Diffs {
			for _, op := range d.Response.DiffOps {
				if op.Path == "/response/body/traceId" && op.Classification.Noise && op.Classification.Category == diff.Green {
					noise = true
				}
			}
		}
	}
	if !noise {
		t.Errorf("the trace id is not green noise: %+v", res.Points)
	}
}
