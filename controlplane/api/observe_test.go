package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestObservability checks access logs, metrics and spans of one request.
func TestObservability(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.DriverSQLite)
	var logs syncBuf
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	srv, err := api.New(ctx, api.Config{Store: st, Logger: slog.New(slog.NewJSONHandler(&logs, nil)), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	key, _, _ := api.Bootstrap(ctx, st, "acme", "")
	req, _ := http.NewRequest("GET", hs.URL+"/api/v2/orgs/acme/sandboxes/nope", nil)
	req.Header.Set(apitypes.HeaderAPIKey, key)
	req.Header.Set("X-Request-Id", "req-1")
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // no proxy is trusted: a forged client address
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatal(resp.StatusCode)
	}

	var entry map[string]any
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "request" {
			entry = m
		}
	}
	for k, want := range map[string]any{"method": "GET", "route": "/api/v2/orgs/:org/sandboxes/:name", "status": float64(404), "requestId": "req-1", "org": "acme", "remote": "127.0.0.1"} {
		if entry[k] != want {
			t.Errorf("log %s = %v, want %v (entry %v)", k, entry[k], want, entry)
		}
	}
	if strings.Contains(logs.String(), key) {
		t.Error("the API key was logged")
	}

	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "GET /api/v2/orgs/:org/sandboxes/:name" || spans[0].SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("spans: %v", spans)
	}

	// The metrics are not on the API's listener, only on MetricsHandler's.
	if r, err := http.Get(hs.URL + "/metrics"); err != nil || r.StatusCode != 404 {
		t.Fatalf("/metrics on the API listener: %v %v", r.StatusCode, err)
	}
	// Without replicas there is no replica-to-replica dial route either.
	if r, err := http.Get(hs.URL + "/api/v2/internal/tunnel-dial?org=acme&cluster=c1&address=a.b.svc:80&ts=1"); err != nil || r.StatusCode != 404 {
		t.Fatalf("tunnel-dial without replicas: %v %v", r.StatusCode, err)
	}
	ms := httptest.NewServer(srv.MetricsHandler())
	defer ms.Close()
	mresp, err := http.Get(ms.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	want := `sandboxmesh_controlplane_http_requests_total{code="404",method="GET",route="/api/v2/orgs/:org/sandboxes/:name"} 1`
	if !strings.Contains(string(body), want) {
		t.Fatalf("metrics lack %s", want)
	}
}

