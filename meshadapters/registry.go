package meshadapters

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Deps are what backends are built from.
type Deps struct {
	// Client reaches the cluster (istio, gatewayapi and linkerd). Its scheme
	// must know the Istio networking and Gateway API types.
	Client client.Client
	// Extractor builds the header matchers; nil means routingkey.Default.
	Extractor *routingkey.Extractor
	// RouteServer is the devmesh route server the operator hosts (devmesh).
	RouteServer *routeapi.Server
	// Logger receives the backends' logs.
	Logger logr.Logger
	// ClusterDomain is the cluster DNS domain; empty means DefaultClusterDomain.
	ClusterDomain string
}

func (d Deps) withDefaults() Deps {
	if d.Extractor == nil {
		d.Extractor = routingkey.Default
	}
	if d.ClusterDomain == "" {
		d.ClusterDomain = DefaultClusterDomain
	}
	if d.Logger.GetSink() == nil {
		d.Logger = logr.Discard()
	}
	return d
}

// Factory builds a backend.
type Factory func(Deps) (Router, error)

// Backend names of the built-in backends.
const (
	BackendDevmesh    = "devmesh"
	BackendIstio      = "istio"
	BackendGatewayAPI = "gatewayapi"
	BackendLinkerd    = "linkerd"
)

// Registry maps backend names to factories. It is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	factories map[string]Factory
}

// NewRegistry returns a registry with the built-in backends registered.
func NewRegistry() *Registry {
	r := &Registry{factories: map[string]Factory{}}
	for name, f := range map[string]Factory{
		BackendDevmesh:    NewDevmeshRouter,
		BackendIstio:      NewIstioRouter,
		BackendGatewayAPI: NewGatewayAPIRouter,
		BackendLinkerd:    NewLinkerdRouter,
	} {
		r.factories[name] = f
	}
	return r
}

// Register adds a backend. An empty name, a nil factory or a name already
// registered is an error.
func (r *Registry) Register(name string, f Factory) error {
	if name == "" || strings.TrimSpace(name) != name {
		return fmt.Errorf("register mesh backend %q: invalid name", name)
	}
	if f == nil {
		return fmt.Errorf("register mesh backend %q: nil factory", name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.factories[name]; ok {
		return fmt.Errorf("register mesh backend %q: already registered", name)
	}
	r.factories[name] = f
	return nil
}

// Names returns the registered backend names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.factories))
	for n := range r.factories {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// New builds the named backends in order. An unknown name fails with an error
// wrapping ErrUnknownBackend (never a fallback); an empty list, a repeated
// name or two backends that write the same objects (gatewayapi and linkerd,
// ErrConflictingBackends) are errors too.
func (r *Registry) New(names []string, deps Deps) ([]Router, error) {
	if len(names) == 0 {
		return nil, errors.New("mesh backends: none configured")
	}
	deps = deps.withDefaults()
	seen := map[string]bool{}
	out := make([]Router, 0, len(names))
	for i, n := range names {
		if seen[n] {
			return nil, fmt.Errorf("mesh backends[%d]: %q listed twice", i, n)
		}
		seen[n] = true
		if (n == "gatewayapi" && seen["linkerd"]) || (n == "linkerd" && seen["gatewayapi"]) {
			return nil, fmt.Errorf("mesh backends[%d]: %q: gatewayapi and linkerd both write the GAMMA routes of a Service under the same names; enable one of them: %w", i, n, ErrConflictingBackends)
		}
		r.mu.RLock()
		f, ok := r.factories[n]
		r.mu.RUnlock()
		if !ok {
			return nil, fmt.Errorf("mesh backends[%d]: %q (known: %s): %w", i, n, strings.Join(r.Names(), ", "), ErrUnknownBackend)
		}
		rt, err := f(deps)
		if err != nil {
			return nil, fmt.Errorf("mesh backends[%d]: build %q: %w", i, n, err)
		}
		out = append(out, rt)
	}
	return out, nil
}

// ErrConflictingBackends: two enabled backends would write the same objects.
var ErrConflictingBackends = errors.New("conflicting mesh backends")

// defaultRegistry holds the built-in backends and those added with Register.
var defaultRegistry = NewRegistry()

// Register adds a backend to the default registry (see Registry.Register).
func Register(name string, f Factory) error { return defaultRegistry.Register(name, f) }

// New builds the named backends from the default registry (see Registry.New).
func New(names []string, deps Deps) ([]Router, error) { return defaultRegistry.New(names, deps) }

// Names returns the backend names of the default registry.
func Names() []string { return defaultRegistry.Names() }
