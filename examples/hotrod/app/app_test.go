package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

// identities of the test services: every one distinct, route and customer as forks.
var testIdentities = map[Service]Identity{
	Frontend: {Version: "fe-1"},
	Route:    {Version: "route-2", Sandbox: "new-route", SandboxRoutingKey: "k1"},
	Driver:   {Version: "driver-1"},
	Customer: {Version: "customer-3", Sandbox: "new-customer", SandboxRoutingKey: "k2"},
}

// startApp starts the four services on loopback and returns the frontend's base URL.
func startApp(t *testing.T, mode Propagation) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(c Config) *Server {
		t.Helper()
		c.Identity = testIdentities[c.Service]
		c.Propagation = mode
		c.Logger = log
		c.CallTimeout = 30 * time.Second // the machine is shared and slow
		s, err := Start(t.Context(), c)
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
	customer := start(Config{Service: Customer, HTTPAddr: "127.0.0.1:0"})
	route := start(Config{Service: Route, HTTPAddr: "127.0.0.1:0"})
	driver := start(Config{Service: Driver, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		CustomerURL: "http://" + customer.HTTPAddr()})
	frontend := start(Config{Service: Frontend, HTTPAddr: "127.0.0.1:0",
		RouteURL: "http://" + route.HTTPAddr(), DriverAddr: driver.GRPCAddr()})
	return "http://" + frontend.HTTPAddr()
}

func get(t *testing.T, url string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestPropagation(t *testing.T) {
	cases := []struct {
		name   string
		header http.Header
		// wantKey is the routing key every hop must see ("" = none anywhere).
		wantKey string
		// wantBaggage are members every hop's baggage must carry.
		wantBaggage []string
	}{
		{"baggage with other members", http.Header{"Baggage": {"sm-routing-key=abc, other=1"}}, "abc", []string{"sm-routing-key=abc", "other=1"}},
		{"jaeger header only", http.Header{"Uberctx-Sm-Routing-Key": {"k7q2mz4xw3bd5nfe"}}, "k7q2mz4xw3bd5nfe", []string{"sm-routing-key=k7q2mz4xw3bd5nfe"}},
		{"no key", http.Header{"Baggage": {"other=1"}}, "", []string{"other=1"}},
		{"no headers", http.Header{}, "", nil},
	}
	for _, mode := range []Propagation{PropagationOTel, PropagationLibrary} {
		t.Run(string(mode), func(t *testing.T) {
			frontend := startApp(t, mode)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					code, body := get(t, frontend+"/dispatch?customer=392", tc.header)
					if code != http.StatusOK {
						t.Fatalf("status %d, body %s", code, body)
					}
					var root Node
					if err := json.Unmarshal(body, &root); err != nil {
						t.Fatalf("decode %s: %v", body, err)
					}
					checkTree(t, &root, tc.wantKey, tc.wantBaggage, tc.header.Get("Baggage"))
					if t.Failed() {
						t.Logf("response: %s", body)
					}
				})
			}
		})
	}
}

