// Command devmesh is the SandboxMesh sidecar proxy: it fronts a baseline workload's ports and sends
// requests carrying a sandbox's routing key to the sandbox's fork. Every flag can also be set by the
// environment variable named next to it in its usage (the injection webhook uses the environment);
// a flag given on the command line wins. See docs/devmesh.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/sandboxmesh/sandboxmesh/internal/telemetry"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/devmesh/proxy"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "devmesh:", err)
		os.Exit(1)
	}
}

// options are the parsed flags.
type options struct {
	cfg           proxy.Config
	routeServer   string
	podName       string
	keyNames      []string
	customHeaders []string
	logLevel      slog.Level
	logFormat     string
	// sink is the capture sink's config (URL empty: capture off).
	sink capture.HTTPSinkConfig
}

// envFlags registers flags whose defaults come from environment variables.
type envFlags struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func (e *envFlags) str(p *string, name, env, def, usage string) {
	if v := e.getenv(env); v != "" {
		def = v
	}
	e.fs.StringVar(p, name, def, usage+" (env "+env+")")
}

func (e *envFlags) boolean(p *bool, name, env string, def bool, usage string) {
	if v := e.getenv(env); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("env %s=%q: not a boolean", env, v))
		}
		def = b
	}
	e.fs.BoolVar(p, name, def, usage+" (env "+env+")")
}

func (e *envFlags) duration(p *time.Duration, name, env string, def time.Duration, usage string) {
	if v := e.getenv(env); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("env %s=%q: not a duration", env, v))
		}
		def = d
	}
	e.fs.DurationVar(p, name, def, usage+" (env "+env+")")
}

