package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// TestCaptureWithExecutor: the real smart-test executor runs a script against app "frontend" behind its
// sidecar; frontend calls app "route" behind another sidecar and propagates only baggage (as OTel apps do).
// Both sidecars record every run's capture=True request under the executor's capture id.
func TestCaptureWithExecutor(t *testing.T) {
	url, got := sinkServer(t)
	sink := startSink(t, capture.HTTPSinkConfig{URL: url, FlushInterval: 10 * time.Millisecond}, nil)
	sidecar := func(name string, app *httptest.Server) string {
		keys, err := routingkey.NewExtractor(routingkey.Config{})
		if err != nil {
			t.Fatal(err)
		}
		port := portOf(t, app.URL)
		p, err := New(Config{Workload: routeapi.WorkloadRef{Namespace: "hotrod", Kind: routeapi.KindDeployment, Name: name},
			Ports: []PortMapping{{App: port}}, ListenHost: "127.0.0.1", CaptureSink: sink}, StaticRoutes{}, keys, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = p.Shutdown(ctx)
		})
		return "http://" + p.Addr(port)
	}
	route := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"eta":"5m"}`)
	}))
	t.Cleanup(route.Close)
	routeURL := sidecar("route", route)
	frontend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), "GET", routeURL+"/route?pickup=1", nil)
		if b := r.Header.Get("Baggage"); b != "" {
			req.Header.Set("Baggage", b) // only OTel context travels
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(frontend.Close)
	frontURL := sidecar("frontend", frontend)

	rep, err := executor.Execute(t.Context(), executor.Config{
		Execution: "ex-7", Source: fmt.Sprintf("r = http.get(%q, capture=True)\nhttp.get(%q)\n", frontURL+"/dispatch", frontURL+"/other"),
		RoutingKey: "k1", Limits: script.Config{Timeout: time.Minute},
	})
	if err != nil || rep.HasErrors() {
		t.Fatalf("execute: %v %+v", err, rep)
	}
	var ids []string
	for range 6 { // 3 runs x 2 hops; the uncaptured request is recorded nowhere
		c := recv(t, got)
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"frontend": "/dispatch", "route": "/route"}[c.Point.Name]
		if c.Request.Path != want || c.Point.Direction != diff.Inbound || c.Response.Status != 200 || string(c.Response.Body) != `{"eta":"5m"}` {
			t.Fatalf("capture %+v", c)
		}
		ids = append(ids, c.Point.Name+" "+c.ID)
	}
	sort.Strings(ids)
	wantIDs := []string{"frontend ex-7.baseline-a.0", "frontend ex-7.baseline-b.0", "frontend ex-7.target.0",
		"route ex-7.baseline-a.0", "route ex-7.baseline-b.0", "route ex-7.target.0"}
	if fmt.Sprint(ids) != fmt.Sprint(wantIDs) {
		t.Fatalf("captures %v, want %v", ids, wantIDs)
	}
	select {
	case c := <-got:
		t.Fatalf("unexpected capture %+v", c)
	case <-time.After(50 * time.Millisecond):
	}
}
