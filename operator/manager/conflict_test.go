package manager_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// TestNameConflict: an object that already has a fork's name but is not that fork (a user's object, or
// another sandbox's fork should the name hash collide) is never changed or deleted; the Sandbox says so.
func TestNameConflict(t *testing.T) {
	ctx := context.Background()
	ns := "conflicts"
	world(t, ns, "route")
	labels := map[string]string{"app": "mine"}
	for _, kind := range []string{"deployment", "service"} {
		t.Run(kind, func(t *testing.T) {
			sb := sandbox(ns, "taken-"+kind, "route")
			name := naming.ForkName(ns, sb.Name, ns, "route")
			var user client.Object
			if kind == "deployment" {
				user = &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
					Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels},
						Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
							Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.com/mine:v1"}}}}}}
			} else {
				user = &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
					Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Port: 1234, TargetPort: intstr.FromInt32(1234)}}}}
			}
			if err := c.Create(ctx, user); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Delete(ctx, user) })
			before := user.GetResourceVersion()
			if err := c.Create(ctx, sb); err != nil {
				t.Fatal(err)
			}
			s := waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonNameConflict)
			if r := condition(s, smv1.ConditionReady); r.Status != metav1.ConditionFalse {
				t.Errorf("Ready = %+v", r)
			}
			if kind == "service" {
				// The fork Deployment is ours and gets an available pod: the
				// sandbox's key must still never reach the user's Service.
				makeAvailable(t, ns, name)
				eventually(t, "the operator's cache sees the fork available", func() (bool, string) {
					var d appsv1.Deployment
					err := op.Manager.GetClient().Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d)
					return err == nil && d.Status.AvailableReplicas == 1, fmt.Sprint(err)
				})
				if err := op.Engine.Sync(ctx, types.NamespacedName{Namespace: ns, Name: "route"}); err != nil {
					t.Fatal(err)
				}
				if tgt, ok := routeTarget(ns, "route", s.Status.RoutingKey); ok {
					t.Fatalf("the sandbox's key routes to %s, a Service the operator does not own", tgt.Addr)
				}
			}
			if err := c.Delete(ctx, sb); err != nil {
				t.Fatal(err)
			}
			eventually(t, "sandbox gone", func() (bool, string) {
				_, ok := get(t, client.ObjectKeyFromObject(sb), &smv1.Sandbox{})
				return !ok, ""
			})
			cur := user.DeepCopyObject().(client.Object)
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, cur); err != nil {
				t.Fatalf("the user's %s is gone: %v", kind, err)
			}
			if cur.GetResourceVersion() != before || cur.GetLabels()[smv1.LabelManagedBy] != "" {
				t.Fatalf("the user's %s was changed: labels %v", kind, cur.GetLabels())
			}
		})
	}
}
