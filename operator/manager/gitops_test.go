package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// gitOpsVirtualService is a user's VirtualService for Service app as it is in
// git: a /v2 route to another Service and a default route with timeout and
// retries.
func gitOpsVirtualService(ns, app string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata": map[string]any{
			"namespace": ns, "name": app + "-routes",
			"labels":      map[string]any{"app.kubernetes.io/instance": "shop-gitops"},
			"annotations": map[string]any{"argocd.argoproj.io/tracking-id": "shop:networking.istio.io/VirtualService:" + ns + "/" + app + "-routes"},
		},
		"spec": map[string]any{
			"hosts": []any{app},
			"http": []any{
				map[string]any{
					"name":  "v2",
					"match": []any{map[string]any{"uri": map[string]any{"prefix": "/v2"}}},
					"route": []any{map[string]any{"destination": map[string]any{"host": app + "-v2"}}},
				},
				map[string]any{
					"name":    "default",
					"route":   []any{map[string]any{"destination": map[string]any{"host": app}}},
					"timeout": "5s",
					"retries": map[string]any{"attempts": int64(3), "perTryTimeout": "2s", "retryOn": "5xx"},
				},
			},
		},
	}}
}

func getVirtualService(t *testing.T, key types.NamespacedName) *unstructured.Unstructured {
	t.Helper()
	vs := &unstructured.Unstructured{}
	vs.SetAPIVersion("networking.istio.io/v1")
	vs.SetKind("VirtualService")
	if err := c.Get(context.Background(), key, vs); err != nil {
		t.Fatalf("get VirtualService %s: %v", key, err)
	}
	return vs
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// httpRoutes returns the names of the http routes of vs and the routes that
// are not ours (named sandboxmesh-*).
func httpRoutes(vs *unstructured.Unstructured) (names []string, user []any) {
	http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	for _, rt := range http {
		m, _ := rt.(map[string]any)
		n, _ := m["name"].(string)
		names = append(names, n)
		if !strings.HasPrefix(n, meshadapters.RouteNamePrefix) {
			user = append(user, rt)
		}
	}
	return names, user
}

// TestIstioGitOpsReapply: the operator runs with the istio backend and a
// user owns the VirtualService of a baseline Service. A Sandbox forking the
// workload gets its named route inserted at the top of the user's
// VirtualService. A GitOps tool (Argo CD, Flux) then re-applies the user's
// VirtualService as it is in git, which drops our route; the operator's
// watch on VirtualServices re-inserts it without touching the user's routes,
// labels or annotations. Nothing else triggers a reconcile here: the Sandbox
// is Ready (no requeue) and does not change.
func TestIstioGitOpsReapply(t *testing.T) {
	ctx := context.Background()
	ns := "gitops"
	world(t, ns, "cart")
	inGit := gitOpsVirtualService(ns, "cart")
	if err := c.Create(ctx, inGit.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	vsKey := types.NamespacedName{Namespace: ns, Name: "cart-routes"}
	gitSpec := jsonOf(inGit.Object["spec"])
	_, gitUser := httpRoutes(inGit)

	sb := sandbox(ns, "gitops", "cart")
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	forkName := naming.ForkName(ns, sb.Name, ns, "cart")
	makeAvailable(t, ns, forkName)
	s := waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
	ours := meshadapters.RouteNamePrefix + s.Status.RoutingKey

	// checkInserted reports whether our route is first and the user's routes,
	// labels and annotations are exactly as in git.
	checkInserted := func(vs *unstructured.Unstructured) (bool, string) {
		names, user := httpRoutes(vs)
		if len(names) != 3 || names[0] != ours {
			return false, fmt.Sprintf("http routes %v, want [%s v2 default]", names, ours)
		}
		if jsonOf(user) != jsonOf(gitUser) {
			return false, fmt.Sprintf("user routes changed:\n got %s\nwant %s", jsonOf(user), jsonOf(gitUser))
		}
		if jsonOf(vs.GetLabels()) != jsonOf(inGit.GetLabels()) || jsonOf(vs.GetAnnotations()) != jsonOf(inGit.GetAnnotations()) {
			return false, fmt.Sprintf("labels %v annotations %v changed", vs.GetLabels(), vs.GetAnnotations())
		}
		http, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
		route := http[0].(map[string]any)
		var host string
		if dests, _, _ := unstructured.NestedSlice(route, "route"); len(dests) == 1 {
			host, _, _ = unstructured.NestedString(dests[0].(map[string]any), "destination", "host")
		}
		if want := forkName + "." + ns + ".svc.cluster.local"; host != want {
			return false, fmt.Sprintf("our route goes to %q, want %q", host, want)
		}
		if route["timeout"] != "5s" || jsonOf(route["retries"]) != jsonOf(gitUser[1].(map[string]any)["retries"]) {
			return false, fmt.Sprintf("timeout/retries of the default route not copied: %s", jsonOf(route))
		}
		return true, ""
	}
	eventually(t, "our route inserted at the top of the user's VirtualService", func() (bool, string) {
		return checkInserted(getVirtualService(t, vsKey))
	})
	var owned istionetworkingv1.VirtualService
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: meshadapters.IstioOwnedName("cart")}, &owned); !apierrors.IsNotFound(err) {
		t.Fatalf("the operator keeps its own VirtualService next to the user's: %v", err)
	}

	// The GitOps tool re-applies the VirtualService from git, twice (a sync
	// loop does not stop after one re-apply).
	for round := 1; round <= 2; round++ {
		var reapplied *unstructured.Unstructured
		err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
			cur := getVirtualService(t, vsKey)
			cur.Object["spec"] = inGit.DeepCopy().Object["spec"]
			cur.SetLabels(inGit.GetLabels())
			cur.SetAnnotations(inGit.GetAnnotations())
			if err := c.Update(ctx, cur); err != nil {
				return err
			}
			reapplied = cur
			return nil
		})
		if err != nil {
			t.Fatalf("round %d: re-apply the user's VirtualService: %v", round, err)
		}
		// The API server stored the spec from git, without our route.
		if got := jsonOf(reapplied.Object["spec"]); got != gitSpec {
			t.Fatalf("round %d: re-applied spec %s, want %s", round, got, gitSpec)
		}
		eventually(t, fmt.Sprintf("round %d: our route re-inserted after the re-apply", round), func() (bool, string) {
			vs := getVirtualService(t, vsKey)
			if vs.GetResourceVersion() == reapplied.GetResourceVersion() {
				return false, "not written since the re-apply"
			}
			if vs.GetGeneration() <= reapplied.GetGeneration() {
				return false, fmt.Sprintf("generation %d, re-applied at %d", vs.GetGeneration(), reapplied.GetGeneration())
			}
			return checkInserted(vs)
		})
	}

	// Deleting the Sandbox removes exactly our route: the VirtualService is as in git.
	if err := c.Delete(ctx, sb); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the user's VirtualService back as in git", func() (bool, string) {
		vs := getVirtualService(t, vsKey)
		got := jsonOf(vs.Object["spec"])
		return got == gitSpec && jsonOf(vs.GetLabels()) == jsonOf(inGit.GetLabels()) && jsonOf(vs.GetAnnotations()) == jsonOf(inGit.GetAnnotations()), got
	})
	eventually(t, "sandbox gone", func() (bool, string) {
		_, ok := get(t, client.ObjectKeyFromObject(sb), &smv1.Sandbox{})
		return !ok, "still there"
	})
}
