package inject

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Path is where the operator's webhook server hosts the handler; MutatingWebhookConfiguration points
// the API server at it.
const Path = "/mutate-v1-pod-devmesh"

// Annotations and labels the injector reads and writes.
const (
	// AnnotationInject opts a pod (template) into injection when "true" (shared: v1alpha1.AnnotationInject).
	AnnotationInject = smv1.AnnotationInject
	// AnnotationStatus is written by the injector: "injected" or "skipped: <reason>".
	AnnotationStatus = "sidecar.sandboxmesh.dev/status"
	// AnnotationWorkload names the baseline workload ("name" or "Kind/name") when it cannot be derived
	// from the pod's owner.
	AnnotationWorkload = "sidecar.sandboxmesh.dev/workload"
	// AnnotationMode overrides Config.Mode for one pod: "iptables" or "explicit".
	AnnotationMode = "sidecar.sandboxmesh.dev/mode"
	// AnnotationPorts replaces the intercepted ports (default: the app containers' TCP ports), as a
	// comma-separated list of appPort[:sidecarPort][/protocol]. sidecarPort is only valid in explicit
	// mode (default: assigned from Config.ExplicitPortBase); protocol is auto, http, h2c (grpc) or tcp.
	AnnotationPorts = "sidecar.sandboxmesh.dev/ports"
	// AnnotationExcludePorts lists app ports (comma-separated) never intercepted, on top of
	// Config.ExcludePorts.
	AnnotationExcludePorts = "sidecar.sandboxmesh.dev/exclude-ports"

	// DefaultNamespaceOptOutLabel is the namespace label that disables injection when its value is
	// NamespaceOptOutValue.
	DefaultNamespaceOptOutLabel = "sandboxmesh.dev/injection"
	// NamespaceOptOutValue is the opt-out label's value that disables injection.
	NamespaceOptOutValue = "disabled"

	// StatusInjected is AnnotationStatus on an injected pod.
	StatusInjected = "injected"
	// StatusSkippedPrefix starts AnnotationStatus on a pod that asked for injection and did not get it.
	StatusSkippedPrefix = "skipped: "
)

// Names and defaults of the injected containers.
const (
	// SidecarName is the name of the injected sidecar container; its presence means "already injected".
	SidecarName = "devmesh"
	// InitName is the name of the injected iptables init container.
	InitName = "devmesh-init"

	DefaultProxyUID         int64 = 2103
	DefaultInboundPort      int32 = 15006
	DefaultAdminPort        int32 = 15020
	DefaultExplicitPortBase int32 = 15080
)

// Mode says how inbound traffic reaches the sidecar.
type Mode string

const (
	// ModeIPTables adds an init container (NET_ADMIN) that REDIRECTs connections to the app's ports to
	// the sidecar's inbound port; the sidecar finds the app port with SO_ORIGINAL_DST. Services are
	// unchanged.
	ModeIPTables Mode = "iptables"
	// ModeExplicit adds no init container: the sidecar listens on its own ports (one per app port) and the
	// Service's targetPort must point at them.
	ModeExplicit Mode = "explicit"
)

// ErrInvalidConfig is wrapped by every Config validation error.
var ErrInvalidConfig = errors.New("invalid devmesh injector config")

// Config configures the injector. Zero values pick the documented defaults; Validate (called by
// NewHandler) fills them in.
type Config struct {
	// Image is the sidecar image (required).
	Image string
	// ImagePullPolicy of both injected containers (default IfNotPresent).
	ImagePullPolicy corev1.PullPolicy
	// InitImage is the iptables init container image (default Image). It must contain the devmesh-init
	// binary and iptables-restore (and ip6tables-restore for IPv6 pods).
	InitImage string
	// InitCommand runs devmesh-init in InitImage (default ["devmesh-init"]).
	InitCommand []string
	// RouteServer is the operator's route server gRPC address host:port (required).
	RouteServer string
	// KeyNames are the routing-key names the sidecar reads (default routingkey's default).
	KeyNames []string
	// CustomHeaders are headers whose whole value is the routing key.
	CustomHeaders []string
	// Mode is the default traffic mode (default ModeIPTables); AnnotationMode overrides it per pod.
	Mode Mode
	// ProxyUID is the UID (and GID) the sidecar runs as; the iptables rules never redirect its traffic
	// (default DefaultProxyUID).
	ProxyUID int64
	// InboundPort is the sidecar's REDIRECT listener in iptables mode (default DefaultInboundPort).
	InboundPort int32
	// AdminPort serves /healthz, /readyz, /routes and /metrics; probes use it (default DefaultAdminPort).
	AdminPort int32
	// ExplicitPortBase is the first sidecar port assigned in explicit mode when AnnotationPorts does not
	// give one (default DefaultExplicitPortBase).
	ExplicitPortBase int32
	// ExcludePorts are app ports never intercepted (e.g. metrics ports scraped from outside).
	ExcludePorts []int32
	// ExcludeContainers are containers whose ports are never intercepted (default linkerd-proxy and
	// istio-proxy). Init containers (including native sidecars) are never looked at.
	ExcludeContainers []string
	// Resources of the sidecar (default requests cpu 10m, memory 32Mi; limit memory 128Mi).
	Resources *corev1.ResourceRequirements
	// InitResources of the init container (default requests cpu 10m, memory 16Mi; limit memory 64Mi).
	InitResources *corev1.ResourceRequirements
	// LegacySidecar puts the sidecar in spec.containers instead of a native sidecar (an init container
	// with restartPolicy Always, Kubernetes ≥ 1.29), for clusters without native sidecars. Native
	// sidecars start before and stop after the app containers and do not keep Jobs running.
	LegacySidecar bool
	// ExtraEnv is appended to the sidecar's environment (other SANDBOXMESH_* settings of cmd/devmesh).
	ExtraEnv []corev1.EnvVar
	// RoutesURL is the base URL of the operator's routes lookup API (http://host:port), given to the
	// app containers as SANDBOXMESH_ROUTES_URL next to the SANDBOXMESH_BASELINE_* identity of the pod's
	// workload; "" leaves it out (the identity is still set).
	RoutesURL string
	// CaptureURL is where the sidecars ship smart-test captures (the agent's capture relay,
	// http://host:port/captures), given to the sidecar as SANDBOXMESH_CAPTURE_URL; "" turns capture off.
	CaptureURL string
	// NamespaceOptOutLabel disables injection in namespaces where it equals NamespaceOptOutValue
	// (default DefaultNamespaceOptOutLabel).
	NamespaceOptOutLabel string
}

