package proxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
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

func benchProxy(b *testing.B, base, fork string, netHTTP bool) *Proxy {
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
	p, err := New(Config{Workload: wl, Ports: []PortMapping{{Listen: 0, App: portOf(b, base)}}, ListenHost: "127.0.0.1", DisableFastPath: netHTTP},
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
