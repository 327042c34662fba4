// Package preview is the control plane's preview proxy: it serves
// <endpoint>--<sandbox>.<preview-domain> (and the path form
// /preview/<org>/<sandbox>/<endpoint>/...) by authenticating the caller (API key
// header, or a cookie set through a signed login link), stripping those
// credentials, injecting the sandbox's routing key in every header form, adding
// Forwarded, and sending the request through the cluster agent's tunnel to the
// endpoint's in-cluster target. Only endpoints declared by the caller's org's
// sandboxes and route groups are reachable. HTTP/1.1, WebSocket upgrades and
// streamed responses pass through.
package preview

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// CookieName is the preview session cookie.
const CookieName = "sandboxmesh-preview"

// LoginPath is the path of the login link on a preview host.
const LoginPath = "/__sandboxmesh/login"

// Sentinel errors.
var (
	// ErrNotFound means no such endpoint in the caller's org.
	ErrNotFound = errors.New("preview endpoint not found")
	// ErrForbidden means the cluster's preview policy refuses the endpoint's address.
	ErrForbidden = errors.New("preview target refused by the cluster's preview policy")
	// ErrUnresolved means the endpoint's in-cluster address is not known yet.
	ErrUnresolved = errors.New("preview endpoint not resolved yet")
	// ErrBadToken means a login token or session cookie is invalid, expired,
	// used up or revoked.
	ErrBadToken = errors.New("invalid or expired preview token")
)

// TokenPrefix starts login-link tokens and session cookies; the rest is 32
// characters of base32 (160 random bits).
const TokenPrefix = "smp_"

