// Package manager assembles the operator: controller-runtime manager, field
// indexes, the Sandbox, RouteGroup, JobRunnerGroup and route-drift controllers, the mesh
// backends chosen by name, the devmesh route server and injection webhook,
// metrics and probes. cmd/operator and the tests use it alike.
package manager

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1beta1 "sigs.k8s.io/gateway-api/apis/v1beta1"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/inject"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/controllers"
	"github.com/sandboxmesh/sandboxmesh/operator/local"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/operator/routing"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// Options configure the operator.
type Options struct {
	// Backends are the meshadapters backends to enable, by name (default devmesh).
	Backends []string
	// KeyNames and CustomHeaders configure the routing key (routingkey.Config).
	KeyNames      []string
	CustomHeaders []string
	// Namespaces limits the namespaces the operator watches and touches (empty: all).
	Namespaces []string
	// ClusterDomain of the cluster (default cluster.local).
	ClusterDomain string
	// MetricsAddr serves Prometheus metrics ("0" disables).
	MetricsAddr string
	// ProbeAddr serves /healthz and /readyz ("0" disables).
	ProbeAddr string
	// LeaderElection enables leader election in LeaderElectionNamespace.
	LeaderElection          bool
	LeaderElectionNamespace string
	// RouteServerAddr is the devmesh route server's gRPC listen address ("" disables it).
	RouteServerAddr string
	// RouteLookupAddr serves the HTTP/JSON route lookup for queue consumers ("" disables it).
	RouteLookupAddr string
	// RoutesURL is the base URL pods reach the route lookup API at, given to
	// fork containers as SANDBOXMESH_ROUTES_URL (the injector gets it in
	// Inject.RoutesURL); "" leaves it out.
	RoutesURL string
	// Webhook enables the devmesh injection webhook with Inject (its certificates in WebhookCertDir).
	Webhook        bool
	WebhookPort    int
	WebhookCertDir string
	Inject         inject.Config
	// RequireAcceptance makes Ready wait for every backend to report the routes accepted.
	RequireAcceptance bool
	// RunnerImage is the image of the init container that installs the job
	// runner into the pods of JobRunnerGroups (the sandboxmesh-runner image).
	RunnerImage string
	// Workers bounds parallel Sandbox reconciles (default 8).
	Workers int
	// KubeAPIQPS and KubeAPIBurst rate-limit the operator's requests to the API
	// server (defaults 100 and 200, like Flagger's; controller-runtime's
	// 20/30 is too low: a sandbox costs five writes and two events, and a
	// thousand sandboxes must converge in a minute).
	KubeAPIQPS   float32
	KubeAPIBurst int
	// Logger for the operator (default: slog JSON on stderr).
	Logger *slog.Logger
	// Now is the controllers' clock (tests move it; default time.Now).
	Now func() time.Time
	// CRDPoll is how often an operator started without Argo Rollouts looks
	// for their CRD (default 30s); when it appears, Start returns
	// ErrRestartForCRDs so the pod restarts and watches Rollouts.
	CRDPoll time.Duration
	// Local is the cluster end of local workloads (operator/local): their listeners on this pod and their
	// Services in its namespace, fed by the machines' tunnels; nil: local workloads never route.
	Local *local.Router
	// SkipControllerNameValidation lets a process build more than one operator
	// (tests that kill and restart it); controller-runtime otherwise refuses a
	// second controller with the same name.
	SkipControllerNameValidation bool
}

// Operator is an assembled operator.
type Operator struct {
	Manager     ctrl.Manager
	Engine      *routing.Engine
	RouteServer *routeapi.Server
}

