package routeapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
)

var (
	wA = WorkloadRef{Namespace: "shop", Kind: "Deployment", Name: "cart"}
	wB = WorkloadRef{Namespace: "shop", Name: "checkout"} // kind defaulted
)

func fork(w WorkloadRef, key, host string, ports ...PortMapping) Route {
	return Route{Workload: w, RoutingKey: key, Destination: Destination{
		Sandbox: SandboxRef{Namespace: "sandboxes", Name: "sb-" + key}, Kind: DestinationFork, Host: host, Ports: ports,
	}}
}

func TestTableLookup(t *testing.T) {
	tab, err := NewTable(7, []Route{
		fork(wA, "k1", "cart-fork.shop.svc", PortMapping{Port: 8080, DestinationPort: 18080}),
		fork(wA, "k2", "fd00::1"),
		{Workload: wB, RoutingKey: "k1", Destination: Destination{Sandbox: SandboxRef{Name: "v"}, Kind: DestinationBaseline}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		w        WorkloadRef
		key      string
		port     int32
		ok       bool
		addr     string
		kind     DestinationKind
		destPort int32
	}{
		{"mapped port", wA, "k1", 8080, true, "cart-fork.shop.svc:18080", DestinationFork, 18080},
		{"unmapped port keeps number", wA, "k1", 9090, true, "cart-fork.shop.svc:9090", DestinationFork, 9090},
		{"kind defaulted in query", WorkloadRef{Namespace: "shop", Name: "cart"}, "k1", 8080, true, "cart-fork.shop.svc:18080", DestinationFork, 18080},
		{"ipv6 host", wA, "k2", 80, true, "[fd00::1]:80", DestinationFork, 80},
		{"baseline destination", wB, "k1", 80, true, "", DestinationBaseline, 80},
		{"unknown key", wA, "k3", 80, false, "", "", 0},
		{"prefix of key", wA, "k", 80, false, "", "", 0},
		{"other workload", WorkloadRef{Namespace: "other", Name: "cart"}, "k1", 80, false, "", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg, ok := tab.Lookup(tc.w, tc.key, tc.port)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			if tg.Addr != tc.addr || tg.Destination.Kind != tc.kind || tg.Port != tc.destPort {
				t.Fatalf("got %+v (%s), want addr %q kind %s port %d", tg, tg.Destination.Kind, tc.addr, tc.kind, tc.destPort)
			}
			wt, ok2 := tab.Workload(tc.w).Lookup(tc.key, tc.port)
			if !ok2 || wt.Addr != tg.Addr {
				t.Fatalf("WorkloadTable lookup = %+v %v", wt, ok2)
			}
		})
	}
	if tab.Len() != 3 || tab.Version() != 7 {
		t.Fatalf("len %d version %d", tab.Len(), tab.Version())
	}
	var nilTab *Table
	if _, ok := nilTab.Lookup(wA, "k1", 80); ok || nilTab.Len() != 0 {
		t.Fatal("nil table must be empty")
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		name  string
		r     Route
		field string
	}{
		{"no namespace", Route{Workload: WorkloadRef{Name: "x"}, RoutingKey: "k", Destination: Destination{Kind: DestinationBaseline}}, "workload.namespace"},
		{"no name", Route{Workload: WorkloadRef{Namespace: "x"}, RoutingKey: "k", Destination: Destination{Kind: DestinationBaseline}}, "workload.name"},
		{"no key", Route{Workload: wA, Destination: Destination{Kind: DestinationBaseline}}, "routingKey"},
		{"key with comma", Route{Workload: wA, RoutingKey: "a,b", Destination: Destination{Kind: DestinationBaseline}}, "routingKey"},
		{"fork without host", Route{Workload: wA, RoutingKey: "k", Destination: Destination{Kind: DestinationFork}}, "destination.host"},
		{"bad kind", Route{Workload: wA, RoutingKey: "k", Destination: Destination{Kind: "mirror"}}, "destination.kind"},
		{"bad port", fork(wA, "k", "h", PortMapping{Port: 0, DestinationPort: 1}), "destination.ports[0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.r.Validate()
			if !errors.Is(err, ErrInvalidRoute) {
				t.Fatalf("err = %v, want ErrInvalidRoute", err)
			}
			if !contains(err.Error(), tc.field) {
				t.Fatalf("err %q does not name field %q", err, tc.field)
			}
		})
	}
	if _, err := NewTable(1, []Route{fork(wA, "k", "h"), fork(wA, "k", "h2")}); !errors.Is(err, ErrInvalidRoute) {
		t.Fatalf("duplicate: err = %v", err)
	}
}

