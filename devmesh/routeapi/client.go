package routeapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// Target is the route server's gRPC address (host:port or any grpc target).
	Target string
	// Workloads limits the subscription; empty subscribes to every route.
	Workloads []WorkloadRef
	// Name identifies this client in the server's logs.
	Name string
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// DialOptions are added to the defaults (insecure transport credentials).
	DialOptions []grpc.DialOption
	// MinBackoff and MaxBackoff bound the reconnect delay (defaults 100ms and 10s), with jitter.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout reconnects when nothing (not even a heartbeat) arrived for this long (default 35s).
	IdleTimeout time.Duration
	// OnUpdate, if set, is called after each new table is installed (on the client's goroutine).
	OnUpdate func(*Table)
	// ReleaseMemoryAfter returns memory to the OS (debug.FreeOSMemory) after installing a snapshot of at
	// least this many routes, so that a sidecar's RSS does not keep the decoding garbage; 0 disables.
	ReleaseMemoryAfter int
}

// Status is a point-in-time view of a Client.
type Status struct {
	// Connected is true while a watch stream is open and has delivered its first message.
	Connected bool `json:"connected"`
	// Version of the current table (0 when none was ever received).
	Version uint64 `json:"version"`
	// Epoch of the server the table came from.
	Epoch string `json:"epoch,omitempty"`
	// Routes is the number of routes in the current table.
	Routes int `json:"routes"`
	// LastUpdate is when the table last changed (zero when never).
	LastUpdate time.Time `json:"lastUpdate"`
	// LastContact is when the last message arrived from the server (zero when never).
	LastContact time.Time `json:"lastContact"`
	// LastError is the last stream error, if any.
	LastError string `json:"lastError,omitempty"`
}

// Client subscribes to a route server and keeps the current table. It keeps the last table when the
// server goes away (fail static) and resyncs on reconnect. Table is safe to call on any goroutine.
type Client struct {
	cfg   ClientConfig
	log   *slog.Logger
	table atomic.Pointer[Table]
	epoch atomic.Pointer[string]

	connected   atomic.Bool
	lastUpdate  atomic.Int64
	lastContact atomic.Int64
	lastErr     atomic.Pointer[string]
}

// NewClient validates cfg and returns a client with an empty table; call Run to connect.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Target == "" {
		return nil, fmt.Errorf("route client: target: required")
	}
	for i, w := range cfg.Workloads {
		if w.Namespace == "" || w.Name == "" {
			return nil, fmt.Errorf("route client: workloads[%d] %s: namespace and name required", i, w)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 35 * time.Second
	}
	c := &Client{cfg: cfg, log: cfg.Logger}
	c.table.Store(&Table{})
	empty := ""
	c.epoch.Store(&empty)
	return c, nil
}

// Table returns the current table; never nil (empty before the first snapshot).
func (c *Client) Table() *Table { return c.table.Load() }

// Version returns the current table's version.
func (c *Client) Version() uint64 { return c.table.Load().Version() }

// Connected reports whether a watch stream is open.
func (c *Client) Connected() bool { return c.connected.Load() }

// LastUpdate returns when the table last changed (zero when never).
func (c *Client) LastUpdate() time.Time { return unixNano(c.lastUpdate.Load()) }

// Status returns a snapshot of the client's state.
func (c *Client) Status() Status {
	t := c.table.Load()
	st := Status{
		Connected:   c.connected.Load(),
		Version:     t.Version(),
		Epoch:       *c.epoch.Load(),
		Routes:      t.Len(),
		LastUpdate:  c.LastUpdate(),
		LastContact: unixNano(c.lastContact.Load()),
	}
	if e := c.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

func unixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Run connects and watches until ctx is done, reconnecting with jittered exponential backoff. It
// returns nil when ctx is cancelled.
func (c *Client) Run(ctx context.Context) error {
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// A snapshot is one message: ~220 bytes of JSON per route, so gRPC's 4 MiB default would cap a
		// table at ~19,000 routes.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMessageBytes)),
	}, c.cfg.DialOptions...)
	cc, err := grpc.NewClient(c.cfg.Target, opts...)
	if err != nil {
		return fmt.Errorf("route client %s: %w", c.cfg.Target, err)
	}
	defer cc.Close()
	backoff := c.cfg.MinBackoff
	for {
		got, err := c.watchOnce(ctx, cc)
		c.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			msg := err.Error()
			c.lastErr.Store(&msg)
			c.log.Warn("route watch ended; keeping last table", "target", c.cfg.Target, "version", c.Version(), "err", err)
		}
		if got {
			backoff = c.cfg.MinBackoff
		}
		d := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(d):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

