package localtunnel

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// listen returns a loopback listener closed with the test.
func listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// echoServer is a raw TCP echo on loopback.
func echoServer(t testing.TB) string {
	t.Helper()
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

// httpServer answers name on every path.
func httpServer(t testing.TB, name string) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.URL.Path)
	}))
	t.Cleanup(s.Close)
	return s
}

// grpcHealthServer serves the gRPC health service on loopback.
func grpcHealthServer(t testing.TB) string {
	t.Helper()
	l := listen(t)
	s := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("route", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s, h)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

// mapLookup resolves fixed names (the cluster DNS of the test).
func mapLookup(m map[string]string) tunnelproto.LookupFunc {
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		a, ok := m[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
}

type rig struct {
	gw     *Gateway
	addr   string
	events chan MachineEvent
}

func startGateway(t testing.TB, lookup map[string]string) *rig {
	t.Helper()
	r := &rig{events: make(chan MachineEvent, 64)}
	gw, err := NewGateway(GatewayConfig{
		Policy:    ClusterPolicy{CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.96.0.0/12")}, Lookup: mapLookup(lookup)},
		OnChange:  func(e MachineEvent) { r.events <- e },
		Heartbeat: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	go gw.Serve(l)
	t.Cleanup(func() { gw.Close() })
	r.gw, r.addr = gw, l.Addr().String()
	return r
}

// connRecorder dials the gateway and remembers the last connection (to kill it).
type connRecorder struct {
	addr string
	mu   sync.Mutex
	last net.Conn
	down bool // the network is down: dials fail
}

func (d *connRecorder) dial(ctx context.Context) (net.Conn, error) {
	d.mu.Lock()
	down := d.down
	d.mu.Unlock()
	if down {
		return nil, errors.New("network is down (test)")
	}
	var nd net.Dialer
	c, err := nd.DialContext(ctx, "tcp", d.addr)
	if err == nil {
		d.mu.Lock()
		d.last = c
		d.mu.Unlock()
	}
	return c, err
}

// kill takes the network down and closes the current connection.
func (d *connRecorder) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = true
	d.last.Close()
}

// restore brings the network back.
func (d *connRecorder) restore() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.down = false
}

func startClient(t testing.TB, gatewayAddr string, id *Identity) (*Client, *connRecorder) {
	t.Helper()
	rec := &connRecorder{addr: gatewayAddr}
	c, err := NewClient(ClientConfig{Identity: id, Dial: rec.dial, Label: "laptop", MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := c.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	return c, rec
}

func newIdentity(t testing.TB) *Identity {
	t.Helper()
	id, err := GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// waitFor polls cond for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func localHTTPClient(gw *Gateway, machine, sandbox, local, toLocal string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return gw.DialLocal(ctx, machine, sandbox, local, toLocal)
		},
	}}
}

func get(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", u, resp.StatusCode, b, err)
	}
	return string(b)
}

// TestEndToEnd runs a gateway and a machine over loopback TCP and exercises
// both directions, the refusals, loss and reconnection.
func TestEndToEnd(t *testing.T) {
	customer := httpServer(t, "customer")
	customerPort := customer.Listener.Addr().(*net.TCPAddr).Port
	r := startGateway(t, map[string]string{
		"customer.hotrod.svc.cluster.local.": "127.0.0.1",
		"example.com.svc.cluster.local.":     "93.184.215.14", // an ExternalName pointing outside
	})
	id := newIdentity(t)
	machine := id.MachineID()
	cl, rec := startClient(t, r.addr, id)
	if ev := <-r.events; ev.MachineID != machine || !ev.Connected {
		t.Fatalf("first event %+v, want %s connected", ev, machine)
	}

	route := httpServer(t, "route")
	routeAddr := route.Listener.Addr().String()
	echo := echoServer(t)
	grpcAddr := grpcHealthServer(t)
	cl.Allow("sb-local", []LocalTarget{{Local: "route", ToLocal: routeAddr}, {Local: "route", ToLocal: echo}, {Local: "route-grpc", ToLocal: grpcAddr}})

	t.Run("inbound HTTP", func(t *testing.T) {
		hc := localHTTPClient(r.gw, machine, "sb-local", "route", routeAddr)
		if got := get(t, hc, "http://route.hotrod:8083/dispatch"); got != "route /dispatch" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("inbound raw TCP", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := r.gw.DialLocal(ctx, machine, "sb-local", "route", echo)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := strings.Repeat("raw bytes ", 50000)
		go func() { _, _ = io.WriteString(c, msg); _ = c.(interface{ CloseWrite() error }).CloseWrite() }()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != msg {
			t.Fatalf("echo: %d of %d bytes, %v", len(b), len(msg), err)
		}
	})
	t.Run("inbound gRPC", func(t *testing.T) {
		cc, err := grpc.NewClient("passthrough:///route-grpc",
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				return r.gw.DialLocal(ctx, machine, "sb-local", "route-grpc", grpcAddr)
			}))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "route"})
		if err != nil || res.Status != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health check through DialLocal: %v %v", res, err)
		}
	})
	t.Run("inbound refusals", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, tc := range []struct{ sandbox, local, toLocal, want string }{
			{"sb-other", "route", routeAddr, `sandbox "sb-other" is not served`},
			{"sb-local", "route", "127.0.0.1:22", `no local workload "route" mapped to "127.0.0.1:22"`},
			{"sb-local", "payments", routeAddr, `no local workload "payments"`},
		} {
			_, err := r.gw.DialLocal(ctx, machine, tc.sandbox, tc.local, tc.toLocal)
			if !errors.Is(err, tunnelproto.ErrForbidden) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("DialLocal(%s, %s, %s) = %v, want a forbidden refusal containing %q", tc.sandbox, tc.local, tc.toLocal, err, tc.want)
			}
		}
		other := newIdentity(t).MachineID()
		if _, err := r.gw.DialLocal(ctx, other, "sb-local", "route", routeAddr); !errors.Is(err, ErrNotConnected) {
			t.Errorf("DialLocal to an unconnected machine = %v, want ErrNotConnected", err)
		}
		cl.Revoke("sb-gone")
		cl.Allow("sb-gone", []LocalTarget{{Local: "route", ToLocal: routeAddr}})
		cl.Revoke("sb-gone")
		if _, err := r.gw.DialLocal(ctx, machine, "sb-gone", "route", routeAddr); !errors.Is(err, tunnelproto.ErrForbidden) {
			t.Errorf("DialLocal for a revoked sandbox = %v, want forbidden", err)
		}
	})

	socksL := listen(t)
	socks, err := NewSOCKSServer(SOCKSConfig{Dial: cl.DialCluster})
	if err != nil {
		t.Fatal(err)
	}
	go socks.Serve(socksL)
	t.Cleanup(func() { socks.Close() })
	proxied := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5", Host: socksL.Addr().String()})}}

	t.Run("outbound through SOCKS5", func(t *testing.T) {
		for _, host := range []string{"customer.hotrod.svc", "customer.hotrod", "customer.hotrod.svc.cluster.local", "127.0.0.1"} {
			u := fmt.Sprintf("http://%s:%d/customer", host, customerPort)
			if got := get(t, proxied, u); got != "customer /customer" {
				t.Fatalf("GET %s = %q", u, got)
			}
		}
	})
	t.Run("outbound refusals", func(t *testing.T) {
		for _, u := range []string{
			"http://www.example.com/",  // not a cluster name
			"http://example.com/",      // <svc>.<ns> shape, but resolves outside the cluster CIDRs
			"http://192.0.2.1:80/",     // an IP outside the CIDRs
			"http://169.254.169.254/",  // metadata
			"http://nosuch.hotrod:80/", // no such Service
		} {
			resp, err := proxied.Get(u)
			if err == nil {
				resp.Body.Close()
				t.Errorf("GET %s through SOCKS5 succeeded; want refused", u)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for addr, want := range map[string]string{
			"www.example.com:80": "not a cluster name",
			"example.com:80":     "outside the cluster's allowed CIDRs",
			"192.0.2.1:80":       "outside the cluster's allowed CIDRs",
		} {
			_, err := cl.DialCluster(ctx, "tcp", addr)
			if !errors.Is(err, tunnelproto.ErrForbidden) || !strings.Contains(err.Error(), want) {
				t.Errorf("DialCluster(%s) = %v, want forbidden with %q", addr, err, want)
			}
		}
		if _, err := cl.DialCluster(ctx, "udp", fmt.Sprintf("customer.hotrod:%d", customerPort)); !errors.Is(err, tunnelproto.ErrForbidden) {
			t.Errorf("DialCluster(udp) = %v, want forbidden", err)
		}
	})

	t.Run("outbound through the same port as an HTTP proxy", func(t *testing.T) {
		httpProxied := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: socksL.Addr().String()})}}
		u := fmt.Sprintf("http://customer.hotrod:%d/plain", customerPort)
		if got := get(t, httpProxied, u); got != "customer /plain" {
			t.Fatalf("GET %s via HTTP proxy = %q", u, got)
		}
		// https goes through CONNECT; the TLS session is end to end.
		tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls "+r.URL.Path) }))
		defer tlsSrv.Close()
		tr := tlsSrv.Client().Transport.(*http.Transport).Clone()
		tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: socksL.Addr().String()})
		tr.TLSClientConfig.ServerName = "example.com" // in httptest's certificate
		tlsPort := tlsSrv.Listener.Addr().(*net.TCPAddr).Port
		if got := get(t, &http.Client{Timeout: 5 * time.Second, Transport: tr}, fmt.Sprintf("https://customer.hotrod.svc:%d/secure", tlsPort)); got != "tls /secure" {
			t.Fatalf("https via CONNECT = %q", got)
		}
		for u, want := range map[string]int{"http://www.example.com/": 403, "http://192.0.2.1/": 403} {
			resp, err := httpProxied.Get(u)
			if err != nil {
				t.Fatalf("GET %s: %v", u, err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != want || !strings.Contains(string(b), "not allowed") && !strings.Contains(string(b), "forbidden") {
				t.Errorf("GET %s via HTTP proxy = %d %q, want %d with the reason", u, resp.StatusCode, b, want)
			}
		}
	})

	t.Run("loss and reconnection", func(t *testing.T) {
		info, ok := r.gw.Machine(machine)
		if !ok || info.Label != "laptop" || info.ConnectedAt.IsZero() {
			t.Fatalf("Machine(%s) = %+v, %v", machine, info, ok)
		}
		waitFor(t, 2*time.Second, "a heartbeat", func() bool {
			i, _ := r.gw.Machine(machine)
			return i.LastHeartbeat.After(i.ConnectedAt)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := r.gw.DialLocal(ctx, machine, "sb-local", "route", echo)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// traffic in flight
		if _, err := io.WriteString(c, "ping"); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		rec.kill()
		waitFor(t, 2*time.Second, "Connected false after the machine's connection died", func() bool { return !r.gw.Connected(machine) })
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(buf); err == nil {
			t.Error("the stream in flight survived its session")
		}
		if _, err := r.gw.DialLocal(ctx, machine, "sb-local", "route", echo); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("DialLocal after loss = %v, want ErrNotConnected", err)
		}
		waitFor(t, 2*time.Second, "the client in backoff", func() bool { return cl.State().Phase == PhaseBackoff })
		if _, err := cl.DialCluster(ctx, "tcp", fmt.Sprintf("customer.hotrod:%d", customerPort)); !errors.Is(err, ErrNotConnected) {
			t.Fatalf("DialCluster while disconnected = %v, want ErrNotConnected", err)
		}
		rec.restore()
		waitFor(t, 5*time.Second, "reconnection", func() bool { return r.gw.Connected(machine) })
		hc := localHTTPClient(r.gw, machine, "sb-local", "route", routeAddr)
		if got := get(t, hc, "http://route/again"); got != "route /again" {
			t.Fatalf("after reconnection got %q", got)
		}
		var seq []bool
		for len(r.events) > 0 {
			ev := <-r.events
			seq = append(seq, ev.Connected)
		}
		if fmt.Sprint(seq) != "[false true]" {
			t.Errorf("events after the first = %v, want [false true]", seq)
		}
		if st := cl.State(); st.Phase != PhaseConnected || st.LastError == "" {
			t.Errorf("client state %+v, want Connected with the loss recorded", st)
		}
	})

	t.Run("Disconnect ends a session; the machine comes back", func(t *testing.T) {
		for len(r.events) > 0 {
			<-r.events
		}
		r.gw.Disconnect(machine)
		for _, want := range []bool{false, true} { // the client comes back at once: watch the events, not Connected
			select {
			case ev := <-r.events:
				if ev.Connected != want || ev.MachineID != machine {
					t.Fatalf("event %+v, want connected=%v", ev, want)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("no event connected=%v", want)
			}
		}
		waitFor(t, 5*time.Second, "reconnected", func() bool { return r.gw.Connected(machine) && cl.State().Phase == PhaseConnected })
		if ms := r.gw.Machines(); len(ms) != 1 || ms[0].MachineID != machine {
			t.Fatalf("Machines() = %+v", ms)
		}
	})

	t.Run("a second session replaces the first", func(t *testing.T) {
		raw, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := ClientHandshake(raw, id, "impostor-of-itself", time.Second); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Second, "replacement", func() bool {
			i, _ := r.gw.Machine(machine)
			return i.Label == "impostor-of-itself"
		})
		raw.Close() // the Client reconnects and takes its place again
		waitFor(t, 5*time.Second, "the client back", func() bool {
			i, ok := r.gw.Machine(machine)
			return ok && i.Label == "laptop"
		})
	})
}

