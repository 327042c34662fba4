// Package proxy is the devmesh sidecar: it sits in front of a baseline workload's ports and sends each
// request whose routing key has a route (from the routeapi table) to the sandbox's fork, and every other
// request to the local app. It speaks HTTP/1.1 (keep-alive, chunked, Expect: 100-continue, upgrades),
// h2c and gRPC, passes plain TCP through, and serves an admin port with health, routes and metrics.
// A route with a local override sends its requests to a developer's machine first and falls through to
// the route's destination when the machine does not take them (override.go).
// Plain keep-alive HTTP/1.1 takes the fast path (h1fast.go, h1parse.go), proxied in the connection's own
// goroutine; everything else goes through net/http's server and httputil.ReverseProxy (proxy.go).
package proxy

import (
	"errors"
	"fmt"
	"go.opentelemetry.io/otel/trace"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// HopHeader marks a request forwarded to a fork by a devmesh sidecar; its value is the baseline workload
// (namespace/kind/name). A sidecar of that workload never forwards such a request again (loop safety),
// and every sidecar strips the header before its app sees it.
const HopHeader = "X-Sandboxmesh-Hop"

// ErrInvalidConfig is wrapped by every configuration error (with the flag or field name).
var ErrInvalidConfig = errors.New("invalid devmesh config")

// Protocol says how a port is proxied.
type Protocol string

const (
	// ProtocolAuto proxies HTTP and speaks to the upstream in the protocol the client used
	// (HTTP/1.1 or h2c).
	ProtocolAuto Protocol = ""
	// ProtocolHTTP1 proxies HTTP and always speaks HTTP/1.1 to the upstream.
	ProtocolHTTP1 Protocol = "http"
	// ProtocolH2C proxies HTTP and always speaks h2c (prior knowledge) to the upstream (gRPC ports).
	ProtocolH2C Protocol = "h2c"
	// ProtocolTCP passes bytes through to the local app without routing.
	ProtocolTCP Protocol = "tcp"
)

// PortMapping is one inbound listener in explicit mode: connections to Listen go to the app's App port.
type PortMapping struct {
	// Listen is the sidecar port (0 picks a free port, for tests).
	Listen int
	// App is the app's container port; it is also the baseline port looked up in the route table.
	App int32
	// Protocol of the port.
	Protocol Protocol
}

// String renders the mapping in the flag syntax listen:app[/protocol].
func (m PortMapping) String() string {
	s := strconv.Itoa(m.Listen) + ":" + strconv.Itoa(int(m.App))
	if m.Protocol != ProtocolAuto {
		s += "/" + string(m.Protocol)
	}
	return s
}

// ParsePorts parses a comma-separated list of listen:app[/protocol] mappings (protocol http, h2c, tcp
// or auto).
func ParsePorts(s string) ([]PortMapping, error) {
	var out []PortMapping
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		spec, proto, _ := strings.Cut(f, "/")
		l, a, ok := strings.Cut(spec, ":")
		if !ok {
			return nil, fmt.Errorf("ports[%d] %q: want listen:app[/protocol]: %w", i, f, ErrInvalidConfig)
		}
		lp, err1 := parsePort(l, true)
		ap, err2 := parsePort(a, false)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("ports[%d] %q: %v: %w", i, f, err, ErrInvalidConfig)
		}
		p, err := ParseProtocol(proto)
		if err != nil {
			return nil, fmt.Errorf("ports[%d] %q: %w", i, f, err)
		}
		out = append(out, PortMapping{Listen: lp, App: int32(ap), Protocol: p})
	}
	return out, nil
}

// ParseProtocol parses a port protocol name (empty or "auto" is ProtocolAuto).
func ParseProtocol(s string) (Protocol, error) {
	switch p := Protocol(strings.ToLower(strings.TrimSpace(s))); p {
	case "", "auto":
		return ProtocolAuto, nil
	case ProtocolHTTP1, ProtocolH2C, ProtocolTCP:
		return p, nil
	case "grpc", "http2":
		return ProtocolH2C, nil
	default:
		return "", fmt.Errorf("protocol %q: want auto, http, h2c or tcp: %w", s, ErrInvalidConfig)
	}
}

// ParsePortProtocols parses a comma-separated list of port[/protocol] (protocol defaults to tcp), used in
// redirect mode to say which original ports are not plain auto-detected HTTP.
func ParsePortProtocols(s string) (map[int32]Protocol, error) {
	out := map[int32]Protocol{}
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		ps, proto, hasProto := strings.Cut(f, "/")
		p, err := parsePort(ps, false)
		if err != nil {
			return nil, fmt.Errorf("port-protocols[%d] %q: %v: %w", i, f, err, ErrInvalidConfig)
		}
		pr := ProtocolTCP
		if hasProto {
			if pr, err = ParseProtocol(proto); err != nil {
				return nil, fmt.Errorf("port-protocols[%d] %q: %w", i, f, err)
			}
		}
		out[int32(p)] = pr
	}
	return out, nil
}

func parsePort(s string, zeroOK bool) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 || n > 65535 || (n == 0 && !zeroOK) {
		return 0, fmt.Errorf("port %q out of range", s)
	}
	return n, nil
}

