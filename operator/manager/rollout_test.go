package manager_test

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// podTemplate is the pod template of the test workloads named app.
func podTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "version": "v1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "example.com/" + app + ":v1",
			Env:   []corev1.EnvVar{{Name: "MODE", Value: "baseline"}},
			Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
	}
}

// createRollout creates an Argo Rollout (the real CRD from the argo-rollouts
// module; no Argo controller runs) as an unstructured object.
func createRollout(t *testing.T, r *workload.Rollout) {
	t.Helper()
	r.APIVersion, r.Kind = workload.RolloutGVK.GroupVersion().String(), workload.RolloutGVK.Kind
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(r)
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec.WorkloadRef != nil {
		unstructured.RemoveNestedField(obj, "spec", "template") // Argo wants none with a workloadRef
	}
	if err := c.Create(context.Background(), &unstructured.Unstructured{Object: obj}); err != nil {
		t.Fatalf("create Rollout %s/%s: %v", r.Namespace, r.Name, err)
	}
}

// createService creates a Service selecting app=<app> on port 80.
func createService(t *testing.T, ns, app string) {
	t.Helper()
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}}}
	if err := c.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

func rolloutSandbox(ns, name, rollout string) *smv1.Sandbox {
	sb := sandbox(ns, name, rollout)
	sb.Spec.Forks[0].ForkOf.Kind = smv1.KindRollout
	return sb
}