func contains(s, sub string) bool { return len(s) >= len(sub) && (s == sub || indexOf(s, sub) >= 0) }
func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

func TestDiffApplyRoundTrip(t *testing.T) {
	old, _ := NewTable(1, []Route{fork(wA, "k1", "h1"), fork(wA, "k2", "h2"), fork(wB, "k1", "h3")})
	new, _ := NewTable(2, []Route{fork(wA, "k1", "h1"), fork(wA, "k2", "h2-new"), fork(wB, "k4", "h4"), fork(WorkloadRef{Namespace: "n", Name: "c"}, "k5", "h5")})
	changes := Diff(old, new)
	ops := map[Op]int{}
	for _, c := range changes {
		ops[c.Op]++
	}
	if ops[OpAdd] != 2 || ops[OpRemove] != 1 || ops[OpReplace] != 1 {
		t.Fatalf("ops = %v (%+v)", ops, changes)
	}
	got, err := old.Apply(2, changes)
	if err != nil {
		t.Fatal(err)
	}
	if d := Diff(got, new); len(d) != 0 {
		t.Fatalf("apply(diff) differs: %+v", d)
	}
	if got.Len() != new.Len() {
		t.Fatalf("len %d want %d", got.Len(), new.Len())
	}
	// old unchanged
	if tg, _ := old.Lookup(wA, "k2", 80); tg.Destination.Host != "h2" {
		t.Fatal("Apply modified the old table")
	}
	t.Run("bad deltas", func(t *testing.T) {
		for _, c := range []Change{{Op: OpAdd, Route: fork(wA, "k1", "x")}, {Op: OpRemove, Route: fork(wA, "nope", "x")}, {Op: OpReplace, Route: fork(wA, "nope", "x")}, {Op: "flip", Route: fork(wA, "k1", "x")}} {
			if _, err := old.Apply(3, []Change{c}); !errors.Is(err, ErrInvalidRoute) {
				t.Errorf("%s: err = %v", c.Op, err)
			}
		}
	})
}

// startServer runs a Server on a loopback gRPC listener.
func startServer(t testing.TB, cfg ServerConfig) (*Server, string, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cfg)
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	return s, lis.Addr().String(), g.Stop
}

