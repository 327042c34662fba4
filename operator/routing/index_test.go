package routing

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

func dep(ns, name string, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}}
}

var forkLabels = map[string]string{naming.LabelManagedBy: naming.ManagedByValue, naming.LabelSandbox: "sb", naming.LabelSandboxNamespace: "team"}

func TestIndexFunctions(t *testing.T) {
	for _, tc := range []struct {
		name              string
		obj               client.Object
		baseline, sandbox []string
	}{
		{"baseline", dep("shop", "cart", map[string]string{"app": "cart"}), []string{"shop"}, nil},
		{"fork", dep("shop", "cart-fork", forkLabels), nil, []string{"team/sb"}},
		{"managed without sandbox", dep("shop", "x", map[string]string{naming.LabelManagedBy: naming.ManagedByValue}), nil, nil},
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

// TestListHelpers checks both paths: through the index, and the fallback
// for a client without it.
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
			var bl appsv1.DeploymentList
			if err := listBaselines(ctx, c, &bl, "shop"); err != nil {
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
			if err := ListSandboxObjects(ctx, c, &sl, "team", "sb"); err != nil {
				t.Fatal(err)
			}
			if len(sl.Items) != 1 || sl.Items[0].Name != "cart-fork" {
				t.Errorf("ListSandboxObjects: %+v", sl.Items)
			}
		})
	}
}