// TestSignadotWireCompatibility sends requests shaped like those of a client
// generated from Signadot's swagger (its paths, trailing slashes, header and
// field names) and reads the answers with Signadot's field names.
func TestSignadotWireCompatibility(t *testing.T) {
	e := newEnv(t, store.DriverSQLite)
	do := func(method, path, body string) (int, map[string]any) {
		resp, _, b := e.raw(method, path, e.keyA, body) // raw sends signadot-api-key
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return resp.StatusCode, m
	}
	if code, m := do("PUT", "/api/v2/orgs/acme/clusters/sig/", ""); code != 200 || m["name"] != "sig" || m["createdAt"] == "" {
		t.Fatalf("add-cluster: %d %v", code, m)
	}
	code, tok := do("POST", "/api/v2/orgs/acme/clusters/sig/tokens", "")
	if code != 200 || tok["token"] == nil || tok["id"] == nil || tok["maskedValue"] == nil {
		t.Fatalf("create-cluster-token: %d %v", code, tok)
	}
	if code, _ := do("GET", "/api/v2/orgs/acme/clusters/sig/tokens/", ""); code != 200 {
		t.Fatalf("list-cluster-tokens: %d", code)
	}
	body := `{"name":"sig-sb","spec":{"cluster":"sig","description":"from a generated client","labels":{"team":"x"},
	  "ttl":{"duration":"2h","offsetFrom":"createdAt"},
	  "forks":[{"forkOf":{"kind":"Deployment","namespace":"hotrod","name":"route"},
	    "customizations":{"images":[{"image":"route:dev","container":"route"}],"env":[{"name":"DEBUG","value":"1","operation":"upsert"}],
	    "patch":{"type":"strategic","value":"spec: {}"}}}],
	  "defaultRouteGroup":{"endpoints":[{"name":"frontend","target":"http://frontend.hotrod.svc:8080"}]}}}`
	code, sb := do("PUT", "/api/v2/orgs/acme/sandboxes/sig-sb", body)
	if code != 200 {
		t.Fatalf("apply-sandbox: %d %v", code, sb)
	}
	if sb["routingKey"] == "" || sb["createdAt"] == "" || sb["updatedAt"] == "" {
		t.Fatalf("sandbox: %v", sb)
	}
	status := sb["status"].(map[string]any)
	if _, ok := status["ready"].(bool); !ok || status["reason"] == nil || status["message"] == nil {
		t.Fatalf("status: %v", status)
	}
	ep := sb["endpoints"].([]any)[0].(map[string]any)
	for _, f := range []string{"name", "host", "port", "protocol", "routeType", "target", "url"} {
		if _, ok := ep[f]; !ok {
			t.Errorf("endpoint lacks %s: %v", f, ep)
		}
	}
	if code, _, list := e.raw("GET", "/api/v2/orgs/acme/sandboxes", e.keyA, ""); code.StatusCode != 200 || !strings.Contains(string(list), `"sig-sb"`) {
		t.Fatalf("list-sandboxes: %d", code.StatusCode)
	}
	rg := `{"name":"sig-rg","spec":{"cluster":"sig","description":"d","match":{"any":[{"label":{"key":"team","value":"x*"}}]},
	  "endpoints":[{"name":"frontend","target":"http://frontend.hotrod.svc:8080"}],"ttl":{"duration":"1d","offsetFrom":"noMatchedSandboxes"}}}`
	code, rgm := do("PUT", "/api/v2/orgs/acme/routegroups/sig-rg", rg)
	if code != 200 || rgm["routingKey"] == "" || rgm["endpoints"].([]any)[0].(map[string]any)["url"] == "" {
		t.Fatalf("apply-routegroup: %d %v", code, rgm)
	}
	if code, m := do("DELETE", "/api/v2/orgs/acme/sandboxes/sig-sb", ""); code != 200 || len(m) != 0 {
		t.Fatalf("delete-sandbox: %d %v", code, m)
	}
	code, er := do("GET", "/api/v2/orgs/acme/sandboxes/sig-sb", "")
	if code != 404 || er["code"] != float64(404) || er["error"] == "" || er["requestId"] == "" {
		t.Fatalf("error shape: %d %v", code, er)
	}
}

// TestTrustedProxies: X-Forwarded-For names the client only when it comes from a
// configured proxy (the access log's remote and the agent's lastConnectedIp).
func TestTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []string
		want    string
	}{
		{"none trusted", nil, "127.0.0.1"},
		{"another proxy", []string{"10.0.0.0/8"}, "127.0.0.1"},
		{"loopback proxy trusted", []string{"127.0.0.1/32"}, "203.0.113.9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st := storetest.Open(t, store.DriverSQLite)
			srv, err := api.New(ctx, api.Config{Store: st, TrustedProxies: tc.proxies})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			key, _, _ := api.Bootstrap(ctx, st, "acme", "")
			c, _ := client.New(hs.URL, key)
			if _, err := c.RegisterCluster(ctx, "acme", "c1"); err != nil {
				t.Fatal(err)
			}
			tok, err := c.CreateClusterToken(ctx, "acme", "c1")
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", hs.URL+"/api/v2/agent/state?wait=0s", nil)
			req.Header.Set(apitypes.HeaderClusterToken, tok.Token)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("poll: %v %v", resp, err)
			}
			resp.Body.Close()
			got, err := c.GetClusterToken(ctx, "acme", "c1", tok.ID)
			if err != nil || got.Status.LastConnectedIP != tc.want {
				t.Fatalf("lastConnectedIp = %q, want %q (%v)", got.Status.LastConnectedIP, tc.want, err)
			}
		})
	}
	if _, err := api.New(context.Background(), api.Config{Store: storetest.Open(t, store.DriverSQLite), TrustedProxies: []string{"not-an-ip"}}); err == nil {
		t.Fatal("a bad trusted proxy was accepted")
	}
}
