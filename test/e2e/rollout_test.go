//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// rolloutFork: an Argo Rollout (the CRD demo.Install put in the cluster; no
// Argo controller runs, so the Rollout has no pods of its own) running
// hotrod's route pod template is forked over REST with forkOf.kind Rollout.
// The route Service selects the Rollout's pods too, so the fork gets routes
// there: a request with the sandbox's key reaches the fork (a plain
// Deployment our operator made) at the route hop, through the sidecar of the
// baseline route pods. Nothing of the baseline is changed.
func rolloutFork(ctx context.Context, t *testing.T, e *demo.Env, h *hitter) {
	const rolloutName = "route-rollout"
	route, err := e.Kube.AppsV1().Deployments(demo.ExampleNamespace).Get(ctx, "route", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(&route.Spec.Template)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(route.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	ro := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
		"metadata": map[string]any{"namespace": demo.ExampleNamespace, "name": rolloutName},
		"spec":     map[string]any{"replicas": int64(1), "selector": sel, "template": tmpl},
	}}
	if err := e.Client.Create(ctx, ro); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create Rollout %s: %v", rolloutName, err)
	}
	defer func() {
		if err := e.Client.Delete(ctx, ro); client.IgnoreNotFound(err) != nil {
			t.Errorf("delete Rollout: %v", err)
		}
	}()

	version := "rollout"
	sb := &cpclient.Sandbox{Name: "route-rollout", Spec: v1alpha1.SandboxSpec{
		Cluster:     e.Cluster,
		Description: "fork of an Argo Rollout",
		Forks: []v1alpha1.Fork{{
			ForkOf:         v1alpha1.WorkloadRef{Kind: v1alpha1.KindRollout, Namespace: demo.ExampleNamespace, Name: rolloutName},
			Customizations: &v1alpha1.Customizations{Env: []v1alpha1.EnvCustomization{envVar("VERSION", version)}},
		}},
	}}
	if _, err := e.API.ApplySandbox(ctx, e.Org, sb); err != nil {
		t.Fatalf("PUT sandbox %s: %v", sb.Name, err)
	}
	got, err := e.WaitReady(ctx, sb.Name, 4*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, time.Minute, "the Rollout's fork answers under the key", func() error {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+got.RoutingKey)
		if err != nil {
			return err
		}
		if r := tree.Find("route"); r == nil || r.Sandbox != sb.Name || r.Version != version {
			return fmt.Errorf("route hop: %+v", r)
		}
		if s := servedBy(tree); s["frontend"] != "" || s["driver"] != "" || s["customer"] != "" {
			return fmt.Errorf("served by %v", s)
		}
		return nil
	})
	// Without the key the baseline answers.
	if s := servedBy(h.must(ctx, "", "")); s["route"] != "" {
		t.Errorf("a request without key reached %q", s["route"])
	}

	if err := e.API.DeleteSandbox(ctx, e.Org, sb.Name); err != nil {
		t.Fatal(err)
	}
	fork := naming.ForkName(e.Namespace, sb.Name, demo.ExampleNamespace, rolloutName)
	waitFor(ctx, t, 3*time.Minute, "the Rollout's fork Deployment and Service gone", func() error {
		if _, err := e.Kube.AppsV1().Deployments(demo.ExampleNamespace).Get(ctx, fork, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("deployment %s: %v", fork, err)
		}
		if _, err := e.Kube.CoreV1().Services(demo.ExampleNamespace).Get(ctx, fork, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("service %s: %v", fork, err)
		}
		return nil
	})
}
