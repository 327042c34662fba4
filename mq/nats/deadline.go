package nats

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// deadlineSlack is the fraction of the handler timeout within which handler calls share a deadline.
const deadlineSlack = 64

// deadlines gives the handler calls of one Run their HandlerTimeout. The calls that start within
// timeout/deadlineSlack of each other share one context with a deadline (one timer, instead of a context,
// a timer and a cancel function per message): each call's deadline is at most timeout after its start and
// at least timeout - timeout/deadlineSlack after it, less the lateness of the runtime timer that ends the
// sharing (normally well under a millisecond). A call reads no clock: a timer marks the shared context
// stale when its slack is used up. The shared context is done at its deadline or when the Run's context
// is, not when one call returns. Safe for concurrent use.
type deadlines struct {
	parent  context.Context
	timeout time.Duration
	cur     atomic.Pointer[sharedDeadline]
	mu      sync.Mutex
	cancels []context.CancelFunc // of the shared contexts whose deadline may not have passed yet
}

type sharedDeadline struct {
	ctx   context.Context
	stale atomic.Bool // calls starting now would get less than timeout - timeout/deadlineSlack
	timer *time.Timer // sets stale
}

// newDeadlines returns the deadlines of the calls of a Run whose context is parent; nil when timeout is
// not positive (no bound).
func newDeadlines(parent context.Context, timeout time.Duration) *deadlines {
	if timeout <= 0 {
		return nil
	}
	return &deadlines{parent: parent, timeout: timeout}
}

// ctx returns the context of a call starting now: the Run's context when d is nil.
func (d *deadlines) ctx() context.Context {
	if d == nil {
		return nil
	}
	if s := d.cur.Load(); s.usable() {
		return s.ctx
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if s := d.cur.Load(); s.usable() {
		return s.ctx
	}
	ctx, cancel := context.WithDeadline(d.parent, time.Now().Add(d.timeout))
	if len(d.cancels) > 2*deadlineSlack {
		// the older ones are past their deadline (their timers canceled them): keep the last slack+1
		d.cancels = append(d.cancels[:0], d.cancels[len(d.cancels)-deadlineSlack-1:]...)
	}
	d.cancels = append(d.cancels, cancel)
	s := &sharedDeadline{ctx: ctx}
	s.timer = time.AfterFunc(d.timeout/deadlineSlack, func() { s.stale.Store(true) })
	d.cur.Store(s)
	return ctx
}

// usable reports whether a call starting now can share s: its slack is not used up and it is not done.
func (s *sharedDeadline) usable() bool {
	return s != nil && !s.stale.Load() && s.ctx.Err() == nil
}

// stop cancels the shared contexts (Run returns: no call runs under them any more).
func (d *deadlines) stop() {
	if d == nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.cancels {
		c()
	}
	d.cancels = nil
	if s := d.cur.Load(); s != nil {
		s.timer.Stop()
	}
}
