// Package api is the control plane's REST API (/api/v2, gin): orgs and quotas,
// API keys, people and access (sessions, members, teams, invitations, service
// accounts, the audit trail; thin handlers over controlplane/identity,
// people.go, with every org route authorised by role in orgAccess), clusters
// and cluster tokens, sandboxes and route groups — wire
// compatible with the Signadot v2 API for those resources — plus the agent
// protocol (long-poll of desired state, status reports, the preview tunnel),
// job runner groups, jobs, their log streams and artifacts with the runner
// protocol (thin handlers over controlplane/jobs, jobs.go), smart tests and
// their executions (over controlplane/smarttests, smarttests.go), and the preview
// endpoints, plus the routes Signadot clients call early
// (orgs of a key, sandbox status explanation, devmesh analysis; compat.go).
// It serves its OpenAPI 3 document at /api/v2/openapi.json (and Signadot's
// /api/v2/meta/openapi.json), logs every request with slog, exports
// Prometheus metrics and starts an OpenTelemetry span per request.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/preview"
	"github.com/sandboxmesh/sandboxmesh/controlplane/resourceplugins"
	"github.com/sandboxmesh/sandboxmesh/controlplane/smarttests"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/tunnel"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Config configures a Server.
type Config struct {
	// Store is required.
	Store *store.Store
	// Logger receives access logs and errors; nil discards.
	Logger *slog.Logger
	// Registerer receives the metrics; nil makes a private registry.
	Registerer prometheus.Registerer
	// Gatherer serves the metrics (MetricsHandler); nil uses the private registry.
	Gatherer prometheus.Gatherer
	// TracerProvider makes the request spans; nil disables tracing.
	TracerProvider trace.TracerProvider
	// PreviewURL is the base of preview URLs (see preview.Base): host form
	// "https://preview.example.com" (endpoints get
	// https://<endpoint>--<sandbox>.preview.example.com), path form
	// "https://sm.example.com/preview", or "/preview" for the path form on the
	// address each client used. Empty: host form on preview.localhost.
	PreviewURL string
	// MaxBodyBytes caps request bodies (default 1 MiB).
	MaxBodyBytes int64
	// NewRoutingKey makes routing keys (default routingkey.New).
	NewRoutingKey func() string
	// Extractor injects routing keys into preview requests (default routingkey.Default).
	Extractor *routingkey.Extractor
	// LongPollTimeout bounds an agent's poll (default 30s; agents may ask for less).
	LongPollTimeout time.Duration
	// PollInterval is how often a waiting poll re-reads the database, and how
	// often the change feed (store.Follow) is read when no PostgreSQL
	// notification wakes it, for changes made by other replicas (default 1s).
	PollInterval time.Duration
	// PreviewCacheTTL is how long the preview proxy reuses an API-key check and an
	// endpoint resolution (default 2s; negative disables). Changes clear the
	// caches: this replica's at once, other replicas' when the change feed
	// reports them; the TTL bounds staleness while the feed is down.
	PreviewCacheTTL time.Duration
	// ReplicaURL is how the other replicas reach this one (e.g.
	// http://10.0.3.7:8080). Set it when several replicas share a PostgreSQL
	// database: preview requests arriving at a replica that does not hold the
	// cluster's agent tunnel are then dialed through the one that does. Empty:
	// a single replica.
	ReplicaURL string
	// WriteTimeout bounds writing the answer of an API request (default 60s;
	// negative: none). Long polls move it; tunnels and preview requests have
	// none (see deadlines.go).
	WriteTimeout time.Duration
	// TrustedProxies lists the addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For / X-Real-IP name the client (access logs, the agent's
	// lastConnectedIp). Empty: no proxy is trusted and the client is the
	// connection's peer.
	TrustedProxies []string
	// PreviewDialTimeout bounds opening a preview connection through an
	// agent's tunnel (default 10s); PreviewResponseHeaderTimeout the wait for
	// the upstream's response header (default 60s).
	PreviewDialTimeout, PreviewResponseHeaderTimeout time.Duration
	// Jobs configures the jobs service (docs/jobs.md): Artifacts (the
	// artifact store; nil refuses uploads), MaxArtifactBytes and the
	// sweeper's windows. Store and Logger are filled in from this Config.
	Jobs jobs.Config
	// SmartTests configures the smart tests service (docs/smart-tests.md):
	// bounds of reports and captures, the capture grace, the diff's options.
	// Store, Jobs and Logger are filled in from this Config.
	SmartTests smarttests.Config
	// Identity configures people and access (controlplane/identity):
	// AllowSignup, password hashing parameters, session lifetimes, login
	// rate limits. Store and Logger are filled in from this Config.
	Identity identity.Config
	// OIDC, when its Issuer is set, enables single sign-on with that OpenID Connect provider
	// (GET /api/v2/auth/oidc/login and /callback).
	OIDC identity.OIDCConfig
	// SecureCookies marks the session cookie Secure even on plain HTTP
	// requests (set it behind a TLS-terminating proxy); requests that came
	// over TLS always get Secure cookies.
	SecureCookies bool
}

