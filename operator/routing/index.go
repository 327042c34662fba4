package routing

import (
	"context"
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// IndexForkedWorkload indexes Sandboxes by "<namespace>/<name>" of every
// workload they fork, virtualise or route locally (WorkloadsOf).
const IndexForkedWorkload = "sandboxmesh.dev/workload"

// IndexBaseline indexes Deployments and Services that SandboxMesh did not
// create by their namespace. Forks live next to their baselines, so without it
// every reconcile would scan every fork of the namespace (quadratic in the
// number of sandboxes).
const IndexBaseline = "sandboxmesh.dev/baseline"

// IndexSandboxObjects indexes the Deployments and Services SandboxMesh created
// for a sandbox by "<sandbox namespace>/<sandbox name>".
const IndexSandboxObjects = "sandboxmesh.dev/sandbox"

// WorkloadsOf returns "<namespace>/<name>" of every workload a Sandbox refers
// to: its forks, virtual and local workloads. It is the one definition of
// what a sandbox touches: the IndexForkedWorkload values, and (through the
// Services selecting those workloads) its Footprint.
func WorkloadsOf(sb *smv1.Sandbox) []string {
	refs := RefsOf(sb)
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.Namespace + "/" + r.Name
	}
	return out
}

// RefsOf returns the references (with their kinds) of the workloads of
// WorkloadsOf, in the same order.
func RefsOf(sb *smv1.Sandbox) []smv1.WorkloadRef {
	var out []smv1.WorkloadRef
	for _, f := range sb.Spec.Forks {
		out = append(out, f.ForkOf)
	}
	for _, v := range sb.Spec.Virtual {
		out = append(out, v.Workload)
	}
	for _, l := range sb.Spec.Local {
		out = append(out, l.From)
	}
	return out
}

// WorkloadIndex is the index function of IndexForkedWorkload.
func WorkloadIndex(o client.Object) []string {
	sb, ok := o.(*smv1.Sandbox)
	if !ok {
		return nil
	}
	return WorkloadsOf(sb)
}

// BaselineIndex is the index function of IndexBaseline.
func BaselineIndex(o client.Object) []string {
	if smv1.IsManaged(o.GetLabels()) {
		return nil
	}
	return []string{o.GetNamespace()}
}

// SandboxObjectsIndex is the index function of IndexSandboxObjects.
func SandboxObjectsIndex(o client.Object) []string {
	l := o.GetLabels()
	if !smv1.IsManaged(l) || l[naming.LabelSandbox] == "" {
		return nil
	}
	return []string{l[naming.LabelSandboxNamespace] + "/" + l[naming.LabelSandbox]}
}

// The lookups below go through the field indexes when the Engine's client is
// the manager's cache with the indexes registered (Engine.Indexed), and then
// return every error; otherwise (a direct API client: tests, tools) they filter
// full lists. They never guess from an error that an index is missing.

// SandboxesOf lists the Sandboxes referring to workload "<namespace>/<name>".
// With an indexed client the items are shared with the cache: read-only.
func (e *Engine) SandboxesOf(ctx context.Context, workload string) (smv1.SandboxList, error) {
	var sbs smv1.SandboxList
	if e.Indexed {
		if err := e.Client.List(ctx, &sbs, client.MatchingFields{IndexForkedWorkload: workload}, client.UnsafeDisableDeepCopy); err != nil {
			return sbs, fmt.Errorf("list Sandboxes of %s: %w", workload, err)
		}
		return sbs, nil
	}
	var all smv1.SandboxList
	if err := e.Client.List(ctx, &all); err != nil {
		return sbs, fmt.Errorf("list Sandboxes of %s: %w", workload, err)
	}
	for _, sb := range all.Items {
		for _, w := range WorkloadsOf(&sb) {
			if w == workload {
				sbs.Items = append(sbs.Items, sb)
				break
			}
		}
	}
	return sbs, nil
}

// listBaselines lists the objects of namespace ns SandboxMesh did not create
// (with an unindexed client: the whole namespace; callers filter managed
// objects out anyway). The items are shared with the cache: read-only.
func (e *Engine) listBaselines(ctx context.Context, list client.ObjectList, ns string) error {
	if e.Indexed {
		return e.Client.List(ctx, list, client.InNamespace(ns), client.MatchingFields{IndexBaseline: ns}, client.UnsafeDisableDeepCopy)
	}
	return e.Client.List(ctx, list, client.InNamespace(ns))
}

// ListSandboxObjects lists the objects SandboxMesh created for the sandbox
// sbNamespace/sbName (Deployments or Services, by the type of list).
func (e *Engine) ListSandboxObjects(ctx context.Context, list client.ObjectList, sbNamespace, sbName string) error {
	if e.Indexed {
		return e.Client.List(ctx, list, client.MatchingFields{IndexSandboxObjects: sbNamespace + "/" + sbName})
	}
	if err := e.Client.List(ctx, list, client.MatchingLabels{naming.LabelSandbox: sbName, naming.LabelSandboxNamespace: sbNamespace}); err != nil {
		return err
	}
	// The label selector cannot say "managed by SandboxMesh, any version".
	return filterManaged(list)
}

// filterManaged keeps the items of list SandboxMesh created (smv1.IsManaged).
func filterManaged(list client.ObjectList) error {
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return err
	}
	kept := items[:0]
	for _, it := range items {
		if o, ok := it.(client.Object); ok && smv1.IsManaged(o.GetLabels()) {
			kept = append(kept, it)
		}
	}
	return apimeta.SetList(list, kept)
}
