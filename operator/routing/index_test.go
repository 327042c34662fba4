package routing

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

func dep(ns, name string, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
}

var forkLabels = map[string]string{smv1.LabelManagedBy: smv1.ManagedBy, naming.LabelSandbox: "sb", naming.LabelSandboxNamespace: "team"}

func TestIndexFunctions(t *testing.T) {
	for _, tc := range []struct {
		name              string
		obj               client.Object
		baseline, sandbox []string
	}{
		{"baseline", dep("shop", "cart", map[string]string{"app": "cart"}), []string{"shop"}, nil},
		{"fork", dep("shop", "cart-fork", forkLabels), nil, []string{"team/sb"}},
		// Forks an older operator labelled with its own managed-by value stay forks.
		{"fork by an older version", dep("shop", "old-fork", map[string]string{smv1.LabelManagedBy: "sandboxmesh-operator",
			naming.LabelSandbox: "sb", naming.LabelSandboxNamespace: "team"}), nil, []string{"team/sb"}},
		{"managed without sandbox", dep("shop", "x", map[string]string{smv1.LabelManagedBy: smv1.ManagedBy}), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := BaselineIndex(tc.obj); !equalStrings(got, tc.baseline) {
				t.Errorf("BaselineIndex = %v, want %v", got, tc.baseline)
			}
			if got := SandboxObjectsIndex(tc.obj); !equalStrings(got, tc.sandbox) {
				t.Errorf("SandboxObjectsIndex = %v, want %v", got, tc.sandbox)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestListHelpers checks both paths: through the index, and the filtered
// full lists of an unindexed client.
func TestListHelpers(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	objs := []client.Object{dep("shop", "cart", nil), dep("shop", "cart-fork", forkLabels), dep("other", "cart", nil)}
	indexed := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithIndex(&appsv1.Deployment{}, IndexBaseline, BaselineIndex).
		WithIndex(&appsv1.Deployment{}, IndexSandboxObjects, SandboxObjectsIndex).Build()
	plain := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
	ctx := context.Background()
	for name, c := range map[string]client.Client{"indexed": indexed, "plain": plain} {
		t.Run(name, func(t *testing.T) {
			e := &Engine{Client: c, Indexed: name == "indexed"}
			var bl appsv1.DeploymentList
			if err := e.listBaselines(ctx, &bl, "shop"); err != nil {
				t.Fatal(err)
			}
			want := 1 // the indexed path leaves the fork out
			if name == "plain" {
				want = 2 // callers filter managed objects themselves
			}
			if len(bl.Items) != want {
				t.Errorf("listBaselines: %d items, want %d", len(bl.Items), want)
			}
			var sl appsv1.DeploymentList
			if err := e.ListSandboxObjects(ctx, &sl, "team", "sb"); err != nil {
				t.Fatal(err)
			}
			if len(sl.Items) != 1 || sl.Items[0].Name != "cart-fork" {
				t.Errorf("ListSandboxObjects: %+v", sl.Items)
			}
		})
	}
}

// TestIndexedLookupErrors: with an indexed client, a failing lookup is an
// error, never a silent full list (which used to happen on any error).
func TestIndexedLookupErrors(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := smv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "sb"},
		Spec: smv1.SandboxSpec{Forks: []smv1.Fork{{ForkOf: smv1.WorkloadRef{Namespace: "shop", Name: "cart"}}}}}
	boom := errors.New("cache not synced")
	fullLists := 0
	c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(s).WithObjects(sb).
		WithIndex(&smv1.Sandbox{}, IndexForkedWorkload, WorkloadIndex).Build(), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			o := (&client.ListOptions{}).ApplyOptions(opts)
			if o.FieldSelector != nil {
				return boom
			}
			fullLists++
			return c.List(ctx, list, opts...)
		},
	})
	ctx := context.Background()
	e := &Engine{Client: c, Indexed: true}
	if _, err := e.SandboxesOf(ctx, "shop/cart"); !errors.Is(err, boom) {
		t.Errorf("SandboxesOf: err = %v, want %v", err, boom)
	}
	var dl appsv1.DeploymentList
	if err := e.listBaselines(ctx, &dl, "shop"); !errors.Is(err, boom) {
		t.Errorf("listBaselines: err = %v, want %v", err, boom)
	}
	if err := e.ListSandboxObjects(ctx, &dl, "team", "sb"); !errors.Is(err, boom) {
		t.Errorf("ListSandboxObjects: err = %v, want %v", err, boom)
	}
	if fullLists != 0 {
		t.Errorf("%d full lists after index errors", fullLists)
	}
	// Unindexed: the full list is the lookup.
	e.Indexed = false
	got, err := e.SandboxesOf(ctx, "shop/cart")
	if err != nil || len(got.Items) != 1 {
		t.Errorf("unindexed SandboxesOf = %v, %v", got.Items, err)
	}
}
