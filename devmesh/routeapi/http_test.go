package routeapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// apiServer starts the lookup handler on 127.0.0.1 with a table of: cart (Deployment) k1 → fork,
// k2 → local, k3 → baseline (virtual, not a routing rule), rg1 → route group team-a to sb-k1's fork;
// checkout (Rollout) k1 → fork; other/cart k1 → fork.
func apiServer(t testing.TB, cfg ServerConfig) (*Server, *httptest.Server) {
	t.Helper()
	s := NewServer(cfg)
	wRollout := WorkloadRef{Namespace: "shop", Kind: KindRollout, Name: "checkout"}
	local := fork(wA, "k2", "10.0.0.9", PortMapping{Port: 80, DestinationPort: 9000})
	local.Destination.Kind = DestinationLocal
	_, err := s.Publish(context.Background(), []Route{
		fork(wA, "k1", "cart-fork.shop.svc", PortMapping{Port: 80, DestinationPort: 8080}, PortMapping{Port: 90, DestinationPort: 9090}),
		local,
		fork(wRollout, "k1", "checkout-fork.shop.svc", PortMapping{Port: 8080, DestinationPort: 8080}),
		{Workload: wA, RoutingKey: "k3", Destination: Destination{Sandbox: SandboxRef{Name: "virt"}, Kind: DestinationBaseline}},
		fork(WorkloadRef{Namespace: "other", Name: "cart"}, "k1", "cart-fork.other.svc"),
		routeGroup(fork(wA, "rg1", "cart-fork.shop.svc", PortMapping{Port: 80, DestinationPort: 8080}, PortMapping{Port: 90, DestinationPort: 9090}), "team-a"),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.LookupHandler())
	t.Cleanup(hs.Close)
	return s, hs
}

// routeGroup makes r a route of route group name (same destination as the sandbox's own route).
func routeGroup(r Route, name string) Route {
	r.Destination.Sandbox = SandboxRef{Kind: OwnerRouteGroup, Namespace: "sandboxes", Name: name}
	return r
}

func get(t testing.TB, url string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestRoutesEndpoints(t *testing.T) {
	s, hs := apiServer(t, ServerConfig{})
	etag := ETag(s.Epoch(), s.Table().Version())
	if want := `"` + s.Epoch() + "." + itoa(s.Table().Version()) + `"`; etag != want {
		t.Fatalf("ETag %s want %s", etag, want)
	}
	cases := []struct {
		name   string
		path   string
		code   int
		keys   []string // "<namespace>/<kind>/<name>:<key>" of the routes (or rules) expected, in order
		errSub string
	}{
		{"all routes", "/v1/routes", 200, []string{"other/Deployment/cart:k1", "shop/Deployment/cart:k1", "shop/Deployment/cart:k2", "shop/Deployment/cart:k3", "shop/Deployment/cart:rg1", "shop/Rollout/checkout:k1"}, ""},
		{"by namespace", "/v1/routes?namespace=shop", 200, []string{"shop/Deployment/cart:k1", "shop/Deployment/cart:k2", "shop/Deployment/cart:k3", "shop/Deployment/cart:rg1", "shop/Rollout/checkout:k1"}, ""},
		{"by workload any namespace", "/v1/routes?workload=cart", 200, []string{"other/Deployment/cart:k1", "shop/Deployment/cart:k1", "shop/Deployment/cart:k2", "shop/Deployment/cart:k3", "shop/Deployment/cart:rg1"}, ""},
		{"by kind, any case", "/v1/routes?kind=rollout", 200, []string{"shop/Rollout/checkout:k1"}, ""},
		{"by all three", "/v1/routes?namespace=shop&kind=Deployment&workload=cart", 200, []string{"shop/Deployment/cart:k1", "shop/Deployment/cart:k2", "shop/Deployment/cart:k3", "shop/Deployment/cart:rg1"}, ""},
		{"no match", "/v1/routes?namespace=nothing", 200, []string{}, ""},
		{"routes bad namespace", "/v1/routes?namespace=Shop", 400, nil, "query.namespace"},
		{"routes bad kind", "/v1/routes?kind=deploy-ment", 400, nil, "query.kind"},
		{"routes bad workload", "/v1/routes?workload=a..b", 400, nil, "query.workload"},
		{"routes unknown param", "/v1/routes?workloads=cart", 400, nil, "query.workloads: unknown parameter"},
		{"routes repeated param", "/v1/routes?namespace=a&namespace=b", 400, nil, "query.namespace: given 2 times"},
		{"routes bad wait", "/v1/routes?wait=soon", 400, nil, "query.wait"},
		{"routes negative wait", "/v1/routes?wait=-1s", 400, nil, "query.wait"},
		{"routes wait without etag answers at once", "/v1/routes?namespace=other&wait=10m", 200, []string{"other/Deployment/cart:k1"}, ""},
		{"rules all", "/api/v1/workloads/routing-rules", 200, []string{"other/Deployment/cart:k1", "shop/Deployment/cart:k1", "shop/Deployment/cart:k2", "shop/Deployment/cart:rg1", "shop/Rollout/checkout:k1"}, ""},
		{"rules by baseline", "/api/v1/workloads/routing-rules?baselineKind=Deployment&baselineNamespace=shop&baselineName=cart", 200, []string{"shop/Deployment/cart:k1", "shop/Deployment/cart:k2", "shop/Deployment/cart:rg1"}, ""},
		{"rules by sandbox include its route groups", "/api/v1/workloads/routing-rules?destinationSandboxName=sb-k1&baselineNamespace=shop", 200, []string{"shop/Deployment/cart:k1", "shop/Deployment/cart:rg1", "shop/Rollout/checkout:k1"}, ""},
		{"rules by route group key", "/api/v1/workloads/routing-rules?routingKey=rg1", 200, []string{"shop/Deployment/cart:rg1"}, ""},
		{"rules by key", "/api/v1/workloads/routing-rules?routingKey=k1", 200, []string{"other/Deployment/cart:k1", "shop/Deployment/cart:k1", "shop/Rollout/checkout:k1"}, ""},
		{"rules by sandbox", "/api/v1/workloads/routing-rules?destinationSandboxName=sb-k2", 200, []string{"shop/Deployment/cart:k2"}, ""},
		{"rules baseline destination is not a rule", "/api/v1/workloads/routing-rules?routingKey=k3", 200, []string{}, ""},
		{"rules ignore unknown params", "/api/v1/workloads/routing-rules?baselineName=checkout&somethingNew=1", 200, []string{"shop/Rollout/checkout:k1"}, ""},
		{"rules bad key", "/api/v1/workloads/routing-rules?routingKey=a%20b", 400, nil, "query.routingKey"},
		{"rules bad sandbox", "/api/v1/workloads/routing-rules?destinationSandboxName=_x", 400, nil, "query.destinationSandboxName"},
		{"rules bad namespace", "/api/v1/workloads/routing-rules?baselineNamespace=-x", 400, nil, "query.baselineNamespace"},
		{"lookup unknown param", "/v1/lookup?namespace=shop&workload=cart&routingKey=k1&key=x", 400, nil, "query.key: unknown parameter"},
		{"lookup bad port", "/v1/lookup?namespace=shop&workload=cart&routingKey=k1&port=70000", 400, nil, "query.port"},
		{"post not allowed", "/v1/routes", 405, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var body []byte
			if tc.code == 405 {
				r, err := http.Post(hs.URL+tc.path, "application/json", strings.NewReader("{}"))
				if err != nil {
					t.Fatal(err)
				}
				r.Body.Close()
				if r.StatusCode != 405 {
					t.Fatalf("code %d", r.StatusCode)
				}
				return
			}
			resp, body = get(t, hs.URL+tc.path)
			if resp.StatusCode != tc.code {
				t.Fatalf("code %d want %d: %s", resp.StatusCode, tc.code, body)
			}
			if tc.code != 200 {
				var e ErrorBody
				if err := json.Unmarshal(body, &e); err != nil || e.Code != "invalid_argument" || e.RequestID == "" || !strings.Contains(e.Error, tc.errSub) {
					t.Fatalf("error body %s (%v), want %q", body, err, tc.errSub)
				}
				if resp.Header.Get("ETag") != "" {
					t.Fatalf("error with ETag %s", resp.Header.Get("ETag"))
				}
				return
			}
			if resp.Header.Get("ETag") != etag || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v, want ETag %s", resp.Header, etag)
			}
			var got []string
			if strings.HasPrefix(tc.path, PathRoutingRules) {
				var rr RoutingRulesResponse
				if err := json.Unmarshal(body, &rr); err != nil || rr.RoutingRules == nil {
					t.Fatalf("body %s: %v", body, err)
				}
				got = []string{}
				for _, r := range rr.RoutingRules {
					got = append(got, r.Baseline.Namespace+"/"+r.Baseline.Kind+"/"+r.Baseline.Name+":"+r.RoutingKey)
				}
			} else {
				var rr RoutesResponse
				if err := json.Unmarshal(body, &rr); err != nil || rr.Routes == nil || rr.Epoch != s.Epoch() || rr.Version != s.Table().Version() {
					t.Fatalf("body %s: %v", body, err)
				}
				got = []string{}
				for _, r := range rr.Routes {
					got = append(got, r.Workload.String()+":"+r.RoutingKey)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.keys, " ") {
				t.Fatalf("got %v\nwant %v", got, tc.keys)
			}
		})
	}
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestRoutingRulesShape pins the JSON of Signadot's shape byte for byte.
func TestRoutingRulesShape(t *testing.T) {
	_, hs := apiServer(t, ServerConfig{})
	_, body := get(t, hs.URL+PathRoutingRules+"?baselineNamespace=shop&baselineName=cart")
	want := `{"routingRules":[` +
		`{"routingKey":"k1","baseline":{"kind":"Deployment","namespace":"shop","name":"cart"},"destinationSandbox":{"name":"sb-k1"},"mappings":[{"workloadPort":80,"destinations":[{"host":"cart-fork.shop.svc","port":8080}]},{"workloadPort":90,"destinations":[{"host":"cart-fork.shop.svc","port":9090}]}]},` +
		`{"routingKey":"k2","baseline":{"kind":"Deployment","namespace":"shop","name":"cart"},"destinationSandbox":{"name":"sb-k2"},"mappings":[{"workloadPort":80,"destinations":[{"host":"10.0.0.9","port":9000}]}]},` +
		`{"routingKey":"rg1","baseline":{"kind":"Deployment","namespace":"shop","name":"cart"},"destinationSandbox":{"name":"sb-k1"},"mappings":[{"workloadPort":80,"destinations":[{"host":"cart-fork.shop.svc","port":8080}]},{"workloadPort":90,"destinations":[{"host":"cart-fork.shop.svc","port":9090}]}]}` +
		"]}\n"
	if string(body) != want {
		t.Fatalf("body\n%s\nwant\n%s", body, want)
	}
}

func TestConditionalGet(t *testing.T) {
	s, hs := apiServer(t, ServerConfig{})
	etag := ETag(s.Epoch(), s.Table().Version())
	paths := []string{"/v1/routes?namespace=shop", "/v1/lookup?namespace=shop&workload=cart&routingKey=k1", PathRoutingRules}
	for _, p := range paths {
		cases := []struct {
			inm  string
			code int
		}{
			{etag, 304},
			{"W/" + etag, 304},
			{`"other", ` + etag, 304},
			{"*", 304},
			{`"` + s.Epoch() + `.1"`, 200},
			{`"otherepoch.` + itoa(s.Table().Version()) + `"`, 200},
			{strings.Trim(etag, `"`), 200}, // unquoted is not the same tag
		}
		for _, tc := range cases {
			resp, body := get(t, hs.URL+p, "If-None-Match", tc.inm)
			if resp.StatusCode != tc.code || resp.Header.Get("ETag") != etag {
				t.Fatalf("%s If-None-Match %s: code %d ETag %s, want %d %s", p, tc.inm, resp.StatusCode, resp.Header.Get("ETag"), tc.code, etag)
			}
			if tc.code == 304 && len(body) != 0 {
				t.Fatalf("%s: 304 with body %q", p, body)
			}
		}
	}
}

// TestLookupRoutedAway: /v1/lookup says whether a baseline consumer must leave the key, for every kind
// of destination, in agreement with Table.RoutedAway.
func TestLookupRoutedAway(t *testing.T) {
	s, hs := apiServer(t, ServerConfig{})
	for key, want := range map[string][2]bool{"k1": {true, true}, "k2": {true, true}, "k3": {true, false}, "rg1": {true, true}, "none": {false, false}} {
		_, body := get(t, hs.URL+"/v1/lookup?namespace=shop&workload=cart&routingKey="+key)
		var lr LookupResponse
		if err := json.Unmarshal(body, &lr); err != nil || lr.Routed != want[0] || lr.RoutedAway != want[1] || lr.RoutedAway != s.Table().RoutedAway(wA, key) {
			t.Errorf("%s: %s (%v), want routed %v away %v", key, body, err, want[0], want[1])
		}
	}
	req, _ := http.NewRequest(http.MethodHead, hs.URL+"/v1/routes", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != ETag(s.Epoch(), s.Table().Version()) {
		t.Fatalf("HEAD: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestLongPollReturnsOnPublish: a long-poll with the current ETag blocks, and answers the new table
// promptly (well under a second) after a Publish, for every endpoint.
func TestLongPollReturnsOnPublish(t *testing.T) {
	s, hs := apiServer(t, ServerConfig{})
	for i, p := range []string{"/v1/routes?wait=30s", "/v1/lookup?namespace=shop&workload=cart&routingKey=k9&wait=30s", PathRoutingRules + "?routingKey=k9&wait=30s"} {
		t.Run(p, func(t *testing.T) {
			key := []string{"k7", "k9", "k8"}[i] // a new route each time; the lookup asks about k9
			etag := ETag(s.Epoch(), s.Table().Version())
			type result struct {
				code int
				etag string
				body []byte
				at   time.Time
			}
			done := make(chan result, 1)
			go func() {
				resp, body := get(t, hs.URL+p, "If-None-Match", etag)
				done <- result{resp.StatusCode, resp.Header.Get("ETag"), body, time.Now()}
			}()
			waitFor(t, "long-poll blocked", func() bool { return s.Waiters() == 1 })
			select {
			case r := <-done:
				t.Fatalf("returned before any publish: %d", r.code)
			case <-time.After(50 * time.Millisecond):
			}
			routes := s.Table().Routes()
			routes = append(routes, fork(wA, key, "cart-k9.shop.svc", PortMapping{Port: 80, DestinationPort: 80}))
			v, err := s.Publish(context.Background(), routes)
			if err != nil {
				t.Fatal(err)
			}
			published := time.Now()
			select {
			case r := <-done:
				if r.code != 200 || r.etag != ETag(s.Epoch(), v) || !strings.Contains(string(r.body), "k9") {
					t.Fatalf("code %d etag %s body %s", r.code, r.etag, r.body)
				}
				t.Logf("answered %v after publish", r.at.Sub(published))
			case <-time.After(time.Second):
				t.Fatal("long-poll did not return within 1s of Publish")
			}
			waitFor(t, "waiter released", func() bool { return s.Waiters() == 0 })
		})
	}
}

// TestLongPollTimesOut: with no change, the long-poll answers 304 once wait elapsed (and not before).
func TestLongPollTimesOut(t *testing.T) {
	s, hs := apiServer(t, ServerConfig{})
	etag := ETag(s.Epoch(), s.Table().Version())
	start := time.Now()
	resp, body := get(t, hs.URL+"/v1/routes?namespace=shop&wait=300ms", "If-None-Match", etag)
	if el := time.Since(start); resp.StatusCode != 304 || len(body) != 0 || el < 300*time.Millisecond {
		t.Fatalf("code %d body %q after %v", resp.StatusCode, body, el)
	}
	if resp.Header.Get("ETag") != etag || s.Waiters() != 0 {
		t.Fatalf("ETag %s waiters %d", resp.Header.Get("ETag"), s.Waiters())
	}
	// wait=0 and If-None-Match "*" never block.
	for _, c := range [][2]string{{"/v1/routes?wait=0s", etag}, {"/v1/routes?wait=1m", "*"}} {
		resp, _ := get(t, hs.URL+c[0], "If-None-Match", c[1])
		if resp.StatusCode != 304 {
			t.Fatalf("%v: %d", c, resp.StatusCode)
		}
	}
}

// TestLongPollClientGoneAndShutdown: a client that goes away frees its waiter; CloseWaiters releases
// blocked long-polls with 304 and later ones do not block; MaxWaiters bounds them.
func TestLongPollClientGoneAndShutdown(t *testing.T) {
	s, hs := apiServer(t, ServerConfig{MaxWaiters: 2})
	etag := ETag(s.Epoch(), s.Table().Version())
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/v1/routes?wait=1m", nil)
	req.Header.Set("If-None-Match", etag)
	errc := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	waitFor(t, "long-poll blocked", func() bool { return s.Waiters() == 1 })
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	waitFor(t, "waiter freed after the client left", func() bool { return s.Waiters() == 0 })

	codes := make(chan int, 2)
	for range 2 {
		go func() {
			resp, _ := get(t, hs.URL+"/v1/routes?wait=1m", "If-None-Match", etag)
			codes <- resp.StatusCode
		}()
	}
	waitFor(t, "two long-polls blocked", func() bool { return s.Waiters() == 2 })
	resp, body := get(t, hs.URL+"/v1/routes?wait=1m", "If-None-Match", etag)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "too many long-polls") {
		t.Fatalf("third waiter: %d %s", resp.StatusCode, body)
	}
	s.CloseWaiters()
	for range 2 {
		select {
		case c := <-codes:
			if c != 304 {
				t.Fatalf("released with %d", c)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("CloseWaiters did not release a long-poll")
		}
	}
	resp, _ = get(t, hs.URL+"/v1/routes?wait=1m", "If-None-Match", etag)
	if resp.StatusCode != 304 || s.Waiters() != 0 {
		t.Fatalf("after close: %d, waiters %d", resp.StatusCode, s.Waiters())
	}
}

// FuzzQueries feeds arbitrary query strings (and an If-None-Match) to every endpoint: the handler
// never panics or blocks, answers 200 with a decodable body, 304, or 400 with an error naming a
// query field.
func FuzzQueries(f *testing.F) {
	seeds := []string{
		"", "namespace=shop", "namespace=shop&kind=Deployment&workload=cart", "kind=rollout", "workload=a.b.c",
		"namespace=Shop", "namespace=a&namespace=b", "wait=30s", "wait=-1s", "wait=1e9h", "wait=99999999999999999999s",
		"routingKey=k1&namespace=shop&workload=cart&port=80", "port=0", "port=65536", "routingKey=a%20b",
		"baselineKind=Deployment&baselineNamespace=shop&baselineName=cart&routingKey=k1&destinationSandboxName=sb-k1",
		"destinationSandboxName=-x", "%zz", "a=1;b=2", "namespace=" + strings.Repeat("a", 64), "kind=%00", "workload=..",
	}
	for i, q := range seeds {
		f.Add(uint8(i), q, "")
	}
	f.Add(uint8(0), "wait=1h", `"x.1"`)
	f.Add(uint8(1), "namespace=shop&workload=cart&routingKey=k1", "*")
	s := NewServer(ServerConfig{})
	_, _ = s.Publish(context.Background(), []Route{fork(wA, "k1", "cart-fork.shop.svc", PortMapping{Port: 80, DestinationPort: 8080})})
	h := s.LookupHandler()
	paths := []string{PathRoutes, PathLookup, PathRoutingRules}
	f.Fuzz(func(t *testing.T, which uint8, rawQuery, inm string) {
		path := paths[int(which)%len(paths)]
		req := httptest.NewRequest(http.MethodGet, "http://x"+path, nil)
		req.URL.RawQuery = rawQuery
		if inm != "" {
			req.Header.Set("If-None-Match", inm)
		}
		// A matching ETag with a wait would block; the fuzzer cannot guess the epoch, except via "*",
		// which never blocks.
		ctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
		defer cancel()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req.WithContext(ctx))
		switch rec.Code {
		case 200:
			var v map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Fatalf("200 body %q: %v", rec.Body, err)
			}
			if rec.Header().Get("ETag") == "" {
				t.Fatal("200 without ETag")
			}
		case 304:
			if rec.Body.Len() != 0 {
				t.Fatalf("304 with body")
			}
		case 400:
			var e ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || !strings.HasPrefix(e.Error, "query.") {
				t.Fatalf("400 body %q: %v", rec.Body, err)
			}
		default:
			t.Fatalf("code %d for %s?%s", rec.Code, path, rawQuery)
		}
	})
}

// BenchmarkRoutesGET compares, in one run, a full answer of GET /v1/routes for one workload of a
// 10,000-route table with the 304 a consumer polling with its ETag gets, and the Signadot shape.
func BenchmarkRoutesGET(b *testing.B) {
	s := NewServer(ServerConfig{})
	routes := make([]Route, 0, 10000)
	for i := range 10000 {
		routes = append(routes, fork(WorkloadRef{Namespace: "ns", Name: "w" + itoa(uint64(i%100))}, "k"+itoa(uint64(i)), "h.ns.svc", PortMapping{Port: 80, DestinationPort: 8080}))
	}
	if _, err := s.Publish(context.Background(), routes); err != nil {
		b.Fatal(err)
	}
	h := s.LookupHandler()
	etag := ETag(s.Epoch(), s.Table().Version())
	for _, bc := range []struct{ name, path, inm string }{
		{"routes-200", "/v1/routes?namespace=ns&workload=w7", ""},
		{"routes-304", "/v1/routes?namespace=ns&workload=w7", etag},
		{"rules-200", PathRoutingRules + "?baselineNamespace=ns&baselineName=w7", ""},
		{"lookup-200", "/v1/lookup?namespace=ns&workload=w7&routingKey=k7", ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest(http.MethodGet, bc.path, nil)
			if bc.inm != "" {
				req.Header.Set("If-None-Match", bc.inm)
			}
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != 200 && rec.Code != 304 {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}

// BenchmarkLongPollWake measures publish → every one of 200 blocked long-polls (over loopback HTTP)
// has its 200 answer.
func BenchmarkLongPollWake(b *testing.B) {
	const n = 200
	s := NewServer(ServerConfig{})
	hs := httptest.NewServer(s.LookupHandler())
	defer hs.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: n}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	i := 0
	for b.Loop() {
		b.StopTimer()
		etag := ETag(s.Epoch(), s.Table().Version())
		done := make(chan int, n)
		for range n {
			go func() {
				req, _ := http.NewRequest(http.MethodGet, hs.URL+"/v1/routes?wait=20s", nil)
				req.Header.Set("If-None-Match", etag)
				resp, err := cl.Do(req)
				if err != nil {
					done <- 0
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done <- resp.StatusCode
			}()
		}
		for s.Waiters() < n {
			time.Sleep(time.Millisecond)
		}
		i++
		b.StartTimer()
		if _, err := s.Publish(context.Background(), []Route{fork(wA, "k"+itoa(uint64(i)), "h")}); err != nil {
			b.Fatal(err)
		}
		for range n {
			if c := <-done; c != 200 {
				b.Fatalf("code %d", c)
			}
		}
	}
}

// TestRoutedAwayAndRoutesTo: the selective-consumption questions on the table agree with the routing
// rules the HTTP API lists.
func TestRoutedAwayAndRoutesTo(t *testing.T) {
	s, _ := apiServer(t, ServerConfig{})
	tab := s.Table()
	wCart := WorkloadRef{Namespace: "shop", Name: "cart"}
	cases := []struct {
		w       WorkloadRef
		key     string
		away    bool
		sandbox string // RoutesTo(w, key, sandbox) is true for this one only
	}{
		{wCart, "k1", true, "sb-k1"},
		{wCart, "k2", true, "sb-k2"},  // local tunnel
		{wCart, "k3", false, ""},      // virtual: stays on the baseline
		{wCart, "rg1", true, "sb-k1"}, // route group to sb-k1's fork
		{wCart, "nope", false, ""},    // unrouted
		{WorkloadRef{Namespace: "shop", Kind: KindRollout, Name: "checkout"}, "k1", true, "sb-k1"},
		{WorkloadRef{Namespace: "shop", Name: "checkout"}, "k1", false, ""}, // a Deployment of that name has no routes
	}
	for _, tc := range cases {
		if got := tab.RoutedAway(tc.w, tc.key); got != tc.away {
			t.Errorf("RoutedAway(%s, %s) = %v", tc.w, tc.key, got)
		}
		for _, sb := range []string{"sb-k1", "sb-k2", "virt", "team-a"} {
			if got := tab.RoutesTo(tc.w, tc.key, sb); got != (sb == tc.sandbox) {
				t.Errorf("RoutesTo(%s, %s, %s) = %v", tc.w, tc.key, sb, got)
			}
			if got := tab.Workload(tc.w).ForSandbox(sb).RoutesTo(tc.key); got != (sb == tc.sandbox) {
				t.Errorf("ForSandbox(%s).RoutesTo(%s, %s) = %v", sb, tc.w, tc.key, got)
			}
		}
	}
	var nilTab *Table
	if nilTab.RoutedAway(wCart, "k1") || nilTab.RoutesTo(wCart, "k1", "sb-k1") {
		t.Error("nil table routes")
	}
}

// BenchmarkSelectiveDecision: the per-message questions of a queue consumer on a 10,000-route table
// (100 workloads), next to the sidecar's Lookup in the same run.
func BenchmarkSelectiveDecision(b *testing.B) {
	routes := make([]Route, 0, 10001)
	for i := range 10000 {
		w := WorkloadRef{Namespace: "ns", Name: "w" + itoa(uint64(i%100))}
		routes = append(routes, fork(w, "k"+itoa(uint64(i)), "h"+itoa(uint64(i))+".ns.svc", PortMapping{Port: 80, DestinationPort: 8080}))
	}
	w7 := WorkloadRef{Namespace: "ns", Name: "w7"}
	routes = append(routes, routeGroup(fork(w7, "rg", "h4207.ns.svc", PortMapping{Port: 80, DestinationPort: 8080}), "team"))
	tab, err := NewTable(1, routes)
	if err != nil {
		b.Fatal(err)
	}
	sr := tab.Workload(w7).ForSandbox("sb-k4207")
	for _, bc := range []struct {
		name string
		f    func() bool
		want bool
	}{
		{"Lookup-hit", func() bool { _, ok := tab.Lookup(w7, "k4207", 80); return ok }, true},
		{"RoutedAway-hit", func() bool { return tab.RoutedAway(w7, "k4207") }, true},
		{"RoutedAway-miss", func() bool { return tab.RoutedAway(w7, "other") }, false},
		{"RoutesTo-own", func() bool { return tab.RoutesTo(w7, "k4207", "sb-k4207") }, true},
		{"RoutesTo-routegroup", func() bool { return tab.RoutesTo(w7, "rg", "sb-k4207") }, true},
		{"ForSandbox-routegroup", func() bool { return sr.RoutesTo("rg") }, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bc.f() != bc.want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}
