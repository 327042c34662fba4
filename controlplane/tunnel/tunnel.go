// Package tunnel carries preview traffic from the control plane into a cluster
// over the connection the cluster's agent holds open: a WebSocket (coder/websocket)
// carrying a yamux session. The control plane is the yamux client and opens one
// stream per upstream connection; the agent is the yamux server, reads a one-line
// JSON TunnelDial, checks that the address belongs to an endpoint it applied,
// dials it and answers with a one-line TunnelDialResult before raw bytes flow.
// The framing, yamux settings and address guard are tunnelproto's, shared with
// the local-workload tunnel.
package tunnel

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/yamux"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// ErrNoAgent means no agent of the cluster is connected.
var ErrNoAgent = errors.New("no agent connected for the cluster")

// ErrRefused means the agent refused to dial the target (it is
// tunnelproto.ErrRefused: the stream-dial framing is shared).
var ErrRefused = tunnelproto.ErrRefused

// ErrForbiddenAddress means a tunnel target resolved to an address the agent
// never dials.
var ErrForbiddenAddress = tunnelproto.ErrForbiddenAddress

// LookupFunc resolves a host name to its addresses.
type LookupFunc = tunnelproto.LookupFunc

// DialFunc dials a TCP address in the cluster.
type DialFunc = tunnelproto.DialFunc

// CheckAddr is tunnelproto.CheckAddr (kept here for the agent's callers).
func CheckAddr(a netip.Addr, allowed []netip.Prefix) error { return tunnelproto.CheckAddr(a, allowed) }

// GuardedDial is tunnelproto.GuardedDial (kept here for the agent's callers).
func GuardedDial(dial DialFunc, lookup LookupFunc, allowed []netip.Prefix) DialFunc {
	return tunnelproto.GuardedDial(dial, lookup, allowed)
}

// Pipe copies both ways until both directions end (tunnelproto.Pipe).
func Pipe(a, b net.Conn) { tunnelproto.Pipe(a, b) }

func yamuxConfig(log *slog.Logger) *yamux.Config { return tunnelproto.YamuxConfig(log, 15*time.Second) }

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
	c, err := tunnelproto.Dial(ctx, st, d)
	if err != nil {
		return nil, fmt.Errorf("dial %s via cluster %s/%s: %w", d.Address, org, cluster, err)
	}
	return c, nil
}

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
	err = tunnelproto.AcceptStreams(ctx, sess, func(st *yamux.Stream) {
		_ = tunnelproto.Serve(ctx, st, func(ctx context.Context, line []byte) (net.Conn, error) {
			var d apitypes.TunnelDial
			if err := json.Unmarshal(line, &d); err != nil {
				return nil, errors.New("malformed dial request")
			}
			addr, err := allow(d)
			if err != nil {
				log.WarnContext(ctx, "tunnel target refused", "address", d.Address, "org", d.Org, "sandbox", d.Sandbox, "err", err)
				return nil, err
			}
			up, err := dial(ctx, "tcp", addr)
			if err != nil {
				return nil, fmt.Errorf("dial %s: %w", addr, err)
			}
			return up, nil
		})
	})
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("agent tunnel: %w", err)
	}
	return err
}
