package meshadapters

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// DevmeshRouter publishes route sets to the devmesh route server that devmesh
// sidecars subscribe to. Sidecars intercept container ports, so a route's port
// mapping is keyed by the Service's target ports.
//
// The route server's table is per workload while route sets are per Service;
// a workload behind several Services gets the union of their routes. The
// router keeps the last route set of each Service in memory (the route server
// lives in the same operator process, so both start empty together).
type DevmeshRouter struct {
	server *routeapi.Server
	log    logr.Logger

	mu       sync.Mutex
	services map[types.NamespacedName]devmeshService
}

type devmeshService struct {
	workloads []routeapi.WorkloadRef
	routes    []routeapi.Route // for every workload
}

var _ Router = (*DevmeshRouter)(nil)

// NewDevmeshRouter is the Factory of the devmesh backend; it needs Deps.RouteServer.
func NewDevmeshRouter(deps Deps) (Router, error) {
	deps = deps.withDefaults()
	if deps.RouteServer == nil {
		return nil, errors.New("devmesh backend: Deps.RouteServer is required")
	}
	return &DevmeshRouter{
		server:   deps.RouteServer,
		log:      deps.Logger.WithName(BackendDevmesh),
		services: map[types.NamespacedName]devmeshService{},
	}, nil
}

// Name returns "devmesh".
func (d *DevmeshRouter) Name() string { return BackendDevmesh }

func devmeshWorkloads(svc Service) []routeapi.WorkloadRef {
	out := make([]routeapi.WorkloadRef, 0, len(svc.Workloads))
	for _, w := range svc.Workloads {
		ref := routeapi.WorkloadRef{Namespace: w.Namespace, Kind: w.Kind, Name: w.Name}
		if ref.Namespace == "" {
			ref.Namespace = svc.Namespace
		}
		if ref.Kind == "" {
			ref.Kind = routeapi.KindDeployment
		}
		if !slices.Contains(out, ref) {
			out = append(out, ref)
		}
	}
	return out
}

var devmeshKinds = map[DestinationKind]routeapi.DestinationKind{
	DestinationFork:     routeapi.DestinationFork,
	DestinationLocal:    routeapi.DestinationLocal,
	DestinationBaseline: routeapi.DestinationBaseline,
}

// DevmeshRoutes renders a validated route set as route-server routes, one per
// workload and key. Exported for tests and for the operator's debugging endpoints.
func DevmeshRoutes(rs RouteSet, clusterDomain string) ([]routeapi.Route, error) {
	routes, err := rs.validate(clusterDomain)
	if err != nil {
		return nil, err
	}
	var out []routeapi.Route
	for _, w := range devmeshWorkloads(rs.Service) {
		for _, r := range routes {
			dest := routeapi.Destination{
				Sandbox: routeapi.SandboxRef{Namespace: r.Owner.Namespace, Name: r.Owner.Name},
				Kind:    devmeshKinds[r.Destination.Kind],
			}
			if r.Owner.Kind == "RouteGroup" {
				dest.Sandbox.Kind = routeapi.OwnerRouteGroup
			}
			if r.Destination.Kind != DestinationBaseline {
				dest.Host = r.Destination.Host
				seen := map[int32]bool{}
				for _, p := range rs.Service.Ports {
					tp := p.targetPort()
					if seen[tp] {
						continue
					}
					seen[tp] = true
					dest.Ports = append(dest.Ports, routeapi.PortMapping{Port: tp, DestinationPort: r.Destination.Port(p.Port)})
				}
				slices.SortFunc(dest.Ports, func(a, b routeapi.PortMapping) int { return int(a.Port) - int(b.Port) })
			}
			if o := r.Destination.Override; o != nil {
				ov := &routeapi.Override{Host: o.Host, ExceptStatusCodes: slices.Clone(o.ExceptStatusCodes)}
				for _, p := range rs.Service.Ports {
					if p.targetPort() == o.TargetPort && !slices.ContainsFunc(ov.Ports, func(m routeapi.PortMapping) bool { return m.Port == o.TargetPort }) {
						ov.Ports = append(ov.Ports, routeapi.PortMapping{Port: o.TargetPort, DestinationPort: p.Port})
					}
				}
				if len(ov.Ports) > 0 { // the Service does not serve the overridden port: nothing to override here
					dest.Override = ov
				}
			}
			out = append(out, routeapi.Route{Workload: w, RoutingKey: r.RoutingKey, Destination: dest})
		}
	}
	return out, nil
}

// Apply publishes the route set of rs.Service for each of its workloads.
func (d *DevmeshRouter) Apply(ctx context.Context, rs RouteSet) error {
	routes, err := DevmeshRoutes(rs, "")
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := rs.Service.Key()
	affected := append([]routeapi.WorkloadRef(nil), d.services[key].workloads...)
	ws := devmeshWorkloads(rs.Service)
	if len(routes) == 0 {
		delete(d.services, key)
	} else {
		d.services[key] = devmeshService{workloads: ws, routes: routes}
	}
	for _, w := range ws {
		if !slices.Contains(affected, w) {
			affected = append(affected, w)
		}
	}
	return d.publishLocked(ctx, rs.Service, affected)
}

