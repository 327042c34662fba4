package localtunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// LocalRoute names one mapping of a sandbox's local workload: which machine
// serves it and the address the machine dials.
type LocalRoute struct {
	MachineID string
	Sandbox   string
	Local     string
	ToLocal   string
}

// Forwarder is the in-cluster TCP entry of one local-workload mapping: the
// routing engine points a sandbox's keyed traffic at its listener, and it
// carries each connection to the machine through the Gateway. While the
// machine is not connected it dials Fallback (the baseline) instead, so keyed
// requests never meet an error page while routes catch up.
type Forwarder struct {
	Gateway *Gateway
	// Route returns the current route; false means none (use Fallback).
	Route func() (LocalRoute, bool)
	// Fallback is host:port dialled when the route is absent or its machine
	// is not connected; empty closes such connections.
	Fallback string
	// Dial dials Fallback; nil uses a net.Dialer.
	Dial tunnelproto.DialFunc
	// Log receives fallbacks and failures (nil: discarded).
	Log *slog.Logger

	mu     sync.Mutex
	ls     map[net.Listener]struct{}
	closed bool
}

// Serve accepts connections on l until l fails or the forwarder closes.
func (f *Forwarder) Serve(l net.Listener) error {
	if f.Gateway == nil || f.Route == nil {
		return errors.New("local workload forwarder: Gateway and Route are required")
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return net.ErrClosed
	}
	if f.ls == nil {
		f.ls = map[net.Listener]struct{}{}
	}
	f.ls[l] = struct{}{}
	f.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			f.mu.Lock()
			closed := f.closed
			delete(f.ls, l)
			f.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("local workload forwarder: accept: %w", err)
		}
		go f.forward(c)
	}
}

// Close stops the listeners; connections in flight end on their own.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	for l := range f.ls {
		l.Close()
	}
	f.mu.Unlock()
	return nil
}

func (f *Forwarder) log() *slog.Logger {
	if f.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return f.Log
}

// Open returns a connection to the current route's local workload, or to
// Fallback when there is no route or its machine is not connected.
func (f *Forwarder) Open(ctx context.Context) (net.Conn, error) {
	r, ok := f.Route()
	var err error
	if ok {
		var c net.Conn
		c, err = f.Gateway.DialLocal(ctx, r.MachineID, r.Sandbox, r.Local, r.ToLocal)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, ErrNotConnected) {
			return nil, err
		}
	} else {
		err = errors.New("no local route")
	}
	if f.Fallback == "" {
		return nil, err
	}
	f.log().Debug("local workload unavailable; using the fallback", "fallback", f.Fallback, "reason", err)
	dial := f.Dial
	if dial == nil {
		d := &net.Dialer{}
		dial = d.DialContext
	}
	c, ferr := dial(ctx, "tcp", f.Fallback)
	if ferr != nil {
		return nil, fmt.Errorf("%w; fallback %s: %w", err, f.Fallback, ferr)
	}
	return c, nil
}

func (f *Forwarder) forward(c net.Conn) {
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), tunnelproto.DefaultTimeout)
	up, err := f.Open(ctx)
	cancel()
	if err != nil {
		f.log().Warn("local workload connection failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	defer up.Close()
	_ = c.SetDeadline(time.Time{})
	tunnelproto.Pipe(c, up)
}
