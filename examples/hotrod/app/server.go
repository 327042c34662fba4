package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Service names one of the four services.
type Service string

// The services.
const (
	Frontend Service = "frontend"
	Route    Service = "route"
	Driver   Service = "driver"
	Customer Service = "customer"
	// Worker consumes the dispatch events frontend publishes (the asynchronous hop, see queue.go); it is
	// not part of "all", as it needs a broker.
	Worker Service = "worker"
)

// Services lists the services "all" runs, in start order (callees first).
var Services = []Service{Customer, Route, Driver, Frontend}

// Default listen addresses: distinct, so that all four run side by side on one machine.
const (
	DefaultFrontendHTTPAddr = ":8080"
	DefaultCustomerHTTPAddr = ":8081"
	DefaultDriverHTTPAddr   = ":8082"
	DefaultRouteHTTPAddr    = ":8083"
	DefaultWorkerHTTPAddr   = ":8084"
	DefaultDriverGRPCAddr   = ":9082"
)

// DefaultHTTPAddr returns the default HTTP listen address of svc.
func DefaultHTTPAddr(svc Service) string {
	switch svc {
	case Frontend:
		return DefaultFrontendHTTPAddr
	case Customer:
		return DefaultCustomerHTTPAddr
	case Driver:
		return DefaultDriverHTTPAddr
	case Route:
		return DefaultRouteHTTPAddr
	case Worker:
		return DefaultWorkerHTTPAddr
	}
	return ""
}

// ParseService parses a service name.
func ParseService(s string) (Service, error) {
	for _, svc := range append(Services, Worker) {
		if string(svc) == s {
			return svc, nil
		}
	}
	return "", fmt.Errorf("service %q: want frontend, route, driver, customer or worker", s)
}

// Identity says which version of a service this is.
type Identity struct {
	// Version is the service's version (env VERSION); "baseline" when empty.
	Version string
	// Sandbox is the sandbox of a fork (env SANDBOXMESH_SANDBOX_NAME); "" for the baseline.
	Sandbox string
	// SandboxRoutingKey is the routing key of that sandbox (env SANDBOXMESH_ROUTING_KEY).
	SandboxRoutingKey string
	// Pod is the host name.
	Pod string
}