// ValidToken reports whether s has the shape of a login token or session
// cookie, so malformed values are refused without a database look-up.
func ValidToken(s string) bool {
	if len(s) != len(TokenPrefix)+32 || !strings.HasPrefix(s, TokenPrefix) {
		return false
	}
	for i := len(TokenPrefix); i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// Target is a resolved preview endpoint.
type Target struct {
	Org        string
	Cluster    string
	Kind       string
	Name       string
	RoutingKey string
	// Address is host:port in the cluster.
	Address string
}

// Resolver authenticates callers and resolves endpoints; the API server implements it.
type Resolver interface {
	// AuthenticateKey returns the org an API key acts for (admin=true: any org).
	AuthenticateKey(ctx context.Context, key string) (org string, admin bool, err error)
	// ResolvePreview finds the endpoint of a sandbox (or route group) of org.
	ResolvePreview(ctx context.Context, org, name, endpoint string) (Target, error)
	// RedeemLogin uses up the login token of a link to endpoint of name
	// (once) and returns a new session token for the cookie and its expiry.
	RedeemLogin(ctx context.Context, token, name, endpoint string) (session string, exp time.Time, err error)
	// Session returns the org of a session token valid for endpoint of name:
	// unexpired, its API key not revoked, the object the same incarnation.
	Session(ctx context.Context, token, name, endpoint string) (org string, err error)
}

// Dialer opens a connection through a cluster's tunnel.
type Dialer interface {
	DialTunnel(ctx context.Context, org, cluster string, d apitypes.TunnelDial) (net.Conn, error)
}

// Proxy serves preview requests.
type Proxy struct {
	// Base is where preview URLs point; its domain (host form) is what
	// host-form requests are recognised by.
	Base      Base
	Resolver  Resolver
	Dialer    Dialer
	Extractor *routingkey.Extractor
	Logger    *slog.Logger
	// OnRequest observes each proxied request (status and time to response header).
	OnRequest func(code int, d time.Duration)
	// Tracer, when set, makes each preview request a server span (child of
	// the caller's traceparent) whose context the upstream request carries.
	Tracer trace.Tracer
	// DialTimeout bounds opening a connection through the tunnel, the agent's
	// answer included (default 10s): a hung agent does not hang requests.
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// header once the request is sent (default 60s; the body may then
	// stream for as long as it takes).
	ResponseHeaderTimeout time.Duration
	// Capture, when set, makes the proxy a smart-test capture point: a request carrying a capture id
	// (devmesh/capture.ID) is recorded at point Preview/<org>/<endpoint>/Inbound, with the upstream's
	// path, and API keys, cluster tokens, cookies and authorization redacted, and handed to Capture once
	// its response is written. Capture must not block.
	Capture func(org, cluster string, c diff.Capture)

	mu         sync.Mutex
	transports map[string]*http.Transport
}

// Matches reports whether r is a preview request.
func (p *Proxy) Matches(r *http.Request) bool {
	if strings.HasPrefix(r.URL.Path, "/preview/") {
		return true
	}
	_, _, ok := p.splitHost(r.Host)
	return ok
}

// splitHost parses <endpoint>--<name>.<domain> (ports are ignored).
func (p *Proxy) splitHost(host string) (endpoint, name string, ok bool) {
	if p.Base.Domain() == "" {
		return "", "", false
	}
	h := stripPort(strings.ToLower(host))
	d := stripPort(strings.ToLower(p.Base.Domain()))
	if !strings.HasSuffix(h, "."+d) {
		return "", "", false
	}
	label := strings.TrimSuffix(h, "."+d)
	if strings.Contains(label, ".") {
		return "", "", false
	}
	endpoint, name, ok = strings.Cut(label, "--")
	return endpoint, name, ok && dnsLabel(endpoint) && dnsLabel(name)
}

// dnsLabel reports whether s is a non-empty run of [a-z0-9-]: endpoint and
// sandbox names are DNS labels, so anything else in a host is not ours.
func dnsLabel(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func stripPort(s string) string {
	if h, _, err := net.SplitHostPort(s); err == nil {
		return h
	}
	return s
}

type request struct {
	org, name, endpoint string
	path                string
	hostForm            bool
}

func (p *Proxy) parse(r *http.Request) (request, bool) {
	if ep, name, ok := p.splitHost(r.Host); ok {
		return request{name: name, endpoint: ep, path: r.URL.Path, hostForm: true}, true
	}
	rest := strings.TrimPrefix(r.URL.Path, "/preview/")
	parts := strings.SplitN(rest, "/", 4)
	if len(parts) < 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return request{}, false
	}
	path := "/"
	if len(parts) == 4 {
		path += parts[3]
	}
	return request{org: parts[0], name: parts[1], endpoint: parts[2], path: path}, true
}

func (p *Proxy) fail(w http.ResponseWriter, r *http.Request, code int, reason, msg string) {
	id := r.Header.Get(apitypes.HeaderRequestID)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set(apitypes.HeaderPreviewError, "true")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(apitypes.ErrorResponse{Code: code, Error: msg, RequestID: id, Reason: reason})
	if p.OnRequest != nil {
		p.OnRequest(code, 0)
	}
}

var traceContext = propagation.TraceContext{}

// statusWriter records the status code for the span. ReverseProxy reaches
// the Flusher and Hijacker of the connection through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ServeHTTP proxies one preview request.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.Tracer == nil {
		p.serve(w, r, nil)
		return
	}
	ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	ctx, span := p.Tracer.Start(ctx, "preview "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("server.address", r.Host),
			attribute.String("url.path", r.URL.Path)))
	sw := &statusWriter{ResponseWriter: w}
	p.serve(sw, r.WithContext(ctx), span)
	code := sw.status
	if code == 0 {
		code = http.StatusSwitchingProtocols // hijacked by an upgrade
	}
	span.SetAttributes(attribute.Int("http.response.status_code", code))
	if code >= 500 {
		span.SetStatus(codes.Error, http.StatusText(code))
	}
	span.End()
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, span trace.Span) {
	start := time.Now()
	ctx := r.Context()
	req, ok := p.parse(r)
	if !ok {
		p.fail(w, r, http.StatusNotFound, apitypes.ReasonNotFound, "want /preview/<org>/<sandbox>/<endpoint>/... or <endpoint>--<sandbox>.<preview domain>")
		return
	}
	if req.path == LoginPath {
		p.login(w, r, req)
		return
	}
	org, err := p.authenticate(r, req)
	if err != nil {
		p.fail(w, r, http.StatusUnauthorized, apitypes.ReasonUnauthorized, err.Error())
		return
	}
	tgt, err := p.Resolver.ResolvePreview(ctx, org, req.name, req.endpoint)
	switch {
	case errors.Is(err, ErrNotFound):
		p.fail(w, r, http.StatusNotFound, apitypes.ReasonNotFound, fmt.Sprintf("no endpoint %q of sandbox %q", req.endpoint, req.name))
		return
	case errors.Is(err, ErrForbidden):
		p.fail(w, r, http.StatusForbidden, apitypes.ReasonForbidden, err.Error())
		return
	case errors.Is(err, ErrUnresolved):
		p.fail(w, r, http.StatusServiceUnavailable, apitypes.ReasonUnavailable, fmt.Sprintf("endpoint %q of sandbox %q is not resolved yet; wait until the sandbox is ready", req.endpoint, req.name))
		return
	case err != nil:
		p.fail(w, r, http.StatusBadGateway, apitypes.ReasonInternal, "resolving endpoint failed")
		return
	}
	if span != nil {
		span.SetAttributes(attribute.String("sandboxmesh.org", tgt.Org), attribute.String("sandboxmesh.cluster", tgt.Cluster),
			attribute.String("sandboxmesh.sandbox", tgt.Name), attribute.String("sandboxmesh.endpoint", req.endpoint),
			attribute.String("sandboxmesh.routing_key", tgt.RoutingKey), attribute.String("network.peer.address", tgt.Address))
	}
	code := 0
	rp := &httputil.ReverseProxy{
		Transport:     p.transport(tgt.Org, tgt.Cluster),
		FlushInterval: -1,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = tgt.Address
			pr.Out.URL.Path = req.path
			pr.Out.URL.RawPath = ""
			pr.Out.Host = tgt.Address
			pr.SetXForwarded()
			h := pr.Out.Header
			h.Del(apitypes.HeaderAPIKey)
			h.Del(apitypes.HeaderSignadotAPIKey)
			h.Del(apitypes.HeaderClusterToken)
			h.Del(apitypes.HeaderCSRFToken)
			stripCookie(h, CookieName)
			stripCookie(h, apitypes.SessionCookie) // the portal's session, sent along on the path form's host
			if span != nil {
				// The upstream continues the trace under the preview span
				// (before the routing key, which adds its tracestate member).
				traceContext.Inject(pr.In.Context(), propagation.HeaderCarrier(h))
			}
			p.Extractor.Inject(h, tgt.RoutingKey)
			proto := "http"
			if r.TLS != nil {
				proto = "https"
			}
			h.Set("Forwarded", forwarded(r, proto))
		},
		ModifyResponse: func(resp *http.Response) error {
			code = resp.StatusCode
			if p.OnRequest != nil {
				p.OnRequest(code, time.Since(start))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if p.Logger != nil {
				p.Logger.WarnContext(r.Context(), "preview upstream failed", "org", tgt.Org, "cluster", tgt.Cluster, "sandbox", tgt.Name, "address", tgt.Address, "err", err)
			}
			if isTimeout(err) {
				p.fail(w, r, http.StatusGatewayTimeout, apitypes.ReasonUnavailable, "upstream did not answer in time through the cluster tunnel: "+err.Error())
				return
			}
			p.fail(w, r, http.StatusBadGateway, apitypes.ReasonUnavailable, "upstream unreachable through the cluster tunnel: "+err.Error())
		},
	}
	var x *capture.Exchange
	if p.Capture != nil {
		if id, ok := capture.ID(r.Header); ok {
			rec := capture.NewRecorder(diff.CapturePoint{Kind: diff.KindPreview, Namespace: tgt.Org, Name: req.endpoint, Direction: diff.Inbound}, 0, previewRedacted)
			x = rec.Start(w, r, id)
			w = x
		}
	}
	rp.ServeHTTP(w, r)
	if x != nil {
		c := x.Finish()
		c.Request.Path = req.path // the upstream's, as the other capture points see it
		p.Capture(tgt.Org, tgt.Cluster, c)
	}
}

