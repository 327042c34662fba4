package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// RouteSource gives the current route table; *routeapi.Client implements it.
type RouteSource interface {
	// Table returns the current table (nil or empty when none).
	Table() *routeapi.Table
	// Status describes the source (connected, version, last update).
	Status() routeapi.Status
}

// KeyExtractor finds the routing key in request headers; *routingkey.Extractor implements it.
type KeyExtractor interface {
	// Extract returns the routing key carried by h.
	Extract(h http.Header) (string, bool)
}

// StaticRoutes is a RouteSource with a fixed table (tests, or running without a route server).
type StaticRoutes struct {
	// T is the table served.
	T *routeapi.Table
}

// Table returns T.
func (s StaticRoutes) Table() *routeapi.Table { return s.T }

// Status reports a static, disconnected source.
func (s StaticRoutes) Status() routeapi.Status {
	return routeapi.Status{Version: s.T.Version(), Routes: s.T.Len()}
}

// destination kinds used in metrics and state.
const (
	kindLocal    = iota // no route: the local app
	kindFork            // routed to a fork or local tunnel
	kindBaseline        // routed, destination is the baseline: the local app
	kindLoop            // already forwarded by a sidecar: the local app
	nKinds
)

var kindNames = [nKinds]string{"local", "fork", "baseline", "loop"}

// reqState travels with a request from ServeHTTP to Rewrite, ModifyResponse and ErrorHandler.
type reqState struct {
	kind     int
	port     int32
	target   string
	h2       bool
	key      string
	dest     *routeapi.Destination
	status   int
	body     *trackBody
	in       *http.Request // the inbound request (ErrorHandler gets the outbound one)
	fellBack bool
	span     trace.Span // nil without a TracerProvider
	// override is the lookup's Target.OverrideAddr: the local override's forward for this request ("":
	// none). The fast path hands a request with one to net/http (override.go).
	override string
	ovr      int    // override outcome (ovrNone, ovrTrying, ...)
	replay   []byte // the buffered body, sent anew on each attempt when replayOK
	replayOK bool
}

type stateKey struct{}

// Proxy is the sidecar. Create it with New, then Start it and Shutdown it.
type Proxy struct {
	cfg    Config
	log    *slog.Logger
	routes RouteSource
	keys   KeyExtractor
	m      *metrics

	rp                               *httputil.ReverseProxy
	localH1, localH2, forkH1, forkH2 *http.Transport
	ovrH1, ovrH2                     *http.Transport // to local overrides' forwards
	localAddrs                       sync.Map        // int32 -> string
	trusted                          []netip.Prefix
	wtCache                          atomic.Pointer[wtCache]
	draining, started                atomic.Bool
	servers                          []*http.Server
	listeners                        []net.Listener
	addrs                            map[int32]string
	redirectAddr, adminAddr          string
	admin                            *http.Server
	tcp                              connTracker
	serveWG                          sync.WaitGroup
	lastForkTable                    atomic.Pointer[routeapi.Table]
	origDst                          func(net.Conn) (netip.AddrPort, error)
	// hopValue names this sidecar's workload in the hop header: only a request this workload's sidecars
	// already forwarded is a loop; a hop header leaked downstream by an app that copies headers is not.
	hopValue string
	hopSlice []string
	// tracer is nil without Config.TracerProvider.
	tracer trace.Tracer
	// capRec is nil while capture is off (Config.CaptureSink nil).
	capRec *capture.Recorder

	// The HTTP/1.1 fast path (h1fast.go): on unless tracing or Config.DisableFastPath.
	fastOn              bool
	fastLocal, fastFork *upPool
	fast                connTracker
	loops               []*evLoop // Config.EventLoop (h1loop_linux.go); nil: off
	loopNext            atomic.Uint32
	keyHeaders          []keyHeaderName
	bufs                *bufferPool
	stopSweep           chan struct{}
	stopOnce            sync.Once
}