// Config configures the sidecar. Zero durations and sizes pick the documented defaults.
type Config struct {
	// Workload is the baseline workload this sidecar fronts (its routes are looked up).
	Workload routeapi.WorkloadRef
	// Ports are the explicit-mode listeners (Service targetPort -> sidecar port -> app port).
	Ports []PortMapping
	// RedirectListen is the listen address of the iptables REDIRECT mode ("" disables it); the app port of
	// each connection is its original destination port (SO_ORIGINAL_DST).
	RedirectListen string
	// RedirectProtocols gives the protocol of original ports in redirect mode (default auto HTTP).
	RedirectProtocols map[int32]Protocol
	// ListenHost is the host the explicit-mode listeners bind (default all addresses).
	ListenHost string
	// AppHost is where the local app listens (default 127.0.0.1).
	AppHost string
	// AdminListen is the admin listen address ("" disables the admin server).
	AdminListen string
	// Pprof mounts net/http/pprof on the admin server.
	Pprof bool
	// FallbackToBaseline sends a request to the local app when its fork cannot be dialled (default: 502).
	FallbackToBaseline bool
	// TrustedProxies are peers whose X-Forwarded-*/Forwarded headers are kept and appended to; from any
	// other peer they are replaced.
	TrustedProxies []netip.Prefix
	// ReadHeaderTimeout bounds reading request headers (default 10s).
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request (default 0: none, bodies may stream).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response (default 0: none, responses may stream).
	WriteTimeout time.Duration
	// IdleTimeout closes idle client keep-alive connections (default 120s).
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request head (request line, fields and the empty line that ends them;
	// default 64 KiB); a longer head gets 431, on both paths.
	MaxHeaderBytes int
	// DialTimeout bounds connecting upstream (default 5s).
	DialTimeout time.Duration
	// ResponseHeaderTimeout bounds waiting for upstream response headers (default 0: none).
	ResponseHeaderTimeout time.Duration
	// OverrideResponseHeaderTimeout bounds waiting for a local override's response headers; past it the
	// request falls through to its route's destination (default 30s). Dialling an override is bounded
	// to 2s.
	OverrideResponseHeaderTimeout time.Duration
	// ForkIdleConnTimeout bounds how long an idle connection to a fork is kept (default 30s).
	ForkIdleConnTimeout time.Duration
	// MaxIdleConnsPerHost bounds idle upstream connections per destination (default 256).
	MaxIdleConnsPerHost int
	// DrainDelay is how long the sidecar keeps serving after SIGTERM with /readyz failing, so that
	// endpoints are updated before listeners close (default 0).
	DrainDelay time.Duration
	// DrainTimeout bounds waiting for in-flight requests and TCP connections at shutdown (default 25s).
	DrainTimeout time.Duration
	// DisableFastPath sends every HTTP/1.1 connection through net/http's server and transport instead
	// of the fast path (h1fast.go), for comparison or as an escape hatch.
	DisableFastPath bool
	// EventLoop serves the fast path's plain keep-alive HTTP/1.1 on event loops instead of a goroutine
	// per connection (h1loop_linux.go; Linux only): EventLoopThread (a locked OS thread per loop
	// blocking in epoll_wait), EventLoopNetpoll (loops parked on Go's netpoller) or EventLoopOff
	// (default, also ""). One loop per GOMAXPROCS.
	EventLoop string
	// TracerProvider makes one span per proxied HTTP request (parent from the
	// request's traceparent; the app sees the span as its parent). Nil: no
	// spans and no cost.
	TracerProvider trace.TracerProvider
	// CaptureSink receives a capture (docs/devmesh.md, "Capture points") of every request that carries a
	// smart-test capture id (capture.Header, or the capture.BaggageKey baggage member). Nil: capture off,
	// and ids are not even looked for.
	CaptureSink capture.Sink
	// CaptureRedactHeaders are redacted in captures besides capture.DefaultRedactHeaders.
	CaptureRedactHeaders []string
	// CaptureMaxBodyBytes bounds each recorded body (default capture.DefaultMaxBodyBytes).
	CaptureMaxBodyBytes int
}

// Config.EventLoop values.
const (
	EventLoopOff     = "off"
	EventLoopThread  = "thread"
	EventLoopNetpoll = "netpoll"
)

func (c *Config) withDefaults() error {
	var errs []error
	if c.Workload.Namespace == "" {
		errs = append(errs, fmt.Errorf("namespace: required: %w", ErrInvalidConfig))
	}
	if c.Workload.Name == "" {
		errs = append(errs, fmt.Errorf("workload: required: %w", ErrInvalidConfig))
	}
	if c.Workload.Kind == "" {
		c.Workload.Kind = routeapi.KindDeployment
	}
	if len(c.Ports) == 0 && c.RedirectListen == "" {
		errs = append(errs, fmt.Errorf("ports or redirect-listen: one is required: %w", ErrInvalidConfig))
	}
	seen := map[int]bool{}
	for i, p := range c.Ports {
		if p.Listen != 0 && seen[p.Listen] {
			errs = append(errs, fmt.Errorf("ports[%d]: listen port %d used twice: %w", i, p.Listen, ErrInvalidConfig))
		}
		seen[p.Listen] = true
	}
	switch c.EventLoop {
	case "", EventLoopOff, EventLoopThread, EventLoopNetpoll:
	default:
		errs = append(errs, fmt.Errorf("eventLoop: %q: must be %s, %s or %s: %w", c.EventLoop, EventLoopOff, EventLoopThread, EventLoopNetpoll, ErrInvalidConfig))
	}
	if c.CaptureMaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("captureMaxBodyBytes: must not be negative: %w", ErrInvalidConfig))
	}
	if c.AppHost == "" {
		c.AppHost = "127.0.0.1"
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ReadHeaderTimeout, 10*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.DialTimeout, 5*time.Second)
	def(&c.ForkIdleConnTimeout, 30*time.Second)
	def(&c.OverrideResponseHeaderTimeout, 30*time.Second)
	def(&c.DrainTimeout, 25*time.Second)
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.MaxIdleConnsPerHost <= 0 {
		c.MaxIdleConnsPerHost = 256
	}
	return errors.Join(errs...)
}
