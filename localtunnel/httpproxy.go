package localtunnel

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// maxProxyHeader bounds an HTTP proxy request's line and headers.
const maxProxyHeader = 64 << 10

// capReader fails once more than n bytes were read; lift raises the cap.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, fmt.Errorf("request header larger than %d bytes", maxProxyHeader)
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

func (c *capReader) lift() { c.n = 1 << 62 }

// proxyRequest is a parsed HTTP proxy request.
type proxyRequest struct {
	req     *http.Request
	connect bool
	addr    string // host:port to dial
}

// readProxyRequest reads one proxy request (line and headers bounded by
// maxProxyHeader) from r and returns it with the reader its body and any
// tunnelled bytes come from.
func readProxyRequest(r io.Reader) (proxyRequest, *bufio.Reader, error) {
	cr := &capReader{r: r, n: maxProxyHeader}
	br := bufio.NewReader(cr)
	req, err := http.ReadRequest(br)
	if err != nil {
		return proxyRequest{}, nil, fmt.Errorf("read proxy request: %w", err)
	}
	cr.lift()
	pr := proxyRequest{req: req}
	if req.Method == http.MethodConnect {
		pr.connect = true
		if h, p, err := net.SplitHostPort(req.RequestURI); err != nil || h == "" || p == "" {
			return pr, br, fmt.Errorf("CONNECT target %q is not host:port", req.RequestURI)
		}
		pr.addr = req.RequestURI
		return pr, br, nil
	}
	if req.URL.Scheme != "http" || req.URL.Host == "" {
		return pr, br, fmt.Errorf("request target %q: want an absolute http:// URL (use CONNECT for https)", req.RequestURI)
	}
	host, port := req.URL.Hostname(), req.URL.Port()
	if port == "" {
		port = "80"
	}
	if host == "" {
		return pr, br, fmt.Errorf("request target %q has no host", req.RequestURI)
	}
	pr.addr = net.JoinHostPort(host, port)
	return pr, br, nil
}

func httpError(w io.Writer, code int, msg string, extra ...string) {
	body := msg + "\n"
	h := ""
	for _, e := range extra {
		h += e + "\r\n"
	}
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n%s",
		code, http.StatusText(code), len(body), h, body)
}

// serveHTTP answers one HTTP proxy request on c.
func (s *SOCKSServer) serveHTTP(c *tunnelproto.BufConn) {
	pr, br, err := readProxyRequest(c)
	if err != nil {
		s.log.Info("http proxy request refused", "remote", c.RemoteAddr().String(), "err", err)
		httpError(c, http.StatusBadRequest, err.Error())
		return
	}
	if s.cfg.Username != "" && !s.httpAuthorized(pr.req.Header.Get("Proxy-Authorization")) {
		s.log.Info("http proxy authentication failed", "remote", c.RemoteAddr().String())
		httpError(c, http.StatusProxyAuthRequired, "proxy authentication required", `Proxy-Authenticate: Basic realm="sandboxmesh"`)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tunnelproto.DefaultTimeout)
	up, err := s.cfg.Dial(ctx, "tcp", pr.addr)
	cancel()
	if err != nil {
		code := http.StatusBadGateway
		switch {
		case errors.Is(err, tunnelproto.ErrForbidden):
			code = http.StatusForbidden
		case errors.Is(err, ErrNotConnected):
			code = http.StatusServiceUnavailable
		case errors.Is(err, context.DeadlineExceeded):
			code = http.StatusGatewayTimeout
		}
		s.log.Info("http proxy destination refused", "address", pr.addr, "err", err)
		httpError(c, code, err.Error())
		return
	}
	defer up.Close()
	_ = c.SetDeadline(time.Time{})
	client := &tunnelproto.BufConn{Conn: c.Conn, R: br}
	if pr.connect {
		if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
			return
		}
		tunnelproto.Pipe(client, up)
		return
	}
	// One request per connection: the next one may name another host.
	req := pr.req
	for _, h := range []string{"Proxy-Authorization", "Proxy-Connection", "Connection", "Keep-Alive"} {
		req.Header.Del(h)
	}
	req.Close = true
	if err := req.Write(up); err != nil {
		httpError(c, http.StatusBadGateway, "forward request: "+err.Error())
		return
	}
	_, _ = io.Copy(c, up)
}

func (s *SOCKSServer) httpAuthorized(h string) bool {
	enc, ok := strings.CutPrefix(h, "Basic ")
	if !ok {
		return false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return false
	}
	u, p, ok := strings.Cut(string(b), ":")
	return ok && subtle.ConstantTimeCompare([]byte(u), []byte(s.cfg.Username)) == 1 &&
		subtle.ConstantTimeCompare([]byte(p), []byte(s.cfg.Password)) == 1
}