type wtCache struct {
	t  *routeapi.Table
	wt routeapi.WorkloadTable
}

// New builds a sidecar; reg receives its metrics and is served on /metrics (nil: a private registry).
func New(cfg Config, routes RouteSource, keys KeyExtractor, log *slog.Logger, reg *prometheus.Registry) (*Proxy, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, fmt.Errorf("devmesh %s: %w", cfg.Workload, err)
	}
	if routes == nil {
		routes = StaticRoutes{}
	}
	if keys == nil {
		return nil, fmt.Errorf("devmesh %s: key extractor: required: %w", cfg.Workload, ErrInvalidConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p := &Proxy{cfg: cfg, log: log, routes: routes, keys: keys, trusted: cfg.TrustedProxies, addrs: map[int32]string{}, origDst: originalDst}
	m, err := newMetrics(reg, p)
	if err != nil {
		return nil, fmt.Errorf("devmesh %s: metrics: %w", cfg.Workload, err)
	}
	p.m = m
	if cfg.TracerProvider != nil {
		p.tracer = cfg.TracerProvider.Tracer("github.com/sandboxmesh/sandboxmesh/devmesh/proxy")
	}
	if cfg.CaptureSink != nil {
		p.capRec = capture.NewRecorder(diff.CapturePoint{Kind: diff.Kind(cfg.Workload.Kind), Namespace: cfg.Workload.Namespace,
			Name: cfg.Workload.Name, Direction: diff.Inbound}, cfg.CaptureMaxBodyBytes, cfg.CaptureRedactHeaders)
	}
	p.hopValue = cfg.Workload.String()
	p.hopSlice = []string{p.hopValue}
	p.localH1 = p.newTransport(false, false)
	p.localH2 = p.newTransport(true, false)
	p.forkH1 = p.newTransport(false, true)
	p.forkH2 = p.newTransport(true, true)
	p.ovrH1 = p.newOverrideTransport(false)
	p.ovrH2 = p.newOverrideTransport(true)
	p.bufs = newBufferPool()
	p.fastLocal = newUpPool(localIdleConnTimeout, cfg.DialTimeout, cfg.MaxIdleConnsPerHost)
	p.fastFork = newUpPool(cfg.ForkIdleConnTimeout, cfg.DialTimeout, cfg.MaxIdleConnsPerHost)
	if hn, ok := keys.(interface{ HeaderNames() []string }); ok && !cfg.DisableFastPath && p.tracer == nil {
		p.fastOn = true
		for _, n := range hn.HeaderNames() {
			p.keyHeaders = append(p.keyHeaders, keyHeaderName{lower: strings.ToLower(n), canonical: http.CanonicalHeaderKey(n)})
		}
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      roundTripper{p},
		BufferPool:     p.bufs,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return p, nil
}

func (p *Proxy) newTransport(h2, fork bool) *http.Transport {
	d := &net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		DialContext:            d.DialContext,
		MaxIdleConnsPerHost:    p.cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        localIdleConnTimeout,
		ResponseHeaderTimeout:  p.cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout:  time.Second,
		DisableCompression:     true,
		MaxResponseHeaderBytes: 1 << 20,
		WriteBufferSize:        16 << 10,
		ReadBufferSize:         16 << 10,
	}
	if fork {
		t.IdleConnTimeout = p.cfg.ForkIdleConnTimeout
	}
	if h2 {
		var pr http.Protocols
		pr.SetUnencryptedHTTP2(true)
		t.Protocols = &pr
		t.HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 1 << 20, SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	}
	return t
}

// newOverrideTransport is the fork transport with the override's dial and response-header bounds.
func (p *Proxy) newOverrideTransport(h2 bool) *http.Transport {
	t := p.newTransport(h2, true)
	d := &net.Dialer{Timeout: overrideDialTimeout, KeepAlive: 30 * time.Second}
	t.DialContext = d.DialContext
	t.ResponseHeaderTimeout = p.cfg.OverrideResponseHeaderTimeout
	return t
}

// localIdleConnTimeout bounds idle connections to the local app.
const localIdleConnTimeout = 90 * time.Second

type roundTripper struct{ p *Proxy }

func (rt roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	st, _ := r.Context().Value(stateKey{}).(*reqState)
	var t *http.Transport
	switch {
	case st == nil:
		t = rt.p.localH1
	case st.ovr == ovrTrying && st.h2:
		t = rt.p.ovrH2
	case st.ovr == ovrTrying:
		t = rt.p.ovrH1
	case st.kind == kindFork && st.h2:
		t = rt.p.forkH2
	case st.kind == kindFork:
		t = rt.p.forkH1
	case st.h2:
		t = rt.p.localH2
	default:
		t = rt.p.localH1
	}
	return t.RoundTrip(r)
}

func (p *Proxy) localAddr(port int32) string {
	if a, ok := p.localAddrs.Load(port); ok {
		return a.(string)
	}
	a := net.JoinHostPort(p.cfg.AppHost, strconv.Itoa(int(port)))
	p.localAddrs.Store(port, a)
	return a
}

// workloadTable returns this sidecar's routes in the current table, cached per table.
func (p *Proxy) workloadTable() (routeapi.WorkloadTable, *routeapi.Table) {
	t := p.routes.Table()
	if c := p.wtCache.Load(); c != nil && c.t == t {
		return c.wt, t
	}
	c := &wtCache{t: t, wt: t.Workload(p.cfg.Workload)}
	p.wtCache.Store(c)
	if old := p.lastForkTable.Swap(t); old != nil && old != t {
		// Routes changed: drop idle connections to forks that may be gone (bounded reuse).
		p.forkH1.CloseIdleConnections()
		p.forkH2.CloseIdleConnections()
		p.ovrH1.CloseIdleConnections()
		p.ovrH2.CloseIdleConnections()
		p.fastFork.closeIdle()
		p.loopsCloseIdleForks()
	}
	return c.wt, t
}

// portHandler serves one app port.
type portHandler struct {
	p     *Proxy
	port  int32
	proto Protocol
}

type portCtxKey struct{}

func (h portHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	port, proto := h.port, h.proto
	if port == 0 { // redirect mode: the original destination port travels in the context
		pc, _ := r.Context().Value(portCtxKey{}).(portInfo)
		port, proto = pc.port, pc.proto
	}
	h.p.serve(w, r, port, proto)
}

type portInfo struct {
	port  int32
	proto Protocol
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, port int32, proto Protocol) {
	start := time.Now()
	st := &reqState{kind: kindLocal, port: port}
	switch proto {
	case ProtocolH2C:
		st.h2 = true
	case ProtocolHTTP1:
	default:
		st.h2 = r.ProtoMajor == 2
	}
	// Capture points (docs/devmesh.md): a request carrying a capture id is recorded on the net/http path
	// only. The fast path's parser hands a connection whose request may carry an id (the capture header,
	// or a baggage field containing capture.BaggageKey) to net/http, so that with capture off, or on and no
	// id, the fast path pays one switch arm per header name and nothing else. The id is only read: the
	// request is forwarded unchanged.
	var cw *capture.Exchange
	if p.capRec != nil {
		if id, ok := capture.ID(r.Header); ok {
			cw = p.capRec.Start(w, r, id)
			w = cw
		}
	}
	hops := r.Header[HopHeader]
	p.decide(st, len(hops) > 0 && slices.Contains(hops, p.hopValue), forwardedView(r.Header))
	if st.override != "" {
		ok, stop := prepareOverride(r, st)
		if stop != nil {
			defer stop()
		}
		st.ovr = ovrSkipped
		if ok {
			st.ovr = ovrTrying
		}
	}
	if st.kind == kindFork && p.cfg.FallbackToBaseline && !st.replayOK && r.Body != nil && r.Body != http.NoBody {
		st.body = &trackBody{rc: r.Body}
		r.Body = st.body
	}
	ctx := context.WithValue(r.Context(), stateKey{}, st)
	if p.tracer != nil {
		ctx = p.startSpan(ctx, r, st)
	}
	st.in = r.WithContext(ctx)
	p.rp.ServeHTTP(w, st.in)
	kind := st.kind
	if st.fellBack {
		kind = kindBaseline
	}
	if st.span != nil {
		p.endSpan(st, kind)
	}
	if c := p.m.override[st.ovr]; c != nil { // nil: no override, or the client left during the attempt
		c.Inc()
	}
	p.m.observe(kind, st.status, time.Since(start))
	if cw != nil {
		p.cfg.CaptureSink.Add(cw.Finish())
	}
}

// decide routes a request (both paths): a loop goes to the local app, a routed key to its destination,
// anything else to the local app. It sets st.kind, st.key, st.dest and st.target; h may be nil (no key).
func (p *Proxy) decide(st *reqState, loop bool, h http.Header) {
	if loop {
		st.kind = kindLoop
	} else if h != nil {
		if key, ok := p.keys.Extract(h); ok {
			st.key = key
			wt, _ := p.workloadTable()
			if tg, ok := wt.Lookup(key, st.port); ok {
				st.dest, st.override = tg.Destination, tg.OverrideAddr
				if tg.Destination.Kind == routeapi.DestinationBaseline {
					st.kind = kindBaseline
				} else {
					st.kind, st.target = kindFork, tg.Addr
				}
			}
		}
	}
	if st.kind != kindFork {
		st.target = p.localAddr(st.port)
	}
}

// forwardedView returns h without the fields its Connection header names: those are hop-by-hop (RFC
// 9110 §7.6.1) and stripped before forwarding (httputil.ReverseProxy here, parseRequest on the fast
// path), so the routing key is read from what the destination receives. h itself is returned when
// Connection names none of its fields (no allocation); otherwise a shallow copy.
func forwardedView(h http.Header) http.Header {
	conn := h["Connection"]
	if len(conn) == 0 {
		return h
	}
	var out http.Header
	for _, v := range conn {
		for t := range strings.SplitSeq(v, ",") {
			k := http.CanonicalHeaderKey(textproto.TrimString(t))
			if _, ok := h[k]; !ok || k == "" {
				continue
			}
			if out == nil {
				out = maps.Clone(h)
			}
			delete(out, k)
		}
	}
	if out == nil {
		return h
	}
	return out
}

var traceContext = propagation.TraceContext{}

// startSpan starts the request's span, child of its traceparent.
func (p *Proxy) startSpan(ctx context.Context, r *http.Request, st *reqState) context.Context {
	ctx = traceContext.Extract(ctx, propagation.HeaderCarrier(r.Header))
	ctx, st.span = p.tracer.Start(ctx, "devmesh "+r.Method, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
			attribute.Int("server.port", int(st.port)), attribute.String("sandboxmesh.workload", p.hopValue)))
	return ctx
}

