package proxy

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
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// laptop is the developer's process of a local override: it echoes like backend and counts requests.
// /yes answers with sm-override: true, /sd answers with sd-override: TRUE, /status/N answers status N
// without the header, anything else 200 without the header.
type laptop struct {
	*httptest.Server
	calls    atomic.Int32
	conns    atomic.Int32
	lastBody atomic.Int64
}

func newLaptop(t testing.TB) *laptop {
	t.Helper()
	l := &laptop{}
	l.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.calls.Add(1)
		n, _ := io.Copy(io.Discard, r.Body)
		l.lastBody.Store(n)
		code := 200
		switch {
		case r.URL.Path == "/yes":
			w.Header().Set("Sm-Override", "true")
		case r.URL.Path == "/sd":
			w.Header().Set("Sd-Override", "TRUE")
		case strings.HasPrefix(r.URL.Path, "/status/"):
			code, _ = strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/status/"))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(echo{Name: "laptop", Proto: r.Proto, Method: r.Method, Path: r.URL.RequestURI(), Host: r.Host, Header: r.Header, BodyLen: int(n)})
	}))
	var pr http.Protocols
	pr.SetHTTP1(true)
	pr.SetUnencryptedHTTP2(true)
	l.Config.Protocols = &pr
	l.Config.ConnState = func(_ net.Conn, cs http.ConnState) {
		if cs == http.StateNew {
			l.conns.Add(1)
		}
	}
	l.Start()
	t.Cleanup(l.Close)
	return l
}

// overrideEnv is a sidecar with a static route table: keys ov (fork1, override to the laptop), ovx (the
// same with exceptStatusCodes [404]), down (fork1, override to a closed port), bl (baseline destination,
// override to the laptop), other (fork1, override for another port only).
func overrideEnv(t *testing.T, cfg func(*Config)) (*env, *laptop) {
	t.Helper()
	lp := newLaptop(t)
	var table atomic.Pointer[routeapi.Table]
	e := newEnv(t, envOpts{cfg: cfg, routes: lazyRoutes{&table}})
	ov := func(key string, port int32, except ...int32) routeapi.Route {
		r := e.forkRoute(key, e.fork1)
		r.Destination.Override = &routeapi.Override{Host: "127.0.0.1", Ports: []routeapi.PortMapping{{Port: e.appPort, DestinationPort: port}}, ExceptStatusCodes: except}
		return r
	}
	lport := portOf(t, lp.URL)
	bl := ov("bl", lport)
	bl.Destination.Kind, bl.Destination.Host, bl.Destination.Ports = routeapi.DestinationBaseline, "", nil
	other := ov("other", lport)
	other.Destination.Override.Ports[0].Port = e.appPort + 1
	// Port 1 is never an ephemeral port: nothing listens there (see TestForkDown).
	tb, err := routeapi.NewTable(1, []routeapi.Route{ov("ov", lport), ov("ovx", lport, 404), ov("down", 1), bl, other})
	if err != nil {
		t.Fatal(err)
	}
	table.Store(tb)
	return e, lp
}

// lazyRoutes is StaticRoutes whose table is set after the sidecar starts (the route ports are known
// only then).
type lazyRoutes struct {
	t *atomic.Pointer[routeapi.Table]
}

func (l lazyRoutes) Table() *routeapi.Table { return StaticRoutes{l.t.Load()}.Table() }

func (l lazyRoutes) Status() routeapi.Status { return StaticRoutes{l.t.Load()}.Status() }

func overrideCount(e *env, result int) float64 { return testutil.ToFloat64(e.p.m.override[result]) }

