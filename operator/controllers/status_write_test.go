package controllers_test

import (
	"context"
	"fmt"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestConvergedReconcileWritesNothing: once a Sandbox is Ready, another
// reconcile with nothing changed writes neither its status (status.Set
// reports no change) nor its metadata (finalizer and key are written once).
func TestConvergedReconcileWritesNothing(t *testing.T) {
	ns := "status-writes"
	sb := setup(t, ns)
	key := client.ObjectKeyFromObject(sb)
	converge(t, newProcess(t, env.Client), key)

	base, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	var writes, others []string
	count := func(what string, o client.Object) {
		if _, ok := o.(*smv1.Sandbox); ok {
			writes = append(writes, what+" Sandbox "+o.GetName())
		} else {
			others = append(others, fmt.Sprintf("%s %T %s", what, o, o.GetName()))
		}
	}
	c := interceptor.NewClient(base, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			count("create", o)
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			count("update", o)
			return c.Update(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			count("patch", o)
			return c.Patch(ctx, o, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			count("delete", o)
			return c.Delete(ctx, o, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			count(sub+" patch", o)
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			count(sub+" update", o)
			return c.SubResource(sub).Update(ctx, o, opts...)
		},
	})
	p := newProcess(t, c)
	for i := 0; i < 2; i++ {
		if _, err := p.rec.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err != nil {
			t.Fatal(err)
		}
	}
	if len(writes) != 0 {
		t.Fatalf("a converged sandbox's reconcile wrote %v", writes)
	}
	if len(others) != 0 {
		t.Logf("other writes of a converged reconcile (backends): %v", others)
	}
}