func startClient(t testing.TB, cfg ClientConfig) (*Client, func()) {
	t.Helper()
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	return c, func() { cancel(); <-done }
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestWatchSnapshotDeltasAndFilter(t *testing.T) {
	ctx := context.Background()
	s, addr, stop := startServer(t, ServerConfig{})
	defer stop()
	v1, err := s.Publish(ctx, []Route{fork(wA, "k1", "h1"), fork(wB, "k1", "h2")})
	if err != nil {
		t.Fatal(err)
	}
	all, stopAll := startClient(t, ClientConfig{Target: addr, Name: "all"})
	defer stopAll()
	onlyA, stopA := startClient(t, ClientConfig{Target: addr, Name: "a", Workloads: []WorkloadRef{wA}})
	defer stopA()
	waitFor(t, "snapshot", func() bool { return all.Version() == v1 && onlyA.Version() == v1 })
	if all.Table().Len() != 2 || onlyA.Table().Len() != 1 {
		t.Fatalf("len all=%d a=%d", all.Table().Len(), onlyA.Table().Len())
	}
	if !all.Connected() || all.LastUpdate().IsZero() {
		t.Fatal("status not connected")
	}

	t.Run("delta for one workload", func(t *testing.T) {
		v2, err := s.PublishWorkload(ctx, wA, []Route{fork(wA, "k1", "h1"), fork(wA, "k2", "h3")})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delta", func() bool { return all.Version() == v2 && onlyA.Version() == v2 })
		if _, ok := onlyA.Table().Lookup(wA, "k2", 80); !ok {
			t.Fatal("k2 missing")
		}
		if all.Table().Len() != 3 {
			t.Fatalf("all len %d", all.Table().Len())
		}
	})
	t.Run("delta for other workload is not sent to filtered client", func(t *testing.T) {
		before := onlyA.Version()
		v3, err := s.PublishWorkload(ctx, wB, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "delta", func() bool { return all.Version() == v3 })
		if onlyA.Version() != before {
			t.Fatalf("filtered client moved to %d", onlyA.Version())
		}
		if all.Table().Len() != 2 {
			t.Fatalf("all len %d", all.Table().Len())
		}
	})
	t.Run("incremental apply", func(t *testing.T) {
		v, err := s.Apply(ctx, []Change{{Op: OpAdd, Route: fork(wA, "k7", "h7")}, {Op: OpReplace, Route: fork(wA, "k7", "h8")}})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, "applied", func() bool { return onlyA.Version() == v && all.Version() == v })
		if tg, ok := onlyA.Table().Lookup(wA, "k7", 80); !ok || tg.Destination.Host != "h8" {
			t.Fatalf("k7 = %+v %v", tg, ok)
		}
		cur := s.Table()
		if _, err := s.Apply(ctx, []Change{{Op: OpRemove, Route: fork(wA, "k7", "")}, {Op: OpRemove, Route: fork(wA, "nope", "")}}); !errors.Is(err, ErrInvalidRoute) {
			t.Fatalf("err = %v", err)
		}
		if s.Table() != cur {
			t.Fatal("failed apply changed the table")
		}
	})
	t.Run("publish of same set does not bump the version", func(t *testing.T) {
		cur := s.Table()
		v, err := s.Publish(ctx, cur.Routes())
		if err != nil || v != cur.Version() {
			t.Fatalf("v=%d err=%v, want %d", v, err, cur.Version())
		}
	})
	t.Run("invalid publish is rejected and changes nothing", func(t *testing.T) {
		cur := s.Table()
		if _, err := s.Publish(ctx, []Route{{Workload: wA}}); !errors.Is(err, ErrInvalidRoute) {
			t.Fatalf("err = %v", err)
		}
		if _, err := s.PublishWorkload(ctx, wA, []Route{fork(wB, "x", "h")}); !errors.Is(err, ErrInvalidRoute) {
			t.Fatalf("err = %v", err)
		}
		if s.Table() != cur {
			t.Fatal("table changed")
		}
	})
}

func TestFailStaticAndResync(t *testing.T) {
	ctx := context.Background()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	s := NewServer(ServerConfig{})
	g := grpc.NewServer()
	s.Register(g)
	go func() { _ = g.Serve(lis) }()
	v1, _ := s.Publish(ctx, []Route{fork(wA, "k1", "h1")})
	c, stopC := startClient(t, ClientConfig{Target: addr, Workloads: []WorkloadRef{wA}})
	defer stopC()
	waitFor(t, "snapshot", func() bool { return c.Version() == v1 })

	t.Run("server down keeps the table", func(t *testing.T) {
		g.Stop()
		waitFor(t, "disconnect", func() bool { return !c.Connected() })
		if _, ok := c.Table().Lookup(wA, "k1", 80); !ok || c.Version() != v1 {
			t.Fatal("table lost while server down")
		}
		if c.Status().LastError == "" {
			t.Fatal("no last error")
		}
	})
	t.Run("same server back resumes with a delta", func(t *testing.T) {
		lis2, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("port reuse: %v", err)
		}
		g2 := grpc.NewServer()
		s.Register(g2)
		go func() { _ = g2.Serve(lis2) }()
		defer g2.Stop()
		v2, _ := s.Publish(ctx, []Route{fork(wA, "k1", "h1"), fork(wA, "k2", "h2")})
		waitFor(t, "resume", func() bool { return c.Version() == v2 && c.Connected() })
		if c.Table().Len() != 2 {
			t.Fatalf("len %d", c.Table().Len())
		}
		g2.Stop()
		waitFor(t, "disconnect", func() bool { return !c.Connected() })
	})
	t.Run("new server (new epoch) sends a snapshot", func(t *testing.T) {
		lis3, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("port reuse: %v", err)
		}
		s3 := NewServer(ServerConfig{})
		g3 := grpc.NewServer()
		s3.Register(g3)
		go func() { _ = g3.Serve(lis3) }()
		defer g3.Stop()
		v3, _ := s3.Publish(ctx, []Route{fork(wA, "k9", "h9")})
		waitFor(t, "snapshot from new server", func() bool { return c.Version() == v3 })
		if _, ok := c.Table().Lookup(wA, "k1", 80); ok {
			t.Fatal("stale route kept after snapshot")
		}
		if _, ok := c.Table().Lookup(wA, "k9", 80); !ok {
			t.Fatal("new route missing")
		}
	})
}

