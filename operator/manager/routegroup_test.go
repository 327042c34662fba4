package manager_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestRouteGroupOverVirtualWorkload: a RouteGroup routes its key wherever a
// matched sandbox has a route, virtual workloads included. The RouteGroup
// controller used to gather only the Services of forks, so a group created
// after its sandbox never got routes for the sandbox's virtual workloads.
func TestRouteGroupOverVirtualWorkload(t *testing.T) {
	ctx := context.Background()
	ns := "rg-virtual"
	world(t, ns, "frontend")
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "virt", Namespace: ns},
		Spec: smv1.SandboxSpec{Labels: map[string]string{"feature": "virt"},
			Virtual: []smv1.Virtual{{Name: "frontend", Workload: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: "frontend"}}}}}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	s := waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionReady, metav1.ConditionTrue, "")
	if _, ok := routeTarget(ns, "frontend", s.Status.RoutingKey); !ok {
		t.Fatal("the sandbox's virtual workload has no route")
	}
	rg := &smv1.RouteGroup{ObjectMeta: metav1.ObjectMeta{Name: "virt-group", Namespace: ns},
		Spec: smv1.RouteGroupSpec{Match: smv1.RouteGroupMatch{Label: &smv1.LabelMatch{Key: "feature", Value: "virt"}}}}
	if err := c.Create(ctx, rg); err != nil {
		t.Fatal(err)
	}
	var rgKey string
	eventually(t, "route group matched", func() (bool, string) {
		g, _ := get(t, client.ObjectKeyFromObject(rg), &smv1.RouteGroup{})
		rgKey = g.Status.RoutingKey
		return strings.Join(g.Status.MatchedSandboxes, ",") == "virt" && meta.IsStatusConditionTrue(g.Status.Conditions, smv1.ConditionReady), fmt.Sprintf("%+v", g.Status)
	})
	eventually(t, "route group's route on the virtual workload", func() (bool, string) {
		_, ok := routeTarget(ns, "frontend", rgKey)
		return ok, ""
	})
	if err := c.Delete(ctx, rg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route group's route gone", func() (bool, string) {
		_, ok := routeTarget(ns, "frontend", rgKey)
		return !ok, ""
	})
	_ = c.Delete(ctx, sb)
}