// TestHandshakeRefusals: garbage, a bad signature, a wrong version and an
// unauthorised key are refused with a reason and never become sessions.
func TestHandshakeRefusals(t *testing.T) {
	r := startGateway(t, nil)
	id := newIdentity(t)

	dialHello := func(t *testing.T) (net.Conn, hello) {
		c, err := net.Dial("tcp", r.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		h, err := readHello(c)
		if err != nil {
			t.Fatal(err)
		}
		return c, h
	}
	refusedWith := func(t *testing.T, c net.Conn, want string) {
		t.Helper()
		res, err := readResult(c)
		if err != nil || res.ok || !strings.Contains(res.msg, want) {
			t.Fatalf("result %+v %v, want refusal %q", res, err, want)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("connection still open after a refusal")
		}
	}

	t.Run("garbage", func(t *testing.T) {
		c, _ := dialHello(t)
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("x", 200)))
		refusedWith(t, c, "malformed")
	})
	t.Run("bad signature", func(t *testing.T) {
		c, h := dialHello(t)
		a := auth{version: ProtocolVersion}
		copy(a.pub[:], id.PublicKey())
		copy(a.sig[:], ed25519.Sign(id.priv, signed(a.version, [32]byte{})))
		_ = h
		_, _ = c.Write(a.encode())
		refusedWith(t, c, "signature does not verify")
	})
	t.Run("replayed signature", func(t *testing.T) {
		c1, h1 := dialHello(t)
		c2, _ := dialHello(t)
		a := auth{version: ProtocolVersion}
		copy(a.pub[:], id.PublicKey())
		copy(a.sig[:], ed25519.Sign(id.priv, signed(a.version, h1.nonce)))
		_, _ = c2.Write(a.encode()) // the signature over c1's nonce on c2
		refusedWith(t, c2, "signature does not verify")
		c1.Close()
	})
	t.Run("unknown version", func(t *testing.T) {
		c, h := dialHello(t)
		a := auth{version: 9}
		copy(a.pub[:], id.PublicKey())
		copy(a.sig[:], ed25519.Sign(id.priv, signed(9, h.nonce)))
		_, _ = c.Write(a.encode())
		refusedWith(t, c, "unsupported protocol version 9")
	})
	t.Run("silent peer times out", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		_, err := ServerHandshake(a, 100*time.Millisecond, nil)
		if !errors.Is(err, ErrHandshake) {
			t.Fatalf("got %v, want ErrHandshake", err)
		}
	})
	t.Run("client refuses a non-gateway", func(t *testing.T) {
		s := httpServer(t, "not a gateway")
		c, err := net.Dial("tcp", s.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		if _, err := ClientHandshake(c, id, "x", time.Second); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "SandboxMesh local tunnel") {
			t.Fatalf("got %v, want a clear ErrHandshake", err)
		}
	})
	t.Run("authorize refuses", func(t *testing.T) {
		gw, err := NewGateway(GatewayConfig{Policy: ClusterPolicy{}, Authorize: func(p Peer) error { return errors.New("unknown key") }})
		if err != nil {
			t.Fatal(err)
		}
		l := listen(t)
		go gw.Serve(l)
		defer gw.Close()
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ClientHandshake(c, id, "x", time.Second); !errors.Is(err, ErrHandshake) || !strings.Contains(err.Error(), "not authorized") {
			t.Fatalf("got %v, want not authorized", err)
		}
	})
	if ms := r.gw.Machines(); len(ms) != 0 {
		t.Fatalf("machines after refused handshakes: %+v", ms)
	}
	if len(r.events) != 0 {
		t.Fatalf("%d events after refused handshakes", len(r.events))
	}
}

