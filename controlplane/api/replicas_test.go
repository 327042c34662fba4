package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// replica is one control-plane process on a shared database.
type replica struct {
	srv  *api.Server
	http *httptest.Server
	st   *store.Store
}

// replicaOpts configure startReplica.
type replicaOpts struct {
	cfg   api.Config
	lease time.Duration
}

type replicaOpt func(*replicaOpts)

// withTracing makes a replica's spans go to tp.
func withTracing(tp trace.TracerProvider) replicaOpt {
	return func(o *replicaOpts) { o.cfg.TracerProvider = tp }
}

// withLease shortens the replica's tunnel claim lease (renewed every third).
func withLease(d time.Duration) replicaOpt { return func(o *replicaOpts) { o.lease = d } }

// withPreviewCache keeps the production default preview caches (tests
// disable them so that each request reads the database).
func withPreviewCache() replicaOpt { return func(o *replicaOpts) { o.cfg.PreviewCacheTTL = 0 } }

func startReplica(t testing.TB, driver, dsn string, opts ...replicaOpt) *replica {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	o := replicaOpts{cfg: api.Config{Store: st, PreviewURL: "http://preview.localhost", ReplicaURL: url, PreviewCacheTTL: -1}}
	for _, f := range opts {
		f(&o)
	}
	cfg := o.cfg
	srv, err := api.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if o.lease > 0 {
		api.SetTunnelLease(srv, o.lease)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return &replica{srv: srv, http: hs, st: st}
}

// replicaWorld is an org with a cluster, its token and a sandbox, made
// through the first replica of a shared database.
type replicaWorld struct {
	admin, token, routingKey string
	rec                      *recorder
}

func newReplicaWorld(t testing.TB, r *replica) replicaWorld {
	t.Helper()
	ctx := context.Background()
	admin, _, err := api.Bootstrap(ctx, r.st, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	c, _ := client.New(r.http.URL, admin)
	if _, err := c.RegisterCluster(ctx, "acme", "c1"); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateClusterToken(ctx, "acme", "c1")
	if err != nil {
		t.Fatal(err)
	}
	sb, err := c.ApplySandbox(ctx, "acme", sandbox("feat", nil))
	if err != nil {
		t.Fatal(err)
	}
	return replicaWorld{admin: admin, token: tok.Token, routingKey: sb.RoutingKey, rec: newRecorder(t)}
}

// preview sends GET /preview/acme/feat/web/x?y=1 to r with the admin key and
// the given extra headers.
func (w replicaWorld) preview(t *testing.T, r *replica, hdr ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", r.http.URL+"/preview/acme/feat/web/x?y=1", nil)
	req.Header.Set(apitypes.HeaderAPIKey, w.admin)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestPreviewHolderDies: the replica holding the agent's tunnel dies without
// releasing its claim (its database connection is gone). Previews via the
// other replicas fail with a clear error until the agent reconnects to a live
// replica, whose claim then wins at once; the dead one's renewals are gone and
// the survivors forward there.
func TestPreviewHolderDies(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			driver, dsn := storetest.DSN(t, driver)
			a, b, c := startReplica(t, driver, dsn), startReplica(t, driver, dsn), startReplica(t, driver, dsn)
			w := newReplicaWorld(t, a)
			agentCtx, stopAgent := context.WithCancel(ctx)
			defer stopAgent()
			agentTunnel(agentCtx, t, a.http.URL, w.token, a.srv.Hub(), w.rec, "frontend.shop.svc:8080")
			if code, body := w.preview(t, c); code != 200 || body != "hello /x?y=1" {
				t.Fatalf("C through A: %d %s", code, body)
			}
			// A crashes: no release reaches the database.
			a.st.Close()
			a.http.CloseClientConnections()
			a.http.Close()
			stopAgent()
			code, body := w.preview(t, c)
			if code != http.StatusBadGateway || !strings.Contains(body, "held by replica") {
				t.Fatalf("C while the claim points at dead A: %d %s", code, body)
			}
			// The agent reconnects (through the load balancer) to B.
			agentCtx2, stopAgent2 := context.WithCancel(ctx)
			defer stopAgent2()
			agentTunnel(agentCtx2, t, b.http.URL, w.token, b.srv.Hub(), w.rec, "frontend.shop.svc:8080")
			for _, r := range []*replica{c, b} {
				if code, body := w.preview(t, r); code != 200 || body != "hello /x?y=1" {
					t.Fatalf("after the agent moved to B: %d %s", code, body)
				}
			}
			if k, _ := routingkey.Default.Extract(w.rec.last().Header); k != w.routingKey {
				t.Fatalf("routing key upstream %q, want %q", k, w.routingKey)
			}
		})
	}
}

