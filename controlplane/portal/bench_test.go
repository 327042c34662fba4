package portal_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// BenchmarkPages measures each page's server time with 1,000 sandboxes in
// the org (SQLite), side by side with its peer, the REST call that reads the
// same data (the pages read through it): the difference is the page's own cost.
func BenchmarkPages(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.admin.SetQuota(ctx, "shop", 2000); err != nil {
		b.Fatal(err)
	}
	for i := range 10 { // the sandboxes' teams: the usage page's rows
		e.apiCall("PUT", fmt.Sprintf("/api/v2/orgs/shop/teams/t%d", i), apitypes.HeaderAPIKey, e.adminKey(), `{"maxSandboxes":200}`, nil, 200)
	}
	for i := range 1000 {
		spec := v1alpha1.SandboxSpec{Cluster: "c1", Labels: map[string]string{"team": fmt.Sprintf("t%d", i%10)},
			Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"},
				Customizations: &v1alpha1.Customizations{Images: []v1alpha1.ImageCustomization{{Image: "cart:pr"}}}}},
			DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://cart.shop.deploy:8080"}}}}
		raw, _ := json.Marshal(spec)
		o, _, err := e.st.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "shop", Name: fmt.Sprintf("sb-%04d", i), Cluster: "c1", Spec: raw, Labels: spec.Labels, Team: fmt.Sprintf("t%d", i%10),
			NewRoutingKey: func() (string, error) { return fmt.Sprintf("rk%010d", i), nil }})
		if err != nil {
			b.Fatal(err)
		}
		if i%2 == 0 {
			e.report(o.Name, o.Version, apitypes.ObservedStatus{Ready: true, Reason: "Available", Message: "all forks ready"})
		}
	}
	ann := e.login("ann@example.com", annPass)
	u, _ := url.Parse(e.http.URL)
	var cookie string
	for _, c := range ann.c.Jar.Cookies(u) {
		cookie = c.Name + "=" + c.Value
	}
	get := func(b *testing.B, path string, hdr ...string) {
		req, _ := http.NewRequest("GET", e.http.URL+path, nil)
		req.Header.Set("Cookie", cookie)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("%s: %d", path, resp.StatusCode)
		}
		b.SetBytes(n)
	}
	for _, bc := range []struct{ name, path string }{
		{"page=sandboxes", "/o/shop/sandboxes"},
		{"peer=api-list-sandboxes", "/api/v2/orgs/shop/sandboxes"},
		{"page=sandboxes-filtered", "/o/shop/sandboxes?label=team%3Dt3"},
		{"peer=api-list-sandboxes-filtered", "/api/v2/orgs/shop/sandboxes?labelSelector=team%3Dt3"},
		{"page=sandbox", "/o/shop/sandboxes/sb-0500"},
		{"peer=api-get-sandbox", "/api/v2/orgs/shop/sandboxes/sb-0500"},
		{"page=new", "/o/shop/new"},
		{"page=edit", "/o/shop/sandboxes/sb-0500/edit"},
		{"page=clusters", "/o/shop/clusters"},
		{"page=cluster", "/o/shop/clusters/c1"},
		{"page=members", "/o/shop/members"},
		{"page=usage", "/o/shop/usage"},
		{"peer=api-usage", "/api/v2/orgs/shop/usage"},
		{"peer=api-usage-csv", "/api/v2/orgs/shop/usage?format=csv"},
		{"page=orgs", "/orgs"},
		{"peer=api-me", "/api/v2/auth/me"},
	} {
		if strings.HasPrefix(bc.name, "page=sandboxes") {
			_, body := ann.get(bc.path)
			if !strings.Contains(body, "sb-0") {
				b.Fatalf("%s: no rows", bc.path)
			}
		}
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				get(b, bc.path)
			}
		})
	}
}