// previewRedacted are the credentials of the control plane a preview request may carry, redacted in
// captures besides devmesh/capture.DefaultRedactHeaders.
var previewRedacted = []string{apitypes.HeaderAPIKey, apitypes.HeaderSignadotAPIKey, apitypes.HeaderClusterToken}

// isTimeout reports whether err is a dial or response-header timeout.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func forwarded(r *http.Request, proto string) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if strings.Contains(host, ":") {
		host = `"[` + host + `]"`
	}
	return fmt.Sprintf("for=%s;host=%q;proto=%s", host, r.Host, proto)
}

// stripCookie removes one cookie from the Cookie header(s).
func stripCookie(h http.Header, name string) {
	vals := h.Values("Cookie")
	if len(vals) == 0 {
		return
	}
	var keep []string
	for _, v := range vals {
		for _, part := range strings.Split(v, ";") {
			part = strings.TrimSpace(part)
			if part == "" || strings.HasPrefix(part, name+"=") {
				continue
			}
			keep = append(keep, part)
		}
	}
	h.Del("Cookie")
	if len(keep) > 0 {
		h.Set("Cookie", strings.Join(keep, "; "))
	}
}

func (p *Proxy) authenticate(r *http.Request, req request) (string, error) {
	key := r.Header.Get(apitypes.HeaderAPIKey)
	if key == "" {
		key = r.Header.Get(apitypes.HeaderSignadotAPIKey)
	}
	if key != "" {
		org, admin, err := p.Resolver.AuthenticateKey(r.Context(), key)
		if err != nil {
			return "", errors.New("invalid or revoked API key")
		}
		switch {
		case req.org != "" && (admin || org == req.org):
			return req.org, nil
		case req.org != "":
			return "", errors.New("the API key has no access to this org")
		case admin:
			return "", errors.New("admin keys act on every org: use the path form /preview/<org>/<sandbox>/<endpoint>/ or an org's API key")
		}
		return org, nil
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return "", errors.New("missing credentials: send the sandboxmesh-api-key header or open a login link (POST /api/v2/orgs/<org>/sandboxes/<name>/preview-link)")
	}
	var org string
	if ValidToken(c.Value) {
		org, err = p.Resolver.Session(r.Context(), c.Value, req.name, req.endpoint)
	} else {
		err = ErrBadToken
	}
	if err != nil || (req.org != "" && org != req.org) {
		return "", errors.New("preview cookie invalid, expired, revoked or for another sandbox: open a new login link")
	}
	return org, nil
}

