// Command operator runs the SandboxMesh operator: Sandbox, RouteGroup and
// JobRunnerGroup controllers, mesh backends, the devmesh route server and injection webhook.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/inject"
	"github.com/sandboxmesh/sandboxmesh/internal/telemetry"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/local"
	"github.com/sandboxmesh/sandboxmesh/operator/manager"
)

func main() {
	err := run()
	if errors.Is(err, manager.ErrRestartForCRDs) {
		// The kubelet starts the container again, and it watches the new CRD.
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(1)
	}
}

func list(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run() error {
	var (
		o                                                      manager.Options
		backends, keyNames, customHdrs                         string
		namespaces, logLevel, logFormat                        string
		sidecarImage, initImage, routeServerTarget, captureURL string
		injectMode                                             string
		eventLoop                                              string
		localAddr, localPorts, localCIDRs                      string
	)
	flag.StringVar(&backends, "backends", env("SANDBOXMESH_BACKENDS", meshadapters.BackendDevmesh), "comma-separated mesh backends: "+strings.Join(meshadapters.Names(), ", "))
	flag.StringVar(&keyNames, "routing-key-names", env("SANDBOXMESH_KEY_NAMES", ""), "comma-separated routing-key names (default sm-routing-key)")
	flag.StringVar(&customHdrs, "custom-headers", env("SANDBOXMESH_CUSTOM_HEADERS", ""), "comma-separated headers whose whole value is the routing key")
	flag.StringVar(&namespaces, "namespaces", env("SANDBOXMESH_NAMESPACES", ""), "comma-separated namespaces the operator may watch and touch (default all)")
	flag.StringVar(&o.ClusterDomain, "cluster-domain", env("SANDBOXMESH_CLUSTER_DOMAIN", "cluster.local"), "cluster DNS domain")
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables)")
	flag.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "health and readiness probe address")
	flag.BoolVar(&o.LeaderElection, "leader-elect", false, "enable leader election")
	flag.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election lease (default: the pod's)")
	flag.StringVar(&o.RouteServerAddr, "route-server-address", ":15010", "devmesh route server gRPC address (empty disables)")
	flag.StringVar(&o.RouteLookupAddr, "route-lookup-address", ":15011", "route lookup HTTP address for queue consumers (empty disables)")
	flag.StringVar(&localAddr, "local-gateway-address", env("SANDBOXMESH_LOCAL_GATEWAY_ADDRESS", ""), "address where machines joined with `sandboxmesh local connect` hold their tunnels, e.g. :15013 (empty: local workloads never route; docs/local.md)")
	flag.StringVar(&localPorts, "local-port-range", env("SANDBOXMESH_LOCAL_PORT_RANGE", "20000-20999"), "ports of this pod the local workloads' listeners take, first-last")
	flag.StringVar(&localCIDRs, "local-cluster-cidrs", env("SANDBOXMESH_LOCAL_CLUSTER_CIDRS", ""), "comma-separated pod and Service CIDRs that connected machines may reach through their tunnel (empty: none)")
	flag.BoolVar(&o.Webhook, "webhook", false, "serve the devmesh injection webhook (needs certificates in --webhook-cert-dir)")
	flag.IntVar(&o.WebhookPort, "webhook-port", 9443, "webhook HTTPS port")
	flag.StringVar(&o.WebhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "folder with tls.crt and tls.key")
	flag.StringVar(&sidecarImage, "sidecar-image", env("SANDBOXMESH_SIDECAR_IMAGE", "sandboxmesh.dev/devmesh:dev"), "devmesh sidecar image")
	flag.StringVar(&initImage, "sidecar-init-image", env("SANDBOXMESH_SIDECAR_INIT_IMAGE", ""), "image of the devmesh-init container of iptables mode: devmesh-init plus iptables-save/iptables-restore (default: the sidecar image)")
	flag.StringVar(&captureURL, "sidecar-capture-url", env("SANDBOXMESH_SIDECAR_CAPTURE_URL", ""), "URL the injected sidecars post smart-test captures to: the agent's capture relay, http://<agent service>:15012/captures (empty: capture off)")
	flag.StringVar(&routeServerTarget, "sidecar-route-server", env("SANDBOXMESH_SIDECAR_ROUTE_SERVER", "sandboxmesh-operator.sandboxmesh-system.svc:15010"), "route server address the injected sidecars dial")
	flag.StringVar(&o.RoutesURL, "routes-url", env(smv1.EnvRoutesURL, "http://sandboxmesh-operator.sandboxmesh-system.svc:15011"), "base URL of the route lookup API (--route-lookup-address) as pods reach it; given to forks and injected pods as "+smv1.EnvRoutesURL+" (empty leaves it out)")
	flag.StringVar(&o.RunnerImage, "runner-image", env("SANDBOXMESH_RUNNER_IMAGE", "sandboxmesh.dev/sandboxmesh-runner:dev"), "image of the init container installing the job runner into the pods of JobRunnerGroups")
	flag.StringVar(&injectMode, "inject-mode", "iptables", "default injection mode: iptables or explicit")
	flag.StringVar(&eventLoop, "sidecar-http1-event-loop", "", "the injected sidecars' --http1-event-loop: thread, netpoll or off (empty: devmesh's default, thread; docs/devmesh.md)")
	flag.BoolVar(&o.RequireAcceptance, "require-acceptance", true, "Ready waits until every backend reports the routes accepted")
	flag.IntVar(&o.Workers, "workers", 8, "parallel Sandbox reconciles")
	var qps float64
	flag.Float64Var(&qps, "kube-api-qps", 100, "requests per second to the API server (client-side limit)")
	flag.IntVar(&o.KubeAPIBurst, "kube-api-burst", 200, "burst of requests to the API server")
	flag.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	flag.StringVar(&logFormat, "log-format", "json", "json or text")
	flag.Parse()
	o.KubeAPIQPS = float32(qps)

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	var h slog.Handler = slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})
	if logFormat == "text" {
		h = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl})
	}
	o.Logger = slog.New(h)
	// Before anything of controller-runtime runs (manager.New sets it again).
	ctrl.SetLogger(logr.FromSlogHandler(h))
	o.Backends, o.KeyNames, o.CustomHeaders, o.Namespaces = list(backends), list(keyNames), list(customHdrs), list(namespaces)
	if o.RoutesURL != "" {
		if err := inject.CheckRoutesURL(o.RoutesURL); err != nil {
			return fmt.Errorf("--routes-url: %w", err)
		}
	}
	o.Inject = inject.Config{Image: sidecarImage, InitImage: initImage, RouteServer: routeServerTarget, KeyNames: o.KeyNames, CustomHeaders: o.CustomHeaders, Mode: inject.Mode(injectMode), RoutesURL: o.RoutesURL, CaptureURL: captureURL}
	switch eventLoop {
	case "":
	case "off", "thread", "netpoll":
		o.Inject.ExtraEnv = append(o.Inject.ExtraEnv, corev1.EnvVar{Name: "SANDBOXMESH_HTTP1_EVENT_LOOP", Value: eventLoop})
	default:
		return fmt.Errorf("--sidecar-http1-event-loop: %q: must be off, thread or netpoll", eventLoop)
	}

	_, shutdownTracing, err := telemetry.Setup(context.Background(), telemetry.Options{Service: "sandboxmesh-operator"})
	if err != nil {
		return err
	}
	defer shutdownTracing(context.Background())
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	if localAddr != "" {
		ln, err := startLocalGateway(&o, localAddr, localPorts, localCIDRs)
		if err != nil {
			return err
		}
		// Closing the gateway waits for its sessions; bound it, so that an operator whose manager ended
		// exits (and restarts) at once instead of hanging with its probes down until liveness kills it.
		defer func() {
			done := make(chan struct{})
			go func() { defer close(done); o.Local.Close(); _ = ln.Close() }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				o.Logger.Warn("local-workload gateway did not close within 5s; exiting anyway")
			}
		}()
	}
	op, err := manager.New(cfg, o)
	if err != nil {
		return err
	}
	o.Logger.Info("starting operator", "backends", o.Backends, "namespaces", o.Namespaces, "webhook", o.Webhook)
	if err := op.Manager.Start(ctrl.SetupSignalHandler()); err != nil {
		o.Logger.Error("operator stopped", "err", err)
		return err
	}
	return nil
}