// Scheme returns the scheme of every type the operator reads or writes.
func Scheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{clientgoscheme.AddToScheme, smv1.AddToScheme, istionetworkingv1.AddToScheme, gatewayv1.Install, gatewayv1beta1.Install, workload.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// New builds the operator without starting it.
func New(cfg *rest.Config, o Options) (*Operator, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	lg := logr.FromSlogHandler(o.Logger.Handler())
	ctrl.SetLogger(lg)
	if len(o.Backends) == 0 {
		o.Backends = []string{meshadapters.BackendDevmesh}
	}
	ex, err := routingkey.NewExtractor(routingkey.Config{KeyNames: o.KeyNames, CustomHeaders: o.CustomHeaders})
	if err != nil {
		return nil, fmt.Errorf("routing key configuration: %w", err)
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	cacheOpts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			// Only the pods of sandboxes are cached: fork pods (image-pull and
			// crash failures) and resource step pods.
			&corev1.Pod{}: {Label: sandboxPodSelector()},
		},
	}
	if len(o.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
		if o.Local != nil { // the local workloads' Services live in the operator's namespace
			cacheOpts.DefaultNamespaces[o.Local.Services.Namespace] = cache.Config{}
		}
	}
	mopts := ctrl.Options{
		Scheme: scheme,
		Cache:  cacheOpts,
		// Secrets are never cached: every read goes to the API server, so the
		// operator never holds every Secret of the cluster.
		Client:                  client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
		Metrics:                 metricsserver.Options{BindAddress: orDefault(o.MetricsAddr, ":8080")},
		HealthProbeBindAddress:  orDefault(o.ProbeAddr, ":8081"),
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        "sandboxmesh-operator.sandboxmesh.dev",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		Logger:                  lg,
	}
	if o.SkipControllerNameValidation {
		skip := true
		mopts.Controller = config.Controller{SkipNameValidation: &skip}
	}
	if o.Webhook {
		mopts.WebhookServer = webhook.NewServer(webhook.Options{Port: o.WebhookPort, CertDir: o.WebhookCertDir})
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	if o.KubeAPIQPS > 0 {
		cfg.QPS = o.KubeAPIQPS
	}
	if o.KubeAPIBurst > 0 {
		cfg.Burst = o.KubeAPIBurst
	}
	mgr, err := ctrl.NewManager(cfg, mopts)
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	op := &Operator{Manager: mgr, RouteServer: routeapi.NewServer(routeapi.ServerConfig{Logger: o.Logger.With("component", "route-server")})}
	routers, err := meshadapters.New(o.Backends, meshadapters.Deps{
		Client: mgr.GetClient(), Extractor: ex, RouteServer: op.RouteServer, Logger: lg.WithName("meshadapters"), ClusterDomain: o.ClusterDomain,
	})
	if err != nil {
		return nil, err
	}
	ctx := context.Background()
	if err := controllers.SetupIndexes(ctx, mgr); err != nil {
		return nil, err
	}
	rollouts, err := rolloutsServed(mgr.GetRESTMapper())
	if err != nil {
		return nil, err
	}
	if !rollouts {
		poll := o.CRDPoll
		if poll <= 0 {
			poll = 30 * time.Second
		}
		o.Logger.Info("Argo Rollouts are not installed (no rollouts.argoproj.io CRD): Rollout forks stay BaselineNotFound; the operator restarts itself once the CRD appears", "poll", poll)
		if err := mgr.Add(&crdWatch{cfg: cfg, poll: poll, log: o.Logger}); err != nil {
			return nil, err
		}
	}
	op.Engine = &routing.Engine{Client: mgr.GetClient(), Indexed: true, Routers: routers, ClusterDomain: o.ClusterDomain, Rollouts: rollouts}
	if o.Local != nil {
		op.Engine.Locals = o.Local
		o.Local.SetCatalog(mgr.GetClient())
	}
	if err := (&controllers.SandboxReconciler{Client: mgr.GetClient(), Engine: op.Engine, Recorder: mgr.GetEventRecorder("sandboxmesh-operator"), RequireAcceptance: o.RequireAcceptance, Now: o.Now, MaxConcurrentReconciles: o.Workers,
		RunnerImage: o.RunnerImage, Namespaces: o.Namespaces, RoutesURL: o.RoutesURL, Local: o.Local}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up Sandbox controller: %w", err)
	}
	if err := (&controllers.RouteGroupReconciler{Client: mgr.GetClient(), Engine: op.Engine, Recorder: mgr.GetEventRecorder("sandboxmesh-operator"), Now: o.Now}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up RouteGroup controller: %w", err)
	}
	if err := (&controllers.ResourcePluginReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("sandboxmesh-operator"), RunnerImage: o.RunnerImage}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up ResourcePlugin controller: %w", err)
	}
	if err := (&controllers.JobRunnerGroupReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("sandboxmesh-operator"), RunnerImage: o.RunnerImage, Namespaces: o.Namespaces, Now: o.Now}).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up JobRunnerGroup controller: %w", err)
	}
	if err := setupDrift(mgr, op.Engine, routers); err != nil {
		return nil, err
	}
	if o.Webhook {
		h, err := inject.NewHandler(o.Inject, inject.NamespaceLabelsFromReader(mgr.GetAPIReader()), lg.WithName("devmesh-inject"))
		if err != nil {
			return nil, fmt.Errorf("devmesh injection webhook: %w", err)
		}
		mgr.GetWebhookServer().Register(inject.Path, &admission.Webhook{Handler: h})
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if o.Webhook {
		if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
			return nil, err
		}
	}
	if err := crmetrics.Registry.Register(&conditionCollector{c: mgr.GetClient()}); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return nil, err
	}
	if o.RouteServerAddr != "" || o.RouteLookupAddr != "" {
		if err := mgr.Add(&routeServerRunnable{op: op, grpcAddr: o.RouteServerAddr, httpAddr: o.RouteLookupAddr, log: o.Logger}); err != nil {
			return nil, err
		}
	}
	return op, nil
}