func (p *Proxy) login(w http.ResponseWriter, r *http.Request, req request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer") // the token is in the URL
	tok := r.URL.Query().Get("token")
	var (
		sess string
		exp  time.Time
		err  = ErrBadToken
	)
	if ValidToken(tok) {
		sess, exp, err = p.Resolver.RedeemLogin(r.Context(), tok, req.name, req.endpoint)
	}
	if err != nil {
		p.fail(w, r, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "login link invalid, expired, already used or revoked: create a new one")
		return
	}
	// The cookie is scoped to the endpoint: its host in the host form, its
	// path in the path form (where every endpoint shares the API's host).
	home := "/"
	if !req.hostForm {
		home = PathPrefix + url.PathEscape(req.org) + "/" + url.PathEscape(req.name) + "/" + url.PathEscape(req.endpoint) + "/"
	}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: sess,
		Path: home, Expires: exp, HttpOnly: true, Secure: r.TLS != nil || p.Base.Scheme == "https", SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, home, http.StatusFound)
}

func (p *Proxy) transport(org, cluster string) *http.Transport {
	k := org + "/" + cluster
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.transports == nil {
		p.transports = map[string]*http.Transport{}
	}
	if t, ok := p.transports[k]; ok {
		return t
	}
	dialTimeout, headerTimeout := p.DialTimeout, p.ResponseHeaderTimeout
	if dialTimeout <= 0 {
		dialTimeout = 10 * time.Second
	}
	if headerTimeout <= 0 {
		headerTimeout = 60 * time.Second
	}
	t := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, dialTimeout)
			defer cancel()
			c, err := p.Dialer.DialTunnel(ctx, org, cluster, apitypes.TunnelDial{Org: org, Address: addr})
			if err != nil && (ctx.Err() != nil || isTimeout(err)) {
				return nil, fmt.Errorf("dial %s through cluster %s/%s: no answer within %v: %w", addr, org, cluster, dialTimeout, context.DeadlineExceeded)
			}
			return c, err
		},
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       60 * time.Second,
		ResponseHeaderTimeout: headerTimeout,
		ForceAttemptHTTP2:     false,
	}
	p.transports[k] = t
	return t
}
