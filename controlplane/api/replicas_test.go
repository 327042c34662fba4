package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

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
}

func startReplica(t *testing.T, driver, dsn string) *replica {
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
	srv, err := api.New(ctx, api.Config{Store: st, PreviewURL: "http://preview.localhost", ReplicaURL: url, PreviewCacheTTL: -1})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv.Handler())
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	t.Cleanup(hs.Close)
	return &replica{srv: srv, http: hs}
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
			st, err := store.Open(ctx, driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			admin, _, err := api.Bootstrap(ctx, st, "acme", "")
			if err != nil {
				t.Fatal(err)
			}
			ca, _ := client.New(a.http.URL, admin)
			if _, err := ca.RegisterCluster(ctx, "acme", "c1"); err != nil {
				t.Fatal(err)
			}
			tok, err := ca.CreateClusterToken(ctx, "acme", "c1")
			if err != nil {
				t.Fatal(err)
			}
			sb, err := ca.ApplySandbox(ctx, "acme", sandbox("feat", nil))
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(t)
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
			agentTunnel(agentCtx, t, a.http.URL, tok.Token, a.srv.Hub(), rec, "frontend.shop.svc:8080")
			if b.srv.Hub().Connected("acme", "c1") {
				t.Fatal("the tunnel is on A, not B")
			}
			if code, body := get(b); code != 200 || body != "hello /x?y=1" {
				t.Fatalf("B through A: %d %s", code, body)
			}
			if k, _ := routingkey.Default.Extract(rec.last().Header); k != sb.RoutingKey {
				t.Fatalf("routing key upstream %q, want %q", k, sb.RoutingKey)
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
			agentTunnel(agentCtx2, t, b.http.URL, tok.Token, b.srv.Hub(), rec, "frontend.shop.svc:8080")
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
