package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// Usage is the command line help of the hotrod binary.
const Usage = `usage: hotrod <frontend|route|driver|customer|worker|all> [flags]

Runs one service of hotrod-lite (or the four synchronous ones in one process with "all").
Every flag can also be set by its environment variable; a flag wins.

flags (env):
  --http-addr         HTTP_ADDR          HTTP listen address (frontend :8080, customer :8081, driver :8082, route :8083, worker :8084)
  --grpc-addr         GRPC_ADDR          driver gRPC listen address (:9082)
  --route-url         ROUTE_URL          frontend: route base URL (http://localhost:8083)
  --driver-addr       DRIVER_ADDR        frontend: driver gRPC target (localhost:9082)
  --customer-url      CUSTOMER_URL       driver, worker: customer base URL (http://localhost:8081)
  --queue-url         QUEUE_URL          frontend: comma-separated queues to publish dispatch events on (none);
                                         worker: the queue to consume (nats://, amqp:// or kafka://host:port)
  --version           VERSION            version reported in responses (baseline)
  --database-url      DATABASE_URL       route: PostgreSQL database whose lookups table records each lookup (none)
  --eta-algo          ETA_ALGO           route: v1 answers data.eta ("5m"); v2 answers data.etaSeconds ("300") instead (v1)
  --propagation       PROPAGATION        otel (one OpenTelemetry propagator) or library (routingkey helpers)
  --drain-delay       DRAIN_DELAY        time /readyz fails before the listeners close on SIGTERM (0s)
  --shutdown-timeout  SHUTDOWN_TIMEOUT   time in-flight requests get after that (10s)
  --log-format        LOG_FORMAT         json or text (json)
  --log-level         LOG_LEVEL          debug, info, warn or error (info)
also read: SANDBOXMESH_SANDBOX_NAME, SANDBOXMESH_ROUTING_KEY (set by the operator on forks), HOSTNAME;
worker: SANDBOXMESH_BASELINE_{KIND,NAMESPACE,NAME} and SANDBOXMESH_ROUTES_URL (set by the operator and the
injection webhook) for selective consumption.
`

// Options are the parsed command line of the hotrod binary.
type Options struct {
	// Services to run: one, or all four for "all".
	Services []Service
	// Config is the configuration shared by the services; with "all" each
	// service gets its default listen addresses.
	Config Config
	// DrainDelay is how long /readyz fails before the listeners close.
	DrainDelay time.Duration
	// ShutdownTimeout is how long in-flight requests get to finish.
	ShutdownTimeout time.Duration
	// LogFormat is json or text.
	LogFormat string
	// LogLevel is the minimum level logged.
	LogLevel slog.Level
}