// TestPreviewTraceAcrossReplicas: a preview via B of a tunnel held by A is
// one trace: the caller's span → B's preview span → B's dial via A → A's
// internal dial span; the upstream continues under B's preview span and
// still gets the routing key and the caller's tracestate.
func TestPreviewTraceAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	driver, dsn := storetest.DSN(t, store.DriverSQLite)
	recA, recB := tracetest.NewSpanRecorder(), tracetest.NewSpanRecorder()
	a := startReplica(t, driver, dsn, withTracing(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recA))))
	b := startReplica(t, driver, dsn, withTracing(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recB))))
	w := newReplicaWorld(t, a)
	agentCtx, stopAgent := context.WithCancel(ctx)
	defer stopAgent()
	agentTunnel(agentCtx, t, a.http.URL, w.token, a.srv.Hub(), w.rec, "frontend.shop.svc:8080")
	const traceID, callerSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	if code, body := w.preview(t, b, "traceparent", "00-"+traceID+"-"+callerSpan+"-01", "tracestate", "vendor=x"); code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	byName := func(rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
		t.Helper()
		// A server span ends just after the response is written: wait for it.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			for _, s := range rec.Ended() {
				if s.Name() == name {
					return s
				}
			}
		}
		var names []string
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("no span %q among %v", name, names)
		return nil
	}
	pv := byName(recB, "preview GET")
	dial := byName(recB, "tunnel dial via replica")
	// A's span lasts as long as the piped connection, which B's preview proxy keeps in its pool.
	var internal sdktrace.ReadOnlySpan
	for _, s := range recA.Started() {
		if s.Name() == "GET /api/v2/internal/tunnel-dial" {
			internal = s
		}
	}
	if internal == nil {
		t.Fatal("no internal dial span on A")
	}
	if pv.SpanContext().TraceID().String() != traceID || pv.Parent().SpanID().String() != callerSpan || pv.SpanKind() != trace.SpanKindServer {
		t.Errorf("preview span: trace %s parent %s", pv.SpanContext().TraceID(), pv.Parent().SpanID())
	}
	attrs := map[string]string{}
	for _, kv := range pv.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	for k, want := range map[string]string{"sandboxmesh.org": "acme", "sandboxmesh.sandbox": "feat", "sandboxmesh.endpoint": "web",
		"sandboxmesh.cluster": "c1", "http.response.status_code": "200", "network.peer.address": "frontend.shop.svc:8080"} {
		if attrs[k] != want {
			t.Errorf("preview span %s = %q, want %q", k, attrs[k], want)
		}
	}
	if dial.Parent().SpanID() != pv.SpanContext().SpanID() {
		t.Errorf("dial span parent %s, want the preview span %s", dial.Parent().SpanID(), pv.SpanContext().SpanID())
	}
	if internal.SpanContext().TraceID().String() != traceID || internal.Parent().SpanID() != dial.SpanContext().SpanID() {
		t.Errorf("A's internal span: trace %s parent %s, want %s", internal.SpanContext().TraceID(), internal.Parent().SpanID(), dial.SpanContext().SpanID())
	}
	up := w.rec.last().Header
	if want := "00-" + traceID + "-" + pv.SpanContext().SpanID().String() + "-01"; up.Get("traceparent") != want {
		t.Errorf("upstream traceparent %q, want %q", up.Get("traceparent"), want)
	}
	if ts := up.Get("tracestate"); !strings.Contains(ts, "vendor=x") || !strings.Contains(ts, w.routingKey) {
		t.Errorf("upstream tracestate %q lacks the caller's member or the routing key", ts)
	}
	if k, _ := routingkey.Default.Extract(up); k != w.routingKey {
		t.Errorf("routing key upstream %q", k)
	}
}