var errIdle = errors.New("no message from route server within idle timeout")

// watchOnce runs one stream; got reports whether at least one message arrived.
func (c *Client) watchOnce(ctx context.Context, cc *grpc.ClientConn) (got bool, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := cc.NewStream(ctx, &watchStreamDesc, WatchMethod, grpc.CallContentSubtype(CodecName))
	if err != nil {
		return false, fmt.Errorf("open watch: %w", err)
	}
	t := c.table.Load()
	req := &WatchRequest{Workloads: c.cfg.Workloads, Client: c.cfg.Name}
	if t.Version() != 0 {
		req.KnownEpoch, req.KnownVersion = *c.epoch.Load(), t.Version()
	}
	if err := stream.SendMsg(req); err != nil {
		return false, fmt.Errorf("send watch request: %w", err)
	}
	if err := stream.CloseSend(); err != nil {
		return false, fmt.Errorf("close send: %w", err)
	}
	idle := time.AfterFunc(c.cfg.IdleTimeout, func() { cancel(errIdle) })
	defer idle.Stop()
	for {
		msg := new(WatchResponse)
		if err := stream.RecvMsg(msg); err != nil {
			if cause := context.Cause(ctx); errors.Is(cause, errIdle) {
				return got, cause
			}
			if errors.Is(err, io.EOF) {
				return got, fmt.Errorf("route server closed the watch")
			}
			return got, fmt.Errorf("receive: %w", err)
		}
		idle.Reset(c.cfg.IdleTimeout)
		now := time.Now().UnixNano()
		c.lastContact.Store(now)
		if err := c.apply(msg, now); err != nil {
			// The delta does not fit our table: forget our version so the next stream starts with a snapshot.
			empty := ""
			c.epoch.Store(&empty)
			cur := c.table.Load()
			c.table.Store(&Table{version: 0, n: cur.n, byW: cur.byW}) // keep routes, drop version
			return true, fmt.Errorf("apply %s at version %d: %w", msg.Type, msg.Version, err)
		}
		if !got {
			got = true
			c.connected.Store(true)
			c.log.Info("route watch connected", "target", c.cfg.Target, "type", msg.Type, "version", msg.Version, "routes", c.table.Load().Len())
		}
	}
}

func (c *Client) apply(msg *WatchResponse, now int64) error {
	var nt *Table
	var err error
	switch msg.Type {
	case MessageSnapshot:
		nt, err = NewTable(msg.Version, msg.Routes)
	case MessageDelta:
		cur := c.table.Load()
		if len(msg.Changes) == 0 {
			if cur.version == msg.Version {
				c.storeEpoch(msg.Epoch)
				return nil
			}
			nt = &Table{version: msg.Version, n: cur.n, byW: cur.byW}
		} else {
			nt, err = cur.Apply(msg.Version, msg.Changes)
		}
	case MessageHeartbeat:
		return nil
	default:
		return fmt.Errorf("message type %q: unknown", msg.Type)
	}
	if err != nil {
		return err
	}
	c.storeEpoch(msg.Epoch)
	c.table.Store(nt)
	c.lastUpdate.Store(now)
	if c.cfg.OnUpdate != nil {
		c.cfg.OnUpdate(nt)
	}
	if msg.Type == MessageSnapshot && c.cfg.ReleaseMemoryAfter > 0 && len(msg.Routes) >= c.cfg.ReleaseMemoryAfter {
		msg.Routes = nil
		debug.FreeOSMemory()
	}
	return nil
}

func (c *Client) storeEpoch(e string) {
	if *c.epoch.Load() != e {
		c.epoch.Store(&e)
	}
}
