package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/devmesh/proxy"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// TestSmartTestHopCaptures runs the whole capture path in process: the real executor runs a script against
// app frontend, which calls app route behind a real devmesh sidecar (a capture point) and echoes route's
// answer; the sidecar ships its captures through the agent's capture relay to the control plane, which
// joins them to the executor's own when the execution is concluded. route answers the sandbox's key with
// eta as a string: the diff shows a red finding at route's hop and at the edge, and ts (different in every
// answer) as noise. Bad batches get 4xx answers; captures of unknown, foreign or concluded executions are
// dropped.
func TestSmartTestHopCaptures(t *testing.T) {
	e := newJobsEnv(t, storetest.Drivers[0])
	ctx := context.Background()
	e.applyGroup(t, "rg", "1h")
	sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("route-v2", nil))
	if err != nil {
		t.Fatal(err)
	}

	// the agent's capture relay, with the cluster token of acme/c1
	ag, err := agent.New(agent.Config{ControlPlaneURL: e.http.URL, Token: e.tokenA, Client: fake.NewClientBuilder().Build(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var relayed atomic.Int64
	relayInner := ag.CaptureRelay()
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		relayInner.ServeHTTP(w, r)
		relayed.Add(1)
	}))
	t.Cleanup(relay.Close)

	// route behind its sidecar, shipping every capture at once
	sink, err := capture.NewHTTPSink(capture.HTTPSinkConfig{URL: relay.URL + agent.CapturePath, BatchSize: 1, FlushInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sinkCtx, stopSink := context.WithCancel(ctx)
	go sink.Run(sinkCtx)
	t.Cleanup(func() { stopSink(); <-sink.Done() })
	var n atomic.Int64
	route := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := time.Unix(1_800_000_000+n.Add(1), 0).UTC().Format(time.RFC3339)
		eta := `5`
		if key, _ := routingkey.Default.Extract(r.Header); key == sb.RoutingKey {
			eta = `"5"`
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"eta":%s,"ts":%q}`, eta, ts)
	}))
	t.Cleanup(route.Close)
	_, port, _ := net.SplitHostPort(route.Listener.Addr().String())
	appPort, _ := strconv.Atoi(port)
	p, err := proxy.New(proxy.Config{Workload: routeapi.WorkloadRef{Namespace: "hotrod", Kind: routeapi.KindDeployment, Name: "route"},
		Ports: []proxy.PortMapping{{App: int32(appPort)}}, ListenHost: "127.0.0.1", CaptureSink: sink}, proxy.StaticRoutes{}, routingkey.Default, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(sctx)
	})
	routeURL := "http://" + p.Addr(int32(appPort))
	// frontend propagates only baggage (as OpenTelemetry apps do) and echoes route's answer
	frontend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, routeURL+"/route?from=1&to=2", nil)
		if b := r.Header.Get("Baggage"); b != "" {
			req.Header.Set("Baggage", b)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(frontend.Close)

	script := `r = http.get("http://frontend.hotrod.svc:8080/dispatch", capture=True, name="dispatch")
smart_test.check("dispatch answers", r.status_code == 200)
`
	test := smartTest("eta")
	test.Spec.Script = script
	if _, err := e.acme.ApplyTest(ctx, "acme", test); err != nil {
		t.Fatal(err)
	}
	ex, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
		ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "route-v2"}}})
	if err != nil {
		t.Fatal(err)
	}
	rc := e.runner(t, "rg", e.runnerToken(t, "rg"), "p1")
	rj := claimExecution(t, rc, ex, script)
	rep := executeJob(ctx, t, rj, "frontend.hotrod.svc:8080", frontend.Listener.Addr().String())
	if rep.HasErrors() {
		t.Fatalf("execute: %+v", rep)
	}

	// what the relay answers for bad and foreign batches
	post := func(token string, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/api/v2/agent/captures", bytes.NewBufferString(body))
		if token != "" {
			req.Header.Set(apitypes.HeaderClusterToken, token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	hop := diff.Capture{ID: ex.ID + ".target.0", Point: diff.CapturePoint{Kind: diff.KindDeployment, Namespace: "hotrod", Name: "route", Direction: diff.Inbound},
		Request: diff.Request{Method: "GET", Path: "/route"}, Response: diff.Response{Status: 200, Body: []byte(`{"eta":1}`)}}
	batch := func(cs ...diff.Capture) string { b, _ := json.Marshal(cs); return string(b) }
	if code, body := post("", batch(hop)); code != 401 {
		t.Fatalf("no token: %d %s", code, body)
	}
	bad := hop
	bad.Request.Method = ""
	if code, body := post(e.tokenA, batch(hop, bad)); code != 400 || !bytes.Contains([]byte(body), []byte(`"[1]"`)) {
		t.Fatalf("invalid capture: %d %s", code, body)
	}
	if code, body := post(e.tokenA, `{"id":"x"}`); code != 400 {
		t.Fatalf("not an array: %d %s", code, body)
	}
	other := hop
	other.ID = "nosuchexec.target.0"
	if code, body := post(e.tokenA, batch(other)); code != 200 || body != `{"accepted":0,"dropped":1}` {
		t.Fatalf("unknown execution: %d %s", code, body)
	}
	if _, err := e.admin.RegisterCluster(ctx, "acme", "c2"); err != nil {
		t.Fatal(err)
	}
	tok2, err := e.acme.CreateClusterToken(ctx, "acme", "c2")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post(tok2.Token, batch(hop)); code != 200 || body != `{"accepted":0,"dropped":1}` {
		t.Fatalf("another cluster's agent: %d %s", code, body)
	}
	if code, body := post(e.tokenA, batch(hop)); code != 200 || body != `{"accepted":1,"dropped":0}` {
		t.Fatalf("a stray capture of the execution: %d %s", code, body)
	}

	deadline := time.Now().Add(10 * time.Second)
	for relayed.Load() < 3 { // one capture per run at route's hop, a batch each
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar's captures did not reach the relay: %d batches", relayed.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	body, _ := json.Marshal(rep)
	upload(t, rc, rj, body)
	finish(t, rc, rj, 0)
	got, err := e.acme.GetTestExecution(ctx, "acme", ex.ID)
	if err != nil || got.Status.Phase != apitypes.TestPhaseSucceeded || got.Results == nil || got.Results.TrafficDiff == nil {
		t.Fatalf("execution: %+v %v", got, err)
	}
	d := got.Results.TrafficDiff
	// captures: the edge and route's hop (the stray capture of the target run has no baseline partner)
	if d.Captures != 2 || d.UnpairedCaptures != 1 {
		t.Fatalf("summary: %+v", d)
	}
	fs, err := e.acme.GetTrafficDiffFindings(ctx, "acme", ex.ID, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	red := map[string]bool{}
	for _, f := range fs {
		if f.Category == diff.Red {
			red[string(f.Point.Kind)+"/"+f.Point.Name+" "+f.Path] = true
		}
		if f.Path != "/response/body/eta" {
			t.Errorf("finding at %s %s (ts varies in every answer: noise)", f.Point, f.Path)
		}
	}
	for _, want := range []string{"Deployment/route /response/body/eta", "Job/" + rep.Runs[0].Captures[0].Point.Name + " /response/body/eta"} {
		if !red[want] {
			t.Errorf("no red finding %s in %+v", want, fs)
		}
	}
	hop.ID = ex.ID + ".baseline-a.0"
	if code, body := post(e.tokenA, batch(hop)); code != 200 || body != `{"accepted":0,"dropped":1}` {
		t.Fatalf("capture of a concluded execution: %d %s", code, body)
	}
}

// TestPreviewCapturePoint: a preview request carrying a capture id of a running execution is recorded at
// the preview capture point (the upstream's path, credentials redacted) and kept with the execution;
// requests without an id are not recorded.
func TestPreviewCapturePoint(t *testing.T) {
	e := newJobsEnv(t, storetest.Drivers[0])
	ctx := context.Background()
	e.applyGroup(t, "rg", "1h")
	if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("feat", nil)); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	connectAgent(t, e.env, rec, "frontend.shop.svc:8080")
	if _, err := e.acme.ApplyTest(ctx, "acme", smartTest("eta")); err != nil {
		t.Fatal(err)
	}
	ex, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
		ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "feat"}}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(captureID string) {
		req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/preview/acme/feat/web/x?y=1", nil)
		req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
		req.Header.Set("Cookie", "app=1")
		if captureID != "" {
			req.Header.Set(capture.Header, captureID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "hello /x?y=1" {
			t.Fatalf("preview: %d %s", resp.StatusCode, b)
		}
	}
	get("")
	get(ex.ID + ".target.0")
	var got []diff.Capture
	deadline := time.Now().Add(5 * time.Second)
	for len(got) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the preview capture was not kept")
		}
		time.Sleep(10 * time.Millisecond)
		batches, err := e.st.TestCaptures(ctx, "acme", ex.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range batches {
			var cs []diff.Capture
			if err := json.Unmarshal(b, &cs); err != nil {
				t.Fatal(err)
			}
			got = append(got, cs...)
		}
	}
	time.Sleep(100 * time.Millisecond) // a second (wrong) capture would have arrived by now
	if batches, _ := e.st.TestCaptures(ctx, "acme", ex.ID); len(got) != 1 || len(batches) != 1 {
		t.Fatalf("captures: %+v (%d batches), want the one request with an id", got, len(batches))
	}
	c := got[0]
	wantPoint := diff.CapturePoint{Kind: diff.KindPreview, Namespace: "acme", Name: "web", Direction: diff.Inbound}
	if c.ID != ex.ID+".target.0" || c.Point != wantPoint || c.Request.Path != "/x" || c.Request.Query != "y=1" ||
		c.Response.Status != 200 || string(c.Response.Body) != "hello /x?y=1" {
		t.Fatalf("capture: %+v", c)
	}
	for _, h := range []string{apitypes.HeaderAPIKey, "Cookie"} {
		if v := http.Header(c.Request.Headers).Values(h); len(v) != 1 || v[0] != capture.Redacted {
			t.Errorf("header %s recorded as %q, want it redacted", h, v)
		}
	}
}
