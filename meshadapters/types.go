package meshadapters

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Protocol is the application protocol of a Service port.
type Protocol string

const (
	// ProtocolHTTP is HTTP/1.1 or HTTP/2 traffic that is not gRPC.
	ProtocolHTTP Protocol = "HTTP"
	// ProtocolGRPC is gRPC traffic.
	ProtocolGRPC Protocol = "GRPC"
	// ProtocolTCP is opaque TCP traffic: no header can be read, so mesh
	// backends do not route it by key.
	ProtocolTCP Protocol = "TCP"
)

// ProtocolFor derives the protocol of a Service port from its appProtocol
// (preferred) or its name, as Istio does: "grpc", "grpc-*", "grpc-web",
// "http2", "h2c" and "kubernetes.io/h2c" are gRPC (HTTP/2 with headers);
// "tcp", "tcp-*", "tls", "https", "mongo", "mysql", "redis", "udp" and "sctp"
// are TCP (no readable headers); every other value is HTTP.
func ProtocolFor(appProtocol, portName string) Protocol {
	v := strings.ToLower(appProtocol)
	if v == "" {
		v = strings.ToLower(portName)
		if i := strings.IndexByte(v, '-'); i >= 0 {
			v = v[:i]
		}
	}
	v = strings.TrimPrefix(v, "kubernetes.io/")
	switch {
	case strings.HasPrefix(v, "grpc"), v == "http2", v == "h2c":
		return ProtocolGRPC
	case v == "tcp", strings.HasPrefix(v, "tcp-"), v == "tls", v == "https", v == "mongo", v == "mysql",
		v == "redis", v == "udp", v == "sctp":
		return ProtocolTCP
	}
	return ProtocolHTTP
}

// ServicePort is one port of a baseline Service.
type ServicePort struct {
	// Name of the port (may be empty for a single-port Service).
	Name string `json:"name,omitempty"`
	// Port is the Service port number.
	Port int32 `json:"port"`
	// TargetPort is the resolved container port behind Port (0 means Port).
	TargetPort int32 `json:"targetPort,omitempty"`
	// Protocol of the port (empty means HTTP).
	Protocol Protocol `json:"protocol,omitempty"`
}

func (p ServicePort) protocol() Protocol {
	if p.Protocol == "" {
		return ProtocolHTTP
	}
	return p.Protocol
}

func (p ServicePort) targetPort() int32 {
	if p.TargetPort == 0 {
		return p.Port
	}
	return p.TargetPort
}

// WorkloadRef names a baseline workload (a Deployment) behind a Service.
type WorkloadRef struct {
	// Kind of the workload; empty means Deployment.
	Kind string `json:"kind,omitempty"`
	// Namespace of the workload; empty means the Service's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Name of the workload.
	Name string `json:"name"`
}

// Service is a baseline Kubernetes Service whose traffic SandboxMesh routes.
type Service struct {
	// Namespace of the Service.
	Namespace string `json:"namespace"`
	// Name of the Service.
	Name string `json:"name"`
	// Ports of the Service.
	Ports []ServicePort `json:"ports"`
	// Workloads are the baseline workloads the Service selects (devmesh routes per workload).
	Workloads []WorkloadRef `json:"workloads,omitempty"`
}

// Key returns the Service's namespace/name.
func (s Service) Key() types.NamespacedName {
	return types.NamespacedName{Namespace: s.Namespace, Name: s.Name}
}

// String renders the Service as namespace/name.
func (s Service) String() string { return s.Namespace + "/" + s.Name }

// FQDN returns the Service's cluster DNS name.
func (s Service) FQDN(clusterDomain string) string {
	return serviceFQDN(s.Name, s.Namespace, clusterDomain)
}

func serviceFQDN(name, namespace, clusterDomain string) string {
	if clusterDomain == "" {
		clusterDomain = DefaultClusterDomain
	}
	return name + "." + namespace + ".svc." + clusterDomain
}

// headerPorts returns the ports that carry headers (HTTP and gRPC), sorted by number.
func (s Service) headerPorts() []ServicePort {
	var out []ServicePort
	for _, p := range s.Ports {
		if p.protocol() != ProtocolTCP {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b ServicePort) int { return int(a.Port) - int(b.Port) })
	return out
}

// DestinationKind says what a routing key leads to.
type DestinationKind string

const (
	// DestinationFork sends keyed requests to a fork of the baseline workload.
	DestinationFork DestinationKind = "Fork"
	// DestinationLocal sends keyed requests to a developer's local tunnel.
	DestinationLocal DestinationKind = "Local"
	// DestinationBaseline keeps keyed requests on the baseline (e.g. a route
	// group member that does not fork this Service). Mesh backends need no
	// configuration for it; devmesh publishes it so the sidecar knows the key.
	DestinationBaseline DestinationKind = "Baseline"
)

