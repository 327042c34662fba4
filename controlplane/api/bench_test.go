package api_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

const benchClients = 50

// runConcurrent runs b.N calls of op from benchClients goroutines and reports
// throughput and latency percentiles.
func runConcurrent(b *testing.B, op func(ctx context.Context, worker, i int) error) {
	b.Helper()
	ctx := context.Background()
	lat := make([][]time.Duration, benchClients)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for w := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				t0 := time.Now()
				if err := op(ctx, w, i); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	if len(all) == 0 {
		return
	}
	slices.Sort(all)
	pct := func(p float64) float64 { return float64(all[int(float64(len(all)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkAPI measures sandbox apply/get/list over real HTTP with 50
// concurrent SDK clients, on SQLite and PostgreSQL.
func BenchmarkAPI(b *testing.B) {
	for _, d := range storetest.Drivers {
		b.Run(d, func(b *testing.B) {
			e := newBenchEnv(b, d)
			ctx := context.Background()
			for i := range 100 {
				if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox(fmt.Sprintf("sb-%d", i), map[string]string{"i": fmt.Sprint(i % 10)})); err != nil {
					b.Fatal(err)
				}
			}
			var seq atomic.Int64
			b.Run("apply", func(b *testing.B) {
				runConcurrent(b, func(ctx context.Context, w, i int) error {
					sb := sandbox(fmt.Sprintf("sb-%d", w), map[string]string{"i": fmt.Sprint(w % 10)})
					sb.Spec.Description = fmt.Sprint(seq.Add(1))
					_, err := e.acme.ApplySandbox(ctx, "acme", sb)
					return err
				})
			})
			b.Run("get", func(b *testing.B) {
				runConcurrent(b, func(ctx context.Context, w, i int) error {
					_, err := e.acme.GetSandbox(ctx, "acme", fmt.Sprintf("sb-%d", i%100))
					return err
				})
			})
			b.Run("list100", func(b *testing.B) {
				runConcurrent(b, func(ctx context.Context, w, i int) error {
					l, err := e.acme.ListSandboxes(ctx, "acme", nil)
					if err == nil && len(l) != 100 {
						err = fmt.Errorf("listed %d", len(l))
					}
					return err
				})
			})
		})
	}
}

// BenchmarkPreview compares a request through the preview proxy and the tunnel
// with the same request sent directly to the upstream server.
func BenchmarkPreview(b *testing.B) {
	e := newBenchEnv(b, "sqlite")
	rec := newRecorder(b)
	rec.keep = false
	ctx := context.Background()
	if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("feat", nil)); err != nil {
		b.Fatal(err)
	}
	connectAgent(b, e.env, rec, "frontend.shop.svc:8080")
	tr := &http.Transport{MaxIdleConnsPerHost: 100}
	hc := &http.Client{Transport: tr}
	get := func(url, host string) error {
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
			req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
		}
		return getOK(hc, req)
	}
	fwd := tcpForward(b, rec.srv.Listener.Addr().String())
	for _, mode := range []string{"direct", "preview", "tcp-forward"} {
		b.Run(mode, func(b *testing.B) {
			url, host := rec.srv.URL+"/x", ""
			switch mode {
			case "preview":
				url, host = e.http.URL+"/x", "web--feat.preview.localhost"
			case "tcp-forward":
				url = "http://" + fwd + "/x"
			}
			b.Run("sequential", func(b *testing.B) {
				for b.Loop() {
					if err := get(url, host); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("concurrent50", func(b *testing.B) {
				runConcurrent(b, func(ctx context.Context, w, i int) error { return get(url, host) })
			})
		})
	}
}

// tcpForward is the peer of the preview path: plain TCP forwarding to target, one upstream connection per
// client connection, as kubectl port-forward gives (without its API-server hop). It returns its address.
func tcpForward(b *testing.B, target string) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); _ = u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return ln.Addr().String()
}

type benchEnv struct {
	*env
}

func newBenchEnv(b *testing.B, driver string) benchEnv {
	b.Helper()
	return benchEnv{newEnvTB(b, driver)}
}

// BenchmarkPreviewReplicas compares a preview served by the replica holding
// the agent's tunnel with one arriving at another replica, which dials
// through the holder (one more WebSocket hop per upstream connection; the
// preview proxy pools those connections).
func BenchmarkPreviewReplicas(b *testing.B) {
	driver, dsn := storetest.DSN(b, "sqlite")
	a, other := startReplica(b, driver, dsn, withPreviewCache()), startReplica(b, driver, dsn, withPreviewCache())
	w := newReplicaWorld(b, a)
	w.rec.keep = false
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agentTunnel(ctx, b, a.http.URL, w.token, a.srv.Hub(), w.rec, "frontend.shop.svc:8080")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 100}}
	get := func(r *replica) error {
		req, _ := http.NewRequest("GET", r.http.URL+"/preview/acme/feat/web/x", nil)
		req.Header.Set(apitypes.HeaderAPIKey, w.admin)
		return getOK(hc, req)
	}
	for _, mode := range []struct {
		name string
		r    *replica
	}{{"holder", a}, {"via-other-replica", other}} {
		b.Run(mode.name, func(b *testing.B) {
			b.Run("sequential", func(b *testing.B) {
				for b.Loop() {
					if err := get(mode.r); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("concurrent50", func(b *testing.B) {
				runConcurrent(b, func(ctx context.Context, _, _ int) error { return get(mode.r) })
			})
		})
	}
}

// getOK sends req and reads the whole answer; anything but 200 is an error.
func getOK(hc *http.Client, req *http.Request) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
