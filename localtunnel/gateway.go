package localtunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// ErrNotConnected means the machine holds no session with the gateway (or,
// on the machine, that the client holds none): routing falls back to baseline.
var ErrNotConnected = errors.New("machine not connected")

// LocalDial is the request line of a stream the gateway opens to a machine:
// connect this stream to the sandbox's local workload at ToLocal.
type LocalDial struct {
	Sandbox string `json:"sandbox"`
	Local   string `json:"local"`
	ToLocal string `json:"toLocal"`
}

// ClusterDial is the request line of a stream a machine opens to the
// gateway: connect this stream to Address in the cluster, or (Kind
// KindCatalog) answer the cluster's Service catalog on it.
type ClusterDial struct {
	Kind    string `json:"kind,omitempty"`
	Network string `json:"network,omitempty"`
	Address string `json:"address,omitempty"`
}

// KindCatalog asks the gateway for its Service catalog (Client.Catalog).
const KindCatalog = "catalog"

// CatalogService is a Service of the cluster a machine may reach by name (its root mode writes the names
// into /etc/hosts).
type CatalogService struct {
	Name      string  `json:"name"`
	Namespace string  `json:"namespace"`
	Ports     []int32 `json:"ports"`
}

// MaxCatalogBytes bounds a catalog answer.
const MaxCatalogBytes = 8 << 20

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// Policy checks outbound destinations. Required (ClusterPolicy is the usual one).
	Policy Policy
	// Dial dials a checked destination; nil uses a net.Dialer.
	Dial tunnelproto.DialFunc
	// Authorize may refuse an authenticated machine (nil: any key may connect;
	// it reaches only what Policy allows and serves no sandbox until a
	// sandbox names its machine ID).
	Authorize func(Peer) error
	// OnChange is called after a machine connects, is replaced or disconnects.
	// It runs on the session's goroutine: hand the event off, don't block.
	OnChange func(MachineEvent)
	// Catalog lists the cluster's Services for machines that ask (KindCatalog); nil refuses them.
	Catalog func(ctx context.Context) ([]CatalogService, error)
	// HandshakeTimeout bounds a handshake (DefaultHandshakeTimeout when 0).
	HandshakeTimeout time.Duration
	// Heartbeat is the ping interval of each session (5 s when 0); a ping
	// unanswered for 3 intervals ends the session.
	Heartbeat time.Duration
	// MaxHandshakes bounds the connections Serve authenticates at once (64
	// when 0); further connections wait in the listener's backlog.
	MaxHandshakes int
	// Log receives connection events (nil: discarded).
	Log *slog.Logger
}

// MachineInfo describes a connected machine.
type MachineInfo struct {
	Peer
	RemoteAddr    string
	ConnectedAt   time.Time
	LastHeartbeat time.Time
}

// MachineEvent is a change of a machine's connection.
type MachineEvent struct {
	MachineID string
	Connected bool
	At        time.Time
}

// Gateway is the in-cluster end of local-workload tunnels: it holds one
// session per connected machine.
type Gateway struct {
	cfg    GatewayConfig
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	machines  map[string]*session
	listeners map[net.Listener]struct{}
	wg        sync.WaitGroup
	// handshakes holds a token per connection being authenticated.
	handshakes chan struct{}
}

type session struct {
	sess *yamux.Session
	info MachineInfo
}

// NewGateway returns a gateway; cfg.Policy is required.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Policy == nil {
		return nil, errors.New("local tunnel gateway: a destination policy is required")
	}
	if cfg.Dial == nil {
		d := &net.Dialer{Timeout: tunnelproto.DefaultTimeout}
		cfg.Dial = d.DialContext
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 5 * time.Second
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = 64
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Gateway{cfg: cfg, log: log, ctx: ctx, cancel: cancel, machines: map[string]*session{}, listeners: map[net.Listener]struct{}{},
		handshakes: make(chan struct{}, cfg.MaxHandshakes)}, nil
}