// TestSlowSubscriberGetsSnapshot blocks one subscriber's stream and checks that others keep receiving
// and the slow one converges through a snapshot.
func TestSlowSubscriberGetsSnapshot(t *testing.T) {
	ctx := context.Background()
	s, addr, stop := startServer(t, ServerConfig{SubscriberBuffer: 2})
	defer stop()
	block := make(chan struct{})
	var once sync.Once
	slow, stopSlow := startClient(t, ClientConfig{Target: addr, OnUpdate: func(tb *Table) {
		if tb.Len() == 1 {
			once.Do(func() { <-block })
		}
	}})
	defer stopSlow()
	fast, stopFast := startClient(t, ClientConfig{Target: addr})
	defer stopFast()
	waitFor(t, "both subscribed", func() bool { return s.Subscribers() == 2 && slow.Connected() && fast.Connected() })
	var last uint64
	for i := range 200 {
		routes := make([]Route, 0, i+1)
		for j := 0; j <= i; j++ {
			routes = append(routes, fork(wA, fmt.Sprintf("k%d", j), "h"))
		}
		// Bigger routes so the slow stream's TCP buffers fill up.
		last, _ = s.Publish(ctx, routes)
	}
	waitFor(t, "fast client", func() bool { return fast.Version() == last })
	close(block)
	waitFor(t, "slow client converges", func() bool { return slow.Version() == last })
	if slow.Table().Len() != 200 || len(Diff(slow.Table(), s.Table())) != 0 {
		t.Fatalf("slow table differs: len %d", slow.Table().Len())
	}
}

func TestLookupHandler(t *testing.T) {
	ctx := context.Background()
	s := NewServer(ServerConfig{})
	_, _ = s.Publish(ctx, []Route{fork(wA, "k1", "cart-fork", PortMapping{Port: 80, DestinationPort: 8080})})
	srv := httptest.NewServer(s.LookupHandler())
	defer srv.Close()
	cases := []struct {
		name   string
		query  string
		code   int
		routed bool
		errSub string
	}{
		{"routed", "/v1/lookup?namespace=shop&workload=cart&routingKey=k1", 200, true, ""},
		{"routed with kind and port", "/v1/lookup?namespace=shop&kind=Deployment&workload=cart&routingKey=k1&port=80", 200, true, ""},
		{"not routed", "/v1/lookup?namespace=shop&workload=cart&routingKey=k2", 200, false, ""},
		{"missing key", "/v1/lookup?namespace=shop&workload=cart", 400, false, "query.routingKey"},
		{"missing namespace", "/v1/lookup?workload=cart&routingKey=k", 400, false, "query.namespace"},
		{"bad port", "/v1/lookup?namespace=shop&workload=cart&routingKey=k&port=x", 400, false, "query.port"},
		{"unknown path", "/v2/x", 404, false, "no such endpoint"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(srv.URL + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("code %d want %d", resp.StatusCode, tc.code)
			}
			if tc.code != 200 {
				var e ErrorBody
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Code == "" || e.RequestID == "" || !contains(e.Error, tc.errSub) {
					t.Fatalf("error body %+v err %v", e, err)
				}
				return
			}
			var lr LookupResponse
			if err := json.NewDecoder(resp.Body).Decode(&lr); err != nil {
				t.Fatal(err)
			}
			if lr.Routed != tc.routed {
				t.Fatalf("routed %v", lr.Routed)
			}
			if tc.routed && (lr.Sandbox != "sb-k1" || lr.Destination.Host != "cart-fork") {
				t.Fatalf("answer %+v", lr)
			}
		})
	}
}