// Destination says where keyed requests go.
type Destination struct {
	// Kind of destination.
	Kind DestinationKind `json:"kind"`
	// Namespace of Service; empty means the baseline Service's namespace.
	Namespace string `json:"namespace,omitempty"`
	// Service is the Kubernetes Service of the fork or of the tunnel.
	Service string `json:"service,omitempty"`
	// Host is the FQDN of Service; empty means it is derived from Namespace and Service.
	Host string `json:"host,omitempty"`
	// Ports maps a baseline Service port to the destination port; a port not
	// listed keeps its number.
	Ports map[int32]int32 `json:"ports,omitempty"`
	// Override sends keyed requests to a developer's machine first (local override). Only the devmesh
	// backend carries it; the others route to the destination alone.
	Override *Override `json:"override,omitempty"`
}

// Override is a local override of a destination: requests for TargetPort go to the forward's Service
// first (it mirrors the baseline Service's port numbers) and fall through to the destination when the
// machine does not answer or its answer says so.
type Override struct {
	// Host is the FQDN of the forward's Service.
	Host string `json:"host"`
	// TargetPort is the baseline workload's container port the override acts on.
	TargetPort int32 `json:"targetPort"`
	// ExceptStatusCodes: the forward's answer is used unless its status is listed; empty: only when the
	// answer carries sm-override: true.
	ExceptStatusCodes []int32 `json:"exceptStatusCodes,omitempty"`
}

// Port returns the destination port for baseline Service port p.
func (d Destination) Port(p int32) int32 {
	if q, ok := d.Ports[p]; ok && q != 0 {
		return q
	}
	return p
}

// Owner is the SandboxMesh object a route belongs to.
type Owner struct {
	// Kind is Sandbox or RouteGroup.
	Kind string `json:"kind"`
	// Namespace of the owner (empty for cluster-scoped owners).
	Namespace string `json:"namespace,omitempty"`
	// Name of the owner.
	Name string `json:"name"`
}

// Route says that requests to the Service carrying RoutingKey go to Destination.
type Route struct {
	// RoutingKey of the sandbox or route group.
	RoutingKey string `json:"routingKey"`
	// Owner of the route.
	Owner Owner `json:"owner"`
	// Destination of keyed requests.
	Destination Destination `json:"destination"`
}

// RouteSet is the whole desired route set of one baseline Service: every
// sandbox and route group at once. An empty Routes means "no routes" (Apply
// then removes everything SandboxMesh added for the Service).
type RouteSet struct {
	// Service is the baseline Service.
	Service Service `json:"service"`
	// Routes are the routes, at most one per routing key.
	Routes []Route `json:"routes,omitempty"`
}

