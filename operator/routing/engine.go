// Package routing computes the desired route set of each baseline Service from
// every Sandbox and RouteGroup, and hands it to the enabled meshadapters
// backends. The Sandbox and RouteGroup controllers share one Engine; it
// serialises work per Service so concurrent reconciles never interleave writes
// of one Service's routes.
package routing

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/fork"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// RoutingKey returns the routing key of an object: its annotation (set by the
// control plane or by the operator on first sight), else its status.
func RoutingKey(annotations map[string]string, status string) string {
	if k := annotations[smv1.AnnotationRoutingKey]; k != "" {
		return k
	}
	return status
}

// Engine computes and applies route sets.
type Engine struct {
	// Client reads Sandboxes, RouteGroups, Deployments and Services (a cached client).
	Client client.Client
	// Indexed: Client is the manager's cache with the field indexes of
	// controllers.SetupIndexes, and lookups use them. False filters full lists
	// (a direct API client).
	Indexed bool
	// Rollouts: the cluster serves Argo Rollouts (rollouts.argoproj.io), and
	// Client reads them (workload.Rollout in its scheme). False makes every
	// Rollout a missing baseline, and Rollouts are never listed.
	Rollouts bool
	// Routers are the enabled backends.
	Routers []meshadapters.Router
	// ClusterDomain for FQDNs; default cluster.local.
	ClusterDomain string
	// Locals says where local workloads are reachable (operator/local.Router); nil: local workloads never
	// route (their keys stay on the baseline).
	Locals LocalDestinations

	mu    sync.Mutex
	syncs map[types.NamespacedName]*serviceSync
}

// LocalDestinations says where a sandbox's local workload is reachable.
type LocalDestinations interface {
	// LocalService returns the Service (its namespace and name) that leads to local workload l of sb; ok
	// is false while l cannot take requests (its machine is not connected).
	LocalService(sb *smv1.Sandbox, l *smv1.Local) (namespace, name string, ok bool)
}

// serviceSync serialises the syncs of one Service and lets them share work:
// a sync that starts after a caller asked covers that caller, so callers that
// queue behind a running sync (every sandbox of a busy baseline reconciling
// at once) are answered by one computation of the route set instead of one each.
type serviceSync struct {
	run       sync.Mutex // held while a route set is computed and applied
	mu        sync.Mutex // guards the counters
	requested uint64     // asks so far
	covered   uint64     // asks made before the last finished run started
	err       error      // that run's result
}

func (e *Engine) serviceSync(k types.NamespacedName) *serviceSync {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.syncs == nil {
		e.syncs = map[types.NamespacedName]*serviceSync{}
	}
	s, ok := e.syncs[k]
	if !ok {
		s = &serviceSync{}
		e.syncs[k] = s
	}
	return s
}

// do runs f for the caller unless a run that started after the caller's ask
// has finished meanwhile, whose result it returns.
func (s *serviceSync) do(f func() error) error {
	s.mu.Lock()
	s.requested++
	ask := s.requested
	s.mu.Unlock()
	s.run.Lock()
	defer s.run.Unlock()
	s.mu.Lock()
	if s.covered >= ask {
		err := s.err
		s.mu.Unlock()
		return err
	}
	start := s.requested // every ask up to here is covered by the reads below
	s.mu.Unlock()
	err := f()
	s.mu.Lock()
	s.covered, s.err = start, err
	s.mu.Unlock()
	return err
}

func (e *Engine) domain() string {
	if e.ClusterDomain == "" {
		return meshadapters.DefaultClusterDomain
	}
	return e.ClusterDomain
}