// TestSOCKSAuth: with credentials the server requires them; without, it
// serves loopback only.
func TestSOCKSAuth(t *testing.T) {
	target := httpServer(t, "target")
	direct := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	s, err := NewSOCKSServer(SOCKSConfig{Dial: direct, Username: "u", Password: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	go s.Serve(l)
	defer s.Close()
	client := func(user *url.Userinfo) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5", User: user, Host: l.Addr().String()})}}
	}
	if got := get(t, client(url.UserPassword("u", "secret")), target.URL+"/x"); got != "target /x" {
		t.Fatalf("got %q", got)
	}
	for _, u := range []*url.Userinfo{nil, url.UserPassword("u", "wrong")} {
		if resp, err := client(u).Get(target.URL); err == nil {
			resp.Body.Close()
			t.Errorf("GET with credentials %v succeeded", u)
		}
	}
	// The HTTP proxy on the same port asks for the same credentials.
	httpClient := func(user *url.Userinfo) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", User: user, Host: l.Addr().String()})}}
	}
	if got := get(t, httpClient(url.UserPassword("u", "secret")), target.URL+"/h"); got != "target /h" {
		t.Fatalf("http proxy with credentials: %q", got)
	}
	for _, u := range []*url.Userinfo{nil, url.UserPassword("u", "wrong")} {
		resp, err := httpClient(u).Get(target.URL)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusProxyAuthRequired {
			t.Errorf("http proxy with credentials %v: %d, want 407", u, resp.StatusCode)
		}
	}

	open, _ := NewSOCKSServer(SOCKSConfig{Dial: direct})
	wide, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer wide.Close()
	if err := open.Serve(fakeAddrListener{wide}); err == nil || !strings.Contains(err.Error(), "loopback only") {
		t.Fatalf("Serve on a non-loopback address without credentials = %v", err)
	}
	if _, err := NewSOCKSServer(SOCKSConfig{Dial: direct, Username: "u"}); err == nil {
		t.Fatal("a username without password was accepted")
	}
}

