package localtunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// Phase is where a Client's connection stands.
type Phase string

// Client phases.
const (
	PhaseConnecting Phase = "Connecting"
	PhaseConnected  Phase = "Connected"
	PhaseBackoff    Phase = "Backoff"
	PhaseStopped    Phase = "Stopped"
)

// ClientState is a snapshot of a Client.
type ClientState struct {
	Phase     Phase
	MachineID string
	// ConnectedAt is when the current session started (zero unless Connected).
	ConnectedAt time.Time
	// Failures counts connection attempts failed since the last session.
	Failures int
	// LastError is the last connection failure or session end.
	LastError string
	// NextAttempt is when the next attempt starts (Backoff only).
	NextAttempt time.Time
}

// ClientEvent is a phase change of a Client.
type ClientEvent struct {
	Phase Phase
	At    time.Time
	// Err is the failure that led here (Backoff), if any.
	Err error
}

// LocalTarget is one mapping of a sandbox's local workload this machine
// serves: the local workload's name and the address it dials.
type LocalTarget struct {
	Local   string
	ToLocal string
}

// ClientConfig configures a Client.
type ClientConfig struct {
	Identity *Identity
	// Dial opens a raw connection to the gateway (a kube port-forward, or a
	// TCP dial of the configured proxyAddress).
	Dial func(ctx context.Context) (net.Conn, error)
	// Label is the machine's display name sent in the handshake (e.g. host name).
	Label string
	// LocalDial dials toLocal addresses; nil uses a net.Dialer.
	LocalDial tunnelproto.DialFunc
	// MinBackoff and MaxBackoff bound reconnect delays (250 ms and 30 s when 0).
	MinBackoff, MaxBackoff time.Duration
	// HandshakeTimeout bounds dial plus handshake (DefaultHandshakeTimeout when 0).
	HandshakeTimeout time.Duration
	// Heartbeat is the keepalive interval (5 s when 0).
	Heartbeat time.Duration
	// OnEvent is called on every phase change; don't block in it.
	OnEvent func(ClientEvent)
	// Log receives connection events (nil: discarded).
	Log *slog.Logger
}

// Client is the machine's end of the local tunnel: it keeps a session with
// the gateway, serves inbound dials for the sandboxes registered with Allow,
// and dials cluster destinations.
type Client struct {
	cfg ClientConfig
	log *slog.Logger

	mu      sync.Mutex
	state   ClientState
	sess    *yamux.Session
	allowed map[string]map[LocalTarget]bool
	changed chan struct{} // closed and replaced on every phase change
}

// NewClient returns a client; Run connects it.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Identity == nil {
		return nil, errors.New("local tunnel client: an identity is required")
	}
	if cfg.Dial == nil {
		return nil, errors.New("local tunnel client: a dial function is required")
	}
	if err := checkLabel(cfg.Label); err != nil {
		return nil, fmt.Errorf("local tunnel client: %w", err)
	}
	if cfg.LocalDial == nil {
		d := &net.Dialer{Timeout: tunnelproto.DefaultTimeout}
		cfg.LocalDial = d.DialContext
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(30*time.Second, cfg.MinBackoff)
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Client{cfg: cfg, log: log, allowed: map[string]map[LocalTarget]bool{}, changed: make(chan struct{})}
	c.state = ClientState{Phase: PhaseStopped, MachineID: cfg.Identity.MachineID()}
	return c, nil
}

// MachineID is this machine's ID.
func (c *Client) MachineID() string { return c.cfg.Identity.MachineID() }

// State returns a snapshot of the connection.
func (c *Client) State() ClientState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Allow registers the local workloads this machine serves for sandbox,
// replacing any earlier registration of it. Inbound dials for anything not
// registered are refused.
func (c *Client) Allow(sandbox string, targets []LocalTarget) {
	m := map[LocalTarget]bool{}
	for _, t := range targets {
		m[t] = true
	}
	c.mu.Lock()
	c.allowed[sandbox] = m
	c.mu.Unlock()
}

