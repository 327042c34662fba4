package nats

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDeadlines(t *testing.T) {
	if d := newDeadlines(context.Background(), 0); d != nil || d.ctx() != nil {
		t.Fatal("no timeout: want no deadlines")
	}
	newDeadlines(context.Background(), -1).stop() // nil: no-op

	t.Run("shared within the slack", func(t *testing.T) {
		const timeout = 64 * time.Second
		d := newDeadlines(context.Background(), timeout)
		defer d.stop()
		start := time.Now()
		c1 := d.ctx()
		dl, ok := c1.Deadline()
		if !ok || dl.Before(start.Add(timeout-timeout/deadlineSlack)) || dl.After(time.Now().Add(timeout)) {
			t.Fatalf("deadline %v after the start, want within [%v, %v]", dl.Sub(start), timeout-timeout/deadlineSlack, timeout)
		}
		if c2 := d.ctx(); c2 != c1 {
			t.Fatal("a call starting right after shares the deadline: want the same context")
		}
		d.stop()
		<-c1.Done()
		if !errors.Is(c1.Err(), context.Canceled) {
			t.Fatalf("after stop: err %v, want canceled", c1.Err())
		}
	})
	t.Run("done at the deadline", func(t *testing.T) {
		d := newDeadlines(context.Background(), 50*time.Millisecond)
		defer d.stop()
		c := d.ctx()
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("not done 10s after a 50ms deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("err %v, want deadline exceeded", c.Err())
		}
		if c2 := d.ctx(); c2 == c || c2.Err() != nil {
			t.Fatal("a call after the deadline: want a new, live context")
		}
	})
	t.Run("done with the run", func(t *testing.T) {
		parent, cancel := context.WithCancel(context.Background())
		d := newDeadlines(parent, time.Hour)
		defer d.stop()
		c := d.ctx()
		cancel()
		select {
		case <-c.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("not done after Run's context")
		}
	})
	t.Run("cancel functions bounded", func(t *testing.T) {
		d := newDeadlines(context.Background(), 64*time.Microsecond) // a new shared context every µs
		defer d.stop()
		for range 10 * deadlineSlack {
			_ = d.ctx()
			time.Sleep(2 * time.Microsecond)
		}
		d.mu.Lock()
		n := len(d.cancels)
		d.mu.Unlock()
		if n > 2*deadlineSlack+1 {
			t.Fatalf("%d cancel functions kept, want at most %d", n, 2*deadlineSlack+1)
		}
	})
}