func (p *Proxy) endSpan(st *reqState, kind int) {
	attrs := []attribute.KeyValue{attribute.String("sandboxmesh.destination", kindNames[kind]), attribute.Int("http.response.status_code", st.status)}
	if st.key != "" {
		attrs = append(attrs, attribute.String("sandboxmesh.routing_key", st.key))
	}
	if st.dest != nil {
		attrs = append(attrs, attribute.String("sandboxmesh.sandbox", st.dest.Sandbox.String()))
	}
	if kind == kindFork {
		attrs = append(attrs, attribute.String("server.address", st.target))
	}
	switch st.ovr {
	case ovrServed:
		attrs = append(attrs, attribute.String("sandboxmesh.override", "served"))
	case ovrFellThrough, ovrDialFailed:
		attrs = append(attrs, attribute.String("sandboxmesh.override", "fell_through"))
	}
	st.span.SetAttributes(attrs...)
	if st.status >= 500 {
		st.span.SetStatus(codes.Error, http.StatusText(st.status))
	}
	st.span.End()
}

func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	st := pr.In.Context().Value(stateKey{}).(*reqState)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = st.target
	if st.ovr == ovrTrying {
		pr.Out.URL.Host = st.override
	}
	pr.Out.Host = pr.In.Host
	if st.replayOK {
		replayBody(pr.Out, st.replay)
	}
	h := pr.Out.Header
	delete(h, HopHeader)
	// The override's forward stands in for the fork: it gets the hop header too (the routing-key headers
	// are forwarded as they came, so the developer's process can propagate the key).
	if st.kind == kindFork || st.ovr == ovrTrying {
		h[HopHeader] = p.hopSlice
	}
	if st.span != nil {
		// The app (or the fork) continues the trace under the sidecar's span.
		traceContext.Inject(pr.In.Context(), propagation.HeaderCarrier(h))
	}
	p.setForwarded(pr)
}

