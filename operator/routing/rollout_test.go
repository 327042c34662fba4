package routing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// TestFootprintOfRolloutFork: a Rollout fork's baseline is the Rollout (its
// Services are those selecting its pod template) when the cluster serves
// Rollouts, and a missing baseline saying Argo Rollouts are not installed when
// it does not; the Services' route model names the Rollout. The envtest cases
// are in operator/manager's TestRolloutFork.
func TestFootprintOfRolloutFork(t *testing.T) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, smv1.AddToScheme, workload.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	app := map[string]string{"app": "cart"}
	ro := &workload.Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: workload.RolloutSpec{Selector: &metav1.LabelSelector{MatchLabels: app}, Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: app}}}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: corev1.ServiceSpec{Selector: app, Ports: []corev1.ServicePort{{Port: 80}}}}
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "sb"},
		Spec: smv1.SandboxSpec{Forks: []smv1.Fork{{ForkOf: smv1.WorkloadRef{Kind: smv1.KindRollout, Namespace: "shop", Name: "cart"}}}}}
	for _, rollouts := range []bool{true, false} {
		c := fake.NewClientBuilder().WithScheme(s).WithObjects(ro.DeepCopy(), svc.DeepCopy(), sb.DeepCopy()).Build()
		e := &Engine{Client: c, Rollouts: rollouts}
		fp, err := e.Footprint(context.Background(), sb)
		if err != nil {
			t.Fatal(err)
		}
		b := fp.Baselines["shop/cart"]
		if !rollouts {
			if err := fp.Unusable["shop/cart"]; b != nil || !errors.Is(err, workload.ErrNotFound) || !strings.Contains(fmt.Sprint(err), "Argo Rollouts are not installed") {
				t.Errorf("without Rollouts: baseline %v, error %v", b, err)
			}
			continue
		}
		if b == nil || b.Kind != smv1.KindRollout || len(fp.ServicesOf["shop/cart"]) != 1 || len(fp.Services) != 1 || fp.Services[0] != (types.NamespacedName{Namespace: "shop", Name: "cart"}) {
			t.Fatalf("footprint = %+v", fp)
		}
		rs, err := e.Desired(context.Background(), svc)
		if err != nil {
			t.Fatal(err)
		}
		if w := rs.Service.Workloads; len(w) != 1 || w[0].Kind != "Rollout" || w[0].Name != "cart" {
			t.Errorf("route model workloads = %+v", w)
		}
	}
}
