package nats

import (
	"fmt"
	"sync"

	"github.com/sandboxmesh/sandboxmesh/mq"
)

// lifecycle is the Run/Close state both consumers share: Run once, never after Close; Close once.
type lifecycle struct {
	mu      sync.Mutex
	running bool
	done    chan struct{} // closed when Run returns
	closed  bool
}

// startRun marks Run as started and returns the channel to close when it returns.
func (l *lifecycle) startRun(id mq.Identity) (chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if l.running {
		return nil, fmt.Errorf("nats: consumer %s: Run called twice", id)
	}
	l.running, l.done = true, make(chan struct{})
	return l.done, nil
}

// startClose marks the consumer closed; first is false when Close was called before. running and done say
// whether Run is (or was) running and when it returns.
func (l *lifecycle) startClose() (first, running bool, done chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, false, nil
	}
	l.closed = true
	return true, l.running, l.done
}
