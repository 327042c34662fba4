package localtunnel

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// SOCKS5 constants (RFC 1928, RFC 1929).
const (
	socksVersion     = 5
	methodNoAuth     = 0x00
	methodUserPass   = 0x02
	methodNoneOK     = 0xff
	cmdConnect       = 0x01
	atypIPv4         = 0x01
	atypDomain       = 0x03
	atypIPv6         = 0x04
	repSucceeded     = 0x00
	repFailure       = 0x01
	repNotAllowed    = 0x02
	repNetUnreach    = 0x03
	repHostUnreach   = 0x04
	repCmdNotSupp    = 0x07
	repAtypNotSupp   = 0x08
	userPassVersion  = 0x01
	socksHandshakeTO = 10 * time.Second
)

// SOCKSConfig configures a SOCKS5 server.
type SOCKSConfig struct {
	// Dial connects a CONNECT request's destination (Client.DialCluster).
	// Domain names reach it unresolved.
	Dial tunnelproto.DialFunc
	// Username and Password, when set, are required (RFC 1929). Without them
	// the server serves only loopback listeners.
	Username, Password string
	// Log receives refused requests (nil: discarded).
	Log *slog.Logger
}

// SOCKSServer is a small SOCKS5 server (CONNECT only) that hands every
// destination to Dial; it is how processes on the machine reach the cluster.
// The same port also answers HTTP proxy requests (CONNECT and absolute-form
// http:// requests), for tools that honour HTTP_PROXY but not SOCKS.
type SOCKSServer struct {
	cfg SOCKSConfig
	log *slog.Logger

	mu     sync.Mutex
	ls     map[net.Listener]struct{}
	closed bool
	wg     sync.WaitGroup
}

// NewSOCKSServer returns a SOCKS5 server; cfg.Dial is required.
func NewSOCKSServer(cfg SOCKSConfig) (*SOCKSServer, error) {
	if cfg.Dial == nil {
		return nil, errors.New("socks5 server: a dial function is required")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("socks5 server: set both username and password, or neither")
	}
	if len(cfg.Username) > 255 || len(cfg.Password) > 255 {
		return nil, errors.New("socks5 server: username and password are at most 255 bytes")
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SOCKSServer{cfg: cfg, log: log, ls: map[net.Listener]struct{}{}}, nil
}

// Serve accepts clients on l until l fails or the server closes. Without
// credentials it refuses a listener that is not on a loopback address.
func (s *SOCKSServer) Serve(l net.Listener) error {
	if s.cfg.Username == "" {
		ap, err := netip.ParseAddrPort(l.Addr().String())
		if err != nil || !ap.Addr().IsLoopback() {
			return fmt.Errorf("socks5 server on %s: without a username and password it listens on loopback only", l.Addr())
		}
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return net.ErrClosed
	}
	s.ls[l] = struct{}{}
	s.mu.Unlock()
	for {
		c, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			delete(s.ls, l)
			s.mu.Unlock()
			if closed {
				return nil
			}
			return fmt.Errorf("socks5 server: accept: %w", err)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
		}()
	}
}

// Close stops the listeners; connections in flight end on their own.
func (s *SOCKSServer) Close() error {
	s.mu.Lock()
	s.closed = true
	for l := range s.ls {
		l.Close()
	}
	s.mu.Unlock()
	return nil
}

type socksRequest struct {
	cmd  byte
	host string
	port uint16
}

func (r socksRequest) address() string { return net.JoinHostPort(r.host, strconv.Itoa(int(r.port))) }

// errSOCKS is a request the server answers with a reply code.
type errSOCKS struct {
	rep byte
	msg string
}

func (e *errSOCKS) Error() string { return e.msg }

// readGreeting reads the version/methods message.
func readGreeting(r io.Reader) ([]byte, error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if h[0] != socksVersion {
		return nil, fmt.Errorf("SOCKS version %d, want 5", h[0])
	}
	if h[1] == 0 {
		return nil, errors.New("greeting offers no authentication method")
	}
	m := make([]byte, h[1])
	if _, err := io.ReadFull(r, m); err != nil {
		return nil, fmt.Errorf("read methods: %w", err)
	}
	return m, nil
}

// readUserPass reads an RFC 1929 username/password request.
func readUserPass(r io.Reader) (user, pass string, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return "", "", fmt.Errorf("read credentials: %w", err)
	}
	if h[0] != userPassVersion {
		return "", "", fmt.Errorf("username/password version %d, want 1", h[0])
	}
	u := make([]byte, h[1])
	if _, err := io.ReadFull(r, u); err != nil {
		return "", "", fmt.Errorf("read username: %w", err)
	}
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", "", fmt.Errorf("read password: %w", err)
	}
	p := make([]byte, n[0])
	if _, err := io.ReadFull(r, p); err != nil {
		return "", "", fmt.Errorf("read password: %w", err)
	}
	return string(u), string(p), nil
}

