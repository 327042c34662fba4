package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/tunnel"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// strongKey returns a bootstrap key that passes the strength check.
func strongKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "smk_" + hex.EncodeToString(b)
}

// waitClosed reads from conn until the server closes it and reports how long that took
// (bounded by limit).
func waitClosed(t *testing.T, conn net.Conn, limit time.Duration) (time.Duration, string) {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	b, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return limit, string(b)
	}
	return time.Since(start), string(b)
}

// TestServerTimeouts runs the binary with short timeouts on a real socket: a body
// sent at one byte a second and an idle keep-alive connection are cut off,
// while a long poll, an agent tunnel and a streamed preview response outlive
// the read and write timeouts.
func TestServerTimeouts(t *testing.T) {
	key := strongKey(t)
	t.Setenv("SANDBOXMESH_BOOTSTRAP_KEY", key)
	addr, _, stop := start(t, "--data-dir", t.TempDir(), "--read-timeout", "1s", "--idle-timeout", "1s", "--write-timeout", "1s")
	defer stop()
	ctx := context.Background()

	t.Run("slow body", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "PUT /api/v2/orgs/default/sandboxes/slow HTTP/1.1\r\nHost: %s\r\nsandboxmesh-api-key: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n", addr, key)
		done := make(chan struct{})
		go func() { // one byte a second, at most 8
			defer close(done)
			for range 8 {
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
				time.Sleep(time.Second)
			}
		}()
		d, body := waitClosed(t, conn, 6*time.Second)
		if d >= 6*time.Second {
			t.Fatalf("a body at 1 byte/s held the connection for %v (read timeout 1s)", d)
		}
		if !strings.Contains(body, "400") && body != "" {
			t.Errorf("answer to a timed-out body: %q", body)
		}
		<-done
	})

	t.Run("idle keep-alive", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		start := time.Now()
		_ = conn.SetReadDeadline(start.Add(6 * time.Second))
		_, err = br.ReadByte()
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("an idle keep-alive connection stayed open %v (idle timeout 1s)", time.Since(start))
		}
	})

	admin, err := client.New("http://"+addr, key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterCluster(ctx, "default", "c1"); err != nil {
		t.Fatal(err)
	}
	tok, err := admin.CreateClusterToken(ctx, "default", "c1")
	if err != nil {
		t.Fatal(err)
	}

	sb := &client.Sandbox{Name: "sb", Spec: v1alpha1.SandboxSpec{Cluster: "c1",
		Forks:             []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}},
		DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://frontend.shop.svc:8080"}}}}}
	if _, err := admin.ApplySandbox(ctx, "default", sb); err != nil { // revision 1: polls after it wait
		t.Fatal(err)
	}

	t.Run("long poll outlives the read timeout", func(t *testing.T) {
		get := func(q string) apitypes.AgentState {
			req, _ := http.NewRequest("GET", "http://"+addr+"/api/v2/agent/state?"+q, nil)
			req.Header.Set(apitypes.HeaderClusterToken, tok.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var st apitypes.AgentState
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
				t.Fatalf("poll %s: %d %v", q, resp.StatusCode, err)
			}
			return st
		}
		st := get("since=0&wait=0s")
		start := time.Now()
		st = get(fmt.Sprintf("since=%d&wait=2500ms", st.Revision))
		if d := time.Since(start); d < 2*time.Second || st.Full {
			t.Fatalf("long poll ended after %v (full %v)", d, st.Full)
		}
	})

	t.Run("tunnel and streamed preview outlive the read timeout", func(t *testing.T) {
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for i := range 3 {
				fmt.Fprintf(w, "chunk%d\n", i)
				w.(http.Flusher).Flush()
				time.Sleep(time.Second)
			}
		}))
		defer up.Close()
		tctx, cancel := context.WithCancel(ctx)
		defer cancel()
		h := http.Header{}
		h.Set(apitypes.HeaderClusterToken, tok.Token)
		ws, _, err := websocket.Dial(tctx, "ws://"+addr+"/api/v2/agent/tunnel", &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			t.Fatal(err)
		}
		allow := func(d apitypes.TunnelDial) (string, error) { return d.Address, nil }
		dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, up.Listener.Addr().String())
		}
		go tunnel.ServeAgent(tctx, websocket.NetConn(tctx, ws, websocket.MessageBinary), allow, dial, nil)
		time.Sleep(2 * time.Second) // longer than the read timeout
		req, _ := http.NewRequest("GET", "http://"+addr+"/preview/default/sb/web/", nil)
		req.Header.Set(apitypes.HeaderAPIKey, key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || string(body) != "chunk0\nchunk1\nchunk2\n" {
			t.Fatalf("preview through a tunnel older than the read timeout, streaming 3s: %d %q %v", resp.StatusCode, body, err)
		}
	})
}
