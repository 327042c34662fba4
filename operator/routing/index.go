package routing

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// IndexBaseline indexes Deployments and Services that SandboxMesh did not
// create by their namespace. Forks live next to their baselines, so without it
// every reconcile would scan every fork of the namespace (quadratic in the
// number of sandboxes).
const IndexBaseline = "sandboxmesh.dev/baseline"

// IndexSandboxObjects indexes the Deployments and Services SandboxMesh created
// for a sandbox by "<sandbox namespace>/<sandbox name>".
const IndexSandboxObjects = "sandboxmesh.dev/sandbox"

// BaselineIndex is the index function of IndexBaseline.
func BaselineIndex(o client.Object) []string {
	if o.GetLabels()[naming.LabelManagedBy] == naming.ManagedByValue {
		return nil
	}
	return []string{o.GetNamespace()}
}

// SandboxObjectsIndex is the index function of IndexSandboxObjects.
func SandboxObjectsIndex(o client.Object) []string {
	l := o.GetLabels()
	if l[naming.LabelManagedBy] != naming.ManagedByValue || l[naming.LabelSandbox] == "" {
		return nil
	}
	return []string{l[naming.LabelSandboxNamespace] + "/" + l[naming.LabelSandbox]}
}

// listBaselines lists the objects of namespace ns SandboxMesh did not create,
// through IndexBaseline, or the whole namespace when the client has no such
// index (a direct API client); callers filter managed objects out anyway.
// The items are shared with the cache: read-only.
func listBaselines(ctx context.Context, c client.Reader, list client.ObjectList, ns string) error {
	if err := c.List(ctx, list, client.InNamespace(ns), client.MatchingFields{IndexBaseline: ns}, client.UnsafeDisableDeepCopy); err == nil {
		return nil
	}
	return c.List(ctx, list, client.InNamespace(ns), client.UnsafeDisableDeepCopy)
}

// ListSandboxObjects lists the objects SandboxMesh created for the sandbox
// sbNamespace/sbName, through IndexSandboxObjects, or by label when the client
// has no such index.
func ListSandboxObjects(ctx context.Context, c client.Reader, list client.ObjectList, sbNamespace, sbName string) error {
	if err := c.List(ctx, list, client.MatchingFields{IndexSandboxObjects: sbNamespace + "/" + sbName}); err == nil {
		return nil
	}
	return c.List(ctx, list, client.MatchingLabels{naming.LabelSandbox: sbName, naming.LabelSandboxNamespace: sbNamespace})
}
