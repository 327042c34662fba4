package routing

import (
	"context"
	"errors"
	"fmt"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// Footprint is what one Sandbox touches: the workloads it refers to, the
// Services in front of them, and the forks it still has. It is the one answer
// to "whose routes does this sandbox (or route group) change", used by the
// Sandbox and RouteGroup controllers, SyncAll, and (in the other direction,
// Service to sandboxes, through the same WorkloadsOf and selects) by Desired.
type Footprint struct {
	// Baselines maps "<namespace>/<name>" of each workload in WorkloadsOf to
	// it (workload.Baseline, of the kind the sandbox names), nil when there
	// is none or it cannot be forked; Unusable then says why.
	Baselines map[string]*workload.Baseline
	// Unusable maps the keys of nil Baselines to an error naming the
	// workload: it wraps workload.ErrNotFound (missing) or
	// workload.ErrUnsupported (e.g. a Rollout's workloadRef of another kind).
	Unusable map[string]error
	// ServicesOf maps the same keys to the Services selecting the workload,
	// sorted by name (shared with the cache: read-only).
	ServicesOf map[string][]corev1.Service
	// Forks are the fork Deployments the operator created for the sandbox
	// (labels), also those the spec no longer lists.
	Forks []appsv1.Deployment
	// Services is every Service whose route set the sandbox contributes to,
	// or contributed to through a fork it still has: the Services of the
	// workloads above and of the baselines of its forks. Sorted.
	Services []types.NamespacedName
}

// Footprint gathers the Footprint of a Sandbox from the cache.
func (e *Engine) Footprint(ctx context.Context, sb *smv1.Sandbox) (*Footprint, error) {
	fp := &Footprint{Baselines: map[string]*workload.Baseline{}, Unusable: map[string]error{}, ServicesOf: map[string][]corev1.Service{}}
	set := map[types.NamespacedName]bool{}
	add := func(ref smv1.WorkloadRef) error {
		w := ref.Namespace + "/" + ref.Name
		if _, done := fp.Baselines[w]; done {
			return nil
		}
		b, err := workload.Get(ctx, e.Client, ref, e.Rollouts)
		if errors.Is(err, workload.ErrNotFound) || errors.Is(err, workload.ErrUnsupported) {
			fp.Baselines[w], fp.Unusable[w] = nil, err
			return nil
		}
		if err != nil {
			return fmt.Errorf("baseline of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
		}
		svcs, err := e.BaselineServices(ctx, b.Deployment)
		if err != nil {
			return fmt.Errorf("Services of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
		}
		fp.Baselines[w], fp.ServicesOf[w] = b, svcs
		for _, s := range svcs {
			set[types.NamespacedName{Namespace: s.Namespace, Name: s.Name}] = true
		}
		return nil
	}
	for _, ref := range RefsOf(sb) {
		if err := add(ref); err != nil {
			return nil, err
		}
	}
	var forks appsv1.DeploymentList
	if err := e.ListSandboxObjects(ctx, &forks, sb.Namespace, sb.Name); err != nil {
		return nil, fmt.Errorf("list forks of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	fp.Forks = forks.Items
	for _, d := range forks.Items {
		// A fork removed from the spec still has routes on its baseline's Services.
		if b := d.Labels[naming.LabelBaseline]; b != "" {
			kind := smv1.WorkloadKind(d.Annotations[naming.AnnotationBaselineKind])
			if err := add(smv1.WorkloadRef{Kind: kind, Namespace: d.Namespace, Name: b}); err != nil {
				return nil, err
			}
		}
	}
	fp.Services = sortedKeys(set)
	return fp, nil
}

// ServicesOf returns the Services whose route sets any of the sandboxes
// touches (the union of their Footprints), sorted. A RouteGroup touches the
// Services of the sandboxes it matches or matched.
func (e *Engine) ServicesOf(ctx context.Context, sbs []*smv1.Sandbox) ([]types.NamespacedName, error) {
	set := map[types.NamespacedName]bool{}
	for _, sb := range sbs {
		fp, err := e.Footprint(ctx, sb)
		if err != nil {
			return nil, err
		}
		for _, s := range fp.Services {
			set[s] = true
		}
	}
	return sortedKeys(set), nil
}

// SyncServices syncs the routes of each Service (Sync), all of them even when
// one fails; the error joins every failure.
func (e *Engine) SyncServices(ctx context.Context, services []types.NamespacedName) error {
	var errs []error
	for _, k := range services {
		if err := e.Sync(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func sortedKeys(set map[types.NamespacedName]bool) []types.NamespacedName {
	out := make([]types.NamespacedName, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}
