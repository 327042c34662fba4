package routing

import (
	"context"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// TestDesiredRoutesOnlyToOwnedForks: a sandbox's key goes to its fork Service
// only when the fork Deployment and the fork Service are both the operator's
// objects for that sandbox (a user's Service with the fork's name is a
// NameConflict and must never receive the sandbox's traffic), and the fork
// has an available pod. The end-to-end case is in operator/manager's
// TestNameConflict.
func TestDesiredRoutesOnlyToOwnedForks(t *testing.T) {
	s, baseline, svc := cartWorld(t)
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "sb", Annotations: map[string]string{smv1.AnnotationRoutingKey: "key1"}},
		Spec: smv1.SandboxSpec{Forks: []smv1.Fork{{ForkOf: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: "shop", Name: "cart"}}}}}
	name := naming.ForkName("team", "sb", "shop", "cart")
	ours := map[string]string{smv1.LabelManagedBy: smv1.ManagedBy, naming.LabelSandbox: "sb", naming.LabelSandboxNamespace: "team", naming.LabelFork: name}
	older := map[string]string{smv1.LabelManagedBy: "sandboxmesh-operator", naming.LabelSandbox: "sb", naming.LabelSandboxNamespace: "team", naming.LabelFork: name}
	other := map[string]string{smv1.LabelManagedBy: smv1.ManagedBy, naming.LabelSandbox: "other", naming.LabelSandboxNamespace: "team", naming.LabelFork: name}
	forkDep := func(labels map[string]string, available int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels},
			Status: appsv1.DeploymentStatus{AvailableReplicas: available}}
	}
	forkSvc := func(labels map[string]string) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, Labels: labels},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"mine": "yes"}}}
	}
	for _, tc := range []struct {
		name  string
		objs  []client.Object
		route bool
	}{
		{"our fork, available, our Service", []client.Object{forkDep(ours, 1), forkSvc(ours)}, true},
		{"objects an older version labelled", []client.Object{forkDep(older, 1), forkSvc(older)}, true},
		{"not available yet", []client.Object{forkDep(ours, 0), forkSvc(ours)}, false},
		{"no fork Service yet", []client.Object{forkDep(ours, 1)}, false},
		{"a user's Service has the fork's name (NameConflict)", []client.Object{forkDep(ours, 1), forkSvc(map[string]string{"mine": "yes"})}, false},
		{"another sandbox's Service has the fork's name", []client.Object{forkDep(ours, 1), forkSvc(other)}, false},
		{"a user's Deployment has the fork's name", []client.Object{forkDep(map[string]string{"mine": "yes"}, 1), forkSvc(ours)}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := append([]client.Object{baseline.DeepCopy(), svc.DeepCopy(), sb.DeepCopy()}, tc.objs...)
			c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()
			e := &Engine{Client: c}
			rs, err := e.Desired(context.Background(), svc)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(rs.Routes) == 1; got != tc.route {
				t.Fatalf("routes = %+v, want a route: %v", rs.Routes, tc.route)
			}
			if tc.route && (rs.Routes[0].RoutingKey != "key1" || rs.Routes[0].Destination.Service != name) {
				t.Errorf("route = %+v", rs.Routes[0])
			}
		})
	}
}

// TestDesiredDuplicateKeyFirstSandboxWins: when two sandboxes claim one
// routing key, the route is the one of the sandbox first by
// "<namespace>/<name>" as a string ("team-b/sb" before "team/sb": '-' sorts
// before '/'), whatever order the cache lists them in.
func TestDesiredDuplicateKeyFirstSandboxWins(t *testing.T) {
	s, baseline, svc := cartWorld(t)
	objs := []client.Object{baseline, svc}
	for _, ns := range []string{"team", "team-b", "teamz"} {
		objs = append(objs, &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "sb", Annotations: map[string]string{smv1.AnnotationRoutingKey: "dup"}},
			Spec: smv1.SandboxSpec{Virtual: []smv1.Virtual{{Workload: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: "shop", Name: "cart"}}}}})
	}
	e := &Engine{Client: fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).Build()}
	rs, err := e.Desired(context.Background(), svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Routes) != 1 || rs.Routes[0].Owner.Namespace != "team-b" {
		t.Fatalf("routes = %+v, want one route owned by team-b/sb", rs.Routes)
	}
}

// cartWorld is the scheme and the baseline of these tests: Deployment shop/cart (pods labelled app=cart)
// behind Service shop/cart on port 80.
func cartWorld(t *testing.T) (*runtime.Scheme, *appsv1.Deployment, *corev1.Service) {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, smv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	app := map[string]string{"app": "cart"}
	baseline := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: app}}}}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
		Spec: corev1.ServiceSpec{Selector: app, Ports: []corev1.ServicePort{{Port: 80}}}}
	return s, baseline, svc
}