// BenchmarkPublishToAllClients measures publish -> seen by every one of 50 subscribed clients on
// loopback, and reports p50/p99 of the time the last client saw the update.
func BenchmarkPublishToAllClients(b *testing.B) {
	const nClients = 50
	ctx := context.Background()
	s, addr, stop := startServer(b, ServerConfig{})
	defer stop()
	base := make([]Route, 0, 1000)
	for i := range 1000 {
		base = append(base, fork(WorkloadRef{Namespace: "ns", Name: fmt.Sprintf("w%d", i%50)}, fmt.Sprintf("k%d", i), "h"))
	}
	_, _ = s.Publish(ctx, base)
	var mu sync.Mutex
	var target uint64
	var seen int
	done := make(chan struct{}, 1)
	for i := range nClients {
		_, stopC := startClient(b, ClientConfig{Target: addr, Name: fmt.Sprint(i), OnUpdate: func(t *Table) {
			mu.Lock()
			if target != 0 && t.Version() >= target {
				seen++
				if seen == nClients {
					select {
					case done <- struct{}{}:
					default:
					}
				}
			}
			mu.Unlock()
		}})
		defer stopC()
	}
	waitFor(b, "clients", func() bool { return s.Subscribers() == nClients })
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		r := fork(WorkloadRef{Namespace: "ns", Name: "w0"}, "bench", fmt.Sprintf("h%d", i))
		routes := append(base[:len(base):len(base)], r)
		mu.Lock()
		seen, target = 0, s.Table().Version()+1
		mu.Unlock()
		start := time.Now()
		if _, err := s.Publish(ctx, routes); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			b.Fatal("update not seen by every client")
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkPublishWorkload10k measures one operator publish of a 10,000-route workload with one change.
func BenchmarkPublishWorkload10k(b *testing.B) {
	ctx := context.Background()
	s := NewServer(ServerConfig{})
	base := make([]Route, 0, 10001)
	for i := range 10000 {
		base = append(base, fork(wA, fmt.Sprintf("key-%d", i), "cart-fork.shop.svc", PortMapping{Port: 8080, DestinationPort: 8080}))
	}
	_, _ = s.PublishWorkload(ctx, wA, base)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.PublishWorkload(ctx, wA, append(base[:10000:10000], fork(wA, "new", fmt.Sprint("h", i)))); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientApplyDelta measures a sidecar applying a one-route delta to a 10,000-route table.
func BenchmarkClientApplyDelta(b *testing.B) {
	routes := make([]Route, 0, 10000)
	for i := range 10000 {
		routes = append(routes, fork(wA, fmt.Sprintf("key-%d", i), "cart-fork.shop.svc", PortMapping{Port: 8080, DestinationPort: 8080}))
	}
	t, _ := NewTable(1, routes)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := t.Apply(2, []Change{{Op: OpReplace, Route: fork(wA, "key-1", fmt.Sprint("h", i))}}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup measures the hot-path lookup in a 10,000-route table.
func BenchmarkLookup(b *testing.B) {
	routes := make([]Route, 0, 10000)
	for i := range 10000 {
		routes = append(routes, fork(wA, fmt.Sprintf("key-%d", i), "cart-fork.shop.svc", PortMapping{Port: 8080, DestinationPort: 18080}))
	}
	t, _ := NewTable(1, routes)
	wt := t.Workload(wA)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, ok := wt.Lookup("key-4242", 8080); !ok {
			b.Fatal("missing")
		}
	}
}

// TestBigSnapshot checks that a snapshot bigger than gRPC's 4 MiB default message size arrives.
func TestBigSnapshot(t *testing.T) {
	ctx := context.Background()
	s, addr, stop := startServer(t, ServerConfig{})
	defer stop()
	const n = 16000
	routes := make([]Route, 0, n)
	for i := range n {
		r := fork(WorkloadRef{Namespace: "namespace-of-the-workload", Name: fmt.Sprintf("workload-%d", i%100)}, fmt.Sprintf("routing-key-%d", i),
			fmt.Sprintf("workload-%d-fork-of-a-long-sandbox-name.namespace-of-the-workload.svc.cluster.local", i%100), PortMapping{Port: 8080, DestinationPort: 8080})
		r.Destination.Sandbox.Name = fmt.Sprintf("a-long-sandbox-name-%d", i)
		routes = append(routes, r)
	}
	v, err := s.Publish(ctx, routes)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(s.snapshot(s.Table(), nil)); len(b) < 4<<20 {
		t.Fatalf("snapshot only %d bytes; test needs > 4 MiB", len(b))
	}
	c, stopC := startClient(t, ClientConfig{Target: addr})
	defer stopC()
	deadline := time.Now().Add(60 * time.Second) // JSON of 16,000 routes is slow under -race
	for c.Version() != v && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if c.Table().Len() != n {
		t.Fatalf("len %d", c.Table().Len())
	}
}