// Status is what a backend reads back from the cluster about a Service.
type Status struct {
	// Accepted is true when the mesh (or the route server) has what Apply wrote and accepts it.
	Accepted bool `json:"accepted"`
	// Reason is a CamelCase machine-readable reason (see the Reason constants).
	Reason string `json:"reason,omitempty"`
	// Message is for humans.
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the generation the status was observed at: the
	// VirtualService's generation for istio, the lowest observedGeneration of
	// the accepting parent statuses for gatewayapi and linkerd, the route
	// table version for devmesh.
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// Reasons reported in Status.Reason.
const (
	// ReasonAccepted means the configuration is in place and accepted.
	ReasonAccepted = "Accepted"
	// ReasonNoRoutes means there is nothing to route for the Service.
	ReasonNoRoutes = "NoRoutes"
	// ReasonPending means the objects exist but the mesh has not (yet) reported accepting them.
	ReasonPending = "Pending"
	// ReasonNotApplied means the cluster lacks what Apply would write (run Apply).
	ReasonNotApplied = "NotApplied"
	// ReasonRejected means the mesh or our validation rejected the configuration.
	ReasonRejected = "Rejected"
	// ReasonOptedOut means the user opted the Service out (annotation on their object).
	ReasonOptedOut = "OptedOut"
	// ReasonConflict means something prevents part of the route set (see Message).
	ReasonConflict = "Conflict"
)

// Router is one routing backend.
type Router interface {
	// Name returns the backend's registry name.
	Name() string
	// Apply makes the cluster route rs: it is idempotent and converges from
	// any state (including a previous Apply that stopped half-way). An empty
	// rs.Routes is the same as Remove.
	Apply(ctx context.Context, rs RouteSet) error
	// Remove deletes everything the backend added for svc and leaves user
	// objects exactly as they were before.
	Remove(ctx context.Context, svc Service) error
	// Status reads back from the cluster whether the mesh accepted what Apply wrote.
	Status(ctx context.Context, svc Service) (Status, error)
}

// Watcher is implemented by backends whose configuration can drift because of
// other writers (e.g. a GitOps tool re-applying the user's VirtualService).
// The operator watches WatchedObjects and re-applies the route sets of the
// Services returned by ServicesFor.
type Watcher interface {
	// WatchedObjects returns an empty object of every type to watch.
	WatchedObjects() []client.Object
	// ServicesFor returns the baseline Services obj may affect.
	ServicesFor(obj client.Object) []types.NamespacedName
}

// ErrUnknownBackend is returned (wrapped) by New for a backend name nobody registered.
var ErrUnknownBackend = errors.New("unknown mesh backend")

// ErrInvalidRouteSet is returned (wrapped, with the field path) by Apply for a bad route set.
var ErrInvalidRouteSet = errors.New("invalid route set")

// Labels and annotations SandboxMesh puts on, or reads from, mesh objects.
const (
	// LabelManagedBy marks objects SandboxMesh owns.
	LabelManagedBy = smv1.LabelManagedBy
	// ManagedBy is the value of LabelManagedBy (one value for everything SandboxMesh creates).
	ManagedBy = smv1.ManagedBy
	// LabelService names the baseline Service an owned object routes.
	LabelService = "sandboxmesh.dev/service"
	// LabelBackend names the backend that owns an object.
	LabelBackend = "sandboxmesh.dev/mesh-backend"
	// LabelRoutingKey names the routing key of an owned route object.
	LabelRoutingKey = smv1.LabelRoutingKey
	// AnnotationDerivedFrom records the user route an owned route was derived from (kind/namespace/name).
	AnnotationDerivedFrom = "sandboxmesh.dev/derived-from"
	// AnnotationRouting on a user's VirtualService or HTTPRoute/GRPCRoute set
	// to "disabled" opts it out: SandboxMesh neither modifies it nor derives
	// routes from it.
	AnnotationRouting = "sandboxmesh.dev/routing"
	// RoutingDisabled is the opt-out value of AnnotationRouting.
	RoutingDisabled = "disabled"
	// RouteNamePrefix starts the name of every HTTP route SandboxMesh inserts into a VirtualService.
	RouteNamePrefix = "sandboxmesh-"
	// DefaultClusterDomain is the cluster DNS domain when Deps.ClusterDomain is empty.
	DefaultClusterDomain = "cluster.local"
)

// validate checks rs and returns its routes sorted by key (a copy), with
// destination namespaces and hosts filled in.
func (rs RouteSet) validate(clusterDomain string) ([]Route, error) {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("route set of service %s: %s: %s: %w", rs.Service, field, fmt.Sprintf(format, args...), ErrInvalidRouteSet)
	}
	s := rs.Service
	if s.Namespace == "" {
		return nil, bad("service.namespace", "required")
	}
	if s.Name == "" {
		return nil, bad("service.name", "required")
	}
	seenPort := map[int32]int{}
	for i, p := range s.Ports {
		f := "service.ports[" + strconv.Itoa(i) + "]"
		if p.Port <= 0 || p.Port > 65535 {
			return nil, bad(f+".port", "%d out of range", p.Port)
		}
		if p.TargetPort < 0 || p.TargetPort > 65535 {
			return nil, bad(f+".targetPort", "%d out of range", p.TargetPort)
		}
		switch p.Protocol {
		case "", ProtocolHTTP, ProtocolGRPC, ProtocolTCP:
		default:
			return nil, bad(f+".protocol", "unknown protocol %q", p.Protocol)
		}
		if j, ok := seenPort[p.Port]; ok {
			return nil, bad(f+".port", "%d duplicates service.ports[%d]", p.Port, j)
		}
		seenPort[p.Port] = i
	}
	for i, w := range s.Workloads {
		if w.Name == "" {
			return nil, bad("service.workloads["+strconv.Itoa(i)+"].name", "required")
		}
	}
	out := make([]Route, 0, len(rs.Routes))
	seenKey := map[string]int{}
	for i, r := range rs.Routes {
		f := "routes[" + strconv.Itoa(i) + "]"
		if err := routingkey.Validate(r.RoutingKey); err != nil {
			return nil, bad(f+".routingKey", "%v", err)
		}
		if j, ok := seenKey[r.RoutingKey]; ok {
			return nil, bad(f+".routingKey", "%q duplicates routes[%d]", r.RoutingKey, j)
		}
		seenKey[r.RoutingKey] = i
		d := r.Destination
		switch d.Kind {
		case DestinationFork, DestinationLocal:
			if d.Service == "" {
				return nil, bad(f+".destination.service", "required for kind %s", d.Kind)
			}
			if d.Namespace == "" {
				d.Namespace = s.Namespace
			}
			if d.Host == "" {
				d.Host = serviceFQDN(d.Service, d.Namespace, clusterDomain)
			}
		case DestinationBaseline:
		default:
			return nil, bad(f+".destination.kind", "unknown kind %q", d.Kind)
		}
		ports := make(map[int32]int32, len(d.Ports))
		for from, to := range d.Ports {
			if _, ok := seenPort[from]; !ok {
				return nil, bad(f+".destination.ports", "port %d is not a service port", from)
			}
			if to <= 0 || to > 65535 {
				return nil, bad(f+".destination.ports["+strconv.Itoa(int(from))+"]", "%d out of range", to)
			}
			ports[from] = to
		}
		d.Ports = ports
		r.Destination = d
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return strings.Compare(a.RoutingKey, b.RoutingKey) })
	return out, nil
}

// ownedLabels returns the labels of an object a backend owns for svc.
func ownedLabels(backend string, svc Service) map[string]string {
	return map[string]string{LabelManagedBy: ManagedBy, LabelBackend: backend, LabelService: svc.Name}
}

func ownedSelector(backend string, svc Service) client.MatchingLabels {
	return client.MatchingLabels(ownedLabels(backend, svc))
}