// Server serves the API.
type Server struct {
	cfg     Config
	st      *store.Store
	log     *slog.Logger
	tracer  trace.Tracer
	engine  *gin.Engine
	metrics *metrics
	// ui serves the pages (SetUI): every path outside the API's.
	ui  http.Handler
	hub *tunnel.Hub
	// replicaID names this process among the replicas; replicaKey
	// authenticates replica-to-replica dials (see replicas.go).
	replicaID  string
	replicaMu  sync.Mutex
	replicaKey []byte
	preview    *preview.Proxy
	notify     *notifier
	routes     []route
	jobs       *jobs.Service
	plugins    *resourceplugins.Service
	tests      *smarttests.Service
	ids        *identity.Service
	oidc       *identity.OIDC // nil: single sign-on is not configured
	// actions maps "METHOD /gin/path" of every org route to the action its
	// role check asks identity.Allowed about; opIDs to its OpenAPI
	// operation ID (the audit trail's action).
	actions map[string]identity.Action
	opIDs   map[string]string

	// Preview-path caches (see PreviewCacheTTL).
	keyCache     *ttlCache[Principal]
	targetCache  *ttlCache[preview.Target]
	sessionCache *ttlCache[store.PreviewSessionRecord]
	// tunnelLease: how long a tunnel claim lives unrenewed (tests shorten it).
	tunnelLease time.Duration
}

type route struct{ Method, Path string }

var reRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

