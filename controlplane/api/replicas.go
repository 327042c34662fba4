package api

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/tunnel"
)

// Several replicas: an agent holds its preview tunnel on one replica. That
// replica records a lease in the store (ClaimTunnel, renewed while the tunnel
// is up); a replica asked to dial through a tunnel it does not hold opens a
// WebSocket to the holder's internal tunnel-dial endpoint, which dials through
// its local tunnel and pipes the bytes. The holder only ever dials locally,
// so a request is forwarded at most once. Replicas authenticate each other
// with an HMAC over the request, keyed by a secret they share through the
// database.

const (
	// internalTunnelDialPath is the replica-to-replica dial endpoint.
	internalTunnelDialPath = "/api/v2/internal/tunnel-dial"
	headerReplicaAuth      = "Sandboxmesh-Replica-Auth"
	// defaultTunnelLease is how long a tunnel claim lives without renewal
	// (Server.tunnelLease; tests shorten it).
	defaultTunnelLease = 30 * time.Second
	// replicaAuthSkew bounds the age of a replica request.
	replicaAuthSkew = time.Minute
)

func newReplicaID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// replicaDialer dials through the local tunnel, or through the replica that
// holds it.
type replicaDialer struct{ s *Server }

// DialTunnel implements preview.Dialer.
func (d replicaDialer) DialTunnel(ctx context.Context, org, cluster string, td apitypes.TunnelDial) (net.Conn, error) {
	c, err := d.s.hub.DialTunnel(ctx, org, cluster, td)
	if err == nil || !errors.Is(err, tunnel.ErrNoAgent) || d.s.cfg.ReplicaURL == "" {
		return c, err
	}
	owner, oerr := d.s.st.GetTunnelOwner(ctx, org, cluster)
	if oerr != nil || owner.ReplicaID == d.s.replicaID {
		return nil, err
	}
	ctx, span := d.s.tracer.Start(ctx, "tunnel dial via replica", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("sandboxmesh.org", org), attribute.String("sandboxmesh.cluster", cluster),
			attribute.String("network.peer.address", td.Address), attribute.String("sandboxmesh.replica", owner.URL)))
	defer span.End()
	fc, ferr := d.s.dialReplica(ctx, owner.URL, org, cluster, td)
	if ferr != nil {
		span.SetStatus(codes.Error, ferr.Error())
		return nil, fmt.Errorf("dial %s via cluster %s/%s: the tunnel is held by replica %s (%s): %w", td.Address, org, cluster, owner.ReplicaID, owner.URL, ferr)
	}
	return fc, nil
}

func (s *Server) replicaSecret(ctx context.Context) ([]byte, error) {
	s.replicaMu.Lock()
	defer s.replicaMu.Unlock()
	if s.replicaKey == nil {
		k, err := s.st.Secret(ctx, "replica-forwarding")
		if err != nil {
			return nil, err
		}
		s.replicaKey = k
	}
	return s.replicaKey, nil
}

