// Package localtunnel benchmarks the local-workload tunnel: HTTP requests to
// a server on the "laptop" through Gateway.DialLocal (gateway and machine
// client over loopback TCP, one yamux session) side by side with the same
// requests to the same server dialled directly, in one run. RESULTS.md has
// the figures.
package localtunnel

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// setup starts an HTTP server, a gateway and a connected machine client that
// serves the server as sandbox "sb"'s local workload "route".
func setup(b *testing.B) (gw *localtunnel.Gateway, machine, target string) {
	b.Helper()
	body := []byte(`{"driver":"T7","eta":120}`)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	b.Cleanup(srv.Close)
	gw, err := localtunnel.NewGateway(localtunnel.GatewayConfig{Policy: localtunnel.ClusterPolicy{CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go gw.Serve(l)
	b.Cleanup(func() { gw.Close() })
	id, err := localtunnel.GenerateIdentity()
	if err != nil {
		b.Fatal(err)
	}
	cl, err := localtunnel.NewClient(localtunnel.ClientConfig{Identity: id, Dial: localtunnel.TCPDialer(l.Addr().String())})
	if err != nil {
		b.Fatal(err)
	}
	target = srv.Listener.Addr().String()
	cl.Allow("sb", []localtunnel.LocalTarget{{Local: "route", ToLocal: target}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = cl.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if err := cl.WaitConnected(wctx); err != nil {
		b.Fatal(err)
	}
	return gw, id.MachineID(), target
}

// run sends b.N GETs with c and reports req/s and latency percentiles.
func run(b *testing.B, c *http.Client) {
	b.Helper()
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		t0 := time.Now()
		resp, err := c.Get("http://route.hotrod:8083/route")
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(t0))
	}
	el := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(len(lat))/el.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkHTTP compares HTTP through DialLocal with direct HTTP, with
// keep-alive (a routing proxy reuses connections) and with a new connection
// per request (a new tunnel stream each time).
func BenchmarkHTTP(b *testing.B) {
	gw, machine, target := setup(b)
	dialLocal := func(ctx context.Context, _, _ string) (net.Conn, error) {
		return gw.DialLocal(ctx, machine, "sb", "route", target)
	}
	dialDirect := func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target)
	}
	for _, keepAlive := range []bool{true, false} {
		for _, via := range []struct {
			name string
			dial func(context.Context, string, string) (net.Conn, error)
		}{{"direct", dialDirect}, {"DialLocal", dialLocal}} {
			b.Run(fmt.Sprintf("keepalive=%v/%s", keepAlive, via.name), func(b *testing.B) {
				tr := &http.Transport{DialContext: via.dial, DisableKeepAlives: !keepAlive, MaxIdleConnsPerHost: 4}
				defer tr.CloseIdleConnections()
				run(b, &http.Client{Transport: tr, Timeout: 10 * time.Second})
			})
		}
	}
}