// Remove removes the Service's routes from the route server (a workload shared
// with another Service keeps that Service's routes).
func (d *DevmeshRouter) Remove(ctx context.Context, svc Service) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	key := svc.Key()
	affected := append([]routeapi.WorkloadRef(nil), d.services[key].workloads...)
	for _, w := range devmeshWorkloads(svc) {
		if !slices.Contains(affected, w) {
			affected = append(affected, w)
		}
	}
	delete(d.services, key)
	return d.publishLocked(ctx, svc, affected)
}

// mergedLocked returns the union of every Service's routes for w, and the
// conflicts found (same key for w from two Services with different hosts: the
// Service first in namespace/name order wins).
func (d *DevmeshRouter) mergedLocked(w routeapi.WorkloadRef) ([]routeapi.Route, []string) {
	keys := make([]types.NamespacedName, 0, len(d.services))
	for k, s := range d.services {
		if slices.Contains(s.workloads, w) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b types.NamespacedName) int { return strings.Compare(a.String(), b.String()) })
	byKey := map[string]int{}
	var out []routeapi.Route
	var conflicts []string
	for _, k := range keys {
		for _, r := range d.services[k].routes {
			if r.Workload != w {
				continue
			}
			i, ok := byKey[r.RoutingKey]
			if !ok {
				byKey[r.RoutingKey] = len(out)
				r.Destination.Ports = slices.Clone(r.Destination.Ports)
				out = append(out, r)
				continue
			}
			prev := &out[i].Destination
			if prev.Host != r.Destination.Host || prev.Kind != r.Destination.Kind {
				conflicts = append(conflicts, fmt.Sprintf("workload %s key %q: service %s routes to %q, kept %q", w, r.RoutingKey, k, r.Destination.Host, prev.Host))
				continue
			}
			for _, p := range r.Destination.Ports {
				if !slices.ContainsFunc(prev.Ports, func(q routeapi.PortMapping) bool { return q.Port == p.Port }) {
					prev.Ports = append(prev.Ports, p)
				}
			}
			slices.SortFunc(prev.Ports, func(a, b routeapi.PortMapping) int { return int(a.Port) - int(b.Port) })
		}
	}
	return out, conflicts
}

func (d *DevmeshRouter) publishLocked(ctx context.Context, svc Service, ws []routeapi.WorkloadRef) error {
	var errs []error
	for _, w := range ws {
		routes, conflicts := d.mergedLocked(w)
		for _, c := range conflicts {
			d.log.Info("conflicting routes for a workload shared by several services", "service", svc.String(), "conflict", c)
		}
		if _, err := d.server.PublishWorkload(ctx, w, routes); err != nil {
			errs = append(errs, fmt.Errorf("devmesh: publish routes of service %s for workload %s: %w", svc, w, err))
		}
	}
	return errors.Join(errs...)
}

// Status compares the route server's table with the last route set applied
// for svc.
func (d *DevmeshRouter) Status(ctx context.Context, svc Service) (Status, error) {
	if err := ctx.Err(); err != nil {
		return Status{}, fmt.Errorf("devmesh: status of service %s: %w", svc, err)
	}
	d.mu.Lock()
	st, ok := d.services[svc.Key()]
	var conflicts []string
	for _, w := range st.workloads {
		_, c := d.mergedLocked(w)
		conflicts = append(conflicts, c...)
	}
	d.mu.Unlock()
	t := d.server.Table()
	gen := int64(t.Version())
	if !ok {
		return Status{Accepted: true, Reason: ReasonNoRoutes, Message: "no routes applied for the service", ObservedGeneration: gen}, nil
	}
	var missing []string
	for _, r := range st.routes {
		tg, found := t.Lookup(r.Workload, r.RoutingKey, 0)
		if !found || tg.Destination.Kind != r.Destination.Kind || tg.Destination.Host != r.Destination.Host {
			missing = append(missing, fmt.Sprintf("%s key %q", r.Workload, r.RoutingKey))
			continue
		}
		for _, p := range r.Destination.Ports {
			if got, _ := t.Lookup(r.Workload, r.RoutingKey, p.Port); got.Port != p.DestinationPort {
				missing = append(missing, fmt.Sprintf("%s key %q port %d", r.Workload, r.RoutingKey, p.Port))
			}
		}
	}
	if len(missing) > 0 {
		return Status{Reason: ReasonNotApplied, Message: "route server table lacks: " + strings.Join(missing, ", "), ObservedGeneration: gen}, nil
	}
	if len(conflicts) > 0 {
		return Status{Accepted: true, Reason: ReasonConflict, Message: strings.Join(conflicts, "; "), ObservedGeneration: gen}, nil
	}
	return Status{Accepted: true, Reason: ReasonAccepted, Message: fmt.Sprintf("%d routes published", len(st.routes)), ObservedGeneration: gen}, nil
}
