package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// BenchmarkHTTP1 proxies keep-alive HTTP/1.1 requests (half of them carrying a routing key in a
// realistic baggage header, routed to a fork) through the fast path and through net/http's server and
// transport (DisableFastPath), side by side in one run; "direct" is the same load without a proxy.
// Compare ns/op and allocs/op between the sub-benchmarks, not across machines.
func BenchmarkHTTP1(b *testing.B) {
	base, fork := rawBackend(b), rawBackend(b)
	for _, mode := range []string{"direct", "fast", "nethttp"} {
		b.Run(mode, func(b *testing.B) {
			addr, keyed := base, base
			if mode != "direct" {
				p := benchProxy(b, base, fork, mode == "nethttp")
				addr = "http://" + p.Addr(portOf(b, base))
				keyed = addr
			}
			b.ReportAllocs()
			b.SetParallelism(4)
			b.RunParallel(func(pb *testing.PB) {
				plain, err := newRawClient(addr, "GET /api/items?id=42 HTTP/1.1\r\nHost: cart.shop.svc:8080\r\nUser-Agent: bench\r\nAccept: */*\r\nBaggage: userId=bob, isProduction=false, tenant=acme\r\n\r\n")
				if err != nil {
					b.Error(err)
					return
				}
				defer plain.c.Close()
				withKey, err := newRawClient(keyed, "GET /api/items?id=42 HTTP/1.1\r\nHost: cart.shop.svc:8080\r\nUser-Agent: bench\r\nAccept: */*\r\nBaggage: userId=alice, sm-routing-key=benchkey;ttl=60, isProduction=false, tenant=acme\r\n\r\n")
				if err != nil {
					b.Error(err)
					return
				}
				defer withKey.c.Close()
				i := 0
				for pb.Next() {
					c := plain
					if i++; i%2 == 0 {
						c = withKey
					}
					if err := c.roundTrip(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// rawBackend is a minimal keep-alive HTTP/1.1 app answering every request with a fixed response, so
// that the benchmark measures the proxy, not net/http's server on the app side.
func rawBackend(b testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world\n")
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				var buf []byte
				for {
					buf, err = readHeaderBlock(br, buf[:0], 1<<20)
					if err != nil {
						return
					}
					if _, err := c.Write(resp); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}

// BenchmarkCapture measures capture points side by side in one run, on the fast path and on net/http
// (the request of BenchmarkHTTP1 without a routing key): "off" is capture off (Config.CaptureSink nil),
// "on-no-id" capture on and requests without a capture id (the cost every request pays once capture is
// on: one switch arm per header name and a bytes.Contains over baggage values), "on-id" every request
// carrying a capture id (recorded and handed to a sink that counts them; on the fast path such a
// connection is handed to net/http). Compare ns/op and allocs/op between the sub-benchmarks.
func BenchmarkCapture(b *testing.B) {
	base, fork := rawBackend(b), rawBackend(b)
	plain := "GET /api/items?id=42 HTTP/1.1\r\nHost: cart.shop.svc:8080\r\nUser-Agent: bench\r\nAccept: */*\r\nBaggage: userId=bob, isProduction=false, tenant=acme\r\n\r\n"
	withID := "GET /api/items?id=42 HTTP/1.1\r\nHost: cart.shop.svc:8080\r\nUser-Agent: bench\r\nAccept: */*\r\nBaggage: userId=bob, isProduction=false, tenant=acme, sm-capture=ex.target.0\r\n\r\n"
	for _, path := range []string{"fast", "nethttp"} {
		for _, mode := range []string{"off", "on-no-id", "on-id"} {
			b.Run(path+"/"+mode, func(b *testing.B) {
				var sink *countSink
				if mode != "off" {
					sink = &countSink{}
				}
				p := benchProxyCapture(b, base, fork, path == "nethttp", sink)
				addr := "http://" + p.Addr(portOf(b, base))
				req := plain
				if mode == "on-id" {
					req = withID
				}
				b.ReportAllocs()
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					c, err := newRawClient(addr, req)
					if err != nil {
						b.Error(err)
						return
					}
					defer c.c.Close()
					for pb.Next() {
						if err := c.roundTrip(); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				if mode == "on-id" && sink.n.Load() == 0 {
					b.Fatal("nothing captured")
				}
			})
		}
	}
}

// countSink counts captures (the benchmark measures the capture point, not shipping).
type countSink struct{ n atomic.Int64 }

func (s *countSink) Add(diff.Capture) { s.n.Add(1) }

func benchProxy(b *testing.B, base, fork string, netHTTP bool) *Proxy {
	return benchProxyCapture(b, base, fork, netHTTP, nil)
}

func benchProxyCapture(b *testing.B, base, fork string, netHTTP bool, sink *countSink) *Proxy {
	keys, err := routingkey.NewExtractor(routingkey.Config{})
	if err != nil {
		b.Fatal(err)
	}
	wl := testWorkload
	routes := []routeapi.Route{{Workload: wl, RoutingKey: "benchkey", Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "sandboxes", Name: "sb"}, Kind: routeapi.DestinationFork, Host: "127.0.0.1",
		Ports: []routeapi.PortMapping{{Port: portOf(b, base), DestinationPort: portOf(b, fork)}},
	}}}
	table, err := routeapi.NewTable(1, routes)
	if err != nil {
		b.Fatal(err)
	}
	cfg := Config{Workload: wl, Ports: []PortMapping{{Listen: 0, App: portOf(b, base)}}, ListenHost: "127.0.0.1", DisableFastPath: netHTTP}
	if sink != nil {
		cfg.CaptureSink = sink
	}
	p, err := New(cfg,
		StaticRoutes{T: table}, keys, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	return p
}

// rawClient sends one fixed request and reads a Content-Length response on a keep-alive connection.
type rawClient struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
	hdr []byte
}

func newRawClient(url, req string) (*rawClient, error) {
	c, err := net.Dial("tcp", url[len("http://"):])
	if err != nil {
		return nil, err
	}
	return &rawClient{c: c, br: bufio.NewReader(c), req: []byte(req)}, nil
}

func (r *rawClient) roundTrip() error {
	if _, err := r.c.Write(r.req); err != nil {
		return err
	}
	var err error
	r.hdr, err = readHeaderBlock(r.br, r.hdr[:0], 1<<20)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(r.hdr, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("response %q", r.hdr)
	}
	i := bytes.Index(bytes.ToLower(r.hdr), []byte("content-length: "))
	if i < 0 {
		return fmt.Errorf("no content-length in %q", r.hdr)
	}
	j := bytes.IndexByte(r.hdr[i:], '\r')
	n, _ := strconv.Atoi(string(r.hdr[i+16 : i+j]))
	_, err = r.br.Discard(n)
	return err
}

// BenchmarkParseRequestCapture parses the head BenchmarkHTTP1 sends (with a routing key in baggage) with
// capture off and on (no capture id), side by side: the fast path's whole per-request cost of capture.
func BenchmarkParseRequestCapture(b *testing.B) {
	head := []byte("GET /api/items?id=42 HTTP/1.1\r\nHost: cart.shop.svc:8080\r\nUser-Agent: bench\r\nAccept: */*\r\nX-Request-Id: 0af7651916cd43dd\r\nTraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nBaggage: userId=alice, sm-routing-key=benchkey;ttl=60, isProduction=false, tenant=acme\r\n\r\n")
	keyIdx := func(name []byte) int {
		if eqFold(name, "baggage") {
			return 0
		}
		return -1
	}
	for _, on := range []bool{false, true} {
		name := "capture-off"
		if on {
			name = "capture-on-no-id"
		}
		b.Run(name, func(b *testing.B) {
			var r fastReq
			r.captureOn = on
			b.ReportAllocs()
			for b.Loop() {
				r.reset()
				if !parseRequest(head, &r, keyIdx) {
					b.Fatal("not parsed")
				}
			}
		})
	}
}