// Serve accepts machines' connections on l until l fails or the gateway closes.
func (g *Gateway) Serve(l net.Listener) error {
	g.mu.Lock()
	if g.ctx.Err() != nil {
		g.mu.Unlock()
		return net.ErrClosed
	}
	g.listeners[l] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.listeners, l)
		g.mu.Unlock()
	}()
	var delay time.Duration
	for {
		select {
		case g.handshakes <- struct{}{}:
		case <-g.ctx.Done():
			return nil
		}
		c, err := l.Accept()
		if err != nil {
			<-g.handshakes
			if g.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return fmt.Errorf("local tunnel gateway: accept: %w", err)
		}
		delay = 0
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			if err := g.serveConn(g.ctx, c, func() { <-g.handshakes }); err != nil {
				g.log.Warn("local tunnel connection ended", "remote", c.RemoteAddr().String(), "err", err)
			}
		}()
	}
}

// Close stops the listeners Serve runs and ends every session.
func (g *Gateway) Close() error {
	g.cancel()
	g.mu.Lock()
	for l := range g.listeners {
		l.Close()
	}
	for _, s := range g.machines {
		s.sess.Close()
	}
	g.mu.Unlock()
	g.wg.Wait()
	return nil
}

// ServeConn authenticates one machine on conn and serves its session until it
// ends (or ctx does). A machine that connects again replaces its older session.
func (g *Gateway) ServeConn(ctx context.Context, conn net.Conn) error {
	return g.serveConn(ctx, conn, func() {})
}

// serveConn is ServeConn; authenticated is called once the handshake ends.
func (g *Gateway) serveConn(ctx context.Context, conn net.Conn, authenticated func()) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() }) // Close does not wait for a slow handshake
	peer, err := ServerHandshake(conn, g.cfg.HandshakeTimeout, g.cfg.Authorize)
	stop()
	authenticated()
	if err != nil {
		return err
	}
	yc := tunnelproto.YamuxConfig(g.log, g.cfg.Heartbeat)
	yc.EnableKeepAlive = false // the heartbeat below pings and records it
	yc.ConnectionWriteTimeout = 3 * g.cfg.Heartbeat
	sess, err := yamux.Server(conn, yc)
	if err != nil {
		conn.Close()
		return fmt.Errorf("machine %s: %w", peer.MachineID, err)
	}
	now := time.Now()
	s := &session{sess: sess, info: MachineInfo{Peer: peer, RemoteAddr: conn.RemoteAddr().String(), ConnectedAt: now, LastHeartbeat: now}}
	g.mu.Lock()
	if g.ctx.Err() != nil {
		g.mu.Unlock()
		sess.Close()
		return net.ErrClosed
	}
	old := g.machines[peer.MachineID]
	g.machines[peer.MachineID] = s
	g.mu.Unlock()
	if old != nil {
		old.sess.Close()
		g.log.Info("machine reconnected; older session replaced", "machine", peer.MachineID, "label", peer.Label)
	}
	g.log.Info("machine connected", "machine", peer.MachineID, "label", peer.Label, "remote", s.info.RemoteAddr)
	g.notify(MachineEvent{MachineID: peer.MachineID, Connected: true, At: now})

	go g.heartbeat(s)
	log := g.log.With("machine", peer.MachineID)
	err = tunnelproto.AcceptStreams(ctx, sess, func(st *yamux.Stream) {
		if err := tunnelproto.Serve(ctx, st, g.clusterHandler(peer.MachineID)); err != nil {
			log.Debug("outbound stream refused", "err", err)
		}
	})

	g.mu.Lock()
	current := g.machines[peer.MachineID] == s
	if current {
		delete(g.machines, peer.MachineID)
	}
	g.mu.Unlock()
	if current {
		g.log.Info("machine disconnected", "machine", peer.MachineID)
		g.notify(MachineEvent{MachineID: peer.MachineID, Connected: false, At: time.Now()})
	}
	if err != nil && ctx.Err() == nil && !tunnelproto.SessionClosed(err) {
		return fmt.Errorf("machine %s: %w", peer.MachineID, err)
	}
	return nil
}

func (g *Gateway) notify(e MachineEvent) {
	if g.cfg.OnChange != nil {
		g.cfg.OnChange(e)
	}
}

func (g *Gateway) heartbeat(s *session) {
	t := time.NewTicker(g.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.sess.CloseChan():
			return
		case <-t.C:
		}
		if _, err := s.sess.Ping(); err != nil {
			g.log.Info("machine missed its heartbeat", "machine", s.info.MachineID, "err", err)
			s.sess.Close()
			return
		}
		g.mu.Lock()
		s.info.LastHeartbeat = time.Now()
		g.mu.Unlock()
	}
}