// New builds a Server.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.NewRoutingKey == nil {
		cfg.NewRoutingKey = routingkey.New
	}
	if cfg.Extractor == nil {
		cfg.Extractor = routingkey.Default
	}
	if cfg.LongPollTimeout <= 0 {
		cfg.LongPollTimeout = 30 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 60 * time.Second
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.Registerer == nil {
		reg := prometheus.NewRegistry()
		cfg.Registerer, cfg.Gatherer = reg, reg
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	tp := cfg.TracerProvider
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	pb, err := preview.ParseBase(cfg.PreviewURL)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:     cfg,
		st:      cfg.Store,
		log:     cfg.Logger,
		tracer:  tp.Tracer("github.com/sandboxmesh/sandboxmesh/controlplane/api"),
		metrics: m,
		notify:  newNotifier(),
	}
	ttl := cfg.PreviewCacheTTL
	if ttl == 0 {
		ttl = 2 * time.Second
	}
	if ttl < 0 {
		ttl = 0
	}
	s.keyCache, s.targetCache = newTTLCache[Principal](ttl), newTTLCache[preview.Target](ttl)
	s.sessionCache = newTTLCache[store.PreviewSessionRecord](ttl)
	s.hub = tunnel.NewHub(cfg.Logger)
	cfg.Store.Watch(s.afterWrite)
	go s.followChanges(ctx) // other replicas' changes to the same watchers, until ctx ends
	jc := cfg.Jobs
	jc.Store, jc.Logger = cfg.Store, cfg.Logger
	if s.jobs, err = jobs.New(jc); err != nil {
		return nil, err
	}
	go s.jobs.Run(ctx) // the sweeper, until ctx ends
	s.plugins = resourceplugins.New(cfg.Store)
	tc := cfg.SmartTests
	tc.Store, tc.Jobs, tc.Logger = cfg.Store, s.jobs, cfg.Logger
	if s.tests, err = smarttests.New(tc); err != nil {
		return nil, err
	}
	go s.tests.Run(ctx) // fires smart test triggers, until ctx ends
	ic := cfg.Identity
	ic.Store, ic.Logger = cfg.Store, cfg.Logger
	if s.ids, err = identity.New(ic); err != nil {
		return nil, err
	}
	go s.ids.Run(ctx) // deletes dead sessions, until ctx ends
	if cfg.OIDC.Issuer != "" {
		if s.oidc, err = s.ids.NewOIDC(cfg.OIDC); err != nil {
			return nil, err
		}
	}
	s.actions, s.opIDs = map[string]identity.Action{}, map[string]string{}
	for _, op := range Operations {
		s.opIDs[op.Method+" "+op.Path] = op.ID
	}
	s.replicaID, s.tunnelLease = newReplicaID(), defaultTunnelLease
	s.preview = &preview.Proxy{
		Base:                  pb,
		Resolver:              s,
		Dialer:                replicaDialer{s},
		Extractor:             cfg.Extractor,
		Logger:                cfg.Logger,
		DialTimeout:           cfg.PreviewDialTimeout,
		ResponseHeaderTimeout: cfg.PreviewResponseHeaderTimeout,
		OnRequest: func(code int, d time.Duration) {
			m.previewRequests.WithLabelValues(strconv.Itoa(code)).Inc()
			m.previewDuration.Observe(d.Seconds())
		},
	}
	s.preview.Capture = s.previewCaptureSink(ctx)
	if _, off := tp.(noop.TracerProvider); !off {
		s.preview.Tracer = s.tracer // preview requests bypass gin: the proxy makes their spans
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.RedirectTrailingSlash = false
	e.RedirectFixedPath = false
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		return nil, fmt.Errorf("api: trusted proxies %v: %w", cfg.TrustedProxies, err)
	}
	e.Use(s.writeDeadline, s.requestID, s.recoverer, s.observe)
	e.NoRoute(func(c *gin.Context) {
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, fmt.Sprintf("no route %s %s", c.Request.Method, c.Request.URL.Path))
	})
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, http.StatusMethodNotAllowed, apitypes.ReasonNotFound, fmt.Sprintf("method %s not allowed on %s", c.Request.Method, c.Request.URL.Path))
	})
	s.engine = e
	s.register()
	return s, nil
}

// Handler returns the HTTP handler: preview hosts go to the preview proxy,
// everything else to the API. Trailing slashes are ignored (Signadot's paths have some).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.preview.Matches(r) {
			// Preview requests bypass gin: give them the request ID its
			// middleware gives API requests (errors carry it, the upstream sees it).
			if !reRequestID.MatchString(r.Header.Get(apitypes.HeaderRequestID)) {
				r.Header.Set(apitypes.HeaderRequestID, newRequestID())
			}
			w.Header().Set(apitypes.HeaderRequestID, r.Header.Get(apitypes.HeaderRequestID))
			s.preview.ServeHTTP(w, r)
			return
		}
		if s.ui != nil && uiPath(r.URL.Path) {
			s.ui.ServeHTTP(w, r)
			return
		}
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") && !strings.HasPrefix(p, "/preview/") {
			r.URL.Path = strings.TrimRight(p, "/")
			r.URL.RawPath = ""
		}
		s.engine.ServeHTTP(w, r)
	})
}

// SetUI makes Handler serve the web pages (controlplane/portal) at every
// path that is not the API's (/api/..., /healthz, /readyz) nor a preview's.
// Call it before serving.
func (s *Server) SetUI(h http.Handler) { s.ui = h }

// uiPath reports whether a path belongs to the pages rather than the API.
func uiPath(p string) bool {
	switch {
	case p == "/api" || strings.HasPrefix(p, "/api/"), p == "/healthz", p == "/readyz",
		p == "/preview" || strings.HasPrefix(p, "/preview/"):
		return false
	}
	return true
}

// MetricsHandler serves the Prometheus metrics. It is not part of Handler:
// serve it on a listener of its own that only the monitoring system reaches.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{})
}

// Routes lists the registered API routes (method and gin path).
func (s *Server) Routes() []struct{ Method, Path string } {
	out := make([]struct{ Method, Path string }, len(s.routes))
	for i, r := range s.routes {
		out[i] = struct{ Method, Path string }(r)
	}
	return out
}

