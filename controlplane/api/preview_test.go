package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/tunnel"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// recorder is a real HTTP server that records what it got.
type recorder struct {
	keep bool
	mu   sync.Mutex
	reqs []*http.Request
	srv  *httptest.Server
}

func newRecorder(t testing.TB) *recorder {
	r := &recorder{keep: true}
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", func(w http.ResponseWriter, req *http.Request) {
		r.record(req)
		for i := range 3 {
			fmt.Fprintf(w, "chunk%d\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(150 * time.Millisecond)
		}
	})
	mux.HandleFunc("/ws", func(w http.ResponseWriter, req *http.Request) {
		r.record(req)
		c, err := websocket.Accept(w, req, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(req.Context())
			if err != nil {
				return
			}
			if err := c.Write(req.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		r.record(req)
		fmt.Fprintf(w, "hello %s", req.URL.RequestURI())
	})
	r.srv = httptest.NewServer(mux)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *recorder) record(req *http.Request) {
	if !r.keep {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req.Clone(context.Background()))
}

func (r *recorder) last() *http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		return nil
	}
	return r.reqs[len(r.reqs)-1]
}

// connectAgent holds a real tunnel (WebSocket + yamux) for acme/c1 whose agent
// side admits only allowed and dials the recorder instead of the cluster address.
func connectAgent(t testing.TB, e *env, rec *recorder, allowed ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	agentTunnel(ctx, t, e.http.URL, e.tokenA, e.srv.Hub(), rec, allowed...)
}