// TestPreviewAcrossReplicas: the agent's tunnel is on replica A; a preview
// request arriving at replica B is dialed through A. When the agent moves to
// B, B serves it locally. Replica-to-replica dials need the shared secret.
func TestPreviewAcrossReplicas(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			driver, dsn := storetest.DSN(t, driver)
			a := startReplica(t, driver, dsn)
			b := startReplica(t, driver, dsn)
			// Bootstrap through A; B sees the same database.
			w := newReplicaWorld(t, a)
			admin, rec := w.admin, w.rec
			get := func(r *replica) (int, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", r.http.URL+"/preview/acme/feat/web/x?y=1", nil)
				req.Header.Set(apitypes.HeaderAPIKey, admin)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body)
			}
			if code, body := get(b); code != http.StatusBadGateway {
				t.Fatalf("no agent anywhere: %d %s", code, body)
			}

			agentCtx, stopAgent := context.WithCancel(ctx)
			agentTunnel(agentCtx, t, a.http.URL, w.token, a.srv.Hub(), rec, "frontend.shop.svc:8080")
			if b.srv.Hub().Connected("acme", "c1") {
				t.Fatal("the tunnel is on A, not B")
			}
			if code, body := get(b); code != 200 || body != "hello /x?y=1" {
				t.Fatalf("B through A: %d %s", code, body)
			}
			if k, _ := routingkey.Default.Extract(rec.last().Header); k != w.routingKey {
				t.Fatalf("routing key upstream %q, want %q", k, w.routingKey)
			}
			if code, body := get(a); code != 200 || body != "hello /x?y=1" {
				t.Fatalf("A locally: %d %s", code, body)
			}

			// The internal dial endpoint refuses requests without the replicas' secret.
			resp, err := http.Get(a.http.URL + "/api/v2/internal/tunnel-dial?org=acme&cluster=c1&address=frontend.shop.svc:8080&ts=" + itoa(time.Now().Unix()))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("unauthenticated replica dial: %d", resp.StatusCode)
			}

			// The agent moves to B (A's tunnel closed): B serves locally.
			stopAgent()
			deadline := time.Now().Add(5 * time.Second)
			for a.srv.Hub().Connected("acme", "c1") && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			agentCtx2, stopAgent2 := context.WithCancel(ctx)
			defer stopAgent2()
			agentTunnel(agentCtx2, t, b.http.URL, w.token, b.srv.Hub(), rec, "frontend.shop.svc:8080")
			if code, body := get(b); code != 200 || body != "hello /x?y=1" {
				t.Fatalf("B locally: %d %s", code, body)
			}
			if code, body := get(a); code != 200 || body != "hello /x?y=1" {
				t.Fatalf("A through B: %d %s", code, body)
			}
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestReconnectToSameReplica: the agent reconnects to the replica holding
// its tunnel; the replaced session's end must not release the claim the new
// session made, or previews via other replicas would fail until the next
// renewal.
func TestReconnectToSameReplica(t *testing.T) {
	ctx := context.Background()
	driver, dsn := storetest.DSN(t, store.DriverSQLite)
	a, b := startReplica(t, driver, dsn), startReplica(t, driver, dsn)
	w := newReplicaWorld(t, a)
	ctx1, stop1 := context.WithCancel(ctx)
	defer stop1()
	agentTunnel(ctx1, t, a.http.URL, w.token, a.srv.Hub(), w.rec, "frontend.shop.svc:8080")
	ctx2, stop2 := context.WithCancel(ctx)
	defer stop2()
	agentTunnel(ctx2, t, a.http.URL, w.token, a.srv.Hub(), w.rec, "frontend.shop.svc:8080")
	// The first session is closed by the hub; give its handler time to finish.
	for range 50 {
		if _, err := a.st.GetTunnelOwner(ctx, "acme", "c1"); err != nil {
			t.Fatalf("claim lost after the reconnect: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, body := w.preview(t, b); code != 200 {
		t.Fatalf("B through A after the reconnect: %d %s", code, body)
	}
}

// TestStaleTunnelClosed: the agent connects to B while A still holds an older
// tunnel of it (half dead, or an old agent pod during a rollout). A's next
// renewal finds B's newer claim, leaves it, and closes A's tunnel, so
// previews via A go to B instead of into the stale tunnel.
func TestStaleTunnelClosed(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			driver, dsn := storetest.DSN(t, driver)
			a, b := startReplica(t, driver, dsn, withLease(300*time.Millisecond)), startReplica(t, driver, dsn, withLease(300*time.Millisecond))
			w := newReplicaWorld(t, a)
			oldCtx, stopOld := context.WithCancel(ctx)
			defer stopOld()
			agentTunnel(oldCtx, t, a.http.URL, w.token, a.srv.Hub(), w.rec, "frontend.shop.svc:8080")
			newCtx, stopNew := context.WithCancel(ctx)
			defer stopNew()
			agentTunnel(newCtx, t, b.http.URL, w.token, b.srv.Hub(), w.rec, "frontend.shop.svc:8080")
			deadline := time.Now().Add(5 * time.Second)
			for a.srv.Hub().Connected("acme", "c1") {
				if time.Now().After(deadline) {
					t.Fatal("A kept its stale tunnel")
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Several renewal periods later B still holds the claim and serves both.
			time.Sleep(400 * time.Millisecond)
			if !b.srv.Hub().Connected("acme", "c1") {
				t.Fatal("B's tunnel was closed")
			}
			if o, err := b.st.GetTunnelOwner(ctx, "acme", "c1"); err != nil || o.URL != b.http.URL {
				t.Fatalf("owner %+v %v, want B (%s)", o, err, b.http.URL)
			}
			for _, r := range []*replica{a, b} {
				if code, body := w.preview(t, r); code != 200 || body != "hello /x?y=1" {
					t.Fatalf("%s: %d %s", r.http.URL, code, body)
				}
			}
		})
	}
}

// TestEffectsAcrossReplicas: writes through replica A take effect on
// replica B through the change feed, not through a cache's expiry (B's
// preview caches here live an hour): an API key revoked on A is refused by
// B's preview proxy, and a cluster token deleted on A closes the agent
// tunnel that token holds on B.
func TestEffectsAcrossReplicas(t *testing.T) {
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			ctx := context.Background()
			driver, dsn := storetest.DSN(t, driver)
			hour := func(o *replicaOpts) { o.cfg.PreviewCacheTTL = time.Hour }
			a, b := startReplica(t, driver, dsn, hour), startReplica(t, driver, dsn, hour)
			w := newReplicaWorld(t, a)
			admin, _ := client.New(a.http.URL, w.admin)
			key, err := admin.CreateAPIKey(ctx, "acme", "ci")
			if err != nil {
				t.Fatal(err)
			}
			tok, err := admin.CreateClusterToken(ctx, "acme", "c1")
			if err != nil {
				t.Fatal(err)
			}
			agentCtx, stopAgent := context.WithCancel(ctx)
			defer stopAgent()
			agentTunnel(agentCtx, t, b.http.URL, tok.Token, b.srv.Hub(), w.rec, "frontend.shop.svc:8080")
			get := func() (int, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", b.http.URL+"/preview/acme/feat/web/x", nil)
				req.Header.Set(apitypes.HeaderAPIKey, key.Key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(body)
			}
			if code, body := get(); code != 200 { // B caches the key check
				t.Fatalf("preview via B: %d %s", code, body)
			}
			if err := admin.RevokeAPIKey(ctx, "acme", key.ID); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				code, body := get()
				if code == http.StatusUnauthorized {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("B still accepts the key revoked on A: %d %s", code, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := admin.DeleteClusterToken(ctx, "acme", "c1", tok.ID); err != nil {
				t.Fatal(err)
			}
			for b.srv.Hub().Connected("acme", "c1") {
				if time.Now().After(deadline) {
					t.Fatal("B kept the tunnel of a token deleted on A")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// TestLongPollWokenAcrossReplicas: on PostgreSQL an agent's long poll held
// by replica B returns when a sandbox is applied through replica A, woken by
// the change feed's notification: B's own re-reads (PollInterval) are an
// hour apart here, and the poll waits up to 30 s.
func TestLongPollWokenAcrossReplicas(t *testing.T) {
	ctx := context.Background()
	driver, dsn := storetest.DSN(t, store.DriverPostgres)
	slow := func(o *replicaOpts) { o.cfg.PollInterval = time.Hour }
	a, b := startReplica(t, driver, dsn, slow), startReplica(t, driver, dsn, slow)
	w := newReplicaWorld(t, a)
	poll := func(since int64, wait string) apitypes.AgentState {
		t.Helper()
		req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v2/agent/state?since=%d&wait=%s", b.http.URL, since, wait), nil)
		req.Header.Set(apitypes.HeaderClusterToken, w.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st apitypes.AgentState
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
			t.Fatalf("poll: %d %v", resp.StatusCode, err)
		}
		return st
	}
	full := poll(0, "0s")
	admin, _ := client.New(a.http.URL, w.admin)
	got := make(chan apitypes.AgentState, 1)
	go func() { got <- poll(full.Revision, "30s") }()
	time.Sleep(300 * time.Millisecond) // the poll is waiting (else it returns at its first read: no proof)
	// Apply through A until the poll on B returns.
	for i := 0; ; i++ {
		if _, err := admin.ApplySandbox(ctx, "acme", sandbox(fmt.Sprintf("next-%d", i), nil)); err != nil {
			t.Fatal(err)
		}
		select {
		case st := <-got:
			if len(st.Objects) == 0 {
				t.Fatalf("poll on B returned without the change: %+v", st)
			}
			return
		case <-time.After(2 * time.Second):
		}
		if i == 5 {
			t.Fatal("the poll on B was not woken by applies through A")
		}
	}
}
