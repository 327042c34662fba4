package apitypes

import (
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func TestPreviewPolicyCheck(t *testing.T) {
	def := PreviewPolicy{}
	shop := PreviewPolicy{AllowedNamespaces: []string{"shop", "kube-system"}}
	for _, tc := range []struct {
		p    PreviewPolicy
		host string
		want string // "" = allowed
	}{
		{def, "frontend.shop.svc", ""},
		{def, "frontend.shop.svc.cluster.local", ""},
		{def, "cart.shop.deploy", ""},
		{def, "kubernetes.default.svc", "API server"},
		{def, "kubernetes.default.svc.cluster.local", "API server"},
		{shop, "kubernetes.default.svc", "API server"},
		{def, "kube-dns.kube-system.svc", "system namespace"},
		{def, "x.kube-public.svc", "system namespace"},
		{def, "169.254.169.254", "not a cluster-internal"},
		{def, "10.96.0.1", "not a cluster-internal"},
		{def, "evil.example.com", "not a cluster-internal"},
		{def, "a.b.svc.evil.com", "not a cluster-internal"},
		{shop, "frontend.shop.svc", ""},
		{shop, "kube-dns.kube-system.svc", ""},
		{shop, "frontend.other.svc", "not in the cluster's preview policy"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			err := tc.p.Check(tc.host)
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("%v, want %q", err, tc.want)
			}
		})
	}
	errs := def.CheckEndpoints("spec.endpoints", []v1alpha1.Endpoint{{Name: "a", Target: "http://web.shop.svc:80"}, {Name: "b", Target: "https://kubernetes.default.svc:443"}})
	if len(errs) != 1 || errs[0].Path != "spec.endpoints[1].target" {
		t.Fatalf("CheckEndpoints: %v", errs)
	}
}

func TestValidatePreviewPolicy(t *testing.T) {
	for _, tc := range []struct {
		ns   []string
		path string
	}{
		{nil, ""},
		{[]string{"shop", "kube-system"}, ""},
		{[]string{"shop", "A_B"}, "allowedNamespaces[1]"},
		{[]string{"shop", "shop"}, "allowedNamespaces[1]"},
		{[]string{""}, "allowedNamespaces[0]"},
		{make([]string, MaxPolicyNamespaces+1), "allowedNamespaces"},
	} {
		errs := ValidatePreviewPolicy(&PreviewPolicy{AllowedNamespaces: tc.ns})
		if (tc.path == "") != (len(errs) == 0) || (len(errs) > 0 && errs[0].Path != tc.path) {
			t.Errorf("%q: %v, want %q", tc.ns, errs, tc.path)
		}
	}
}

func TestValidateObservedEndpoints(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   v1alpha1.EndpointStatus
		path string
	}{
		{"operator's shape", v1alpha1.EndpointStatus{Name: "web", Host: "cart-fork.shop.svc", Port: 8080, URL: "http://cart-fork.shop.svc:8080"}, ""},
		{"host with port", v1alpha1.EndpointStatus{Name: "web", Host: "cart.shop.svc:8080"}, ""},
		{"cluster.local", v1alpha1.EndpointStatus{Name: "web", Host: "cart.shop.svc.cluster.local"}, ""},
		{"IP host", v1alpha1.EndpointStatus{Name: "web", Host: "169.254.169.254:80"}, "e[0].host"},
		{"external name", v1alpha1.EndpointStatus{Name: "web", Host: "evil.example.com"}, "e[0].host"},
		{"bad port", v1alpha1.EndpointStatus{Name: "web", Host: "a.b.svc:99999"}, "e[0].host"},
		{"negative port", v1alpha1.EndpointStatus{Name: "web", Port: -1}, "e[0].port"},
		{"IP URL", v1alpha1.EndpointStatus{Name: "web", URL: "http://127.0.0.1:80"}, "e[0].url"},
		{"URL with user", v1alpha1.EndpointStatus{Name: "web", URL: "http://u@a.b.svc:80"}, "e[0].url"},
		{"URL scheme", v1alpha1.EndpointStatus{Name: "web", URL: "file://a.b.svc/etc"}, "e[0].url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateObservedEndpoints("e", []v1alpha1.EndpointStatus{tc.ep})
			if (tc.path == "") != (len(errs) == 0) || (len(errs) > 0 && errs[0].Path != tc.path) {
				t.Fatalf("%v, want %q", errs, tc.path)
			}
		})
	}
}

// FuzzPreviewTargets: checking a host against the default policy and
// validating a reported endpoint never panic; whatever passes is a
// cluster-internal Service name outside the system namespaces and is not the
// API server.
func FuzzPreviewTargets(f *testing.F) {
	for _, s := range []string{"frontend.shop.svc", "kubernetes.default.svc.cluster.local", "169.254.169.254", "a.kube-system.svc", "http://u@a.b.svc:80/x", "a.b.svc:99999", "", "..svc", "A.B.SVC"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if (PreviewPolicy{}).Check(host) == nil {
			name, ns, _, ok := splitServiceHost(strings.ToLower(host))
			if !ok || (name == "kubernetes" && ns == "default") || ns == "kube-system" || ns == "kube-public" || ns == "kube-node-lease" {
				t.Fatalf("allowed %q", host)
			}
		}
		if len(ValidateObservedEndpoints("e", []v1alpha1.EndpointStatus{{Name: "w", Host: host, URL: "http://" + host}})) == 0 && strings.ContainsAny(host, "@/?#") {
			t.Fatalf("reported %q accepted", host)
		}
	})
}
