package script_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// twentyRequests is a smart test of 20 captured requests, each checked.
const twentyRequests = `
for i in range(20):
    res = http.get("http://frontend/dispatch", params={"customer": str(i)}, capture=True, name="d%d" % i)
    ride = res.json()
    smart_test.check("dispatch", res.status_code == 200 and ride["eta"] > 0, "bad ride")
`

// BenchmarkTwentyRequests compares a script making 20 requests with the same 20 requests made by Go code
// against the same server (the peer), so the difference is the runtime's cost.
func BenchmarkTwentyRequests(b *testing.B) {
	_, doer := newServer(b)
	b.Run("script", func(b *testing.B) {
		for b.Loop() {
			res, err := script.Run(context.Background(), script.Config{Source: twentyRequests, HTTP: doer, Timeout: time.Minute})
			if err != nil || !res.Passed() || len(res.Captures) != 20 {
				b.Fatalf("err %v, passed %v", err, res.Passed())
			}
		}
	})
	b.Run("go-peer", func(b *testing.B) {
		for b.Loop() {
			for i := range 20 {
				req, _ := http.NewRequest(http.MethodGet, "http://frontend/dispatch?customer="+string(rune('a'+i)), nil)
				resp, err := doer.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != 200 || !strings.Contains(string(body), "eta") {
					b.Fatal(resp.Status)
				}
			}
		}
	})
}

// TestConcurrentRuns runs scripts in parallel (run with -race): runs share no state.
func TestConcurrentRuns(t *testing.T) {
	_, doer := newServer(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			res, err := script.Run(context.Background(), script.Config{Source: twentyRequests, HTTP: doer, Timeout: time.Minute})
			if err == nil && (!res.Passed() || len(res.Captures) != 20) {
				err = context.DeadlineExceeded
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