// fakeAddrListener reports a non-loopback address.
type fakeAddrListener struct{ net.Listener }

func (fakeAddrListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 10), Port: 1080} }

// TestHandshakeSlots: connections that never authenticate hold at most
// MaxHandshakes slots; the next waits (no hello) until one frees.
func TestHandshakeSlots(t *testing.T) {
	gw, err := NewGateway(GatewayConfig{Policy: ClusterPolicy{}, MaxHandshakes: 1})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	go gw.Serve(l)
	defer gw.Close()
	first, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = first.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := readHello(first); err != nil {
		t.Fatal(err)
	}
	second, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	_ = second.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := readHello(second); err == nil {
		t.Fatal("a second handshake started while the only slot was taken")
	}
	first.Close() // the gateway's handshake fails at once and frees the slot
	_ = second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := readHello(second); err != nil {
		t.Fatalf("second connection after the slot freed: %v", err)
	}
}

// TestSOCKSReplies checks the reply codes on the wire.
func TestSOCKSReplies(t *testing.T) {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		switch addr {
		case "forbidden.example:80":
			return nil, fmt.Errorf("no: %w", tunnelproto.ErrForbidden)
		case "down.hotrod:80":
			return nil, fmt.Errorf("tunnel: %w", ErrNotConnected)
		}
		return nil, errors.New("connection refused")
	}
	s, err := NewSOCKSServer(SOCKSConfig{Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	go s.Serve(l)
	defer s.Close()
	domainReq := func(cmd byte, host string) []byte {
		return append(append([]byte{5, cmd, 0, 3, byte(len(host))}, host...), 0, 80)
	}
	for name, tc := range map[string]struct {
		req  []byte
		want byte
	}{
		"forbidden":     {domainReq(1, "forbidden.example"), repNotAllowed},
		"not connected": {domainReq(1, "down.hotrod"), repNetUnreach},
		"failed":        {domainReq(1, "other.hotrod"), repHostUnreach},
		"BIND":          {domainReq(2, "x.y"), repCmdNotSupp},
		"UDP":           {domainReq(3, "x.y"), repCmdNotSupp},
		"bad atyp":      {[]byte{5, 1, 0, 9, 1, 2, 3, 4, 0, 80}, repAtypNotSupp},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write([]byte{5, 1, 0})
			m := make([]byte, 2)
			if _, err := io.ReadFull(c, m); err != nil || m[1] != methodNoAuth {
				t.Fatalf("method reply %v %v", m, err)
			}
			_, _ = c.Write(tc.req)
			rep := make([]byte, 10)
			if _, err := io.ReadFull(c, rep); err != nil || rep[1] != tc.want {
				t.Fatalf("reply %v %v, want code %d", rep, err, tc.want)
			}
		})
	}
	t.Run("no acceptable method", func(t *testing.T) {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = c.Write([]byte{5, 1, methodUserPass})
		m := make([]byte, 2)
		if _, err := io.ReadFull(c, m); err != nil || m[1] != methodNoneOK {
			t.Fatalf("method reply %v %v, want 0xff", m, err)
		}
	})
}