// setForwarded writes X-Forwarded-For/Host/Proto and Forwarded. ReverseProxy has already removed the
// client's copies from pr.Out; they are kept (and appended to) only when the peer is a trusted proxy.
func (p *Proxy) setForwarded(pr *httputil.ProxyRequest) {
	in, h := pr.In, pr.Out.Header
	ip, _, err := net.SplitHostPort(in.RemoteAddr)
	if err != nil {
		ip = in.RemoteAddr
	}
	trusted := p.isTrusted(ip)
	xff := ip
	if prior := in.Header["X-Forwarded-For"]; trusted && len(prior) > 0 {
		xff = strings.Join(prior, ", ") + ", " + ip
	}
	h["X-Forwarded-For"] = []string{xff}
	host, proto := in.Host, "http"
	if trusted {
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			proto = v
		}
	}
	h["X-Forwarded-Host"] = []string{host}
	h["X-Forwarded-Proto"] = []string{proto}
	fwd := forwardedElement(ip, in.Host)
	if prior := in.Header["Forwarded"]; trusted && len(prior) > 0 {
		fwd = strings.Join(prior, ", ") + ", " + fwd
	}
	h["Forwarded"] = []string{fwd}
}

func (p *Proxy) isTrusted(ip string) bool {
	if len(p.trusted) == 0 {
		return false
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, pf := range p.trusted {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedElement renders one RFC 7239 element; IPv6 addresses and hosts are quoted.
func forwardedElement(ip, host string) string {
	return string(appendForwardedElement(nil, ip, []byte(host)))
}

// appendForwardedElement appends one RFC 7239 element (both paths); the host is quoted as
// strconv.Quote does.
func appendForwardedElement(dst []byte, ip string, host []byte) []byte {
	dst = append(dst, "for="...)
	if strings.IndexByte(ip, ':') >= 0 {
		dst = append(dst, `"[`...)
		dst = append(dst, ip...)
		dst = append(dst, `]"`...)
	} else {
		dst = append(dst, ip...)
	}
	if len(host) > 0 {
		dst = append(dst, ";host="...)
		plain := true
		for _, c := range host {
			if c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
				plain = false
				break
			}
		}
		if plain {
			dst = append(dst, '"')
			dst = append(dst, host...)
			dst = append(dst, '"')
		} else {
			dst = strconv.AppendQuote(dst, string(host))
		}
	}
	return append(dst, ";proto=http"...)
}

func (p *Proxy) modifyResponse(res *http.Response) error {
	if st, ok := res.Request.Context().Value(stateKey{}).(*reqState); ok {
		if st.ovr == ovrTrying {
			if !overrideUsed(res, st.dest.Override.ExceptStatusCodes) {
				discardSmall(res)
				return errOverrideDeclined
			}
			st.ovr = ovrServed
		}
		st.status = res.StatusCode
	}
	return nil
}

// errorBody is the JSON body of proxy errors.
type errorBody struct {
	Code       string `json:"code"`
	Error      string `json:"error"`
	RequestID  string `json:"requestId"`
	Sandbox    string `json:"sandbox,omitempty"`
	Fork       string `json:"fork,omitempty"`
	RoutingKey string `json:"routingKey,omitempty"`
}

func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	st := r.Context().Value(stateKey{}).(*reqState)
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		st.status = 499 // client went away; nothing to write
		return
	}
	if st.ovr == ovrTrying {
		// The override declined the request or failed before its answer: serve it again to the route's
		// destination, as if there were no override (its body is buffered: st.replay).
		st.ovr = ovrFellThrough
		if isDialError(err) {
			st.ovr = ovrDialFailed
		}
		if !errors.Is(err, errOverrideDeclined) {
			p.log.Debug("override unreachable, falling through", "sandbox", st.dest.Sandbox.String(), "override", st.override, "err", err)
		}
		p.rp.ServeHTTP(w, st.in)
		return
	}
	if st.kind == kindFork && p.cfg.FallbackToBaseline && isDialError(err) && (st.body == nil || !st.body.read.Load()) && !st.fellBack {
		p.log.Warn("fork unreachable, falling back to baseline", "sandbox", st.dest.Sandbox.String(), "fork", st.target, "err", err)
		st.kind, st.fellBack, st.target = kindBaseline, true, p.localAddr(st.port)
		p.rp.ServeHTTP(w, st.in)
		return
	}
	code, body := p.failure(st, requestID(r), err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(body)
}

// failure classifies an upstream error into the status and JSON body the client gets (both paths), logs
// it and records the status in st.
func (p *Proxy) failure(st *reqState, reqID string, err error) (int, errorBody) {
	code, c := http.StatusBadGateway, "upstream_unreachable"
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		code, c = http.StatusServiceUnavailable, "upstream_unavailable"
	case isTimeout(err):
		code, c = http.StatusGatewayTimeout, "upstream_timeout"
	}
	body := errorBody{Code: c, Error: err.Error(), RequestID: reqID}
	if st.kind == kindFork {
		body.Code = strings.Replace(c, "upstream", "fork", 1)
		body.Sandbox, body.Fork, body.RoutingKey = st.dest.Sandbox.String(), st.target, st.key
		body.Error = fmt.Sprintf("sandbox %s: fork %s: %v", body.Sandbox, st.target, err)
		p.log.Warn("fork unreachable", "sandbox", body.Sandbox, "fork", st.target, "routingKey", st.key, "err", err, "requestId", body.RequestID)
	} else {
		body.Error = fmt.Sprintf("app %s: %v", st.target, err)
		p.log.Warn("app unreachable", "app", st.target, "err", err, "requestId", body.RequestID)
	}
	st.status = code
	return code, body
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func requestID(r *http.Request) string {
	return requestIDOr(r.Header.Get("X-Request-Id"))
}

// requestIDOr returns id, or a random one when id is empty.
func requestIDOr(id string) string {
	if id != "" {
		return id
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// trackBody remembers whether the request body was read, so that a failed dial can fall back, and
// ignores Close (the server closes the real body).
type trackBody struct {
	rc   io.ReadCloser
	read atomic.Bool
}

func (b *trackBody) Read(p []byte) (int, error) {
	b.read.Store(true)
	return b.rc.Read(p)
}

func (b *trackBody) Close() error { return nil }

type bufferPool struct{ pool sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte { return *(b.pool.Get().(*[]byte)) }

func (b *bufferPool) Put(buf []byte) {
	if cap(buf) == 32<<10 {
		buf = buf[:cap(buf)]
		b.pool.Put(&buf)
	}
}
