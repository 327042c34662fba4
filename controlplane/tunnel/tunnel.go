// Package tunnel carries preview traffic from the control plane into a cluster
// over the connection the cluster's agent holds open: a WebSocket (coder/websocket)
// carrying a yamux session. The control plane is the yamux client and opens one
// stream per upstream connection; the agent is the yamux server, reads a one-line
// JSON TunnelDial, checks that the address belongs to an endpoint it applied,
// dials it and answers with a one-line TunnelDialResult before raw bytes flow.
package tunnel

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// ErrNoAgent means no agent of the cluster is connected.
var ErrNoAgent = errors.New("no agent connected for the cluster")

// ErrRefused means the agent refused to dial the target.
var ErrRefused = errors.New("agent refused the target")

func yamuxConfig(log *slog.Logger) *yamux.Config {
	c := yamux.DefaultConfig()
	c.LogOutput = nil
	c.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	c.EnableKeepAlive = true
	c.KeepAliveInterval = 15 * time.Second
	c.ConnectionWriteTimeout = 15 * time.Second
	c.MaxStreamWindowSize = 1 << 20
	c.StreamOpenTimeout = 10 * time.Second
	return c
}

type key struct{ org, cluster string }

type entry struct {
	sess    *yamux.Session
	tokenID string
}

// Hub is the control plane's registry of agent sessions, one per cluster.
type Hub struct {
	log      *slog.Logger
	mu       sync.Mutex
	sessions map[key]*entry
	// OnChange is called with the number of sessions after each change.
	OnChange func(n int)
}

// NewHub returns an empty hub.
func NewHub(log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{log: log, sessions: map[key]*entry{}}
}

// Serve runs the yamux client side on conn for a cluster's agent until the session
// ends. A newer session of the same cluster replaces an older one.
func (h *Hub) Serve(ctx context.Context, org, cluster, tokenID string, conn net.Conn) error {
	sess, err := yamux.Client(conn, yamuxConfig(h.log))
	if err != nil {
		conn.Close()
		return fmt.Errorf("tunnel for cluster %s/%s: %w", org, cluster, err)
	}
	k := key{org, cluster}
	e := &entry{sess: sess, tokenID: tokenID}
	h.mu.Lock()
	old := h.sessions[k]
	h.sessions[k] = e
	n := len(h.sessions)
	h.mu.Unlock()
	if old != nil {
		old.sess.Close()
	}
	h.changed(n)
	h.log.InfoContext(ctx, "agent tunnel connected", "org", org, "cluster", cluster)
	select {
	case <-sess.CloseChan():
	case <-ctx.Done():
		sess.Close()
	}
	h.mu.Lock()
	if h.sessions[k] == e {
		delete(h.sessions, k)
	}
	n = len(h.sessions)
	h.mu.Unlock()
	h.changed(n)
	h.log.InfoContext(ctx, "agent tunnel closed", "org", org, "cluster", cluster)
	return nil
}

func (h *Hub) changed(n int) {
	if h.OnChange != nil {
		h.OnChange(n)
	}
}

// Connected reports whether a cluster's agent holds a tunnel.
func (h *Hub) Connected(org, cluster string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.sessions[key{org, cluster}]
	return ok
}

// Disconnect closes a cluster's tunnel (after its cluster was deleted).
func (h *Hub) Disconnect(org, cluster string) {
	h.mu.Lock()
	e := h.sessions[key{org, cluster}]
	h.mu.Unlock()
	if e != nil {
		e.sess.Close()
	}
}

// DisconnectToken closes a cluster's tunnel if it was opened with token id.
func (h *Hub) DisconnectToken(org, cluster, id string) {
	h.mu.Lock()
	e := h.sessions[key{org, cluster}]
	h.mu.Unlock()
	if e != nil && e.tokenID == id {
		e.sess.Close()
	}
}

