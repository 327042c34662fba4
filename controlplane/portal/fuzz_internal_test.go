package portal

import (
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// FuzzCreateForm: the create form's parsers (pasted YAML, env lines,
// labels, workload reference) never panic, and what they accept is a JSON
// object named as they say (the API validates the rest); a sandbox the
// fields build, the edit form shows in its fields again (formOf).
func FuzzCreateForm(f *testing.F) {
	f.Add("name: a\nspec: {cluster: c1}", "", "", "")
	f.Add("", "A=1\nB = two\n# c\n", "team=cart, env=dev", "Deployment/shop/cart")
	f.Add("- not a map", "=x", "novalue", "a/b")
	f.Add("name: [", "A", ",,=", "Rollout//x")
	f.Add("name: 1\n", "\x00=\xff", "k=v=w", "Deployment/shop/cart/extra")
	wl := []apitypes.Workload{{Kind: "Deployment", Namespace: "shop", Name: "cart", Services: []apitypes.WorkloadService{{Name: "cart", Ports: []int32{80}}}}}
	f.Add("", "A=1", "", "Deployment/shop/cart")
	f.Fuzz(func(t *testing.T, yml, env, labels, workload string) {
		form := createForm{Name: "n", Cluster: "c1", Workload: workload, Env: env, Labels: labels, YAML: yml, Endpoint: true, Image: "i"}
		for _, fields := range []createForm{{Name: "n", Cluster: "c1", Workload: workload, Env: env, Labels: labels, Endpoint: true, Image: "i", Container: "app"},
			{Name: "n", Cluster: "c1", Workload: workload, Env: env, Labels: labels, Container: "app", Team: "t"}} {
			if sb, errs := formSandbox(fields, wl); len(errs) == 0 {
				if back, ok := formOf(apitypes.Sandbox{Name: sb.Name, Team: sb.Team, Spec: sb.Spec}, wl); !ok {
					t.Fatalf("the edit form cannot show %+v (read back as %+v)", fields, back)
				}
			}
		}
		name, body, fields := sandboxBody(form, wl)
		if len(fields) > 0 {
			if body != nil {
				t.Fatalf("errors and a body: %v", fields)
			}
			return
		}
		var head struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(body, &head); err != nil || head.Name != name || name == "" {
			t.Fatalf("accepted %q as %s (%v)", yml, body, err)
		}
	})
}

// FuzzFilter: the list filter's parser never panics and its query reads back the same.
func FuzzFilter(f *testing.F) {
	f.Add("c1", "team=cart,env=dev")
	f.Add("", "=,=")
	f.Add("x y", "a=b=c, ,k=")
	f.Fuzz(func(t *testing.T, cluster, label string) {
		r := httptest.NewRequest("GET", "/o/x/sandboxes?"+url.Values{"cluster": {cluster}, "label": {label}}.Encode(), nil)
		fl, err := parseFilter(r)
		if err != nil {
			return
		}
		r2 := httptest.NewRequest("GET", "/o/x/sandboxes?"+fl.Query(), nil)
		fl2, err := parseFilter(r2)
		if err != nil || fl2.selector() != fl.selector() || fl2.Cluster != fl.Cluster {
			t.Fatalf("round trip: %+v -> %q -> %+v %v", fl, fl.Query(), fl2, err)
		}
	})
}