// ErrRestartForCRDs ends Start when a CRD the operator watches appeared
// after it started (Argo Rollouts): informers are set up once, so the
// process exits and its pod restarts (cmd/operator exits 0 for it).
var ErrRestartForCRDs = errors.New("a watched CRD was installed after the operator started: restarting to watch it")

// crdWatch looks for the Rollout CRD with fresh discovery every poll and
// ends the manager with ErrRestartForCRDs when it is served.
type crdWatch struct {
	cfg  *rest.Config
	poll time.Duration
	log  *slog.Logger
}

// NeedLeaderElection is false: every replica must restart.
func (w *crdWatch) NeedLeaderElection() bool { return false }

func (w *crdWatch) Start(ctx context.Context) error {
	dc, err := discovery.NewDiscoveryClientForConfig(w.cfg)
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		list, err := dc.ServerResourcesForGroupVersion(workload.RolloutGVR.GroupVersion().String())
		if err != nil {
			continue // not served yet (404) or a passing error: look again
		}
		for _, r := range list.APIResources {
			if r.Name == workload.RolloutGVR.Resource {
				w.log.Info("the Argo Rollouts CRD is installed now; restarting to watch Rollouts")
				return ErrRestartForCRDs
			}
		}
	}
}

// rolloutsServed reports whether the cluster serves Argo Rollouts (discovery,
// once at start: the Rollout watch needs the CRD; crdWatch notices it later).
func rolloutsServed(m meta.RESTMapper) (bool, error) {
	_, err := m.RESTMapping(workload.RolloutGVK.GroupKind(), workload.RolloutGVK.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	}
	return false, fmt.Errorf("discover %s: %w", workload.RolloutGVR.GroupResource(), err)
}

func sandboxPodSelector() labels.Selector {
	req, _ := labels.NewRequirement(naming.LabelSandbox, selection.Exists, nil)
	return labels.NewSelector().Add(*req)
}

func orDefault(v, d string) string {
	if v == "" {
		return d
	}
	return v
}

// setupDrift re-applies a Service's routes when a backend's watched object
// changes (e.g. a GitOps tool re-applies a user's VirtualService without our routes).
func setupDrift(mgr ctrl.Manager, e *routing.Engine, routers []meshadapters.Router) error {
	var watchers []meshadapters.Watcher
	for _, r := range routers {
		if w, ok := r.(meshadapters.Watcher); ok {
			watchers = append(watchers, w)
		}
	}
	if len(watchers) == 0 {
		return nil
	}
	b := ctrl.NewControllerManagedBy(mgr).Named("route-drift")
	for _, w := range watchers {
		w := w
		for _, obj := range w.WatchedObjects() {
			b = b.Watches(obj, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
				var out []reconcile.Request
				for _, s := range w.ServicesFor(o) {
					out = append(out, reconcile.Request{NamespacedName: s})
				}
				return out
			}))
		}
	}
	return b.Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		if !servesSandboxes(ctx, mgr.GetClient(), req.NamespacedName) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, e.Sync(ctx, req.NamespacedName)
	}))
}

// servesSandboxes reports whether any Sandbox refers to a workload in the Service's namespace.
func servesSandboxes(ctx context.Context, c client.Client, svc types.NamespacedName) bool {
	var list smv1.SandboxList
	if err := c.List(ctx, &list); err != nil {
		return true
	}
	for _, sb := range list.Items {
		for _, w := range routing.WorkloadsOf(&sb) {
			if strings.HasPrefix(w, svc.Namespace+"/") {
				return true
			}
		}
	}
	return false
}

// routeServerRunnable syncs every Service's routes once the caches are up,
// then serves the devmesh route server, so a sidecar never receives a
// half-built table after an operator restart.
type routeServerRunnable struct {
	op       *Operator
	grpcAddr string
	httpAddr string
	log      *slog.Logger
}