// ParseArgs parses the command line (without the program name) with the
// environment read through getenv.
func ParseArgs(args []string, getenv func(string) string) (Options, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return Options{}, errors.New("missing service: frontend, route, driver, customer or all")
	}
	var o Options
	if args[0] == "all" {
		o.Services = Services
	} else {
		svc, err := ParseService(args[0])
		if err != nil {
			return Options{}, err
		}
		o.Services = []Service{svc}
		o.Config.Service = svc
	}
	env := func(name, def string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return def
	}
	fs := flag.NewFlagSet("hotrod "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	c := &o.Config
	fs.StringVar(&c.HTTPAddr, "http-addr", env("HTTP_ADDR", DefaultHTTPAddr(c.Service)), "")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", env("GRPC_ADDR", DefaultDriverGRPCAddr), "")
	fs.StringVar(&c.RouteURL, "route-url", env("ROUTE_URL", "http://localhost"+DefaultRouteHTTPAddr), "")
	fs.StringVar(&c.DriverAddr, "driver-addr", env("DRIVER_ADDR", "localhost"+DefaultDriverGRPCAddr), "")
	fs.StringVar(&c.CustomerURL, "customer-url", env("CUSTOMER_URL", "http://localhost"+DefaultCustomerHTTPAddr), "")
	fs.StringVar(&c.Identity.Version, "version", env("VERSION", "baseline"), "")
	fs.StringVar(&c.DatabaseURL, "database-url", env("DATABASE_URL", ""), "")
	fs.StringVar(&c.EtaAlgo, "eta-algo", env("ETA_ALGO", "v1"), "")
	queues := fs.String("queue-url", env("QUEUE_URL", ""), "")
	prop := fs.String("propagation", env("PROPAGATION", string(PropagationOTel)), "")
	drain := fs.String("drain-delay", env("DRAIN_DELAY", "0s"), "")
	shutdown := fs.String("shutdown-timeout", env("SHUTDOWN_TIMEOUT", "10s"), "")
	fs.StringVar(&o.LogFormat, "log-format", env("LOG_FORMAT", "json"), "")
	level := fs.String("log-level", env("LOG_LEVEL", "info"), "")
	if err := fs.Parse(args[1:]); err != nil {
		return Options{}, fmt.Errorf("flags: %w", err)
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, u := range strings.Split(*queues, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.QueueURLs = append(c.QueueURLs, u)
		}
	}
	var err error
	if c.Propagation, err = ParsePropagation(*prop); err != nil {
		return Options{}, fmt.Errorf("--propagation: %w", err)
	}
	if o.DrainDelay, err = time.ParseDuration(*drain); err != nil || o.DrainDelay < 0 {
		return Options{}, fmt.Errorf("--drain-delay %q: want a duration >= 0 such as 5s", *drain)
	}
	if o.ShutdownTimeout, err = time.ParseDuration(*shutdown); err != nil || o.ShutdownTimeout <= 0 {
		return Options{}, fmt.Errorf("--shutdown-timeout %q: want a duration > 0 such as 10s", *shutdown)
	}
	if o.LogFormat != "json" && o.LogFormat != "text" {
		return Options{}, fmt.Errorf("--log-format %q: want json or text", o.LogFormat)
	}
	if err := o.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return Options{}, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	c.Identity.Sandbox = getenv("SANDBOXMESH_SANDBOX_NAME")
	c.Identity.SandboxRoutingKey = getenv("SANDBOXMESH_ROUTING_KEY")
	c.Identity.Pod = getenv("HOSTNAME")
	return o, nil
}

// Configs returns the configuration of each service to run.
func (o Options) Configs() []Config {
	if len(o.Services) == 1 {
		return []Config{o.Config}
	}
	out := make([]Config, 0, len(o.Services))
	for _, svc := range o.Services {
		c := o.Config
		c.Service = svc
		c.HTTPAddr = DefaultHTTPAddr(svc)
		c.GRPCAddr = DefaultDriverGRPCAddr
		out = append(out, c)
	}
	return out
}

// Main runs the hotrod binary until ctx is done (the caller cancels it on
// SIGTERM or SIGINT) and returns the exit code.
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	o, err := ParseArgs(args, getenv)
	if err != nil {
		fmt.Fprintf(stderr, "hotrod: %v\n\n%s", err, Usage)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: o.LogLevel}
	var h slog.Handler = slog.NewJSONHandler(stderr, hopts)
	if o.LogFormat == "text" {
		h = slog.NewTextHandler(stderr, hopts)
	}
	log := slog.New(h)
	if err := Run(ctx, o, log); err != nil {
		log.Error("hotrod failed", "error", err)
		return 1
	}
	return 0
}

// Run starts the services of o, serves until ctx is done or a server fails,
// then shuts them down gracefully: /readyz fails for o.DrainDelay, then
// in-flight requests get o.ShutdownTimeout.
func Run(ctx context.Context, o Options, log *slog.Logger) error {
	var servers []*Server
	stopAll := func(ctx context.Context) error {
		var errs []error
		for i := len(servers) - 1; i >= 0; i-- { // callers first
			errs = append(errs, servers[i].Shutdown(ctx))
		}
		return errors.Join(errs...)
	}
	for _, c := range o.Configs() {
		c.Logger = log
		s, err := Start(ctx, c)
		if err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
			defer cancel()
			return errors.Join(err, stopAll(sctx))
		}
		servers = append(servers, s)
	}
	errc := make(chan error, len(servers))
	done := make(chan struct{})
	defer close(done)
	for _, s := range servers {
		go func() {
			select {
			case err := <-s.Err():
				errc <- err
			case <-done:
			}
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "drainDelay", o.DrainDelay, "timeout", o.ShutdownTimeout)
	case runErr = <-errc:
	}
	for _, s := range servers {
		s.SetReady(false)
	}
	if runErr == nil && o.DrainDelay > 0 {
		time.Sleep(o.DrainDelay)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownTimeout)
	defer cancel()
	return errors.Join(runErr, stopAll(sctx))
}