// Revoke stops serving sandbox.
func (c *Client) Revoke(sandbox string) {
	c.mu.Lock()
	delete(c.allowed, sandbox)
	c.mu.Unlock()
}

// Allowed lists the registered sandboxes.
func (c *Client) Allowed() []string {
	c.mu.Lock()
	out := make([]string, 0, len(c.allowed))
	for s := range c.allowed {
		out = append(out, s)
	}
	c.mu.Unlock()
	sort.Strings(out)
	return out
}

func (c *Client) setPhase(p Phase, err error, mutate func(*ClientState)) {
	now := time.Now()
	c.mu.Lock()
	c.state.Phase = p
	if err != nil {
		c.state.LastError = err.Error()
	}
	if mutate != nil {
		mutate(&c.state)
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(ClientEvent{Phase: p, At: now, Err: err})
	}
}

// WaitConnected waits until the client holds a session or ctx ends.
func (c *Client) WaitConnected(ctx context.Context) error {
	for {
		c.mu.Lock()
		ok, ch := c.sess != nil && c.state.Phase == PhaseConnected, c.changed
		c.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the local tunnel: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Run connects and keeps the session up, reconnecting with jittered
// exponential backoff, until ctx ends; it then returns ctx's error.
func (c *Client) Run(ctx context.Context) error {
	defer c.setPhase(PhaseStopped, nil, func(s *ClientState) { s.ConnectedAt = time.Time{}; s.NextAttempt = time.Time{} })
	backoff := c.cfg.MinBackoff
	for {
		c.setPhase(PhaseConnecting, nil, func(s *ClientState) { s.NextAttempt = time.Time{} })
		err := c.session(ctx, func() { backoff = c.cfg.MinBackoff })
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, c.cfg.MaxBackoff)
		c.log.Info("local tunnel lost; reconnecting", "in", wait.String(), "err", err)
		c.setPhase(PhaseBackoff, err, func(s *ClientState) {
			s.ConnectedAt = time.Time{}
			s.NextAttempt = time.Now().Add(wait)
		})
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// session runs one connection until it ends; connected is called once it is up.
func (c *Client) session(ctx context.Context, connected func()) error {
	dctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	conn, err := c.cfg.Dial(dctx)
	cancel()
	if err != nil {
		c.bumpFailures()
		return fmt.Errorf("dial gateway: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // Run's end does not wait for a slow gateway
	_, err = ClientHandshake(conn, c.cfg.Identity, c.cfg.Label, c.cfg.HandshakeTimeout)
	stop()
	if err != nil {
		c.bumpFailures()
		return err
	}
	yc := tunnelproto.YamuxConfig(c.log, c.cfg.Heartbeat)
	yc.ConnectionWriteTimeout = 3 * c.cfg.Heartbeat
	sess, err := yamux.Client(conn, yc)
	if err != nil {
		conn.Close()
		c.bumpFailures()
		return fmt.Errorf("local tunnel session: %w", err)
	}
	c.mu.Lock()
	c.sess = sess
	c.mu.Unlock()
	connected()
	c.log.Info("local tunnel connected", "machine", c.MachineID())
	c.setPhase(PhaseConnected, nil, func(s *ClientState) { s.ConnectedAt = time.Now(); s.Failures = 0 })
	err = tunnelproto.AcceptStreams(ctx, sess, func(st *yamux.Stream) {
		if err := tunnelproto.Serve(ctx, st, c.localHandler); err != nil {
			c.log.Debug("inbound stream refused", "err", err)
		}
	})
	c.mu.Lock()
	c.sess = nil
	c.mu.Unlock()
	if err == nil || tunnelproto.SessionClosed(err) {
		err = fmt.Errorf("session closed by the gateway or the network: %w", ErrNotConnected)
	}
	return err
}

func (c *Client) bumpFailures() {
	c.mu.Lock()
	c.state.Failures++
	c.mu.Unlock()
}

// localHandler serves the gateway's inbound stream: only registered targets.
func (c *Client) localHandler(ctx context.Context, line []byte) (net.Conn, error) {
	var d LocalDial
	if err := tunnelproto.DecodeStrict(line, &d); err != nil {
		return nil, fmt.Errorf("malformed local dial request: %w", err)
	}
	c.mu.Lock()
	targets, sbOK := c.allowed[d.Sandbox]
	ok := targets[LocalTarget{Local: d.Local, ToLocal: d.ToLocal}]
	c.mu.Unlock()
	switch {
	case !sbOK:
		c.log.Warn("inbound dial for a sandbox this machine does not serve", "sandbox", d.Sandbox, "local", d.Local, "toLocal", d.ToLocal)
		return nil, forbidden("sandbox %q is not served by machine %s", d.Sandbox, c.MachineID())
	case !ok:
		c.log.Warn("inbound dial for an unregistered local mapping", "sandbox", d.Sandbox, "local", d.Local, "toLocal", d.ToLocal)
		return nil, forbidden("sandbox %q has no local workload %q mapped to %q on machine %s", d.Sandbox, d.Local, d.ToLocal, c.MachineID())
	}
	conn, err := c.cfg.LocalDial(ctx, "tcp", d.ToLocal)
	if err != nil {
		return nil, fmt.Errorf("local workload %s of sandbox %s: %w", d.Local, d.Sandbox, err)
	}
	return conn, nil
}

// DialCluster connects to address in the cluster through the gateway, which
// checks it against its policy. It fails at once with ErrNotConnected when
// no session is up; a refusal wraps tunnelproto.ErrRefused (and
// tunnelproto.ErrForbidden when the policy refused).
func (c *Client) DialCluster(ctx context.Context, network, address string) (net.Conn, error) {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return nil, fmt.Errorf("dial %s through the local tunnel: %w", address, ErrNotConnected)
	}
	st, err := sess.OpenStream()
	if err != nil {
		if sess.IsClosed() {
			return nil, fmt.Errorf("dial %s through the local tunnel: %w (%w)", address, ErrNotConnected, err)
		}
		return nil, fmt.Errorf("dial %s through the local tunnel: %w", address, err)
	}
	conn, err := tunnelproto.Dial(ctx, st, ClusterDial{Network: network, Address: address})
	if err != nil {
		return nil, fmt.Errorf("dial %s through the local tunnel: %w", address, err)
	}
	return conn, nil
}

// Catalog asks the gateway for the cluster's Services (GatewayConfig.Catalog).
func (c *Client) Catalog(ctx context.Context) ([]CatalogService, error) {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return nil, fmt.Errorf("Service catalog through the local tunnel: %w", ErrNotConnected)
	}
	st, err := sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("Service catalog through the local tunnel: %w", err)
	}
	conn, err := tunnelproto.Dial(ctx, st, ClusterDial{Kind: KindCatalog})
	if err != nil {
		return nil, fmt.Errorf("Service catalog through the local tunnel: %w", err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	} else {
		_ = conn.SetReadDeadline(time.Now().Add(tunnelproto.DefaultTimeout))
	}
	body, err := io.ReadAll(io.LimitReader(conn, MaxCatalogBytes+1))
	if err != nil {
		return nil, fmt.Errorf("Service catalog through the local tunnel: %w", err)
	}
	if len(body) > MaxCatalogBytes {
		return nil, fmt.Errorf("Service catalog through the local tunnel: more than %d bytes", MaxCatalogBytes)
	}
	var out []CatalogService
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("Service catalog through the local tunnel: %w", err)
	}
	return out, nil
}

// HostLabel returns a handshake label for this machine: its host name with
// anything but printable ASCII replaced, cut to MaxLabel bytes ("" when the
// host name is unknown).
func HostLabel() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	b := []byte(h)
	for i, c := range b {
		if c < 0x21 || c > 0x7e {
			b[i] = '-'
		}
	}
	return string(b[:min(len(b), MaxLabel)])
}

// TCPDialer returns a ClientConfig.Dial for a gateway reachable at address
// (host:port), as a connection of type ProxyAddress is; a port-forward
// supplies its own.
func TCPDialer(address string) func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", address)
		if err != nil {
			return nil, fmt.Errorf("dial local tunnel gateway %s: %w", address, err)
		}
		return c, nil
	}
}
