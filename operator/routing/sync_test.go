package routing

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestServiceSyncCoalesces: callers that ask while a sync runs share the next
// run, and every caller returns only after a run that started after its ask
// (so the route set it waits for reflects what it wrote before asking).
func TestServiceSyncCoalesces(t *testing.T) {
	var (
		s       serviceSync
		written atomic.Int64 // what callers wrote before asking
		seen    atomic.Int64 // what the last run read at its start
		runs    atomic.Int64
	)
	f := func() error {
		runs.Add(1)
		seen.Store(written.Load())
		time.Sleep(20 * time.Millisecond)
		return nil
	}
	const callers = 64
	var ready, done sync.WaitGroup
	ready.Add(callers)
	gate := make(chan struct{})
	for range callers {
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-gate
			mine := written.Add(1)
			if err := s.do(f); err != nil {
				t.Error(err)
			}
			if got := seen.Load(); got < mine {
				t.Errorf("returned after a run that read %d, before this caller's write %d", got, mine)
			}
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
	if n := runs.Load(); n >= callers/2 {
		t.Errorf("%d runs for %d callers: syncs are not shared", n, callers)
	}
	t.Logf("%d callers, %d runs", callers, runs.Load())
}