func TestLocalOverride(t *testing.T) {
	big := strings.Repeat("b", overrideMaxBody+1)
	for _, fast := range []bool{true, false} {
		t.Run(fmt.Sprintf("fastPath=%v", fast), func(t *testing.T) {
			e, lp := overrideEnv(t, func(c *Config) { c.DisableFastPath = !fast })
			cases := []struct {
				name, key, method, path string
				body                    io.Reader
				want                    string // backend that answers
				wantCode                int
				laptopCalled            bool
				wantBody                int // body length the answering backend saw
				result                  int // override outcome counted (ovrNone: none)
			}{
				{"answer with sm-override is used", "ov", "GET", "/yes", nil, "laptop", 200, true, 0, ovrServed},
				{"answer with sd-override TRUE is used", "ov", "GET", "/sd", nil, "laptop", 200, true, 0, ovrServed},
				{"answer without the header falls through with the whole body", "ov", "POST", "/no", strings.NewReader(strings.Repeat("p", 100<<10)), "fork1", 200, true, 100 << 10, ovrFellThrough},
				{"chunked body falls through whole", "ov", "POST", "/no", io.MultiReader(strings.NewReader("chunked-body")), "fork1", 200, true, 12, ovrFellThrough},
				{"except 404: 404 falls through", "ovx", "POST", "/status/404", strings.NewReader("abc"), "fork1", 200, true, 3, ovrFellThrough},
				{"except 404: 200 without header is used", "ovx", "GET", "/status/200", nil, "laptop", 200, true, 0, ovrServed},
				{"except 404: 500 is used", "ovx", "GET", "/status/500", nil, "laptop", 500, true, 0, ovrServed},
				{"override down: fork", "down", "POST", "/x", strings.NewReader("abc"), "fork1", 200, false, 3, ovrDialFailed},
				{"body over 1 MiB: fork directly", "ov", "POST", "/yes", strings.NewReader(big), "fork1", 200, false, len(big), ovrSkipped},
				{"chunked body over 1 MiB: fork directly", "ov", "POST", "/yes", io.MultiReader(strings.NewReader(big)), "fork1", 200, false, len(big), ovrSkipped},
				{"unkeyed: app", "", "POST", "/yes", strings.NewReader("abc"), "baseline", 200, false, 3, ovrNone},
				{"override for another port: fork", "other", "GET", "/yes", nil, "fork1", 200, false, 0, ovrNone},
				{"baseline destination: override used", "bl", "GET", "/yes", nil, "laptop", 200, true, 0, ovrServed},
				{"baseline destination: falls through to the app", "bl", "POST", "/no", strings.NewReader("abc"), "baseline", 200, true, 3, ovrFellThrough},
			}
			c := &http.Client{}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					calls := lp.calls.Load()
					var before float64
					if tc.result != ovrNone {
						before = overrideCount(e, tc.result)
					}
					hdr := h("X-Request-Id", "rid")
					if tc.key != "" {
						hdr.Set("Baggage", "sm-routing-key="+tc.key)
					}
					start := time.Now()
					resp, ec, body := e.do(c, tc.method, tc.path, hdr, tc.body)
					if resp.StatusCode != tc.wantCode || ec.Name != tc.want || ec.BodyLen != tc.wantBody {
						t.Fatalf("status %d backend %q body %d, want %d %q %d (%.200s)", resp.StatusCode, ec.Name, ec.BodyLen, tc.wantCode, tc.want, tc.wantBody, body)
					}
					if d := time.Since(start); d > overrideDialTimeout {
						t.Errorf("took %v", d)
					}
					if got := lp.calls.Load() - calls; got != map[bool]int32{false: 0, true: 1}[tc.laptopCalled] {
						t.Fatalf("laptop called %d times", got)
					}
					if tc.laptopCalled && tc.method == "POST" && lp.lastBody.Load() != int64(tc.wantBody) {
						t.Errorf("laptop got %d body bytes, want %d", lp.lastBody.Load(), tc.wantBody)
					}
					if tc.want == "laptop" {
						// The override stands in for the fork: key kept, hop header and X-Forwarded-* set.
						if ec.Header.Get("Baggage") != "sm-routing-key="+tc.key || ec.Header.Get(HopHeader) != "shop/Deployment/cart" || ec.Header.Get("X-Forwarded-For") != "127.0.0.1" {
							t.Errorf("laptop headers %v", ec.Header)
						}
					}
					if tc.want == "fork1" && ec.Header.Get(HopHeader) != "shop/Deployment/cart" {
						t.Errorf("fork headers %v", ec.Header)
					}
					if tc.result != ovrNone {
						if got := overrideCount(e, tc.result); got != before+1 {
							t.Errorf("devmesh_override_requests_total{result=%q} = %v, want %v", ovrNames[tc.result], got, before+1)
						}
					}
				})
			}
			if fast {
				// Requests without an override stay on the fast path; one with an override is handed over.
				fastN, handed := counter(t, e, "fast"), counter(t, e, "handed_over")
				tr := &http.Transport{}
				cc := &http.Client{Transport: tr}
				e.do(cc, "GET", "/", h("Baggage", "sm-routing-key=other"), nil)
				tr.CloseIdleConnections()
				waitCounter(t, e, "fast", fastN+1)
				if _, ec, _ := e.do(cc, "GET", "/yes", h("Baggage", "sm-routing-key=ov"), nil); ec.Name != "laptop" {
					t.Fatalf("backend %q", ec.Name)
				}
				tr.CloseIdleConnections()
				waitCounter(t, e, "handed_over", handed+1)
			}
		})
	}
}