// Hub returns the registry of agent tunnels.
func (s *Server) Hub() *tunnel.Hub { return s.hub }

// Identity returns the identity service (the portal's pages call it too).
func (s *Server) Identity() *identity.Service { return s.ids }

func (s *Server) handle(method, path string, h ...gin.HandlerFunc) {
	s.routes = append(s.routes, route{method, path})
	if path == orgPath || strings.HasPrefix(path, orgPath+"/") {
		s.actions[method+" "+path] = routeAction(method, path)
	}
	s.engine.Handle(method, path, h...)
}

func (s *Server) register() {
	s.engine.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"ok": true}) })
	s.engine.GET("/readyz", func(c *gin.Context) {
		if err := s.st.Ping(c.Request.Context()); err != nil {
			s.fail(c, http.StatusServiceUnavailable, apitypes.ReasonUnavailable, "database unavailable")
			return
		}
		c.JSON(http.StatusOK, gin.H{"ok": true})
	})
	if s.cfg.ReplicaURL != "" {
		s.engine.GET(internalTunnelDialPath, s.internalTunnelDial) // replica to replica, HMAC-authenticated
	}
	s.handle(http.MethodGet, "/api/v2/openapi.json", s.openAPI)
	s.handle(http.MethodGet, "/api/v2/meta/openapi.json", s.openAPI) // Signadot's path of its document

	o := orgPath
	user := s.authUser
	s.handle(http.MethodGet, "/api/v2/orgs", user, s.listOrgs)
	s.handle(http.MethodPut, o, user, s.putOrg)
	s.handle(http.MethodGet, o, user, s.orgAccess, s.getOrg)
	s.handle(http.MethodGet, o+"/quota", user, s.orgAccess, s.getQuota)
	s.handle(http.MethodPut, o+"/quota", user, s.orgAccess, s.putQuota)

	for _, k := range []store.Kind{store.KindSandbox, store.KindRouteGroup} {
		col := o + "/sandboxes"
		if k == store.KindRouteGroup {
			col = o + "/routegroups"
		}
		s.handle(http.MethodGet, col, user, s.orgAccess, s.listObjects(k))
		s.handle(http.MethodPut, col+"/:name", user, s.orgAccess, s.applyObject(k))
		s.handle(http.MethodGet, col+"/:name", user, s.orgAccess, s.getObject(k))
		s.handle(http.MethodDelete, col+"/:name", user, s.orgAccess, s.deleteObject(k))
		s.handle(http.MethodPost, col+"/:name/preview-link", user, s.orgAccess, s.previewLink(k))
	}
	s.handle(http.MethodGet, o+"/sandboxes/:name/status/explain", user, s.orgAccess, s.explainSandbox)

	s.handle(http.MethodGet, o+"/clusters", user, s.orgAccess, s.listClusters)
	s.handle(http.MethodPut, o+"/clusters/:cluster", user, s.orgAccess, s.putCluster)
	s.handle(http.MethodGet, o+"/clusters/:cluster", user, s.orgAccess, s.getCluster)
	s.handle(http.MethodDelete, o+"/clusters/:cluster", user, s.orgAccess, s.deleteCluster)
	s.handle(http.MethodPost, o+"/clusters/:cluster/tokens", user, s.orgAccess, s.createToken)
	s.handle(http.MethodGet, o+"/clusters/:cluster/tokens", user, s.orgAccess, s.listTokens)
	s.handle(http.MethodGet, o+"/clusters/:cluster/tokens/:id", user, s.orgAccess, s.getToken)
	s.handle(http.MethodDelete, o+"/clusters/:cluster/tokens/:id", user, s.orgAccess, s.deleteToken)
	s.handle(http.MethodGet, o+"/clusters/:cluster/workloads", user, s.orgAccess, s.listWorkloads)
	s.handle(http.MethodGet, o+"/clusters/:cluster/devmesh/analyze", user, s.orgAccess, s.devmeshAnalyze)
	s.handle(http.MethodGet, o+"/clusters/:cluster/preview-policy", user, s.orgAccess, s.getPreviewPolicy)
	s.handle(http.MethodPut, o+"/clusters/:cluster/preview-policy", user, s.orgAccess, s.putPreviewPolicy)

	s.handle(http.MethodPost, o+"/apikeys", user, s.orgAccess, s.createAPIKey)
	s.handle(http.MethodGet, o+"/apikeys", user, s.orgAccess, s.listAPIKeys)
	s.handle(http.MethodDelete, o+"/apikeys/:id", user, s.orgAccess, s.revokeAPIKey)

	admin := []gin.HandlerFunc{user, s.adminOnly}
	s.handle(http.MethodGet, adminKeysPath, append(admin, s.listAdminKeys)...)
	s.handle(http.MethodPost, adminKeysPath, append(admin, s.createAdminKey)...)
	s.handle(http.MethodDelete, adminKeysPath+"/:id", append(admin, s.revokeAdminKey)...)
	s.handle(http.MethodPost, adminKeysPath+"/:id/rotate", append(admin, s.rotateAdminKey)...)

	s.registerPeople(o)
	s.registerUsage(o)
	s.registerJobs(o)
	s.registerResourcePlugins(o)
	s.registerSmartTests(o)

	a := "/api/v2/agent"
	s.handle(http.MethodGet, a+"/state", s.authAgent, s.agentState)
	s.handle(http.MethodPost, a+"/status", s.authAgent, s.agentStatus)
	s.handle(http.MethodPut, a+"/workloads", s.authAgent, s.agentWorkloads)
	s.handle(http.MethodGet, a+"/tunnel", s.authAgent, s.agentTunnel)
	s.handle(http.MethodPost, a+"/captures", s.authAgent, s.agentCaptures)
}

