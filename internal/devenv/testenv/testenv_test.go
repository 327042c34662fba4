package testenv

import (
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

func crdNames(t *testing.T, opts Options) map[string]bool {
	t.Helper()
	crds, err := CRDs(opts)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, c := range crds {
		out[c.Name] = true
	}
	return out
}

// TestCRDs checks the bundles: ours, Istio's, Argo's Rollout, and the Gateway API channel asked for.
func TestCRDs(t *testing.T) {
	std, exp := crdNames(t, Options{}), crdNames(t, Options{GatewayAPIChannel: GatewayAPIExperimental})
	for _, n := range []string{"sandboxes.sandboxmesh.dev", "routegroups.sandboxmesh.dev", "jobrunnergroups.sandboxmesh.dev", "resourceplugins.sandboxmesh.dev", "virtualservices.networking.istio.io",
		"httproutes.gateway.networking.k8s.io", "grpcroutes.gateway.networking.k8s.io", "rollouts.argoproj.io"} {
		if !std[n] || !exp[n] {
			t.Errorf("%s missing (standard %v, experimental %v)", n, std[n], exp[n])
		}
	}
	const x = "xmeshes.gateway.networking.x-k8s.io"
	if std[x] || !exp[x] {
		t.Errorf("%s is experimental only: standard %v, experimental %v", x, std[x], exp[x])
	}
	if ours := crdNames(t, Options{WithoutMeshCRDs: true}); len(ours) != 4 {
		t.Errorf("WithoutMeshCRDs: %v", ours)
	}
}

// TestExperimentalChannel starts a real API server with the experimental Gateway API CRDs: the
// experimental-only group is served next to the standard one.
func TestExperimentalChannel(t *testing.T) {
	if FuzzOnly() {
		t.Skip("fuzzing")
	}
	env, err := Start(Options{GatewayAPIChannel: GatewayAPIExperimental})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Stop() }()
	for _, gk := range []schema.GroupKind{{Group: "gateway.networking.x-k8s.io", Kind: "XMesh"}, {Group: "gateway.networking.k8s.io", Kind: "HTTPRoute"}} {
		if _, err := env.Client.RESTMapper().RESTMapping(gk); err != nil {
			t.Errorf("%s not served: %v", gk, err)
		}
	}
}