// startLocalGateway builds the cluster end of local workloads into o (o.Local) and serves its gateway on
// addr. The pod's namespace, name and IP come from the downward API (POD_NAMESPACE, POD_NAME, POD_IP).
func startLocalGateway(o *manager.Options, addr, ports, cidrs string) (net.Listener, error) {
	first, last, ok := strings.Cut(ports, "-")
	f, ferr := strconv.ParseInt(strings.TrimSpace(first), 10, 32)
	l, lerr := strconv.ParseInt(strings.TrimSpace(last), 10, 32)
	if !ok || ferr != nil || lerr != nil {
		return nil, fmt.Errorf("--local-port-range %q: want first-last, e.g. 20000-20999", ports)
	}
	var prefixes []netip.Prefix
	for i, c := range list(cidrs) {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("--local-cluster-cidrs[%d] %q: want a CIDR such as 10.96.0.0/12: %w", i, c, err)
		}
		prefixes = append(prefixes, p.Masked())
	}
	r, err := local.New(local.Config{
		Services:  local.ServiceConfig{Namespace: os.Getenv("POD_NAMESPACE"), PodName: os.Getenv("POD_NAME"), PodIP: os.Getenv("POD_IP")},
		FirstPort: int32(f), LastPort: int32(l),
		Policy: localtunnel.ClusterPolicy{CIDRs: prefixes, ClusterDomain: o.ClusterDomain},
		Log:    o.Logger.With("component", "local-gateway"),
	})
	if err != nil {
		return nil, fmt.Errorf("--local-gateway-address: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("--local-gateway-address: %w", err)
	}
	go func() {
		if err := r.Gateway().Serve(ln); err != nil {
			o.Logger.Error("local-workload gateway stopped", "err", err)
		}
	}()
	o.Local = r
	o.Logger.Info("local-workload gateway listening", "address", ln.Addr().String(), "ports", ports, "clusterCIDRs", prefixes)
	return ln, nil
}