// TestRolloutFork: a Sandbox forking an Argo Rollout gets a fork Deployment
// built from the Rollout's pod template (spec.template, or the Deployment
// spec.workloadRef names) with its customizations, a fork Service, routes on
// the Services selecting the Rollout's pods, Ready, and a clean deletion.
func TestRolloutFork(t *testing.T) {
	ctx := context.Background()
	ns := "rollouts"
	world(t, ns)
	two := int32(2)
	zero := int32(0)
	createRollout(t, &workload.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "cart", Namespace: ns},
		Spec: workload.RolloutSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}, Template: podTemplate("cart")}})
	createService(t, ns, "cart")
	// workloadRef: the pod template lives in a Deployment scaled to zero (Argo's migration path).
	tmpl := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "pay-template", Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pay"}}, Template: podTemplate("pay")}}
	if err := c.Create(ctx, tmpl); err != nil {
		t.Fatal(err)
	}
	createRollout(t, &workload.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "pay", Namespace: ns},
		Spec: workload.RolloutSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pay"}},
			WorkloadRef: &workload.RolloutWorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "pay-template"}}})
	createService(t, ns, "pay")

	for _, tc := range []struct{ name, rollout string }{{"spec.template", "cart"}, {"spec.workloadRef", "pay"}} {
		t.Run(tc.name, func(t *testing.T) {
			sb := rolloutSandbox(ns, "ro-"+tc.rollout, tc.rollout)
			if err := c.Create(ctx, sb); err != nil {
				t.Fatal(err)
			}
			key := client.ObjectKeyFromObject(sb)
			forkName := naming.ForkName(ns, sb.Name, ns, tc.rollout)
			s := waitCondition(t, key, smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonForksNotReady)
			rk := s.Status.RoutingKey

			d, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{})
			if !ok {
				t.Fatal("no fork Deployment")
			}
			ctr := d.Spec.Template.Spec.Containers[0]
			envs := map[string]string{}
			for _, e := range ctr.Env {
				envs[e.Name] = e.Value
			}
			if ctr.Image != "example.com/"+tc.rollout+":v2" || envs["MODE"] != "fork" || envs[naming.EnvRoutingKey] != rk || *d.Spec.Replicas != 1 {
				t.Errorf("fork: image %s env %v replicas %d", ctr.Image, envs, *d.Spec.Replicas)
			}
			if d.Spec.Template.Labels["app"] != "" || d.Spec.Template.Labels["version"] != "v1" {
				t.Errorf("fork pod labels = %v", d.Spec.Template.Labels)
			}
			if d.Annotations[naming.AnnotationBaselineKind] != "Rollout" || d.Labels[naming.LabelBaseline] != tc.rollout {
				t.Errorf("fork metadata: labels %v annotations %v", d.Labels, d.Annotations)
			}
			if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].Name != sb.Name {
				t.Errorf("owner refs = %v", d.OwnerReferences)
			}
			if svc, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &corev1.Service{}); !ok || svc.Spec.Ports[0].Port != 80 {
				t.Fatalf("fork Service = %+v", svc.Spec)
			}
			ref := routeapi.WorkloadRef{Namespace: ns, Kind: "Rollout", Name: tc.rollout}
			if _, ok := op.RouteServer.Table().Lookup(ref, rk, 8080); ok {
				t.Fatal("route published before the fork was ready")
			}

			makeAvailable(t, ns, forkName)
			s = waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
			if len(s.Status.Forks) != 1 || s.Status.Forks[0].Baseline != "Rollout/"+ns+"/"+tc.rollout || !s.Status.Forks[0].Ready {
				t.Errorf("fork status = %+v", s.Status.Forks)
			}
			tgt, ok := op.RouteServer.Table().Lookup(ref, rk, 8080)
			if !ok || !strings.HasPrefix(tgt.Addr, forkName+"."+ns+".svc") {
				t.Fatalf("devmesh route of %s = %+v %v", ref, tgt, ok)
			}

			if err := c.Delete(ctx, s); err != nil {
				t.Fatal(err)
			}
			eventually(t, "sandbox gone", func() (bool, string) {
				_, ok := get(t, key, &smv1.Sandbox{})
				return !ok, "still there"
			})
			if _, ok := op.RouteServer.Table().Lookup(ref, rk, 8080); ok {
				t.Error("route left behind")
			}
			if d, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{}); ok && d.DeletionTimestamp.IsZero() {
				t.Error("fork Deployment not deleted")
			}
			if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &corev1.Service{}); ok {
				t.Error("fork Service left behind")
			}
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(workload.RolloutGVK)
			if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: tc.rollout}, u); err != nil {
				t.Errorf("baseline Rollout: %v", err)
			}
		})
	}

	// A missing Rollout, or a missing workloadRef Deployment, is
	// BaselineNotFound with a message naming what is missing; a workloadRef
	// to something other than a Deployment is UnsupportedKind.
	createRollout(t, &workload.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "dangling", Namespace: ns},
		Spec: workload.RolloutSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "dangling"}},
			WorkloadRef: &workload.RolloutWorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "gone"}}})
	createRollout(t, &workload.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "odd", Namespace: ns},
		Spec: workload.RolloutSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "odd"}},
			WorkloadRef: &workload.RolloutWorkloadRef{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "odd"}}})
	for _, tc := range []struct{ name, rollout, reason, message string }{
		{"missing", "nope", smv1.ReasonBaselineNotFound, "Rollout " + ns + "/nope not found"},
		{"ref-missing", "dangling", smv1.ReasonBaselineNotFound, "spec.workloadRef: Deployment " + ns + "/gone not found"},
		{"ref-kind", "odd", smv1.ReasonUnsupportedKind, `spec.workloadRef: kind "ReplicaSet" (apiVersion "apps/v1") not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sb := rolloutSandbox(ns, "ro-"+tc.name, tc.rollout)
			if err := c.Create(ctx, sb); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Delete(ctx, sb) })
			s := waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionDegraded, metav1.ConditionTrue, tc.reason)
			if msg := condition(s, smv1.ConditionDegraded).Message; !strings.Contains(msg, tc.message) {
				t.Errorf("message %q does not say %q", msg, tc.message)
			}
			if _, err := getDeployment(ctx, ns, naming.ForkName(ns, sb.Name, ns, tc.rollout)); !apierrors.IsNotFound(err) {
				t.Errorf("fork of a missing baseline: %v", err)
			}
		})
	}
}

func getDeployment(ctx context.Context, ns, name string) (*appsv1.Deployment, error) {
	d := &appsv1.Deployment{}
	return d, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, d)
}