// agentTunnel connects an agent's tunnel to the control plane at base with a
// cluster token of acme/c1 until ctx ends, and waits until hub sees it.
func agentTunnel(ctx context.Context, t testing.TB, base, token string, hub *tunnel.Hub, rec *recorder, allowed ...string) {
	t.Helper()
	u := "ws" + strings.TrimPrefix(base, "http") + "/api/v2/agent/tunnel"
	h := http.Header{}
	h.Set(apitypes.HeaderClusterToken, token)
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	conn := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	allow := func(d apitypes.TunnelDial) (string, error) {
		for _, a := range allowed {
			if d.Address == a && d.Org == "acme" {
				return a, nil
			}
		}
		return "", errors.New("not declared")
	}
	recAddr := rec.srv.Listener.Addr().String()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, recAddr)
	}
	go tunnel.ServeAgent(ctx, conn, allow, dial, nil)
	deadline := time.Now().Add(5 * time.Second)
	for !hub.Connected("acme", "c1") {
		if time.Now().After(deadline) {
			t.Fatal("tunnel did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPreviewThroughTunnel(t *testing.T) {
	e := newEnv(t, store.DriverSQLite)
	ctx := context.Background()
	rec := newRecorder(t)
	sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("feat", nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.other.ApplySandbox(ctx, "other", sandbox("theirs", nil)); err != nil {
		t.Fatal(err)
	}
	do := func(method, host, path, key string, hdr http.Header) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, e.http.URL+path, nil)
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		if key != "" {
			req.Header.Set(apitypes.HeaderAPIKey, key)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}

	t.Run("no agent", func(t *testing.T) {
		resp, body := do("GET", "web--feat.preview.localhost", "/", e.keyA, nil)
		if resp.StatusCode != 502 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		// Preview errors carry a request ID like API errors (the proxy is not behind gin's middleware).
		var eb apitypes.ErrorResponse
		if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.RequestID == "" || eb.RequestID != resp.Header.Get(apitypes.HeaderRequestID) || resp.Header.Get(apitypes.HeaderPreviewError) != "true" {
			t.Fatalf("error body %s (header %q): %v", body, resp.Header.Get(apitypes.HeaderRequestID), err)
		}
	})

	connectAgent(t, e, rec, "frontend.shop.svc:8080")

	t.Run("host form with key", func(t *testing.T) {
		hdr := http.Header{"Cookie": {"app=1"}, "Baggage": {"user=alice"}}
		resp, body := do("GET", "web--feat.preview.localhost:1234", "/a/b?x=1", e.keyA, hdr)
		if resp.StatusCode != 200 || body != "hello /a/b?x=1" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		got := rec.last()
		if got.Header.Get(apitypes.HeaderAPIKey) != "" || got.Header.Get(apitypes.HeaderSignadotAPIKey) != "" {
			t.Fatalf("credentials leaked upstream: %v", got.Header)
		}
		if key, ok := routingkey.Default.Extract(got.Header); !ok || key != sb.RoutingKey {
			t.Fatalf("routing key upstream = %q %v, want %q; headers %v", key, ok, sb.RoutingKey, got.Header)
		}
		for _, h := range []string{"Baggage", "Tracestate", "Ot-Baggage-" + routingkey.DefaultKeyName, "Uberctx-" + routingkey.DefaultKeyName} {
			if !strings.Contains(got.Header.Get(h), sb.RoutingKey) {
				t.Errorf("header %s = %q lacks the routing key", h, got.Header.Get(h))
			}
		}
		if !strings.Contains(got.Header.Get("Baggage"), "user=alice") {
			t.Errorf("foreign baggage dropped: %q", got.Header.Get("Baggage"))
		}
		if fw := got.Header.Get("Forwarded"); !strings.Contains(fw, `host="web--feat.preview.localhost:1234"`) || !strings.Contains(fw, "proto=http") || !strings.Contains(fw, "for=") {
			t.Errorf("Forwarded = %q", fw)
		}
		if got.Host != "frontend.shop.svc:8080" || got.Header.Get("Cookie") != "app=1" {
			t.Errorf("host %q cookie %q", got.Host, got.Header.Get("Cookie"))
		}
	})

	t.Run("path form", func(t *testing.T) {
		// A browser logged in to the portal sends its session cookie to the
		// path form (same host): the upstream never sees it.
		hdr := http.Header{"Cookie": {apitypes.SessionCookie + "=sms_secret; app=1"}, apitypes.HeaderCSRFToken: {"csrf"}}
		resp, body := do("GET", "", "/preview/acme/feat/web/x/y", e.keyA, hdr)
		if resp.StatusCode != 200 || body != "hello /x/y" {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		if got := rec.last(); got.Header.Get("Cookie") != "app=1" || got.Header.Get(apitypes.HeaderCSRFToken) != "" {
			t.Fatalf("portal session leaked upstream: cookie %q csrf %q", got.Header.Get("Cookie"), got.Header.Get(apitypes.HeaderCSRFToken))
		}
		// Admin keys must use the path form; it works for them.
		resp, _ = do("GET", "web--feat.preview.localhost", "/", e.adminKey(t), nil)
		if resp.StatusCode != 401 {
			t.Fatalf("admin key on host form: %d", resp.StatusCode)
		}
		resp, _ = do("GET", "", "/preview/acme/feat/web/", e.adminKey(t), nil)
		if resp.StatusCode != 200 {
			t.Fatalf("admin key on path form: %d", resp.StatusCode)
		}
	})

	t.Run("isolation and auth", func(t *testing.T) {
		otherKey, _ := e.admin.CreateAPIKey(ctx, "other", "p")
		for _, tc := range []struct {
			name, host, path, key string
			code                  int
		}{
			{"no credentials", "web--feat.preview.localhost", "/", "", 401},
			{"bad key", "web--feat.preview.localhost", "/", "smk_bad", 401},
			{"other org's key on our sandbox", "web--feat.preview.localhost", "/", otherKey.Key, 404},
			{"other org's path with our key", "", "/preview/other/theirs/web/", e.keyA, 401},
			{"other org's sandbox name with our key", "web--theirs.preview.localhost", "/", e.keyA, 404},
			{"undeclared endpoint", "api--feat.preview.localhost", "/", e.keyA, 404},
			{"bad path form", "", "/preview/acme/feat", e.keyA, 404},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := do("GET", tc.host, tc.path, tc.key, nil)
				if resp.StatusCode != tc.code {
					t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.code, body)
				}
			})
		}
		// The agent refuses addresses nobody declared, even if the control plane asked.
		_, err := e.srv.Hub().DialTunnel(ctx, "acme", "c1", apitypes.TunnelDial{Org: "acme", Address: "kubernetes.default.svc:443"})
		if !errors.Is(err, tunnel.ErrRefused) {
			t.Fatalf("undeclared target: %v", err)
		}
		if _, err := e.srv.Hub().DialTunnel(ctx, "other", "c1", apitypes.TunnelDial{Org: "other", Address: "frontend.shop.svc:8080"}); !errors.Is(err, tunnel.ErrNoAgent) {
			t.Fatalf("other org's cluster: %v", err)
		}
	})

	t.Run("revoked key", func(t *testing.T) {
		k, err := e.acme.CreateAPIKey(ctx, "acme", "short-lived")
		if err != nil {
			t.Fatal(err)
		}
		if resp, _ := do("GET", "web--feat.preview.localhost", "/", k.Key, nil); resp.StatusCode != 200 {
			t.Fatalf("before revocation: %d", resp.StatusCode)
		}
		if err := e.acme.RevokeAPIKey(ctx, "acme", k.ID); err != nil {
			t.Fatal(err)
		}
		if resp, _ := do("GET", "web--feat.preview.localhost", "/", k.Key, nil); resp.StatusCode != 401 {
			t.Fatalf("after revocation: %d", resp.StatusCode)
		}
	})

	t.Run("deleted sandbox", func(t *testing.T) {
		e.acme.ApplySandbox(ctx, "acme", sandbox("short", nil))
		if resp, _ := do("GET", "web--short.preview.localhost", "/", e.keyA, nil); resp.StatusCode != 200 {
			t.Fatalf("before delete: %d", resp.StatusCode)
		}
		e.acme.DeleteSandbox(ctx, "acme", "short")
		if resp, _ := do("GET", "web--short.preview.localhost", "/", e.keyA, nil); resp.StatusCode != 404 {
			t.Fatalf("after delete: %d", resp.StatusCode)
		}
	})

	t.Run("login link and cookie", func(t *testing.T) {
		link, err := e.acme.PreviewLink(ctx, "acme", "feat", "web")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(link.URL)
		if u.Host != "web--feat.preview.localhost" {
			t.Fatalf("link %s", link.URL)
		}
		resp, _ := do("GET", u.Host, u.RequestURI(), "", nil)
		if resp.StatusCode != 302 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		var cookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "sandboxmesh-preview" {
				cookie = c
			}
		}
		if cookie == nil || !cookie.HttpOnly {
			t.Fatalf("no cookie: %v", resp.Header)
		}
		hdr := http.Header{"Cookie": {"a=1; sandboxmesh-preview=" + cookie.Value + "; b=2"}}
		resp, body := do("GET", "web--feat.preview.localhost", "/c", "", hdr)
		if resp.StatusCode != 200 || body != "hello /c" {
			t.Fatalf("cookie request: %d %s", resp.StatusCode, body)
		}
		if c := rec.last().Header.Get("Cookie"); c != "a=1; b=2" {
			t.Fatalf("upstream cookie %q", c)
		}
		// The cookie is bound to its sandbox; a tampered one fails.
		e.acme.ApplySandbox(ctx, "acme", sandbox("feat2", nil))
		resp, _ = do("GET", "web--feat2.preview.localhost", "/", "", hdr)
		if resp.StatusCode != 401 {
			t.Fatalf("cookie for another sandbox: %d", resp.StatusCode)
		}
		bad := http.Header{"Cookie": {"sandboxmesh-preview=" + cookie.Value[:len(cookie.Value)-2] + "xx"}}
		if resp, _ = do("GET", "web--feat.preview.localhost", "/", "", bad); resp.StatusCode != 401 {
			t.Fatalf("tampered cookie: %d", resp.StatusCode)
		}
		if resp, _ = do("GET", u.Host, "/__sandboxmesh/login?token=forged", "", nil); resp.StatusCode != 401 {
			t.Fatalf("forged login: %d", resp.StatusCode)
		}
	})

	t.Run("streaming", func(t *testing.T) {
		req, _ := http.NewRequest("GET", e.http.URL+"/stream", nil)
		req.Host = "web--feat.preview.localhost"
		req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "chunk0\n" {
			t.Fatalf("first chunk %q %v", line, err)
		}
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Fatalf("first chunk after %v: response is buffered", d)
		}
	})

	t.Run("websocket", func(t *testing.T) {
		h := http.Header{}
		h.Set(apitypes.HeaderAPIKey, e.keyA)
		u := "ws" + strings.TrimPrefix(e.http.URL, "http") + "/preview/acme/feat/web/ws"
		c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		for i := range 3 {
			msg := fmt.Sprint("m", i)
			if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			_, got, err := c.Read(ctx)
			if err != nil || string(got) != "echo:"+msg {
				t.Fatalf("echo %q %v", got, err)
			}
		}
		if k, _ := routingkey.Default.Extract(rec.last().Header); k != sb.RoutingKey {
			t.Fatalf("websocket upgrade lacks routing key")
		}
	})
}