// checkTree checks the shape of the response, each service's identity, and
// what each hop received. sent is the baggage header the test sent.
func checkTree(t *testing.T, root *Node, wantKey string, wantBaggage []string, sent string) {
	t.Helper()
	// Shape: frontend -> [route, driver -> [customer]].
	var got []string
	root.Walk(func(n *Node) { got = append(got, n.Service) })
	if strings.Join(got, ",") != "frontend,route,driver,customer" {
		t.Fatalf("services depth first = %v, want frontend,route,driver,customer", got)
	}
	if d := root.Find("driver"); d.Data["driver"] == "" || d.Data["location"] != "577,322" {
		t.Errorf("driver data = %v, want a driver at the customer's location 577,322", d.Data)
	}
	traceID := root.TraceID
	if traceID == "" {
		t.Error("frontend: no trace ID")
	}
	root.Walk(func(n *Node) {
		id := testIdentities[Service(n.Service)]
		if n.Version != id.Version || n.Sandbox != id.Sandbox || n.SandboxRoutingKey != id.SandboxRoutingKey || n.Build != Build {
			t.Errorf("%s: version %q sandbox %q key %q build %q, want %q %q %q %q", n.Service,
				n.Version, n.Sandbox, n.SandboxRoutingKey, n.Build, id.Version, id.Sandbox, id.SandboxRoutingKey, Build)
		}
		if n.Error != "" {
			t.Errorf("%s: error %s", n.Service, n.Error)
		}
		if n.RoutingKey != wantKey {
			t.Errorf("%s: routing key %q, want %q", n.Service, n.RoutingKey, wantKey)
		}
		if n.TraceID != traceID {
			t.Errorf("%s: trace ID %q, want the frontend's %q", n.Service, n.TraceID, traceID)
		}
		members := strings.Split(n.Baggage, ",")
		for _, m := range wantBaggage {
			if n.Service == "frontend" && !containsString(strings.Split(sent, ","), m) {
				// In library mode the frontend keeps a key it read from another
				// header in its context only; its calls carry it in baggage too.
				continue
			}
			if !containsString(members, m) {
				t.Errorf("%s: baggage %q lacks %q", n.Service, n.Baggage, m)
			}
		}
		if n.Service == "frontend" {
			return // its headers are what the test sent
		}
		if n.Headers["traceparent"] == "" || !strings.Contains(n.Headers["traceparent"], traceID) {
			t.Errorf("%s: traceparent %q, want trace %s", n.Service, n.Headers["traceparent"], traceID)
		}
		for h, v := range n.Headers {
			if wantKey == "" && strings.Contains(h+"="+v, "sm-routing-key") {
				t.Errorf("%s: received %s: %s, want no routing key", n.Service, h, v)
			}
		}
		if wantKey != "" {
			// Every form reaches every hop, over HTTP and gRPC metadata alike.
			if !containsString(strings.Split(n.Headers["baggage"], ","), "sm-routing-key="+wantKey) {
				t.Errorf("%s: baggage header %q lacks sm-routing-key=%s", n.Service, n.Headers["baggage"], wantKey)
			}
			for _, h := range []string{"ot-baggage-sm-routing-key", "uberctx-sm-routing-key", "baggage-sm-routing-key"} {
				if n.Headers[h] != wantKey {
					t.Errorf("%s: header %s = %q, want %q", n.Service, h, n.Headers[h], wantKey)
				}
			}
		}
	})
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if strings.TrimSpace(v) == s {
			return true
		}
	}
	return false
}

func TestHealthAndErrors(t *testing.T) {
	frontend := startApp(t, PropagationOTel)
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, body := get(t, frontend+path, nil); code != http.StatusOK {
			t.Errorf("GET %s: %d %s", path, code, body)
		}
	}
	code, body := get(t, frontend+"/dispatch?customer=12a", nil)
	var e errorBody
	if err := json.Unmarshal(body, &e); err != nil || code != http.StatusBadRequest || e.Code != "invalid_customer" || e.RequestID == "" {
		t.Errorf("bad customer: %d %s (decode error %v), want 400 invalid_customer with a requestId", code, body, err)
	}
	// An unknown customer fails at the customer service; the tree says where.
	code, body = get(t, frontend+"/dispatch?customer=999", nil)
	var root Node
	if err := json.Unmarshal(body, &root); err != nil || code != http.StatusBadGateway {
		t.Fatalf("unknown customer: %d %s (decode error %v), want 502 with the tree", code, body, err)
	}
	if c := root.Find("customer"); c == nil || !strings.Contains(c.Error, "404") {
		t.Errorf("unknown customer: customer node %+v, want a 404 error", c)
	}
	if r := root.Find("route"); r == nil || r.Error != "" {
		t.Errorf("unknown customer: route node %+v, want served", r)
	}
}