// Validate fills in defaults and checks the config; every error names its field and wraps
// ErrInvalidConfig.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %w", field, fmt.Sprintf(format, args...), ErrInvalidConfig))
	}
	if strings.TrimSpace(c.Image) == "" {
		bad("image", "required")
	}
	if c.InitImage == "" {
		c.InitImage = c.Image
	}
	if len(c.InitCommand) == 0 {
		c.InitCommand = []string{"devmesh-init"}
	}
	switch c.ImagePullPolicy {
	case "":
		c.ImagePullPolicy = corev1.PullIfNotPresent
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("imagePullPolicy", "%q: want Always, IfNotPresent or Never", c.ImagePullPolicy)
	}
	if c.RouteServer == "" {
		bad("routeServer", "required (host:port of the operator's route server)")
	} else if host, port, err := net.SplitHostPort(c.RouteServer); err != nil || host == "" {
		bad("routeServer", "%q: want host:port", c.RouteServer)
	} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		bad("routeServer", "%q: port out of range", c.RouteServer)
	}
	if _, err := routingkey.NewExtractor(routingkey.Config{KeyNames: c.KeyNames, CustomHeaders: c.CustomHeaders}); err != nil {
		bad("keyNames/customHeaders", "%v", err)
	}
	for i, k := range append(append([]string(nil), c.KeyNames...), c.CustomHeaders...) {
		if strings.Contains(k, ",") {
			bad("keyNames/customHeaders", "[%d] %q contains a comma", i, k)
		}
	}
	switch c.Mode {
	case "":
		c.Mode = ModeIPTables
	case ModeIPTables, ModeExplicit:
	default:
		bad("mode", "%q: want %s or %s", c.Mode, ModeIPTables, ModeExplicit)
	}
	if c.ProxyUID == 0 {
		c.ProxyUID = DefaultProxyUID
	}
	if c.ProxyUID < 1 || c.ProxyUID > 1<<31-1 {
		bad("proxyUID", "%d: want a non-root UID", c.ProxyUID)
	}
	port := func(field string, p *int32, def int32) {
		if *p == 0 {
			*p = def
		}
		if *p < 1 || *p > 65535 {
			bad(field, "%d out of range", *p)
		}
	}
	port("inboundPort", &c.InboundPort, DefaultInboundPort)
	port("adminPort", &c.AdminPort, DefaultAdminPort)
	port("explicitPortBase", &c.ExplicitPortBase, DefaultExplicitPortBase)
	if c.InboundPort == c.AdminPort {
		bad("adminPort", "%d is also inboundPort", c.AdminPort)
	}
	for i, p := range c.ExcludePorts {
		if p < 1 || p > 65535 {
			bad(fmt.Sprintf("excludePorts[%d]", i), "%d out of range", p)
		}
	}
	if c.ExcludeContainers == nil {
		c.ExcludeContainers = []string{"linkerd-proxy", "istio-proxy"}
	}
	if c.Resources == nil {
		c.Resources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("32Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
		}
	}
	if c.InitResources == nil {
		c.InitResources = &corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		}
	}
	for i, e := range c.ExtraEnv {
		if e.Name == "" {
			bad(fmt.Sprintf("extraEnv[%d]", i), "name required")
		}
	}
	if c.RoutesURL != "" {
		if err := CheckRoutesURL(c.RoutesURL); err != nil {
			bad("routesURL", "%v", err)
		}
	}
	if c.CaptureURL != "" {
		if err := CheckRoutesURL(c.CaptureURL); err != nil {
			bad("captureURL", "%v", err)
		}
	}
	if c.NamespaceOptOutLabel == "" {
		c.NamespaceOptOutLabel = DefaultNamespaceOptOutLabel
	}
	if msgs := validation.IsQualifiedName(c.NamespaceOptOutLabel); len(msgs) > 0 {
		bad("namespaceOptOutLabel", "%q: %s", c.NamespaceOptOutLabel, strings.Join(msgs, "; "))
	}
	return errors.Join(errs...)
}

// CheckRoutesURL checks a routes lookup API base URL: absolute http or https with a host, and no
// query, fragment or user info.
func CheckRoutesURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Errorf("%q: %w", s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: want an http:// or https:// URL", s)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%q: host required", s)
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Errorf("%q: want scheme://host[:port][/path] only", s)
	}
	return nil
}
