package api_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

func reportPercentiles(b *testing.B, lat []time.Duration, unit string) {
	b.Helper()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.5), "p50-"+unit)
	b.ReportMetric(pct(0.99), "p99-"+unit)
}

// BenchmarkJobs measures, side by side on one server (SQLite): the time from
// sending a job's submit to a waiting runner's claim answer
// ("submit-to-claim", with its peer "get-job", one plain API round trip), and the lag from a
// runner's events request to the log stream's message ("log-lag") with the
// stream's throughput for 64 KiB chunks ("log-throughput").
func BenchmarkJobs(b *testing.B) {
	e := newJobsEnv(b, store.DriverSQLite)
	ctx := context.Background()
	e.applyGroup(b, "rg", "1h")
	rc := e.runner(b, "rg", e.runnerToken(b, "rg"), "p1")

	b.Run("submit-to-claim", func(b *testing.B) {
		claimed := make(chan time.Time, 1)
		names := make(chan string, 1)
		cctx, stop := context.WithCancel(ctx)
		exited := make(chan struct{})
		go func() {
			defer close(exited)
			for {
				j, err := rc.Claim(cctx, 10*time.Second)
				if cctx.Err() != nil {
					return
				}
				if err != nil {
					b.Error(err)
					return
				}
				if j == nil {
					continue
				}
				claimed <- time.Now()
				names <- j.Name
				if _, err := rc.Finish(ctx, j.Name, j.Attempt, apitypes.RunnerFinish{}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			time.Sleep(5 * time.Millisecond) // the claim is waiting again
			submitted := time.Now()
			j, err := e.acme.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "rg", Command: []string{"true"}})
			if err != nil {
				b.Fatal(err)
			}
			at := <-claimed
			if n := <-names; n != j.Name {
				b.Fatalf("claimed %s, submitted %s", n, j.Name)
			}
			lat = append(lat, at.Sub(submitted))
		}
		b.StopTimer()
		stop()
		<-exited
		reportPercentiles(b, lat, "ms")
	})

	b.Run("get-job", func(b *testing.B) {
		j, err := e.acme.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "rg", Command: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for range b.N {
			t0 := time.Now()
			if _, err := e.acme.GetJob(ctx, "acme", j.Name); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		reportPercentiles(b, lat, "ms")
		_, _ = e.acme.CancelJob(ctx, "acme", j.Name)
	})

	// a running job with a live stream
	start := func(b *testing.B) (string, chan client.JobLogMessage, context.CancelFunc) {
		b.Helper()
		j, err := e.acme.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "rg", Command: []string{"true"}})
		if err != nil {
			b.Fatal(err)
		}
		if rj, err := rc.Claim(ctx, 5*time.Second); err != nil || rj == nil || rj.Name != j.Name {
			b.Fatalf("claim: %+v %v", rj, err)
		}
		msgs := make(chan client.JobLogMessage, 1024)
		sctx, cancel := context.WithCancel(ctx)
		go func() {
			_ = e.acme.StreamJobLogs(sctx, "acme", j.Name, client.LogStreamOptions{}, func(m client.JobLogMessage) error { msgs <- m; return nil })
		}()
		return j.Name, msgs, func() {
			cancel()
			_, _ = rc.Finish(ctx, j.Name, 0, apitypes.RunnerFinish{})
		}
	}

	b.Run("log-lag", func(b *testing.B) {
		name, msgs, done := start(b)
		defer done()
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			t0 := time.Now()
			line := strconv.Itoa(i) + "\n"
			if _, err := rc.Events(ctx, name, 0, []apitypes.LogChunk{{Stream: "stdout", Data: []byte(line)}}); err != nil {
				b.Fatal(err)
			}
			if m := <-msgs; m.Message != line {
				b.Fatalf("got %q, want %q", m.Message, line)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		reportPercentiles(b, lat, "ms")
	})

	b.Run("log-throughput", func(b *testing.B) {
		name, msgs, done := start(b)
		defer done()
		chunk := []byte(strings.Repeat("x", 64<<10-1) + "\n")
		b.SetBytes(int64(len(chunk)))
		got := make(chan int, 1)
		go func() {
			n := 0
			for range b.N {
				n += len((<-msgs).Message)
			}
			got <- n
		}()
		b.ResetTimer()
		for range b.N {
			if _, err := rc.Events(ctx, name, 0, []apitypes.LogChunk{{Stream: "stdout", Data: chunk}}); err != nil {
				b.Fatal(err)
			}
		}
		if n := <-got; n != b.N*len(chunk) {
			b.Fatal(fmt.Sprintf("streamed %d bytes, sent %d", n, b.N*len(chunk)))
		}
	})
}