// TestGatewayCloseDuringHandshake: Close ends connections still
// authenticating instead of waiting for their deadline.
func TestGatewayCloseDuringHandshake(t *testing.T) {
	gw, err := NewGateway(GatewayConfig{Policy: ClusterPolicy{}, HandshakeTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	l := listen(t)
	served := make(chan error, 1)
	go func() { served <- gw.Serve(l) }()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := readHello(c); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() { gw.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close waited for a connection that never authenticates")
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve after Close = %v", err)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("the pending connection is still open")
	}
}

// TestForwarderFallback: keyed traffic sent to a forwarder reaches the local
// process while its machine is connected, the baseline while it is not, and
// the local process again after reconnection.
func TestForwarderFallback(t *testing.T) {
	r := startGateway(t, nil)
	id := newIdentity(t)
	cl, rec := startClient(t, r.addr, id)
	waitFor(t, 2*time.Second, "the gateway has the session", func() bool { return r.gw.Connected(id.MachineID()) })
	local := httpServer(t, "local")
	baseline := httpServer(t, "baseline")
	route := LocalRoute{MachineID: id.MachineID(), Sandbox: "sb", Local: "route", ToLocal: local.Listener.Addr().String()}
	cl.Allow("sb", []LocalTarget{{Local: route.Local, ToLocal: route.ToLocal}})
	fw := &Forwarder{Gateway: r.gw, Route: func() (LocalRoute, bool) { return route, true }, Fallback: baseline.Listener.Addr().String()}
	l := listen(t)
	go fw.Serve(l)
	defer fw.Close()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	u := "http://" + l.Addr().String() + "/route"
	if got := get(t, hc, u); got != "local /route" {
		t.Fatalf("connected: %q", got)
	}
	rec.kill()
	tryGet := func() string {
		resp, err := hc.Get(u)
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	waitFor(t, 2*time.Second, "keyed requests at the baseline", func() bool { return tryGet() == "baseline /route" })
	rec.restore()
	waitFor(t, 5*time.Second, "keyed requests back at the local process", func() bool { return tryGet() == "local /route" })

	// Without a fallback, a connection to an absent machine is closed.
	nofb := &Forwarder{Gateway: r.gw, Route: func() (LocalRoute, bool) { return LocalRoute{MachineID: newIdentity(t).MachineID()}, true }}
	if _, err := nofb.Open(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Open without fallback = %v, want ErrNotConnected", err)
	}
	// A refusal by the machine is not papered over by the fallback.
	bad := &Forwarder{Gateway: r.gw, Route: func() (LocalRoute, bool) { r := route; r.ToLocal = "127.0.0.1:1"; return r, true }, Fallback: baseline.Listener.Addr().String()}
	if _, err := bad.Open(context.Background()); !errors.Is(err, tunnelproto.ErrForbidden) {
		t.Fatalf("Open of an unregistered mapping = %v, want forbidden", err)
	}
}

// TestClientStopsDuringHandshake: cancelling Run ends a handshake with a
// gateway that never answers, and the state says Stopped.
func TestClientStopsDuringHandshake(t *testing.T) {
	l := listen(t) // accepts (kernel backlog) but never speaks
	cl, err := NewClient(ClientConfig{Identity: newIdentity(t), Dial: TCPDialer(l.Addr().String()), HandshakeTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cl.Run(ctx) }()
	waitFor(t, 2*time.Second, "connecting", func() bool { return cl.State().Phase == PhaseConnecting })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run waited for the handshake deadline")
	}
	if st := cl.State(); st.Phase != PhaseStopped {
		t.Fatalf("state %+v", st)
	}
	if _, err := cl.DialCluster(context.Background(), "tcp", "customer.hotrod:80"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("DialCluster after Run = %v", err)
	}
}