// DialTunnel opens a stream to d.Address through the agent of org/cluster.
func (h *Hub) DialTunnel(ctx context.Context, org, cluster string, d apitypes.TunnelDial) (net.Conn, error) {
	h.mu.Lock()
	e := h.sessions[key{org, cluster}]
	h.mu.Unlock()
	if e == nil {
		return nil, fmt.Errorf("dial %s via cluster %s/%s: %w", d.Address, org, cluster, ErrNoAgent)
	}
	st, err := e.sess.OpenStream()
	if err != nil {
		return nil, fmt.Errorf("dial %s via cluster %s/%s: open stream: %w", d.Address, org, cluster, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = st.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	line, _ := json.Marshal(d)
	if _, err := st.Write(append(line, '\n')); err != nil {
		st.Close()
		return nil, fmt.Errorf("dial %s via cluster %s/%s: %w", d.Address, org, cluster, err)
	}
	br := bufio.NewReader(st)
	resp, err := br.ReadBytes('\n')
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("dial %s via cluster %s/%s: read answer: %w", d.Address, org, cluster, err)
	}
	var res apitypes.TunnelDialResult
	if err := json.Unmarshal(resp, &res); err != nil {
		st.Close()
		return nil, fmt.Errorf("dial %s via cluster %s/%s: bad answer: %w", d.Address, org, cluster, err)
	}
	if !res.OK {
		st.Close()
		return nil, fmt.Errorf("dial %s via cluster %s/%s: %s: %w", d.Address, org, cluster, res.Error, ErrRefused)
	}
	_ = st.SetDeadline(time.Time{})
	return &bufConn{Conn: st, r: br}, nil
}

// bufConn is a net.Conn whose reads drain a bufio.Reader first.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// DialFunc dials a TCP address in the cluster.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// AllowFunc decides whether the agent may dial d; it returns the address to dial.
type AllowFunc func(d apitypes.TunnelDial) (string, error)

// ServeAgent runs the agent side (yamux server) on conn until it closes: each
// stream names a target; allowed targets are dialled and bytes copied both ways.
func ServeAgent(ctx context.Context, conn net.Conn, allow AllowFunc, dial DialFunc, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sess, err := yamux.Server(conn, yamuxConfig(log))
	if err != nil {
		conn.Close()
		return fmt.Errorf("agent tunnel: %w", err)
	}
	defer sess.Close()
	go func() {
		select {
		case <-ctx.Done():
			sess.Close()
		case <-sess.CloseChan():
		}
	}()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("agent tunnel: %w", err)
		}
		go serveStream(ctx, st, allow, dial, log)
	}
}

func serveStream(ctx context.Context, st *yamux.Stream, allow AllowFunc, dial DialFunc, log *slog.Logger) {
	defer st.Close()
	_ = st.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(st)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	_ = st.SetReadDeadline(time.Time{})
	answer := func(r apitypes.TunnelDialResult) bool {
		b, _ := json.Marshal(r)
		_, err := st.Write(append(b, '\n'))
		return err == nil
	}
	var d apitypes.TunnelDial
	if err := json.Unmarshal(line, &d); err != nil {
		answer(apitypes.TunnelDialResult{Error: "malformed dial request"})
		return
	}
	addr, err := allow(d)
	if err != nil {
		log.WarnContext(ctx, "tunnel target refused", "address", d.Address, "org", d.Org, "sandbox", d.Sandbox, "err", err)
		answer(apitypes.TunnelDialResult{Error: err.Error()})
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	up, err := dial(dctx, "tcp", addr)
	cancel()
	if err != nil {
		answer(apitypes.TunnelDialResult{Error: "dial " + addr + ": " + err.Error()})
		return
	}
	defer up.Close()
	if !answer(apitypes.TunnelDialResult{OK: true}) {
		return
	}
	Pipe(&bufConn{Conn: st, r: br}, up)
}

// Pipe copies both ways until both directions end, half-closing where possible.
func Pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		_, _ = io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}