// Config configures one service.
type Config struct {
	// Service to run.
	Service Service
	// HTTPAddr is the HTTP listen address (API, /healthz, /readyz, /metrics).
	HTTPAddr string
	// GRPCAddr is the gRPC listen address of the driver.
	GRPCAddr string
	// RouteURL is the base URL of the route service (frontend).
	RouteURL string
	// DriverAddr is the gRPC target of the driver service (frontend).
	DriverAddr string
	// CustomerURL is the base URL of the customer service (driver).
	CustomerURL string
	// Identity of this service.
	Identity Identity
	// Propagation mode; "" means [PropagationOTel].
	Propagation Propagation
	// CallTimeout bounds each call to another service (default 10 s).
	CallTimeout time.Duration
	// DatabaseURL (route only, optional) is a PostgreSQL database with a
	// table lookups (n int): route records each lookup there and answers the
	// database's name and row count, so a sandbox whose fork has a database
	// of its own (a resource plugin's) shows rows the baseline never sees.
	DatabaseURL string
	// EtaAlgo (route) is how the ETA is answered: "v1" (or empty) data.eta = "<minutes>m", "v2"
	// data.etaSeconds = "<seconds>" and no data.eta: a change of the answer's shape, for smart tests.
	EtaAlgo string
	// QueueURLs are the queues of the asynchronous hop (see queue.go): frontend publishes a dispatch
	// event on each (none: no event); a worker consumes the one it is given.
	QueueURLs []string
	// Logger receives the service's logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) defaults() {
	if c.Identity.Version == "" {
		c.Identity.Version = "baseline"
	}
	if c.Propagation == "" {
		c.Propagation = PropagationOTel
	}
	if c.CallTimeout <= 0 {
		c.CallTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate checks the fields the service needs.
func (c Config) Validate() error {
	if _, err := ParseService(string(c.Service)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if _, err := ParsePropagation(string(c.Propagation)); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if c.HTTPAddr == "" {
		return errors.New("config: httpAddr: required")
	}
	if c.EtaAlgo != "" && c.EtaAlgo != "v1" && c.EtaAlgo != "v2" {
		return fmt.Errorf("config: etaAlgo %q: want v1 or v2", c.EtaAlgo)
	}
	checkURL := func(field, v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("config: %s %q: want http://host:port", field, v)
		}
		return nil
	}
	switch c.Service {
	case Frontend:
		if err := checkURL("routeURL", c.RouteURL); err != nil {
			return err
		}
		if c.DriverAddr == "" {
			return errors.New("config: driverAddr: required")
		}
	case Worker:
		if len(c.QueueURLs) != 1 {
			return fmt.Errorf("config: queueURLs: a worker consumes exactly one queue, got %d", len(c.QueueURLs))
		}
		if err := checkURL("customerURL", c.CustomerURL); err != nil {
			return err
		}
	case Driver:
		if c.GRPCAddr == "" {
			return errors.New("config: grpcAddr: required")
		}
		if err := checkURL("customerURL", c.CustomerURL); err != nil {
			return err
		}
	}
	for i, u := range c.QueueURLs {
		if _, err := queueKind(u); err != nil {
			return fmt.Errorf("config: queueURLs[%d]: %w", i, err)
		}
	}
	return nil
}

// Server is a running service.
type Server struct {
	cfg  Config
	log  *slog.Logger
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator

	httpLn  net.Listener
	httpSrv *http.Server
	grpcLn  net.Listener
	grpcSrv *grpc.Server
	health  *health.Server

	transport  *http.Transport
	httpClient *http.Client
	driverConn *grpc.ClientConn
	db         *pgxpool.Pool

	buses       []bus
	events      eventLog
	stopConsume context.CancelFunc
	consumeDone chan struct{}

	requests *prometheus.CounterVec
	ready    atomic.Bool
	errc     chan error
	shutdown sync.Once
	shutErr  error
}

// Start listens on the configured addresses and serves in the background
// until [Server.Shutdown].
func Start(ctx context.Context, cfg Config) (*Server, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger.With("service", string(cfg.Service)), errc: make(chan error, 2)}
	s.tp, s.prop = newTelemetry(cfg.Service, cfg.Identity, cfg.Propagation)
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	s.httpClient = &http.Client{Transport: s.instrumentTransport(s.transport), Timeout: cfg.CallTimeout}

	reg := prometheus.NewRegistry()
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "hotrod_requests_total",
		Help: "Requests served, by endpoint, whether they carried a routing key, and status code.",
	}, []string{"endpoint", "keyed", "code"})
	reg.MustRegister(s.requests)

	if cfg.DatabaseURL != "" && cfg.Service == Route {
		pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("%s: DATABASE_URL: %w", cfg.Service, err)
		}
		pc.MaxConns = 4
		if s.db, err = pgxpool.NewWithConfig(ctx, pc); err != nil { // connects lazily
			return nil, fmt.Errorf("%s: database: %w", cfg.Service, err)
		}
	}
	if cfg.Service == Frontend {
		conn, err := grpc.NewClient(cfg.DriverAddr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultCallOptions(grpc.CallContentSubtype(CodecName)),
			grpc.WithChainUnaryInterceptor(s.grpcClientInterceptors()...))
		if err != nil {
			return nil, fmt.Errorf("driver client %s: %w", cfg.DriverAddr, err)
		}
		s.driverConn = conn
	}

	if err := s.startQueues(ctx); err != nil {
		s.closeClients()
		return nil, err
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.routes(mux)
	s.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		s.closeClients()
		_ = s.closeQueues(ctx)
		return nil, fmt.Errorf("%s: listen http %s: %w", cfg.Service, cfg.HTTPAddr, err)
	}
	s.httpLn = ln
	if cfg.Service == Driver {
		gln, err := lc.Listen(ctx, "tcp", cfg.GRPCAddr)
		if err != nil {
			_ = ln.Close()
			_ = s.closeQueues(ctx)
			s.closeClients()
			return nil, fmt.Errorf("%s: listen grpc %s: %w", cfg.Service, cfg.GRPCAddr, err)
		}
		s.grpcLn = gln
		s.grpcSrv = grpc.NewServer(grpc.ChainUnaryInterceptor(s.grpcServerInterceptors()...))
		s.grpcSrv.RegisterService(&driverServiceDesc, s)
		s.health = health.NewServer()
		s.health.SetServingStatus(DriverServiceName, healthpb.HealthCheckResponse_SERVING)
		healthpb.RegisterHealthServer(s.grpcSrv, s.health)
		go func() {
			if err := s.grpcSrv.Serve(gln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				s.errc <- fmt.Errorf("%s: serve grpc: %w", cfg.Service, err)
			}
		}()
	}
	go func() {
		if err := s.httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errc <- fmt.Errorf("%s: serve http: %w", cfg.Service, err)
		}
	}()
	s.ready.Store(true)
	attrs := []any{"http", s.HTTPAddr(), "version", cfg.Identity.Version, "build", Build, "sandbox", cfg.Identity.Sandbox, "propagation", string(cfg.Propagation)}
	if s.grpcLn != nil {
		attrs = append(attrs, "grpc", s.GRPCAddr())
	}
	s.log.InfoContext(ctx, "serving", attrs...)
	return s, nil
}