// readRequest reads a request; unsupported commands and address types are
// *errSOCKS with the reply code to send.
func readRequest(r io.Reader) (socksRequest, error) {
	var req socksRequest
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return req, fmt.Errorf("read request: %w", err)
	}
	if h[0] != socksVersion {
		return req, fmt.Errorf("request version %d, want 5", h[0])
	}
	if h[2] != 0 {
		return req, fmt.Errorf("request reserved byte %d, want 0", h[2])
	}
	req.cmd = h[1]
	switch h[3] {
	case atypIPv4:
		var a [4]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return req, fmt.Errorf("read IPv4 address: %w", err)
		}
		req.host = netip.AddrFrom4(a).String()
	case atypIPv6:
		var a [16]byte
		if _, err := io.ReadFull(r, a[:]); err != nil {
			return req, fmt.Errorf("read IPv6 address: %w", err)
		}
		req.host = netip.AddrFrom16(a).String()
	case atypDomain:
		var n [1]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			return req, fmt.Errorf("read domain length: %w", err)
		}
		if n[0] == 0 {
			return req, &errSOCKS{repHostUnreach, "empty domain name"}
		}
		d := make([]byte, n[0])
		if _, err := io.ReadFull(r, d); err != nil {
			return req, fmt.Errorf("read domain: %w", err)
		}
		for _, c := range d {
			if c <= 0x20 || c >= 0x7f || c == ':' || c == '/' {
				return req, &errSOCKS{repHostUnreach, fmt.Sprintf("domain %q has invalid characters", d)}
			}
		}
		req.host = string(d)
	default:
		return req, &errSOCKS{repAtypNotSupp, fmt.Sprintf("address type %d not supported", h[3])}
	}
	var p [2]byte
	if _, err := io.ReadFull(r, p[:]); err != nil {
		return req, fmt.Errorf("read port: %w", err)
	}
	req.port = binary.BigEndian.Uint16(p[:])
	if req.cmd != cmdConnect {
		return req, &errSOCKS{repCmdNotSupp, fmt.Sprintf("command %d not supported (CONNECT only)", req.cmd)}
	}
	return req, nil
}

func reply(w io.Writer, rep byte) error {
	// BND.ADDR/BND.PORT are not meaningful through the tunnel: 0.0.0.0:0.
	_, err := w.Write([]byte{socksVersion, rep, 0, atypIPv4, 0, 0, 0, 0, 0, 0})
	return err
}

func (s *SOCKSServer) serveConn(raw net.Conn) {
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(socksHandshakeTO))
	br := bufio.NewReader(raw)
	first, err := br.Peek(1)
	if err != nil {
		return
	}
	c := &tunnelproto.BufConn{Conn: raw, R: br}
	if first[0] != socksVersion {
		s.serveHTTP(c)
		return
	}
	methods, err := readGreeting(c)
	if err != nil {
		s.log.Debug("socks5 greeting refused", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	want := byte(methodNoAuth)
	if s.cfg.Username != "" {
		want = methodUserPass
	}
	offered := false
	for _, m := range methods {
		offered = offered || m == want
	}
	if !offered {
		_, _ = c.Write([]byte{socksVersion, methodNoneOK})
		s.log.Info("socks5 client offers no acceptable authentication method", "remote", c.RemoteAddr().String())
		return
	}
	if _, err := c.Write([]byte{socksVersion, want}); err != nil {
		return
	}
	if want == methodUserPass {
		u, p, err := readUserPass(c)
		ok := err == nil &&
			subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) == 1 &&
			subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
		st := byte(0)
		if !ok {
			st = 1
		}
		_, _ = c.Write([]byte{userPassVersion, st})
		if !ok {
			s.log.Info("socks5 authentication failed", "remote", c.RemoteAddr().String())
			return
		}
	}
	req, err := readRequest(c)
	if err != nil {
		var es *errSOCKS
		if errors.As(err, &es) {
			_ = reply(c, es.rep)
		}
		s.log.Info("socks5 request refused", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tunnelproto.DefaultTimeout)
	up, err := s.cfg.Dial(ctx, "tcp", req.address())
	cancel()
	if err != nil {
		rep := byte(repHostUnreach)
		switch {
		case errors.Is(err, tunnelproto.ErrForbidden):
			rep = repNotAllowed
		case errors.Is(err, ErrNotConnected):
			rep = repNetUnreach
		case errors.Is(err, context.DeadlineExceeded):
			rep = repFailure
		}
		_ = reply(c, rep)
		s.log.Info("socks5 destination refused", "address", req.address(), "err", err)
		return
	}
	defer up.Close()
	if err := reply(c, repSucceeded); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	tunnelproto.Pipe(c, up)
}