// TestLocalOverrideTimeout: an override that accepts the connection but does not answer within
// OverrideResponseHeaderTimeout falls through.
func TestLocalOverrideTimeout(t *testing.T) {
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the proxy closing the connection
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	}))
	defer hang.Close()
	var table atomic.Pointer[routeapi.Table]
	e := newEnv(t, envOpts{cfg: func(c *Config) { c.OverrideResponseHeaderTimeout = 200 * time.Millisecond }, routes: lazyRoutes{&table}})
	r := e.forkRoute("ov", e.fork1)
	r.Destination.Override = &routeapi.Override{Host: "127.0.0.1", Ports: []routeapi.PortMapping{{Port: e.appPort, DestinationPort: portOf(t, hang.URL)}}}
	tb, err := routeapi.NewTable(1, []routeapi.Route{r})
	if err != nil {
		t.Fatal(err)
	}
	table.Store(tb)
	start := time.Now()
	resp, ec, body := e.do(&http.Client{}, "POST", "/x", h("Baggage", "sm-routing-key=ov"), strings.NewReader("abc"))
	if resp.StatusCode != 200 || ec.Name != "fork1" || ec.BodyLen != 3 {
		t.Fatalf("%d %q %s", resp.StatusCode, ec.Name, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if overrideCount(e, ovrFellThrough) != 1 {
		t.Errorf("fell_through = %v", overrideCount(e, ovrFellThrough))
	}
}

func TestLocalOverrideH2CAndGRPC(t *testing.T) {
	t.Run("h2c", func(t *testing.T) {
		e, _ := overrideEnv(t, nil)
		var pr http.Protocols
		pr.SetUnencryptedHTTP2(true)
		h2 := &http.Client{Transport: &http.Transport{Protocols: &pr}}
		for _, tc := range []struct{ path, want string }{{"/yes", "laptop"}, {"/no", "fork1"}} {
			resp, ec, body := e.do(h2, "POST", tc.path, h("Baggage", "sm-routing-key=ov"), strings.NewReader("h2-body"))
			if resp.ProtoMajor != 2 || ec.Proto != "HTTP/2.0" || ec.Name != tc.want || ec.BodyLen != 7 {
				t.Fatalf("%s: client %s, backend %q proto %s body %d (%s)", tc.path, resp.Proto, ec.Name, ec.Proto, ec.BodyLen, body)
			}
		}
	})

	t.Run("grpc", func(t *testing.T) {
		baseAddr, forkAddr := grpcBackend(t, "g-baseline"), grpcBackend(t, "g-fork")
		yes, no := grpcBackend(t, "g-laptop", "sm-override", "true"), grpcBackend(t, "g-laptop-declines")
		gApp := portOf(t, baseAddr)
		var table atomic.Pointer[routeapi.Table]
		e := newEnv(t, envOpts{cfg: func(c *Config) {
			c.Ports = []PortMapping{{Listen: 0, App: gApp, Protocol: ProtocolH2C}}
		}, routes: lazyRoutes{&table}})
		route := func(key, laptopAddr string) routeapi.Route {
			return routeapi.Route{Workload: e.workload, RoutingKey: key, Destination: routeapi.Destination{
				Sandbox: routeapi.SandboxRef{Name: "sb"}, Kind: routeapi.DestinationFork, Host: "127.0.0.1",
				Ports:    []routeapi.PortMapping{{Port: gApp, DestinationPort: portOf(t, forkAddr)}},
				Override: &routeapi.Override{Host: "127.0.0.1", Ports: []routeapi.PortMapping{{Port: gApp, DestinationPort: portOf(t, laptopAddr)}}},
			}}
		}
		tb, err := routeapi.NewTable(1, []routeapi.Route{route("yes", yes), route("no", no)})
		if err != nil {
			t.Fatal(err)
		}
		table.Store(tb)
		cc, err := grpc.NewClient(e.p.Addr(gApp), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		desc := &grpc.StreamDesc{StreamName: "Chat", ServerStreams: true, ClientStreams: true}
		for _, tc := range []struct {
			name, key string
			stream    bool // bidi: each message waits for its answer (the request body never ends first)
			want      string
		}{
			{"unary-like, override answers with sm-override", "yes", false, "g-laptop"},
			{"unary-like, override declines", "no", false, "g-fork"},
			{"bidi stream is not overridden", "yes", true, "g-fork"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "baggage", "sm-routing-key="+tc.key), 5*time.Second)
				defer cancel()
				st, err := cc.NewStream(ctx, desc, "/test.Echo/Chat", grpc.CallContentSubtype("json"))
				if err != nil {
					t.Fatal(err)
				}
				n := 1
				if tc.stream {
					n = 3
				}
				for i := range n {
					if err := st.SendMsg(&grpcMsg{Text: fmt.Sprint(i)}); err != nil {
						t.Fatal(err)
					}
					if !tc.stream {
						_ = st.CloseSend()
					}
					var m grpcMsg
					if err := st.RecvMsg(&m); err != nil || m.Text != fmt.Sprintf("%s:%d", tc.want, i) {
						t.Fatalf("recv %q err %v", m.Text, err)
					}
				}
				_ = st.CloseSend()
				var m grpcMsg
				if err := st.RecvMsg(&m); err != io.EOF {
					t.Fatalf("end: %v", err)
				}
				if got := st.Trailer().Get("x-final"); len(got) != 1 || got[0] != tc.want+"-done" {
					t.Fatalf("trailer %v", st.Trailer())
				}
			})
		}
	})
}

