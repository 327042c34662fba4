package routingkey

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

func TestContext(t *testing.T) {
	ctx := context.Background()
	if _, ok := FromContext(ctx); ok {
		t.Fatal("empty context has a key")
	}
	if _, ok := FromContext(WithKey(ctx, "Bad Key")); ok {
		t.Fatal("WithKey stored an invalid key")
	}
	if k, ok := FromContext(WithKey(ctx, "abc")); k != "abc" || !ok {
		t.Fatalf("FromContext = %q %v", k, ok)
	}
	e := mustExtractor(t, Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}})
	m, _ := baggage.NewMemberRaw("sd-routing-key", "fromotel")
	bad, _ := baggage.NewMemberRaw("sm-routing-key", "NOT valid")
	bag, _ := baggage.New(bad, m)
	octx := baggage.ContextWithBaggage(ctx, bag)
	if k, ok := e.KeyFromContext(octx); k != "fromotel" || !ok {
		t.Fatalf("KeyFromContext(otel baggage) = %q %v", k, ok)
	}
	if k, _ := e.KeyFromContext(WithKey(octx, "ours")); k != "ours" {
		t.Fatalf("WithKey must win over OTel baggage, got %q", k)
	}
	if _, ok := e.KeyFromContext(ctx); ok {
		t.Fatal("KeyFromContext of empty context")
	}
}

// TestHTTPRoundTrip runs a real server on loopback: an incoming request with
// the key in Jaeger form reaches a handler (Middleware) that calls a second
// server through Transport, which must receive the key in every form.
func TestHTTPRoundTrip(t *testing.T) {
	e := mustExtractor(t, Config{CustomHeaders: []string{"X-Route"}})
	got := make(chan http.Header, 1)
	downstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
	}))
	defer downstream.Close()
	client := &http.Client{Transport: e.Transport(nil)}
	upstream := httptest.NewServer(e.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if k, _ := FromContext(r.Context()); k != "abc" {
			t.Errorf("handler context key = %q", k)
		}
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, downstream.URL, nil)
		req.Header.Set("Baggage", "userId=alice")
		before := req.Header.Clone()
		resp, err := client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		resp.Body.Close()
		if len(req.Header) != len(before) {
			t.Errorf("Transport modified the caller's request: %v", req.Header)
		}
	})))
	defer upstream.Close()

	req, _ := http.NewRequest(http.MethodGet, upstream.URL, nil)
	req.Header.Set("Uberctx-Sm-Routing-Key", "abc")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	h := <-got
	for name, want := range map[string]string{
		"X-Route": "abc", "Baggage": "sm-routing-key=abc,userId=alice", "Tracestate": "sm-routing-key=abc",
		"Ot-Baggage-Sm-Routing-Key": "abc", "Uberctx-Sm-Routing-Key": "abc", "Baggage-Sm-Routing-Key": "abc",
	} {
		if g := h.Get(name); g != want {
			t.Errorf("downstream %s = %q, want %q", name, g, want)
		}
	}

	// Without a key the Transport passes the request through untouched.
	resp, err = client.Get(downstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := <-got; h.Get("Baggage") != "" || h.Get("X-Route") != "" {
		t.Errorf("keyless request got routing headers: %v", h)
	}
}

func TestPropagator(t *testing.T) {
	e := Default
	p := e.Propagator()
	if f := p.Fields(); len(f) != 5 || f[0] != "baggage" {
		t.Fatalf("Fields = %q", f)
	}
	t.Run("extract sets key and OTel baggage", func(t *testing.T) {
		h := http.Header{}
		h.Set("Tracestate", "sm-routing-key=abc")
		h.Add("Baggage", "a=1")
		h.Add("Baggage", "b=2")
		ctx := p.Extract(context.Background(), propagation.HeaderCarrier(h))
		if k, _ := FromContext(ctx); k != "abc" {
			t.Fatalf("FromContext = %q", k)
		}
		if v := baggage.FromContext(ctx).Member(DefaultKeyName).Value(); v != "abc" {
			t.Fatalf("OTel baggage member = %q", v)
		}
	})
	t.Run("composite round trip keeps other baggage", func(t *testing.T) {
		comp := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}, p)
		in := propagation.MapCarrier{"baggage": "userId=alice,sm-routing-key=abc", "uberctx-sm-routing-key": "zzz"}
		ctx := comp.Extract(context.Background(), in)
		if k, _ := FromContext(ctx); k != "abc" {
			t.Fatalf("FromContext = %q", k)
		}
		out := propagation.MapCarrier{}
		comp.Inject(ctx, out)
		if k, ok := e.ExtractMetadata(map[string][]string{"baggage": {out["baggage"]}}); k != "abc" || !ok {
			t.Fatalf("baggage out = %q", out["baggage"])
		}
		bag, err := baggage.Parse(out["baggage"])
		if err != nil || bag.Member("userId").Value() != "alice" {
			t.Fatalf("baggage out = %q (%v)", out["baggage"], err)
		}
		if out["uberctx-sm-routing-key"] != "abc" || out["tracestate"] != "sm-routing-key=abc" {
			t.Fatalf("carrier = %v", out)
		}
	})
	t.Run("inject from OTel baggage only", func(t *testing.T) {
		m, _ := baggage.NewMemberRaw(DefaultKeyName, "fromotel")
		bag, _ := baggage.New(m)
		out := propagation.MapCarrier{"tracestate": "rojo=1"}
		p.Inject(baggage.ContextWithBaggage(context.Background(), bag), out)
		if out["tracestate"] != "sm-routing-key=fromotel,rojo=1" {
			t.Fatalf("carrier = %v", out)
		}
	})
	t.Run("no key no change", func(t *testing.T) {
		out := propagation.MapCarrier{}
		p.Inject(context.Background(), out)
		ctx := p.Extract(context.Background(), propagation.MapCarrier{"baggage": "sm-routing-key=NO"})
		if len(out) != 0 || ctx != context.Background() {
			t.Fatalf("carrier = %v", out)
		}
	})
}

// TestGRPC runs a real gRPC server on loopback with the server interceptors
// and a client with the client interceptors (unary and streaming).
func TestGRPC(t *testing.T) {
	e := Default
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan string, 4)
	record := func(ctx context.Context) {
		k, _ := FromContext(ctx)
		seen <- k
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(e.UnaryServerInterceptor(), func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			record(ctx)
			if md, _ := metadata.FromIncomingContext(ctx); len(md.Get("x-other")) != 1 {
				t.Errorf("other metadata lost: %v", md)
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(e.StreamServerInterceptor(), func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			record(ss.Context())
			return nil // end the Watch stream at once
		}),
	)
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(e.UnaryClientInterceptor()), grpc.WithChainStreamInterceptor(e.StreamClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := healthpb.NewHealthClient(conn)
	ctx := metadata.AppendToOutgoingContext(WithKey(context.Background(), "abc"), "x-other", "1", "baggage", "sm-routing-key=old")
	if _, err := c.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if k := <-seen; k != "abc" {
		t.Fatalf("unary server saw %q", k)
	}
	st, err := c.Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	st.Recv()
	if k := <-seen; k != "abc" {
		t.Fatalf("stream server saw %q", k)
	}
	// No key: nothing injected, nothing extracted.
	if _, err := c.Check(metadata.AppendToOutgoingContext(context.Background(), "x-other", "1"), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if k := <-seen; k != "" {
		t.Fatalf("keyless call saw %q", k)
	}
}