func replicaMAC(key []byte, q url.Values) string {
	m := hmac.New(sha256.New, key)
	for _, k := range []string{"org", "cluster", "address", "ts"} {
		m.Write([]byte(k + "=" + q.Get(k) + "\n"))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// dialReplica opens a tunnel stream through replica base (its ReplicaURL).
func (s *Server) dialReplica(ctx context.Context, base, org, cluster string, td apitypes.TunnelDial) (net.Conn, error) {
	key, err := s.replicaSecret(ctx)
	if err != nil {
		return nil, err
	}
	q := url.Values{"org": {org}, "cluster": {cluster}, "address": {td.Address}, "ts": {strconv.FormatInt(time.Now().Unix(), 10)}}
	u := strings.TrimRight(base, "/") + internalTunnelDialPath + "?" + q.Encode()
	u = "ws" + strings.TrimPrefix(u, "http")
	h := http.Header{headerReplicaAuth: {replicaMAC(key, q)}}
	propagator.Inject(ctx, propagation.HeaderCarrier(h)) // the holder's span continues this trace
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPHeader:      h,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusBadGateway {
			return nil, fmt.Errorf("%w (%v)", tunnel.ErrNoAgent, err)
		}
		return nil, err
	}
	return websocket.NetConn(context.WithoutCancel(ctx), ws, websocket.MessageBinary), nil
}

// internalTunnelDial serves another replica's dial through the local tunnel.
func (s *Server) internalTunnelDial(c *gin.Context) {
	q := c.Request.URL.Query()
	key, err := s.replicaSecret(c.Request.Context())
	if err != nil {
		s.failErr(c, "replica secret", err)
		return
	}
	ts, err := strconv.ParseInt(q.Get("ts"), 10, 64)
	if err != nil || !hmac.Equal([]byte(c.GetHeader(headerReplicaAuth)), []byte(replicaMAC(key, q))) {
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "replica authentication failed")
		return
	}
	if d := time.Since(time.Unix(ts, 0)); d > replicaAuthSkew || d < -replicaAuthSkew {
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "replica request too old (clocks out of sync?)")
		return
	}
	ctx := c.Request.Context()
	st, err := s.hub.DialTunnel(ctx, q.Get("org"), q.Get("cluster"), apitypes.TunnelDial{Org: q.Get("org"), Address: q.Get("address")})
	if err != nil {
		code := http.StatusBadGateway
		s.fail(c, code, apitypes.ReasonUnavailable, err.Error())
		return
	}
	ws, err := websocket.Accept(c.Writer, c.Request, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		st.Close()
		return
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	tunnel.Pipe(websocket.NetConn(wctx, ws, websocket.MessageBinary), st)
}

// claimTunnel records that this replica holds the tunnel of org/cluster.
func (s *Server) claimTunnel(ctx context.Context, org, cluster string) {
	if s.cfg.ReplicaURL == "" {
		return
	}
	if err := s.st.ClaimTunnel(ctx, org, cluster, s.replicaID, s.cfg.ReplicaURL, s.tunnelLease); err != nil && ctx.Err() == nil {
		s.log.WarnContext(ctx, "claiming the agent tunnel failed; other replicas cannot forward to it", "org", org, "cluster", cluster, "err", err)
	}
}

// holdTunnel renews this replica's claim on the tunnel of org/cluster (made
// by claimTunnel) until ctx ends, then releases it unless a newer session of
// the same agent has meanwhile replaced it on this replica. A renewal never
// takes a live claim of another replica (the agent's newer connection went
// there while this tunnel may be half dead; this replica then closes its
// tunnel); it takes an expired one (that replica died, this tunnel is alive).
func (s *Server) holdTunnel(ctx context.Context, org, cluster string) {
	if s.cfg.ReplicaURL == "" {
		return
	}
	t := time.NewTicker(s.tunnelLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if s.hub.Connected(org, cluster) {
				return // a newer session on this replica holds the claim now
			}
			rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = s.st.ReleaseTunnel(rctx, org, cluster, s.replicaID)
			cancel()
			return
		case <-t.C:
			held, err := s.st.RenewTunnel(ctx, org, cluster, s.replicaID, s.cfg.ReplicaURL, s.tunnelLease)
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.WarnContext(ctx, "renewing the agent tunnel claim failed; other replicas may not forward to it", "org", org, "cluster", cluster, "err", err)
			case err == nil && !held:
				// The agent connected to another replica after it connected
				// here: this tunnel is stale (half dead, or an old agent pod).
				// The newest connection wins, as within one replica's hub, so
				// previews through this replica forward to the live one.
				s.log.InfoContext(ctx, "the agent has a newer tunnel on another replica; closing this one", "org", org, "cluster", cluster)
				s.hub.Disconnect(org, cluster)
			}
		}
	}
}