// TestLocalOverrideSpan: the request's span says whether the override served it or it fell through.
func TestLocalOverrideSpan(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e, _ := overrideEnv(t, func(c *Config) { c.TracerProvider = tp })
	for _, tc := range []struct{ path, want, backend string }{{"/yes", "served", "laptop"}, {"/no", "fell_through", "fork1"}} {
		n := len(rec.Ended())
		if _, ec, _ := e.do(&http.Client{}, "GET", tc.path, h("Baggage", "sm-routing-key=ov"), nil); ec.Name != tc.backend {
			t.Fatalf("backend %q", ec.Name)
		}
		spans := rec.Ended()
		if len(spans) != n+1 {
			t.Fatalf("%d spans", len(spans)-n)
		}
		var got string
		for _, a := range spans[n].Attributes() {
			if a.Key == attribute.Key("sandboxmesh.override") {
				got = a.Value.Emit()
			}
		}
		if got != tc.want {
			t.Errorf("%s: sandboxmesh.override = %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestBufferBody: a body is buffered whole when it fits and ends in time; otherwise the request keeps
// every byte of it, in order, for the route's destination.
func TestBufferBody(t *testing.T) {
	big := strings.Repeat("x", overrideMaxBody+1)
	cases := []struct {
		name    string
		body    func() (io.ReadCloser, int64, func()) // body, content length, called after bufferBody
		wantOK  bool
		want    string
		wantErr bool
	}{
		{"no body", func() (io.ReadCloser, int64, func()) { return http.NoBody, 0, nil }, true, "", false},
		{"known length", func() (io.ReadCloser, int64, func()) { return io.NopCloser(strings.NewReader("hello")), 5, nil }, true, "hello", false},
		{"known length at the limit", func() (io.ReadCloser, int64, func()) {
			return io.NopCloser(strings.NewReader(big[:overrideMaxBody])), overrideMaxBody, nil
		}, true, big[:overrideMaxBody], false},
		{"known length over the limit", func() (io.ReadCloser, int64, func()) {
			return io.NopCloser(strings.NewReader(big)), int64(len(big)), nil
		}, false, big, false},
		{"known length, body ends early", func() (io.ReadCloser, int64, func()) { return io.NopCloser(strings.NewReader("hel")), 5, nil }, false, "hel", true},
		{"unknown length that ends", func() (io.ReadCloser, int64, func()) { return io.NopCloser(strings.NewReader("hello")), -1, nil }, true, "hello", false},
		{"unknown length over the limit", func() (io.ReadCloser, int64, func()) { return io.NopCloser(strings.NewReader(big)), -1, nil }, false, big, false},
		{"unknown length still streaming", func() (io.ReadCloser, int64, func()) {
			pr, pw := io.Pipe()
			go func() { _, _ = io.WriteString(pw, "first,") }()
			return pr, -1, func() {
				go func() {
					_, _ = io.WriteString(pw, "second")
					_ = pw.Close()
				}()
			}
		}, false, "first,second", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, n, after := tc.body()
			r := &http.Request{Body: body, ContentLength: n, Header: http.Header{}}
			buf, ok, stop := bufferBody(r)
			if stop != nil {
				defer stop()
			}
			if after != nil {
				after()
			}
			if ok != tc.wantOK {
				t.Fatalf("ok = %v", ok)
			}
			got := string(buf)
			var err error
			if !ok {
				var b []byte
				b, err = io.ReadAll(r.Body)
				got = string(b)
			}
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("got %d bytes (%.20q) err %v, want %d bytes", len(got), got, err, len(tc.want))
			}
		})
	}
}

// TestLocalOverrideDeclinedKeepsConnection: a small declined answer is read, so the connection to the
// forward is reused by the next request.
func TestLocalOverrideDeclinedKeepsConnection(t *testing.T) {
	e, lp := overrideEnv(t, nil)
	for range 5 {
		if _, ec, _ := e.do(&http.Client{}, "GET", "/no", h("Baggage", "sm-routing-key=ov"), nil); ec.Name != "fork1" {
			t.Fatalf("backend %q", ec.Name)
		}
	}
	if lp.calls.Load() != 5 || lp.conns.Load() != 1 {
		t.Fatalf("laptop: %d requests on %d connections", lp.calls.Load(), lp.conns.Load())
	}
}
