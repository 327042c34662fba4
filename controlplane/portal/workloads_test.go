package portal_test

import (
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// TestClusterWorkloads: the clusters list links each cluster's page; it
// shows the connection state, the operator version and the workloads the
// agent reported (containers and images, replicas, services and ports), each
// with a link that opens the new-sandbox form with it chosen (writers only);
// a cluster whose agent has not reported says how to install it.
func TestClusterWorkloads(t *testing.T) {
	e := newEnv(t)
	e.report("none", 1, apitypes.ObservedStatus{}) // the agent calls in with its operator version
	ann := e.login("ann@example.com", annPass)
	if _, body := ann.get("/o/shop/clusters"); !strings.Contains(body, `href="/o/shop/clusters/c1"`) {
		t.Fatalf("the list does not link the cluster: %.2000s", body)
	}
	resp, body := ann.get("/o/shop/clusters/c1")
	for _, want := range []string{`<span class="badge ready">connected</span>`, `id="operator-version">v0.1.0<`, `id="wl-shop-cart"`, "shop/cart", "Deployment",
		"<code>cart:v1</code>", "1/1", "<code>cart</code>:8080", `href="/o/shop/new?cluster=c1&amp;workload=Deployment%2fshop%2fcart"`, `aria-current="page"`} {
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Fatalf("cluster page lacks %q: %d %.4000s", want, resp.StatusCode, body)
		}
	}
	// The link opens the form with the cluster and the workload chosen.
	if _, body := ann.get("/o/shop/new?cluster=c1&workload=Deployment%2fshop%2fcart"); !strings.Contains(body, `<option value="Deployment/shop/cart" selected`) {
		t.Fatalf("the form does not pre-select the workload: %.3000s", body)
	}
	if resp, _ := ann.get("/o/shop/clusters/nope"); resp.StatusCode != 404 {
		t.Fatalf("unknown cluster: %d", resp.StatusCode)
	}
	// A viewer reads the page without the fork links.
	vic := e.login("vic@example.com", vicPass)
	if resp, body := vic.get("/o/shop/clusters/c1"); resp.StatusCode != 200 || !strings.Contains(body, `id="wl-shop-cart"`) || strings.Contains(body, "/o/shop/new") {
		t.Fatalf("viewer: %d %.3000s", resp.StatusCode, body)
	}
	// A cluster whose agent never reported: how to install it.
	if _, err := e.admin.RegisterCluster(t.Context(), "shop", "c2"); err != nil {
		t.Fatal(err)
	}
	resp, body = ann.get("/o/shop/clusters/c2")
	if resp.StatusCode != 200 || !strings.Contains(body, `id="no-workloads"`) || !strings.Contains(body, "never connected") || !strings.Contains(body, "New token") || strings.Contains(body, `id="workloads"`) {
		t.Fatalf("empty cluster: %d %.3000s", resp.StatusCode, body)
	}
}