func TestShutdownDrains(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := Start(t.Context(), Config{Service: Customer, HTTPAddr: "127.0.0.1:0", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + s.HTTPAddr()
	s.SetReady(false)
	if code, _ := get(t, base+"/readyz", nil); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", code)
	}
	if code, _ := get(t, base+"/customer?id=123", nil); code != http.StatusOK {
		t.Errorf("request while draining: %d, want 200", code)
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("served after shutdown")
	}
}

func TestParseArgs(t *testing.T) {
	env := map[string]string{"VERSION": "v2", "SANDBOXMESH_SANDBOX_NAME": "sbx", "SANDBOXMESH_ROUTING_KEY": "k",
		"CUSTOMER_URL": "http://customer.hotrod.svc:8081", "HOSTNAME": "pod-1"}
	getenv := func(k string) string { return env[k] }

	o, err := ParseArgs([]string{"driver", "--grpc-addr", ":7000", "--propagation=library"}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	c := o.Config
	if c.Service != Driver || c.HTTPAddr != DefaultDriverHTTPAddr || c.GRPCAddr != ":7000" || c.CustomerURL != env["CUSTOMER_URL"] ||
		c.Propagation != PropagationLibrary || c.Identity != (Identity{Version: "v2", Sandbox: "sbx", SandboxRoutingKey: "k", Pod: "pod-1"}) {
		t.Errorf("driver config = %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("validate: %v", err)
	}

	o, err = ParseArgs([]string{"all"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, c := range o.Configs() {
		addrs = append(addrs, string(c.Service)+c.HTTPAddr)
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", c.Service, err)
		}
	}
	if got := strings.Join(addrs, " "); got != "customer:8081 route:8083 driver:8082 frontend:8080" {
		t.Errorf("all: %s", got)
	}

	for _, bad := range [][]string{nil, {"--version=x"}, {"billing"}, {"route", "--propagation=b3"},
		{"route", "--drain-delay=-1s"}, {"route", "--log-format=xml"}, {"route", "extra"}} {
		if _, err := ParseArgs(bad, getenv); err == nil {
			t.Errorf("ParseArgs(%q): no error", bad)
		}
	}
}

func TestUnreachableDownstream(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Port 1 is never an ephemeral port (a just-closed one may be taken by the next listener) and nothing
	// listens there: dialling it is refused.
	dead := func() string { return "127.0.0.1:1" }
	s, err := Start(t.Context(), Config{Service: Frontend, HTTPAddr: "127.0.0.1:0", Logger: log,
		RouteURL: "http://" + dead(), DriverAddr: dead(), CallTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	code, body := get(t, "http://"+s.HTTPAddr()+"/dispatch", nil)
	var root Node
	if err := json.Unmarshal(body, &root); err != nil || code != http.StatusBadGateway {
		t.Fatalf("%d %s (decode error %v), want 502 with the tree", code, body, err)
	}
	for _, svc := range []string{"route", "driver"} {
		if n := root.Find(svc); n == nil || !strings.Contains(n.Error, "call "+svc) {
			t.Errorf("%s node %+v, want a call error", svc, n)
		}
	}
}

func TestRunStopsOnCancel(t *testing.T) {
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	o, err := ParseArgs([]string{"customer", "--http-addr=127.0.0.1:0", "--drain-delay=10ms"}, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, o, log) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestEtaAlgo: route's v2 answers etaSeconds instead of eta (the change the smart-test e2e looks for); a
// bad value is refused.
func TestEtaAlgo(t *testing.T) {
	for algo, want := range map[string][2]string{"": {"eta", "7m"}, "v1": {"eta", "7m"}, "v2": {"etaSeconds", "420"}} {
		s, err := Start(t.Context(), Config{Service: Route, HTTPAddr: "127.0.0.1:0", EtaAlgo: algo})
		if err != nil {
			t.Fatal(err)
		}
		code, body := get(t, "http://"+s.HTTPAddr()+"/route?customer=392", nil)
		var n Node
		if err := json.Unmarshal(body, &n); err != nil || code != http.StatusOK {
			t.Fatalf("%q: %d %s %v", algo, code, body, err)
		}
		if n.Data[want[0]] != want[1] || len(n.Data) != 2 {
			t.Errorf("ETA_ALGO=%q: data %v, want %s=%s", algo, n.Data, want[0], want[1])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.Shutdown(ctx)
		cancel()
	}
	if _, err := Start(t.Context(), Config{Service: Route, HTTPAddr: "127.0.0.1:0", EtaAlgo: "v3"}); err == nil || !strings.Contains(err.Error(), "etaAlgo") {
		t.Errorf("ETA_ALGO=v3: %v, want a config error", err)
	}
}
