package api_test

import (
	"context"
	"errors"
	"net/http"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestPreviewPolicy: by default no sandbox may target the Kubernetes API
// server or kube-system; a cluster's allowedNamespaces narrows the targets;
// a policy change also refuses existing sandboxes at preview time; an agent
// may only report cluster-internal Service names.
func TestPreviewPolicy(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		withTarget := func(name, target string) *client.Sandbox {
			sb := sandbox(name, nil)
			sb.Spec.DefaultRouteGroup = &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: target}}}
			return sb
		}
		refused := func(t *testing.T, err error, path string) {
			t.Helper()
			if !errors.Is(err, client.ErrInvalid) {
				t.Fatalf("want 400, got %v", err)
			}
			if f := apiErr(t, err).Fields; len(f) == 0 || f[0].Path != path {
				t.Fatalf("fields %v, want %s", f, path)
			}
		}
		const tp = "spec.defaultRouteGroup.endpoints[0].target"
		t.Run("default policy", func(t *testing.T) {
			_, err := e.acme.ApplySandbox(ctx, "acme", withTarget("api", "http://kubernetes.default.svc:443"))
			refused(t, err, tp)
			_, err = e.acme.ApplySandbox(ctx, "acme", withTarget("dns", "tcp://kube-dns.kube-system.svc:53"))
			refused(t, err, tp)
			rg := &client.RouteGroup{Name: "rg", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1", Match: v1alpha1.RouteGroupMatch{Label: &v1alpha1.LabelMatch{Key: "a", Value: "*"}},
				Endpoints: []v1alpha1.Endpoint{{Name: "api", Target: "http://kubernetes.default.svc:443"}}}}
			_, err = e.acme.ApplyRouteGroup(ctx, "acme", rg)
			refused(t, err, "spec.endpoints[0].target")
			p, err := e.acme.GetPreviewPolicy(ctx, "acme", "c1")
			if err != nil || p.AllowedNamespaces == nil || len(p.AllowedNamespaces) != 0 {
				t.Fatalf("default policy: %+v %v", p, err)
			}
		})

		// A sandbox in shop, reachable until the policy leaves shop out.
		if _, err := e.acme.ApplySandbox(ctx, "acme", withTarget("feat", "http://frontend.shop.svc:8080")); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder(t)
		connectAgent(t, e, rec, "frontend.shop.svc:8080")
		get := func() int {
			req, _ := http.NewRequest("GET", e.http.URL+"/preview/acme/feat/web/", nil)
			req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if code := get(); code != 200 {
			t.Fatalf("preview before the policy: %d", code)
		}

		t.Run("allowed namespaces", func(t *testing.T) {
			_, err := e.acme.SetPreviewPolicy(ctx, "acme", "c1", client.PreviewPolicy{AllowedNamespaces: []string{"hotrod", "Bad_NS"}})
			refused(t, err, "allowedNamespaces[1]")
			if _, err := e.other.SetPreviewPolicy(ctx, "acme", "c1", client.PreviewPolicy{}); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("another org's cluster: %v", err)
			}
			if _, err := e.acme.SetPreviewPolicy(ctx, "acme", "c1", client.PreviewPolicy{AllowedNamespaces: []string{"hotrod"}}); err != nil {
				t.Fatal(err)
			}
			_, err = e.acme.ApplySandbox(ctx, "acme", withTarget("feat2", "http://frontend.shop.svc:8080"))
			refused(t, err, tp)
			if _, err := e.acme.ApplySandbox(ctx, "acme", withTarget("feat3", "http://frontend.hotrod.svc:8080")); err != nil {
				t.Fatal(err)
			}
			if code := get(); code != http.StatusForbidden {
				t.Fatalf("preview of a sandbox the new policy refuses: %d", code)
			}
			if _, err := e.acme.SetPreviewPolicy(ctx, "acme", "c1", client.PreviewPolicy{AllowedNamespaces: []string{"hotrod", "shop"}}); err != nil {
				t.Fatal(err)
			}
			if code := get(); code != 200 {
				t.Fatalf("preview after shop is allowed again: %d", code)
			}
		})

		t.Run("agent reports", func(t *testing.T) {
			sb, err := e.acme.GetSandbox(ctx, "acme", "feat")
			if err != nil {
				t.Fatal(err)
			}
			report := func(host, u string) int {
				body := `{"items":[{"kind":"sandbox","org":"acme","name":"feat","version":` + itoa(sb.Version) +
					`,"status":{"ready":true,"endpoints":[{"name":"web","target":"http://frontend.shop.svc:8080","host":"` + host + `","port":8080,"url":"` + u + `"}]}}]}`
				resp, _, _ := e.raw("POST", "/api/v2/agent/status", "", body, apitypes.HeaderClusterToken, e.tokenA)
				return resp.StatusCode
			}
			for _, tc := range []struct{ host, url string }{
				{"169.254.169.254", "http://169.254.169.254:80"},
				{"metadata.google.internal", "http://metadata.google.internal:80"},
				{"frontend.shop.svc", "http://127.0.0.1:8080"},
			} {
				if code := report(tc.host, tc.url); code != http.StatusBadRequest {
					t.Errorf("report of %s %s: %d, want 400", tc.host, tc.url, code)
				}
			}
			// A Service name in a system namespace passes the shape check but the
			// policy refuses it when a preview would dial it.
			if code := report("kube-dns.kube-system.svc", "http://kube-dns.kube-system.svc:8080"); code != 200 {
				t.Fatalf("report: %d", code)
			}
			if code := get(); code != http.StatusForbidden {
				t.Fatalf("preview resolved into kube-system: %d", code)
			}
			if code := report("frontend.shop.svc", "http://frontend.shop.svc:8080"); code != 200 {
				t.Fatalf("report: %d", code)
			}
			if code := get(); code != 200 {
				t.Fatalf("preview after a good report: %d", code)
			}
		})
	})
}