func (e *envFlags) integer(p *int, name, env string, def int, usage string) {
	if v := e.getenv(env); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			e.errs = append(e.errs, fmt.Errorf("env %s=%q: not an integer", env, v))
		}
		def = n
	}
	e.fs.IntVar(p, name, def, usage+" (env "+env+")")
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// parse parses args and the environment into options.
func parse(args []string, getenv func(string) string, out io.Writer) (*options, error) {
	fs := flag.NewFlagSet("devmesh", flag.ContinueOnError)
	fs.SetOutput(out)
	e := &envFlags{fs: fs, getenv: getenv}
	o := &options{}
	c := &o.cfg
	var ports, redirectProtos, keyNames, customHeaders, trusted, logLevel string
	e.str(&c.Workload.Namespace, "namespace", "SANDBOXMESH_NAMESPACE", "", "namespace of the baseline workload (required)")
	e.str(&c.Workload.Name, "workload", "SANDBOXMESH_WORKLOAD", "", "name of the baseline workload (required)")
	e.str(&c.Workload.Kind, "workload-kind", "SANDBOXMESH_WORKLOAD_KIND", routeapi.KindDeployment, "kind of the baseline workload")
	e.str(&o.podName, "pod-name", "SANDBOXMESH_POD_NAME", getenv("HOSTNAME"), "pod name, for the route server's logs")
	e.str(&o.routeServer, "route-server", "SANDBOXMESH_ROUTE_SERVER", "", "route server gRPC address host:port (empty: no routes, everything goes to the app)")
	e.str(&keyNames, "key-names", "SANDBOXMESH_KEY_NAMES", "", "comma-separated routing-key names (default "+routingkey.DefaultKeyName+")")
	e.str(&customHeaders, "custom-headers", "SANDBOXMESH_CUSTOM_HEADERS", "", "comma-separated custom headers whose whole value is the routing key")
	e.str(&ports, "ports", "SANDBOXMESH_PORTS", "", "explicit mode: comma-separated listen:appPort[/auto|http|h2c|tcp]")
	e.str(&c.RedirectListen, "redirect-listen", "SANDBOXMESH_REDIRECT_LISTEN", "", "iptables mode: listen address of REDIRECTed connections, e.g. :15006 (SO_ORIGINAL_DST gives the app port)")
	e.str(&redirectProtos, "port-protocols", "SANDBOXMESH_PORT_PROTOCOLS", "", "iptables mode: comma-separated appPort[/http|h2c|tcp] for ports that are not auto HTTP (protocol default tcp)")
	e.str(&c.ListenHost, "listen-host", "SANDBOXMESH_LISTEN_HOST", "", "host the explicit-mode listeners bind (default all)")
	e.str(&c.AppHost, "app-host", "SANDBOXMESH_APP_HOST", "127.0.0.1", "host where the local app listens")
	e.str(&c.AdminListen, "admin-listen", "SANDBOXMESH_ADMIN_LISTEN", ":15020", "admin address (/healthz /readyz /routes /metrics); empty disables")
	e.boolean(&c.Pprof, "pprof", "SANDBOXMESH_PPROF", false, "serve /debug/pprof/ on the admin port")
	e.boolean(&c.FallbackToBaseline, "fallback-to-baseline", "SANDBOXMESH_FALLBACK_TO_BASELINE", false, "send a request to the app when its fork cannot be dialled (default: 502 JSON error)")
	var fast bool
	e.boolean(&fast, "http1-fast-path", "SANDBOXMESH_HTTP1_FAST_PATH", true, "proxy keep-alive HTTP/1.1 on the fast path (false: everything through net/http; the fast path is off anyway while tracing)")
	e.str(&c.EventLoop, "http1-event-loop", "SANDBOXMESH_HTTP1_EVENT_LOOP", proxy.EventLoopThread, "serve the fast path on event loops (Linux): thread (a locked thread per loop in epoll_wait), netpoll (loops parked on Go's netpoller) or off (the fast path without loops)")
	e.str(&trusted, "trusted-proxies", "SANDBOXMESH_TRUSTED_PROXIES", "", "comma-separated CIDRs whose X-Forwarded-*/Forwarded headers are kept and appended to")
	e.duration(&c.ReadHeaderTimeout, "read-header-timeout", "SANDBOXMESH_READ_HEADER_TIMEOUT", 10*time.Second, "time to read request headers")
	e.duration(&c.ReadTimeout, "read-timeout", "SANDBOXMESH_READ_TIMEOUT", 0, "time to read a whole request (0: unbounded, bodies stream)")
	e.duration(&c.WriteTimeout, "write-timeout", "SANDBOXMESH_WRITE_TIMEOUT", 0, "time to write a response (0: unbounded, responses stream)")
	e.duration(&c.IdleTimeout, "idle-timeout", "SANDBOXMESH_IDLE_TIMEOUT", 120*time.Second, "idle client keep-alive connection lifetime")
	e.integer(&c.MaxHeaderBytes, "max-header-bytes", "SANDBOXMESH_MAX_HEADER_BYTES", 64<<10, "request header size limit (431 beyond)")
	e.duration(&c.DialTimeout, "dial-timeout", "SANDBOXMESH_DIAL_TIMEOUT", 5*time.Second, "upstream connect timeout")
	e.duration(&c.ResponseHeaderTimeout, "response-header-timeout", "SANDBOXMESH_RESPONSE_HEADER_TIMEOUT", 0, "time to wait for upstream response headers (0: unbounded)")
	e.duration(&c.ForkIdleConnTimeout, "fork-idle-timeout", "SANDBOXMESH_FORK_IDLE_TIMEOUT", 30*time.Second, "idle lifetime of pooled connections to forks")
	e.integer(&c.MaxIdleConnsPerHost, "max-idle-conns-per-host", "SANDBOXMESH_MAX_IDLE_CONNS_PER_HOST", 256, "idle upstream connections kept per destination")
	e.duration(&c.DrainDelay, "drain-delay", "SANDBOXMESH_DRAIN_DELAY", 5*time.Second, "after SIGTERM, keep serving this long with /readyz failing")
	e.duration(&c.DrainTimeout, "drain-timeout", "SANDBOXMESH_DRAIN_TIMEOUT", 25*time.Second, "after the drain delay, wait this long for in-flight requests")
	var captureRedact string
	e.str(&o.sink.URL, "capture-url", "SANDBOXMESH_CAPTURE_URL", "", "smart-test capture points: URL receiving POSTed JSON arrays of captures (empty: capture off; docs/devmesh.md)")
	e.str(&captureRedact, "capture-redact-headers", "SANDBOXMESH_CAPTURE_REDACT_HEADERS", "", "comma-separated headers redacted in captures besides authorization, proxy-authorization, cookie and set-cookie")
	e.integer(&c.CaptureMaxBodyBytes, "capture-max-body-bytes", "SANDBOXMESH_CAPTURE_MAX_BODY_BYTES", capture.DefaultMaxBodyBytes, "bytes of each request and response body recorded in a capture")
	e.integer(&o.sink.QueueSize, "capture-queue-size", "SANDBOXMESH_CAPTURE_QUEUE_SIZE", capture.DefaultQueueSize, "captures waiting to be shipped; beyond it they are dropped (counted)")
	e.integer(&o.sink.BatchSize, "capture-batch-size", "SANDBOXMESH_CAPTURE_BATCH_SIZE", capture.DefaultBatchSize, "most captures in one POST")
	e.duration(&o.sink.FlushInterval, "capture-flush-interval", "SANDBOXMESH_CAPTURE_FLUSH_INTERVAL", capture.DefaultFlushInterval, "ship a partial batch this long after its first capture")
	e.duration(&o.sink.Timeout, "capture-timeout", "SANDBOXMESH_CAPTURE_TIMEOUT", capture.DefaultTimeout, "bound of one POST to the capture URL")
	e.str(&logLevel, "log-level", "SANDBOXMESH_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	e.str(&o.logFormat, "log-format", "SANDBOXMESH_LOG_FORMAT", "json", "log format: json or text")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.DisableFastPath = !fast
	errs := e.errs
	var err error
	if c.Ports, err = proxy.ParsePorts(ports); err != nil {
		errs = append(errs, fmt.Errorf("--ports: %w", err))
	}
	if c.RedirectProtocols, err = proxy.ParsePortProtocols(redirectProtos); err != nil {
		errs = append(errs, fmt.Errorf("--port-protocols: %w", err))
	}
	for _, s := range splitList(trusted) {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			if a, err2 := netip.ParseAddr(s); err2 == nil {
				pf = netip.PrefixFrom(a, a.BitLen())
			} else {
				errs = append(errs, fmt.Errorf("--trusted-proxies: %q: %w", s, err))
				continue
			}
		}
		c.TrustedProxies = append(c.TrustedProxies, pf)
	}
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if o.logFormat != "json" && o.logFormat != "text" {
		errs = append(errs, fmt.Errorf("--log-format %q: want json or text", o.logFormat))
	}
	o.keyNames, o.customHeaders = splitList(keyNames), splitList(customHeaders)
	c.CaptureRedactHeaders = splitList(captureRedact)
	if c.CaptureMaxBodyBytes < 0 {
		errs = append(errs, errors.New("--capture-max-body-bytes: must not be negative"))
	}
	if c.Workload.Namespace == "" {
		errs = append(errs, errors.New("--namespace (SANDBOXMESH_NAMESPACE): required"))
	}
	if c.Workload.Name == "" {
		errs = append(errs, errors.New("--workload (SANDBOXMESH_WORKLOAD): required"))
	}
	if len(c.Ports) == 0 && c.RedirectListen == "" {
		errs = append(errs, errors.New("--ports (SANDBOXMESH_PORTS) or --redirect-listen (SANDBOXMESH_REDIRECT_LISTEN): one is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return o, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	hopts := &slog.HandlerOptions{Level: o.logLevel}
	var h slog.Handler = slog.NewJSONHandler(stderr, hopts)
	if o.logFormat == "text" {
		h = slog.NewTextHandler(stderr, hopts)
	}
	log := slog.New(h).With("workload", o.cfg.Workload.String())

	keys, err := routingkey.NewExtractor(routingkey.Config{KeyNames: o.keyNames, CustomHeaders: o.customHeaders})
	if err != nil {
		return fmt.Errorf("routing-key config: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var routes proxy.RouteSource = proxy.StaticRoutes{}
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	clientDone := make(chan struct{})
	if o.routeServer != "" {
		client, err := routeapi.NewClient(routeapi.ClientConfig{
			Target:    o.routeServer,
			Workloads: []routeapi.WorkloadRef{o.cfg.Workload},
			Name:      o.cfg.Workload.Namespace + "/" + o.podName,
			Logger:    log.With("component", "routes"),
			// Snapshots of thousands of routes leave megabytes of decoding garbage: give it back.
			ReleaseMemoryAfter: 1000,
		})
		if err != nil {
			return err
		}
		routes = client
		go func() { defer close(clientDone); _ = client.Run(runCtx) }()
	} else {
		close(clientDone)
		log.Warn("no route server configured: every request goes to the local app")
	}
	tp, shutdownTracing, err := telemetry.Setup(ctx, telemetry.Options{Service: "devmesh"})
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())
	if telemetry.Enabled(tp) {
		o.cfg.TracerProvider = tp
	}
	sinkDone := make(chan struct{})
	sinkCtx, stopSink := context.WithCancel(context.Background())
	defer stopSink()
	if o.sink.URL != "" {
		o.sink.Logger = log.With("component", "capture")
		sink, err := capture.NewHTTPSink(o.sink, reg)
		if err != nil {
			return fmt.Errorf("--capture-url: %w", err)
		}
		o.cfg.CaptureSink = sink
		go func() { defer close(sinkDone); sink.Run(sinkCtx) }()
	} else {
		close(sinkDone)
	}
	p, err := proxy.New(o.cfg, routes, keys, log, reg)
	if err != nil {
		return err
	}
	if err := p.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("signal received, draining")
	// The drain has its own budget (drain delay + drain timeout); the signal context is already done.
	err = p.Shutdown(context.Background())
	cancelRun()
	stopSink() // ships what is queued, within one capture timeout
	<-sinkDone
	<-clientDone
	return err
}