// ---- middleware ----

const (
	ctxRequestID = "sm.requestID"
	ctxPrincipal = "sm.principal"
	ctxAgent     = "sm.agent"
)

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// writeDeadline bounds writing the answer (routes with long answers move it).
func (s *Server) writeDeadline(c *gin.Context) {
	if s.cfg.WriteTimeout > 0 {
		_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	}
	c.Next()
}

func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader(apitypes.HeaderRequestID)
	if !reRequestID.MatchString(id) {
		id = newRequestID()
	}
	c.Set(ctxRequestID, id)
	c.Header(apitypes.HeaderRequestID, id)
	c.Next()
}

func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.ErrorContext(c.Request.Context(), "panic in handler", "panic", fmt.Sprint(v), "requestId", c.GetString(ctxRequestID))
			s.fail(c, http.StatusInternalServerError, apitypes.ReasonInternal, "internal error")
		}
	}()
	c.Next()
}

var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

func (s *Server) observe(c *gin.Context) {
	start := time.Now()
	ctx := propagator.Extract(c.Request.Context(), propagation.HeaderCarrier(c.Request.Header))
	routePath := c.FullPath()
	if routePath == "" {
		routePath = "unmatched"
	}
	ctx, span := s.tracer.Start(ctx, c.Request.Method+" "+routePath, trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", c.Request.Method), attribute.String("http.route", routePath),
			attribute.String("sandboxmesh.request_id", c.GetString(ctxRequestID))))
	c.Request = c.Request.WithContext(ctx)
	c.Next()
	code := c.Writer.Status()
	span.SetAttributes(attribute.Int("http.response.status_code", code))
	if org := c.Param("org"); org != "" {
		span.SetAttributes(attribute.String("sandboxmesh.org", org))
	}
	span.End()
	d := time.Since(start)
	s.metrics.requests.WithLabelValues(c.Request.Method, routePath, strconv.Itoa(code)).Inc()
	s.metrics.duration.WithLabelValues(c.Request.Method, routePath).Observe(d.Seconds())
	lvl := slog.LevelInfo
	if code >= 500 {
		lvl = slog.LevelError
	}
	s.log.Log(ctx, lvl, "request",
		"method", c.Request.Method, "path", c.Request.URL.Path, "route", routePath, "status", code,
		"duration_ms", float64(d.Microseconds())/1000, "bytes", c.Writer.Size(), "requestId", c.GetString(ctxRequestID),
		"org", c.Param("org"), "remote", c.ClientIP())
}

// ---- errors ----

