package agent_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

// TestAgentReportsRollouts: without the Rollout CRD the agent reports
// Deployments and says nothing of Rollouts; once the CRD (the real one, from
// the argo-rollouts module) is installed, it reports Argo Rollouts as
// forkable workloads — with spec.template or spec.workloadRef's pod
// template, their Services — and never SandboxMesh's own objects.
func TestAgentReportsRollouts(t *testing.T) {
	ctx := context.Background()
	shop := "shop"
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: shop}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	zero := int32(0)
	tmpl := func(app string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: app + ":v1"}}}}
	}
	for _, o := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: "api-template"},
			Spec: appsv1.DeploymentSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}, Template: tmpl("api")}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: shop, Name: "web"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "web"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}}},
	} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	a, err := agent.New(agent.Config{ControlPlaneURL: "http://127.0.0.1:1", Token: "smc_x", Namespace: ns, Client: kube})
	if err != nil {
		t.Fatal(err)
	}
	kinds := func(rep apitypes.WorkloadReport) map[string]apitypes.Workload {
		out := map[string]apitypes.Workload{}
		for _, w := range rep.Workloads {
			if w.Namespace == shop {
				out[w.Kind+"/"+w.Name] = w
			}
		}
		return out
	}

	rep, err := a.CollectWorkloads(ctx)
	if err != nil {
		t.Fatalf("without the Rollout CRD: %v", err)
	}
	if got := kinds(rep); len(got) != 1 || got["Deployment/api-template"].Name == "" {
		t.Fatalf("without the Rollout CRD: %v", got)
	}

	crd, err := testenv.RolloutCRD()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := envtest.InstallCRDs(testenvConfig, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{crd}}); err != nil {
		t.Fatal(err)
	}
	rollout := func(name string, labels map[string]any, spec map[string]any) *unstructured.Unstructured {
		u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
			"metadata": map[string]any{"namespace": shop, "name": name, "labels": labels}, "spec": spec}}
		return u
	}
	podSpec := map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
		"spec": map[string]any{"containers": []any{map[string]any{"name": "main", "image": "web:v1"}}}}
	for _, u := range []*unstructured.Unstructured{
		rollout("web", nil, map[string]any{"replicas": int64(3), "selector": map[string]any{"matchLabels": map[string]any{"app": "web"}}, "template": podSpec}),
		rollout("api", nil, map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "api"}},
			"workloadRef": map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "name": "api-template"}}),
		rollout("web-fork", map[string]any{"app.kubernetes.io/managed-by": "sandboxmesh-operator"},
			map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "web"}}, "template": podSpec}),
	} {
		if err := kube.Create(ctx, u); err != nil {
			t.Fatalf("create Rollout %s: %v", u.GetName(), err)
		}
	}
	eventually(t, "Rollouts reported", func() error {
		rep, err := a.CollectWorkloads(ctx)
		if err != nil {
			return err
		}
		got := kinds(rep)
		web, api := got["Rollout/web"], got["Rollout/api"]
		if len(got) != 3 || web.Replicas != 3 || len(web.Containers) != 1 || web.Containers[0].Image != "web:v1" ||
			len(web.Services) != 1 || web.Services[0].Name != "web" || len(api.Containers) != 1 || api.Containers[0].Image != "api:v1" {
			return fmt.Errorf("%+v", got)
		}
		if fe := apitypes.ValidateWorkloadReport(&rep); len(fe) > 0 {
			return fe
		}
		return nil
	})
}