// HTTPAddr is the address the HTTP server listens on.
func (s *Server) HTTPAddr() string { return s.httpLn.Addr().String() }

// GRPCAddr is the address the gRPC server listens on ("" for services without one).
func (s *Server) GRPCAddr() string {
	if s.grpcLn == nil {
		return ""
	}
	return s.grpcLn.Addr().String()
}

// Err delivers an error if a server stops serving on its own.
func (s *Server) Err() <-chan error { return s.errc }

// SetReady sets what /readyz (and the gRPC health service) answer; Shutdown
// clears it. Clear it before a drain delay so endpoints are updated first.
func (s *Server) SetReady(ready bool) {
	s.ready.Store(ready)
	if s.health != nil {
		st := healthpb.HealthCheckResponse_NOT_SERVING
		if ready {
			st = healthpb.HealthCheckResponse_SERVING
		}
		s.health.SetServingStatus("", st)
		s.health.SetServingStatus(DriverServiceName, st)
	}
}

// Shutdown stops accepting requests and waits for the requests in flight
// until ctx is done; then it closes the remaining connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdown.Do(func() {
		s.SetReady(false)
		var errs []error
		if s.grpcSrv != nil {
			s.health.Shutdown()
			done := make(chan struct{})
			go func() { s.grpcSrv.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				s.grpcSrv.Stop()
				<-done
				errs = append(errs, fmt.Errorf("%s: grpc graceful stop: %w", s.cfg.Service, ctx.Err()))
			}
		}
		if err := s.httpSrv.Shutdown(ctx); err != nil {
			_ = s.httpSrv.Close()
			errs = append(errs, fmt.Errorf("%s: http shutdown: %w", s.cfg.Service, err))
		}
		if err := s.closeQueues(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := s.closeClients(); err != nil {
			errs = append(errs, err)
		}
		if err := s.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: tracer provider shutdown: %w", s.cfg.Service, err))
		}
		s.shutErr = errors.Join(errs...)
		s.log.InfoContext(ctx, "stopped", "error", s.shutErr)
	})
	return s.shutErr
}

func (s *Server) closeClients() error {
	s.transport.CloseIdleConnections()
	if s.db != nil {
		s.db.Close()
	}
	if s.driverConn != nil {
		if err := s.driverConn.Close(); err != nil {
			return fmt.Errorf("%s: close driver client: %w", s.cfg.Service, err)
		}
	}
	return nil
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	if !s.ready.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// errorBody is the JSON body of every 4xx/5xx answer that is not a Node.
type errorBody struct {
	Code      string `json:"code"`
	Error     string `json:"error"`
	RequestID string `json:"requestId"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(ctx context.Context, w http.ResponseWriter, code int, errCode, msg string) {
	writeJSON(w, code, errorBody{Code: errCode, Error: msg, RequestID: trace.SpanContextFromContext(ctx).TraceID().String()})
}

// statusRecorder remembers the status code of a response.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// api wraps an API handler: tracing and context extraction, a log line and a metric per request.
func (s *Server) api(endpoint string, h http.HandlerFunc) http.Handler {
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h(rec, r)
		ctx := r.Context()
		key, keyed := routingkey.Default.KeyFromContext(ctx)
		s.requests.WithLabelValues(endpoint, strconv.FormatBool(keyed), strconv.Itoa(rec.code)).Inc()
		s.log.InfoContext(ctx, "request", "method", r.Method, "path", r.URL.Path, "code", rec.code,
			"routingKey", key, "traceId", trace.SpanContextFromContext(ctx).TraceID().String(),
			"duration", time.Since(start))
	})
	return s.instrumentHandler(logged, string(s.cfg.Service)+" "+endpoint)
}