// BaselineServices returns the Services in the baseline's namespace whose
// selector selects the baseline's pod template (see selects).
func (e *Engine) BaselineServices(ctx context.Context, d *appsv1.Deployment) ([]corev1.Service, error) {
	var list corev1.ServiceList
	// Read-only use of cached objects: no deep copies (this runs on every reconcile).
	if err := e.listBaselines(ctx, &list, d.Namespace); err != nil {
		return nil, fmt.Errorf("list Services in %s: %w", d.Namespace, err)
	}
	var out []corev1.Service
	for _, s := range list.Items {
		if selects(&s, d) {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// selects is the one definition of "Service s routes to workload d": both are
// the user's (not created by SandboxMesh), in one namespace, and s's selector
// is non-empty and matches d's pod template. BaselineServices (workload to
// Services: what a sandbox touches) and workloadsBehind (Service to workloads:
// whose sandboxes a route set holds) are its two directions.
func selects(s *corev1.Service, d *appsv1.Deployment) bool {
	return s.Namespace == d.Namespace && len(s.Spec.Selector) > 0 && !smv1.IsManaged(s.Labels) && !smv1.IsManaged(d.Labels) &&
		labels.SelectorFromSet(s.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels))
}

// SelectorKeys returns every label key the given Services select on.
func SelectorKeys(svcs []corev1.Service) []string {
	var out []string
	for _, s := range svcs {
		for k := range s.Spec.Selector {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// workloadsBehind returns the (non-fork) workloads a Service selects:
// Deployments, then Rollouts (with Engine.Rollouts).
func (e *Engine) workloadsBehind(ctx context.Context, svc *corev1.Service) ([]*workload.Baseline, error) {
	if len(svc.Spec.Selector) == 0 {
		return nil, nil
	}
	var list appsv1.DeploymentList
	if err := e.listBaselines(ctx, &list, svc.Namespace); err != nil {
		return nil, fmt.Errorf("list Deployments in %s: %w", svc.Namespace, err)
	}
	var out []*workload.Baseline
	for i := range list.Items {
		if selects(svc, &list.Items[i]) {
			out = append(out, workload.FromDeployment(&list.Items[i]))
		}
	}
	if !e.Rollouts {
		return out, nil
	}
	rollouts, err := workload.ListRollouts(ctx, e.Client, client.InNamespace(svc.Namespace), client.UnsafeDisableDeepCopy)
	if err != nil {
		return nil, fmt.Errorf("Service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	for _, r := range rollouts {
		if selects(svc, r.Deployment) {
			out = append(out, r)
		}
	}
	return out, nil
}

// ServiceModel converts a Service into the meshadapters model.
func ServiceModel(svc *corev1.Service, workloads []*workload.Baseline) meshadapters.Service {
	m := meshadapters.Service{Namespace: svc.Namespace, Name: svc.Name}
	for _, p := range svc.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		app := ""
		if p.AppProtocol != nil {
			app = *p.AppProtocol
		}
		m.Ports = append(m.Ports, meshadapters.ServicePort{
			Name: p.Name, Port: p.Port, TargetPort: targetPort(p, workloads), Protocol: meshadapters.ProtocolFor(app, p.Name),
		})
	}
	for _, w := range workloads {
		m.Workloads = append(m.Workloads, meshadapters.WorkloadRef{Kind: string(w.Kind), Namespace: w.Namespace, Name: w.Name})
	}
	return m
}

// targetPort resolves a numeric or named target port against the workloads' containers.
func targetPort(p corev1.ServicePort, workloads []*workload.Baseline) int32 {
	if p.TargetPort.IntVal != 0 {
		return p.TargetPort.IntVal
	}
	if p.TargetPort.StrVal == "" {
		return p.Port
	}
	for _, w := range workloads {
		for _, c := range w.Spec.Template.Spec.Containers {
			for _, cp := range c.Ports {
				if cp.Name == p.TargetPort.StrVal {
					return cp.ContainerPort
				}
			}
		}
	}
	return p.Port
}

// forkDestination returns the fork Service of sandbox sb's fork of workload w
// when it may take routes: the fork Deployment and the fork Service both exist
// and are this sandbox's (naming.OwnedBy: a user's object, or another
// sandbox's fork, that has the fork's name is never routed to, see
// NameConflict), and the Deployment has an available pod (fork.Routable).
func (e *Engine) forkDestination(ctx context.Context, sb *smv1.Sandbox, w *workload.Baseline) (string, bool, error) {
	name := naming.ForkName(sb.Namespace, sb.Name, w.Namespace, w.Name)
	key := types.NamespacedName{Namespace: w.Namespace, Name: name}
	// Read-only use of cached objects: no deep copies (this runs for every
	// sandbox of a Service on each of its syncs).
	var d appsv1.Deployment
	if err := e.Client.Get(ctx, key, &d, client.UnsafeDisableDeepCopy); err != nil {
		return "", false, client.IgnoreNotFound(err)
	}
	if !naming.OwnedBy(d.Labels, sb.Namespace, sb.Name) || !fork.Routable(&d) {
		return "", false, nil
	}
	var s corev1.Service
	if err := e.Client.Get(ctx, key, &s, client.UnsafeDisableDeepCopy); err != nil {
		if apierrors.IsNotFound(err) {
			return "", false, nil
		}
		return "", false, fmt.Errorf("get fork Service %s: %w", key, err)
	}
	return name, naming.OwnedBy(s.Labels, sb.Namespace, sb.Name), nil
}

// Desired computes the whole route set of one Service: for each workload
// behind it, every Sandbox that forks it (only while its fork is routable,
// see forkDestination) or virtualises it, and every RouteGroup matching such a Sandbox. Deleting
// Sandboxes and RouteGroups contribute nothing.
func (e *Engine) Desired(ctx context.Context, svc *corev1.Service) (meshadapters.RouteSet, error) {
	workloads, err := e.workloadsBehind(ctx, svc)
	if err != nil {
		return meshadapters.RouteSet{}, err
	}
	rs := meshadapters.RouteSet{Service: ServiceModel(svc, workloads)}
	identity := map[int32]int32{}
	for _, p := range rs.Service.Ports {
		identity[p.Port] = p.Port
	}
	var rgs smv1.RouteGroupList
	if err := e.Client.List(ctx, &rgs, client.UnsafeDisableDeepCopy); err != nil {
		return rs, fmt.Errorf("list RouteGroups: %w", err)
	}
	seen := map[string]bool{}
	add := func(r meshadapters.Route) {
		if r.RoutingKey == "" || seen[r.RoutingKey] {
			return
		}
		seen[r.RoutingKey] = true
		rs.Routes = append(rs.Routes, r)
	}
	for _, w := range workloads {
		sbs, err := e.SandboxesOf(ctx, w.Namespace+"/"+w.Name)
		if err != nil {
			return rs, err
		}
		sort.Slice(sbs.Items, func(i, j int) bool {
			return sbs.Items[i].Namespace+"/"+sbs.Items[i].Name < sbs.Items[j].Namespace+"/"+sbs.Items[j].Name
		})
		for i := range sbs.Items {
			sb := &sbs.Items[i]
			if !sb.DeletionTimestamp.IsZero() {
				continue
			}
			key := RoutingKey(sb.Annotations, sb.Status.RoutingKey)
			owner := meshadapters.Owner{Kind: "Sandbox", Namespace: sb.Namespace, Name: sb.Name}
			var dest *meshadapters.Destination
			if forks(sb, w) {
				name, ok, err := e.forkDestination(ctx, sb, w)
				if err != nil {
					return rs, fmt.Errorf("routes of Service %s/%s: fork of Sandbox %s/%s: %w", svc.Namespace, svc.Name, sb.Namespace, sb.Name, err)
				}
				if ok {
					dest = &meshadapters.Destination{Kind: meshadapters.DestinationFork, Namespace: w.Namespace, Service: name,
						Host: name + "." + w.Namespace + ".svc." + e.domain(), Ports: identity}
				}
			} else if virtualises(sb, w) {
				dest = &meshadapters.Destination{Kind: meshadapters.DestinationBaseline, Namespace: svc.Namespace, Service: svc.Name,
					Host: svc.Name + "." + svc.Namespace + ".svc." + e.domain(), Ports: identity}
			} else if l := localOf(sb, w); l != nil && e.Locals != nil {
				// A local workload routes while its machine's tunnel is connected; otherwise its key stays on
				// the baseline (never an error page).
				if ns, name, ok := e.Locals.LocalService(sb, l); ok {
					dest = &meshadapters.Destination{Kind: meshadapters.DestinationLocal, Namespace: ns, Service: name,
						Host: name + "." + ns + ".svc." + e.domain(), Ports: identity}
				}
			}
			if dest == nil {
				continue
			}
			if dest.Kind != meshadapters.DestinationLocal && e.Locals != nil {
				dest.Override = e.override(sb, w)
			}
			add(meshadapters.Route{RoutingKey: key, Owner: owner, Destination: *dest})
			for j := range rgs.Items {
				rg := &rgs.Items[j]
				if rg.DeletionTimestamp.IsZero() && rg.Namespace == sb.Namespace && Matches(rg.Spec.Match, sb.Spec.Labels) {
					add(meshadapters.Route{RoutingKey: RoutingKey(rg.Annotations, rg.Status.RoutingKey),
						Owner: meshadapters.Owner{Kind: "RouteGroup", Namespace: rg.Namespace, Name: rg.Name}, Destination: *dest})
				}
			}
		}
	}
	sort.Slice(rs.Routes, func(i, j int) bool { return rs.Routes[i].RoutingKey < rs.Routes[j].RoutingKey })
	return rs, nil
}

// override returns the local override of sb's keyed requests to w (spec.middleware), while its forward's
// machine is connected; nil otherwise (the requests go to the destination alone).
func (e *Engine) override(sb *smv1.Sandbox, w *workload.Baseline) *meshadapters.Override {
	o, ok := sb.Spec.OverrideFor(smv1.WorkloadRef{Namespace: w.Namespace, Name: w.Name, Kind: w.Kind})
	if !ok {
		return nil
	}
	l := o.AsLocal()
	ns, name, ok := e.Locals.LocalService(sb, &l)
	if !ok {
		return nil
	}
	ov := &meshadapters.Override{Host: name + "." + ns + ".svc." + e.domain(), TargetPort: o.Forward.Port}
	if o.Policy != nil {
		ov.ExceptStatusCodes = append([]int32(nil), o.Policy.ExceptStatusCodes...)
	}
	return ov
}

// localOf returns the local workload of sb whose baseline is w, or nil.
func localOf(sb *smv1.Sandbox, w *workload.Baseline) *smv1.Local {
	for i := range sb.Spec.Local {
		if l := &sb.Spec.Local[i]; l.From.Namespace == w.Namespace && l.From.Name == w.Name && workload.Kind(l.From) == w.Kind {
			return l
		}
	}
	return nil
}

func forks(sb *smv1.Sandbox, w *workload.Baseline) bool {
	for _, f := range sb.Spec.Forks {
		if f.ForkOf.Namespace == w.Namespace && f.ForkOf.Name == w.Name && workload.Kind(f.ForkOf) == w.Kind {
			return true
		}
	}
	return false
}

func virtualises(sb *smv1.Sandbox, w *workload.Baseline) bool {
	for _, v := range sb.Spec.Virtual {
		if v.Workload.Namespace == w.Namespace && v.Workload.Name == w.Name && workload.Kind(v.Workload) == w.Kind {
			return true
		}
	}
	return false
}

// Matches reports whether a RouteGroup match selects a sandbox with the given labels.
func Matches(m smv1.RouteGroupMatch, lbls map[string]string) bool {
	one := func(l smv1.LabelMatch) bool {
		v, ok := lbls[l.Key]
		if !ok {
			return false
		}
		matched, err := path.Match(l.Value, v)
		return err == nil && matched
	}
	switch {
	case m.Label != nil:
		return one(*m.Label)
	case len(m.Any) > 0:
		for _, c := range m.Any {
			if one(c.Label) {
				return true
			}
		}
		return false
	case len(m.All) > 0:
		for _, c := range m.All {
			if !one(c.Label) {
				return false
			}
		}
		return true
	}
	return false
}

// SyncError is returned by Sync when a backend failed; it names the backend and Service.
type SyncError struct {
	Backend string
	Service types.NamespacedName
	Err     error
}

func (e *SyncError) Error() string {
	return fmt.Sprintf("backend %s: apply routes of Service %s: %v", e.Backend, e.Service, e.Err)
}

func (e *SyncError) Unwrap() error { return e.Err }

// Sync computes the route set of a Service and applies it to every backend. A
// Service that no longer exists has its routes removed. Syncs of one Service
// never interleave, and callers that ask while one runs share the next run
// (see serviceSync): Sync returns once a route set computed after the call
// began is applied.
func (e *Engine) Sync(ctx context.Context, key types.NamespacedName) error {
	return e.serviceSync(key).do(func() error { return e.sync(ctx, key) })
}

func (e *Engine) sync(ctx context.Context, key types.NamespacedName) error {
	var svc corev1.Service
	err := e.Client.Get(ctx, key, &svc)
	if apierrors.IsNotFound(err) {
		var errs []error
		for _, r := range e.Routers {
			if err := r.Remove(ctx, meshadapters.Service{Namespace: key.Namespace, Name: key.Name}); err != nil {
				errs = append(errs, &SyncError{Backend: r.Name(), Service: key, Err: err})
			}
		}
		return errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("get Service %s: %w", key, err)
	}
	rs, err := e.Desired(ctx, &svc)
	if err != nil {
		return err
	}
	var errs []error
	for _, r := range e.Routers {
		if err := r.Apply(ctx, rs); err != nil {
			errs = append(errs, &SyncError{Backend: r.Name(), Service: key, Err: err})
		}
	}
	return errors.Join(errs...)
}

// Status asks every backend whether it accepted the routes of a Service; it
// returns the first non-accepted status, or an accepted one.
func (e *Engine) Status(ctx context.Context, key types.NamespacedName) (meshadapters.Status, string, error) {
	for _, r := range e.Routers {
		st, err := r.Status(ctx, meshadapters.Service{Namespace: key.Namespace, Name: key.Name})
		if err != nil {
			return st, r.Name(), err
		}
		if !st.Accepted {
			return st, r.Name(), nil
		}
	}
	return meshadapters.Status{Accepted: true}, "", nil
}

// BackendNames lists the enabled backends.
func (e *Engine) BackendNames() string {
	var n []string
	for _, r := range e.Routers {
		n = append(n, r.Name())
	}
	return strings.Join(n, ",")
}