func (s *Server) fail(c *gin.Context, code int, reason, msg string, fields ...apitypes.FieldError) {
	c.AbortWithStatusJSON(code, apitypes.ErrorResponse{Code: code, Error: msg, RequestID: c.GetString(ctxRequestID), Reason: reason, Fields: fields})
}

// failErr maps store errors to HTTP answers.
func (s *Server) failErr(c *gin.Context, what string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, what+" not found")
	case errors.Is(err, store.ErrQuotaExceeded):
		s.fail(c, http.StatusTooManyRequests, apitypes.ReasonQuotaExceeded, "quota exceeded: "+trimWrap(err)+"; delete a sandbox or ask an admin to raise the quota (the org's maxSandboxes or the team's)")
	case errors.Is(err, store.ErrConflict):
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, "conflict: "+trimWrap(err)+"; re-read the object and retry with its current version")
	case errors.Is(err, store.ErrImmutable):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "spec.cluster is immutable", apitypes.FieldError{Path: "spec.cluster", Message: "immutable: " + trimWrap(err)})
	case errors.Is(err, store.ErrClusterNotFound):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "spec.cluster names no registered cluster of this org",
			apitypes.FieldError{Path: "spec.cluster", Message: "not registered; register it with PUT /api/v2/orgs/{org}/clusters/{name}"})
	case errors.Is(err, store.ErrTeamNotFound):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "team names no team of this org",
			apitypes.FieldError{Path: "team", Message: "no such team; create it with PUT /api/v2/orgs/{org}/teams/{team}"})
	case errors.Is(err, store.ErrInUse):
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, trimWrap(err))
	case errors.Is(err, store.ErrAlreadyExists):
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, what+" already exists")
	case errors.Is(err, context.Canceled):
		s.fail(c, 499, apitypes.ReasonUnavailable, "request canceled")
	default:
		s.log.ErrorContext(c.Request.Context(), "internal error", "what", what, "err", err, "requestId", c.GetString(ctxRequestID))
		s.fail(c, http.StatusInternalServerError, apitypes.ReasonInternal, "internal error (request ID "+c.GetString(ctxRequestID)+")")
	}
}

// trimWrap drops the sentinel's own text from the end of a wrapped error message.
func trimWrap(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i > 0 {
		return msg[:i]
	}
	return msg
}

// ---- notifier ----

// notifier wakes long polls when desired state changes (through this
// replica, or another one: the change feed).
type notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: make(chan struct{})} }

func (n *notifier) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

func (n *notifier) broadcast() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

// ---- metrics ----

type metrics struct {
	requests        *prometheus.CounterVec
	duration        *prometheus.HistogramVec
	agents          prometheus.Gauge
	previewRequests *prometheus.CounterVec
	previewDuration prometheus.Histogram
	// The change feed (store.Follow): other replicas' changes applied here,
	// their lag, and failed reads.
	feedChanges prometheus.Counter
	feedLag     prometheus.Histogram
	feedErrors  prometheus.Counter
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "http_requests_total",
			Help: "API requests by method, route and status code."}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "http_request_duration_seconds",
			Help: "API request latency.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"method", "route"}),
		agents: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "agent_tunnels",
			Help: "Agent tunnels currently connected."}),
		previewRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "preview_requests_total",
			Help: "Preview proxy requests by status code."}, []string{"code"}),
		previewDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "preview_request_duration_seconds",
			Help: "Preview proxy latency up to the response header.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
	}
	m.feedChanges = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "changes_followed_total",
		Help: "Changes made through other replicas that this replica applied from the change feed."})
	m.feedLag = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "change_follow_lag_seconds",
		Help: "Time from another replica's write to its effects here (across the replicas' clocks).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)})
	m.feedErrors = prometheus.NewCounter(prometheus.CounterOpts{Namespace: "sandboxmesh", Subsystem: "controlplane", Name: "change_follow_errors_total",
		Help: "Failed reads of the change feed (and failed notification listens on PostgreSQL); the follower retries."})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.agents, m.previewRequests, m.previewDuration, m.feedChanges, m.feedLag, m.feedErrors} {
		if err := r.Register(c); err != nil {
			return nil, fmt.Errorf("api: register metrics: %w", err)
		}
	}
	return m, nil
}