// clusterHandler serves a machine's outbound stream: policy check, then dial.
func (g *Gateway) clusterHandler(machine string) tunnelproto.Handler {
	return func(ctx context.Context, line []byte) (net.Conn, error) {
		var d ClusterDial
		if err := tunnelproto.DecodeStrict(line, &d); err != nil {
			return nil, fmt.Errorf("malformed cluster dial request: %w", err)
		}
		switch d.Kind {
		case "":
		case KindCatalog:
			return g.catalog(ctx)
		default:
			return nil, fmt.Errorf("unknown request kind %q", d.Kind)
		}
		addr, err := g.cfg.Policy.Check(ctx, d.Network, d.Address)
		if err != nil {
			g.log.Info("outbound destination refused", "machine", machine, "address", d.Address, "err", err)
			return nil, err
		}
		c, err := g.cfg.Dial(ctx, d.Network, addr)
		if err != nil {
			return nil, fmt.Errorf("dial %s (%s): %w", d.Address, addr, err)
		}
		return c, nil
	}
}

// catalog answers the Service catalog (GatewayConfig.Catalog) as JSON on a pipe the stream is joined to.
func (g *Gateway) catalog(ctx context.Context) (net.Conn, error) {
	if g.cfg.Catalog == nil {
		return nil, fmt.Errorf("this gateway has no Service catalog: %w", tunnelproto.ErrForbidden)
	}
	svcs, err := g.cfg.Catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("Service catalog: %w", err)
	}
	if svcs == nil {
		svcs = []CatalogService{}
	}
	body, err := json.Marshal(svcs)
	if err != nil {
		return nil, err
	}
	if len(body) > MaxCatalogBytes {
		return nil, fmt.Errorf("Service catalog: %d bytes, more than %d", len(body), MaxCatalogBytes)
	}
	ours, theirs := net.Pipe()
	go func() {
		defer ours.Close()
		_ = ours.SetWriteDeadline(time.Now().Add(tunnelproto.DefaultTimeout))
		_, _ = ours.Write(body)
	}()
	return theirs, nil
}

// Connected reports whether machineID holds a session.
func (g *Gateway) Connected(machineID string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	_, ok := g.machines[machineID]
	return ok
}

// Machine returns a connected machine's details.
func (g *Gateway) Machine(machineID string) (MachineInfo, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.machines[machineID]
	if !ok {
		return MachineInfo{}, false
	}
	return s.info, true
}

// Machines lists the connected machines by ID.
func (g *Gateway) Machines() []MachineInfo {
	g.mu.Lock()
	out := make([]MachineInfo, 0, len(g.machines))
	for _, s := range g.machines {
		out = append(out, s.info)
	}
	g.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].MachineID < out[j].MachineID })
	return out
}

// Disconnect ends machineID's session, if any.
func (g *Gateway) Disconnect(machineID string) {
	g.mu.Lock()
	s := g.machines[machineID]
	g.mu.Unlock()
	if s != nil {
		s.sess.Close()
	}
}

// DialLocal opens a connection to the local workload localName of sandbox on
// machineID, which the machine dials at toLocal. It fails at once with an
// error wrapping ErrNotConnected when the machine holds no session, and with
// one wrapping tunnelproto.ErrRefused when the machine does not serve that
// sandbox/local/toLocal. ctx bounds the set-up (tunnelproto.DefaultTimeout
// when it has no deadline), not the returned connection.
func (g *Gateway) DialLocal(ctx context.Context, machineID, sandbox, localName, toLocal string) (net.Conn, error) {
	g.mu.Lock()
	s := g.machines[machineID]
	g.mu.Unlock()
	what := fmt.Sprintf("dial local workload %s of sandbox %s (%s) on machine %s", localName, sandbox, toLocal, machineID)
	if s == nil {
		return nil, fmt.Errorf("%s: %w", what, ErrNotConnected)
	}
	st, err := s.sess.OpenStream()
	if err != nil {
		if s.sess.IsClosed() {
			return nil, fmt.Errorf("%s: %w (%w)", what, ErrNotConnected, err)
		}
		return nil, fmt.Errorf("%s: open stream: %w", what, err)
	}
	c, err := tunnelproto.Dial(ctx, st, LocalDial{Sandbox: sandbox, Local: localName, ToLocal: toLocal})
	if err != nil {
		if s.sess.IsClosed() {
			return nil, fmt.Errorf("%s: %w (%w)", what, ErrNotConnected, err)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return c, nil
}