func (e *env) adminKey(testing.TB) string { return e.adminSecret }

// TestPreviewTimeouts: a hung agent (it never answers the dial) and an upstream
// that never sends its response header end preview requests with 504 instead
// of holding them.
func TestPreviewTimeouts(t *testing.T) {
	e := newEnvTB(t, store.DriverSQLite, func(c *api.Config) {
		c.PreviewDialTimeout, c.PreviewResponseHeaderTimeout = 300*time.Millisecond, 300*time.Millisecond
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("feat", nil)); err != nil {
		t.Fatal(err)
	}
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // no response header until the client gives up
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	var hung bool
	var mu sync.Mutex
	u := "ws" + strings.TrimPrefix(e.http.URL, "http") + "/api/v2/agent/tunnel"
	h := http.Header{}
	h.Set(apitypes.HeaderClusterToken, e.tokenA)
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	allow := func(d apitypes.TunnelDial) (string, error) {
		mu.Lock()
		hg := hung
		mu.Unlock()
		if hg {
			<-ctx.Done() // a hung agent: never answers
		}
		return d.Address, nil
	}
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, hang.Listener.Addr().String())
	}
	go tunnel.ServeAgent(ctx, websocket.NetConn(ctx, ws, websocket.MessageBinary), allow, dial, nil)
	for !e.srv.Hub().Connected("acme", "c1") {
		time.Sleep(10 * time.Millisecond)
	}
	get := func() (int, string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/preview/acme/feat/web/", nil)
		req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
		c := &http.Client{Timeout: 8 * time.Second} // the test's own bound
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("preview request: %v", err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	t.Run("no response header", func(t *testing.T) {
		if code, body := get(); code != http.StatusGatewayTimeout || !strings.Contains(body, "in time") {
			t.Fatalf("%d %s", code, body)
		}
	})
	t.Run("hung agent", func(t *testing.T) {
		mu.Lock()
		hung = true
		mu.Unlock()
		if code, body := get(); code != http.StatusGatewayTimeout || !strings.Contains(body, "no answer within") {
			t.Fatalf("%d %s", code, body)
		}
	})
}