// NeedLeaderElection is false: every replica serves routes (followers compute them too).
func (r *routeServerRunnable) NeedLeaderElection() bool { return false }

func (r *routeServerRunnable) Start(ctx context.Context) error {
	if !r.op.Manager.GetCache().WaitForCacheSync(ctx) {
		return errors.New("route server: caches did not sync")
	}
	start := time.Now()
	n, err := SyncAll(ctx, r.op.Manager.GetClient(), r.op.Engine)
	if err != nil {
		r.log.Warn("initial route sync incomplete", "error", err)
	}
	r.log.Info("initial route sync done", "services", n, "duration", time.Since(start))
	errc := make(chan error, 2)
	var gs *grpc.Server
	if r.grpcAddr != "" {
		lis, err := net.Listen("tcp", r.grpcAddr)
		if err != nil {
			return fmt.Errorf("route server listen %s: %w", r.grpcAddr, err)
		}
		gs = grpc.NewServer()
		r.op.RouteServer.Register(gs)
		go func() { errc <- gs.Serve(lis) }()
		r.log.Info("route server listening", "address", lis.Addr().String())
	}
	var hs *http.Server
	if r.httpAddr != "" {
		// The whole routes lookup API (docs/routes-api.md). WriteTimeout leaves room for the longest
		// long-poll (routeapi.MaxWait) plus writing the answer; Shutdown releases blocked long-polls.
		hs = &http.Server{Addr: r.httpAddr, Handler: r.op.RouteServer.LookupHandler(),
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: routeapi.MaxWait + 30*time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
		hs.RegisterOnShutdown(r.op.RouteServer.CloseWaiters)
		go func() { errc <- hs.ListenAndServe() }()
		r.log.Info("route lookup API listening", "address", r.httpAddr)
	}
	select {
	case <-ctx.Done():
	case err := <-errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	if gs != nil {
		// Watch streams last until the client goes: GracefulStop alone would wait for every
		// sidecar. Give in-flight sends a moment, then cut the streams (sidecars fail static and
		// reconnect to another replica).
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(2 * time.Second):
			gs.Stop()
		}
	}
	if hs != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}
	return nil
}

// SyncAll syncs the routes of every Service any Sandbox touches
// (routing.Engine.ServicesOf, the same gatherer the controllers use).
func SyncAll(ctx context.Context, c client.Client, e *routing.Engine) (int, error) {
	var list smv1.SandboxList
	if err := c.List(ctx, &list); err != nil {
		return 0, fmt.Errorf("list Sandboxes: %w", err)
	}
	sbs := make([]*smv1.Sandbox, len(list.Items))
	for i := range list.Items {
		sbs[i] = &list.Items[i]
	}
	services, err := e.ServicesOf(ctx, sbs)
	if err != nil {
		return 0, err
	}
	return len(services), e.SyncServices(ctx, services)
}

// conditionCollector exports sandboxmesh_sandboxes{condition,status}.
type conditionCollector struct{ c client.Client }

var sandboxesDesc = prometheus.NewDesc("sandboxmesh_sandboxes", "Sandboxes by condition type and status.", []string{"condition", "status"}, nil)

func (cc *conditionCollector) Describe(ch chan<- *prometheus.Desc) { ch <- sandboxesDesc }

func (cc *conditionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list smv1.SandboxList
	if err := cc.c.List(ctx, &list); err != nil {
		return
	}
	counts := map[[2]string]int{}
	for _, t := range []string{smv1.ConditionReady, smv1.ConditionProgressing, smv1.ConditionDegraded, smv1.ConditionRoutesConfigured} {
		for _, s := range []string{"True", "False", "Unknown"} {
			counts[[2]string{t, s}] = 0
		}
	}
	for _, sb := range list.Items {
		for _, t := range []string{smv1.ConditionReady, smv1.ConditionProgressing, smv1.ConditionDegraded, smv1.ConditionRoutesConfigured} {
			s := "Unknown"
			if c := meta.FindStatusCondition(sb.Status.Conditions, t); c != nil {
				s = string(c.Status)
			}
			counts[[2]string{t, s}]++
		}
	}
	for k, v := range counts {
		ch <- prometheus.MustNewConstMetric(sandboxesDesc, prometheus.GaugeValue, float64(v), k[0], k[1])
	}
}

var _ manager.LeaderElectionRunnable = (*routeServerRunnable)(nil)
