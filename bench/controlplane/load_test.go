// Package controlplane is the control plane's load benchmark: it seeds one
// org with SANDBOXMESH_CP_SANDBOXES sandboxes (default 10,000) on SQLite and
// on PostgreSQL, then measures PUT, GET and a page of 100 with 50 concurrent
// clients over real loopback HTTP (closed loop: throughput), the same at a
// fixed rate (open loop: latency at SANDBOXMESH_CP_RATE requests/s, default
// 100), and the process RSS. run.sh runs it;
// RESULTS.md has the figures.
package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

const org = "bench"

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func spec(i, rev int) []byte {
	return fmt.Appendf(nil, `{"cluster":"c1","description":"load %d rev %d","labels":{"team":"t%d","app":"shop"},`+
		`"forks":[{"forkOf":{"kind":"Deployment","namespace":"shop","name":"cart"},"customizations":{"images":[{"image":"cart:v%d"}],"env":[{"name":"FEATURE","value":"on"}]}}],`+
		`"defaultRouteGroup":{"endpoints":[{"name":"web","target":"http://frontend.shop.svc:8080"}]}}`, i, rev, i%10, rev)
}

// rssKB returns VmRSS and VmHWM of this process in KiB.
func rssKB() (rss, hwm int) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	return
}

type result struct {
	op                 string
	n, errs            int
	p50, p90, p99, max time.Duration
	rps                float64
	rssMB              float64
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// load runs op from clients goroutines for dur and returns the latency percentiles.
func load(name string, clients int, dur time.Duration, op func(r *rand.Rand) error) result {
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	start := time.Now()
	deadline := start.Add(dur)
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var lat []time.Duration
			e := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				if err := op(r); err != nil {
					e++
					if e == 1 {
						fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
					}
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all, errs = append(all, lat...), errs+e
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(all)
	rss, _ := rssKB()
	return result{op: name, n: len(all), errs: errs, p50: pct(all, .5), p90: pct(all, .9), p99: pct(all, .99), max: pct(all, 1),
		rps: float64(len(all)) / el.Seconds(), rssMB: float64(rss) / 1024}
}

// loadRate runs op at rate requests per second for dur, open loop: request i is due at start + i/rate
// whether or not the earlier ones have answered (at most 512 in flight), and its latency counts from
// when it was due, so a server that falls behind shows it (no coordinated omission). This is latency at
// a given load; load's closed loop is throughput, where latency is clients ÷ throughput.
func loadRate(name string, rate float64, dur time.Duration, op func(r *rand.Rand) error) result {
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, 512)
	start := time.Now()
	n := int(rate * dur.Seconds())
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		time.Sleep(time.Until(due))
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := op(rand.New(rand.NewPCG(uint64(i), 7)))
			lat := time.Since(due)
			mu.Lock()
			defer mu.Unlock()
			all = append(all, lat)
			if err != nil {
				errs++
				if errs == 1 {
					fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(all)
	rss, _ := rssKB()
	return result{op: name, n: len(all), errs: errs, p50: pct(all, .5), p90: pct(all, .9), p99: pct(all, .99), max: pct(all, 1),
		rps: float64(len(all)) / el.Seconds(), rssMB: float64(rss) / 1024}
}

func TestLoad(t *testing.T) {
	if os.Getenv("SANDBOXMESH_CP_BENCH") == "" {
		t.Skip("load benchmark: run bench/controlplane/run.sh (sets SANDBOXMESH_CP_BENCH=1)")
	}
	n := envInt("SANDBOXMESH_CP_SANDBOXES", 10000)
	clients := envInt("SANDBOXMESH_CP_CLIENTS", 50)
	dur := time.Duration(envInt("SANDBOXMESH_CP_SECONDS", 10)) * time.Second
	rate := float64(envInt("SANDBOXMESH_CP_RATE", 100))
	var report strings.Builder
	for _, driver := range storetest.Drivers {
		t.Run(driver, func(t *testing.T) {
			runtime.GC()
			ctx := context.Background()
			st := storetest.Open(t, driver)
			srv, err := api.New(ctx, api.Config{Store: st})
			if err != nil {
				t.Fatal(err)
			}
			hs := httptest.NewServer(srv.Handler())
			defer hs.Close()
			key, _, err := api.Bootstrap(ctx, st, "", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateOrg(ctx, org, int64(n)+1000); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CreateCluster(ctx, org, "c1"); err != nil {
				t.Fatal(err)
			}
			seedStart := time.Now()
			var wg sync.WaitGroup
			jobs := make(chan int)
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range jobs {
						_, _, err := st.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: org, Name: fmt.Sprintf("sb-%05d", i), Cluster: "c1",
							Spec: spec(i, 0), Labels: map[string]string{"team": fmt.Sprintf("t%d", i%10), "app": "shop"},
							NewRoutingKey: func() (string, error) { return store.NewID(6), nil }})
						if err != nil {
							t.Error(err)
						}
					}
				}()
			}
			for i := range n {
				jobs <- i
			}
			close(jobs)
			wg.Wait()
			seeded := time.Since(seedStart)

			hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2}}
			do := func(method, path string, body []byte) (*http.Response, []byte, error) {
				req, _ := http.NewRequest(method, hs.URL+path, bytes.NewReader(body))
				if body == nil {
					req.Body = nil
				}
				req.Header.Set(apitypes.HeaderAPIKey, key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					return nil, nil, err
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err == nil && resp.StatusCode != 200 {
					err = fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
				}
				return resp, b, err
			}
			base := "/api/v2/orgs/" + org + "/sandboxes"
			// The continue tokens of every page of 100, to ask for pages all over the org.
			tokens := []string{""}
			for {
				resp, _, err := do(http.MethodGet, base+"?limit=100&continue="+tokens[len(tokens)-1], nil)
				if err != nil {
					t.Fatal(err)
				}
				tok := resp.Header.Get(apitypes.HeaderContinue)
				if tok == "" {
					break
				}
				tokens = append(tokens, tok)
			}
			type namedOp struct {
				name string
				fn   func(r *rand.Rand) error
			}
			ops := []namedOp{
				{"PUT (update)", func(r *rand.Rand) error {
					i := r.IntN(n)
					body := fmt.Appendf(nil, `{"name":"sb-%05d","spec":%s}`, i, spec(i, r.IntN(1<<30)+1))
					_, _, err := do(http.MethodPut, fmt.Sprintf("%s/sb-%05d", base, i), body)
					return err
				}},
				{"GET", func(r *rand.Rand) error {
					_, _, err := do(http.MethodGet, fmt.Sprintf("%s/sb-%05d", base, r.IntN(n)), nil)
					return err
				}},
				{"GET page of 100", func(r *rand.Rand) error {
					_, b, err := do(http.MethodGet, base+"?limit=100&continue="+tokens[r.IntN(len(tokens))], nil)
					if err == nil && (len(b) < 2 || b[0] != '[') {
						err = fmt.Errorf("page: %.100s", b)
					}
					return err
				}},
				{"GET page of 100, labelSelector", func(r *rand.Rand) error {
					_, _, err := do(http.MethodGet, fmt.Sprintf("%s?limit=100&labelSelector=team=t%d", base, r.IntN(10)), nil)
					return err
				}},
			}
			var results, rated []result
			for _, o := range ops {
				results = append(results, load(o.name, clients, dur, o.fn))
			}
			for _, o := range ops {
				rated = append(rated, loadRate(o.name, rate, dur, o.fn))
			}
			// The whole org in one streamed answer, a few clients at once.
			whole := load(fmt.Sprintf("GET whole list (%d)", n), 4, dur, func(*rand.Rand) error {
				_, b, err := do(http.MethodGet, base, nil)
				var arr []json.RawMessage
				if err == nil {
					if err = json.Unmarshal(b, &arr); err == nil && len(arr) != n {
						err = fmt.Errorf("whole list has %d items", len(arr))
					}
				}
				return err
			})
			results = append(results, whole)
			_, hwm := rssKB()
			fmt.Fprintf(&report, "\n### %s — %d sandboxes in one org (seeded in %s), %d clients, %s per operation\n\n", driver, n, seeded.Round(time.Second), clients, dur)
			fmt.Fprintf(&report, "| operation | requests | errors | req/s | p50 | p90 | p99 | max | RSS after (MB) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, r := range results {
				fmt.Fprintf(&report, "| %s | %d | %d | %.0f | %s | %s | %s | %s | %.0f |\n", r.op, r.n, r.errs, r.rps,
					r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.max.Round(100*time.Microsecond), r.rssMB)
				if r.errs > 0 {
					t.Errorf("%s: %d errors", r.op, r.errs)
				}
			}
			fmt.Fprintf(&report, "\nOpen loop at %.0f requests/s per operation (latency from when each request was due):\n\n", rate)
			fmt.Fprintf(&report, "| operation | requests | errors | req/s | p50 | p90 | p99 | max |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, r := range rated {
				fmt.Fprintf(&report, "| %s | %d | %d | %.0f | %s | %s | %s | %s |\n", r.op, r.n, r.errs, r.rps,
					r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond), r.max.Round(100*time.Microsecond))
				if r.errs > 0 {
					t.Errorf("%s at %.0f/s: %d errors", r.op, rate, r.errs)
				}
			}
			fmt.Fprintf(&report, "\nPeak RSS of the process so far (VmHWM; server and load generator together): %.0f MB\n", float64(hwm)/1024)
		})
	}
	load1, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("\n## Control plane load (%s, GOMAXPROCS %d, load average %s)\n%s", time.Now().UTC().Format(time.RFC3339), runtime.GOMAXPROCS(0), strings.TrimSpace(string(load1)), report.String())
}
