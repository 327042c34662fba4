package portal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestSandboxConditionsAndEvents: the detail page shows empty states until
// the agent reports, then the CR's conditions and events (Warning marked in
// words, not colour alone; messages escaped; newest first); the page's event
// stream carries the re-rendered sections.
func TestSandboxConditionsAndEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	sb, err := e.admin.ApplySandbox(ctx, "shop", &client.Sandbox{Name: "s1", Spec: v1alpha1.SandboxSpec{Cluster: "c1",
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	vic := e.login("vic@example.com", vicPass) // a viewer reads them too
	_, body := vic.get("/o/shop/sandboxes/s1")
	for _, want := range []string{`id="no-events">No events reported.`, `id="no-conditions"`, `id="observed"`} {
		if !strings.Contains(body, want) {
			t.Errorf("before a report, the page lacks %s", want)
		}
	}

	req, _ := http.NewRequest("GET", e.http.URL+"/o/shop/events?name=s1", nil)
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := vic.c.Do(req.WithContext(sctx))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events: %v %+v", err, resp)
	}
	defer resp.Body.Close()
	now := time.Now().UTC()
	st := apitypes.ObservedStatus{Reason: "ImagePullBackOff", Message: "cart: image not found",
		Conditions: []apitypes.Condition{
			{Type: "Ready", Status: "False", Reason: "ForksNotReady", Message: "waiting for cart", LastTransitionTime: now.Add(-3 * time.Hour).Format(time.RFC3339)},
			{Type: "Degraded", Status: "True", Reason: "ImagePullBackOff", Message: "cart: image <cart:v9> not found", LastTransitionTime: now.Add(-5 * time.Minute).Format(time.RFC3339)},
		},
		Events: []apitypes.ObjectEvent{
			{Type: "Warning", Reason: "ResourceStepFailed", Message: "step <provision> failed", Count: 3, FirstTimestamp: now.Add(-time.Hour).Format(time.RFC3339), LastTimestamp: now.Add(-2 * time.Minute).Format(time.RFC3339), ReportingController: "sandboxmesh-operator"},
			{Type: "Normal", Reason: "ForkCreated", Message: "created fork Deployment shop/cart-s1", Count: 1, FirstTimestamp: now.Add(-3 * time.Hour).Format(time.RFC3339), LastTimestamp: now.Add(-3 * time.Hour).Format(time.RFC3339), ReportingController: "sandboxmesh-operator"},
		}}
	go func() {
		time.Sleep(100 * time.Millisecond)
		e.report("s1", sb.Version, st)
	}()
	var observed string
	if !readSSE(t, resp.Body, 5*time.Second, func(ev, data string) bool {
		var d struct{ Name, Observed string }
		_ = json.Unmarshal([]byte(data), &d)
		observed = d.Observed
		return ev == "sandbox" && d.Name == "s1" && strings.Contains(d.Observed, "ResourceStepFailed")
	}) {
		t.Fatalf("no live update of the conditions and events: %.500s", observed)
	}
	if !strings.HasPrefix(observed, `<div id="observed">`) || !strings.Contains(observed, `id="events"`) {
		t.Errorf("streamed sections: %.300s", observed)
	}

	_, body = vic.get("/o/shop/sandboxes/s1")
	checks := []string{
		// Conditions: type, status, reason, message (escaped), since.
		`<td data-label="Type">Degraded</td>`, `<td data-label="Status">True</td>`, `cart: image &lt;cart:v9&gt; not found`,
		`<time datetime="` + st.Conditions[1].LastTransitionTime + `">5 min ago</time>`, `>3 h ago</time>`,
		// Events: Warning in words and as a row class; count; last seen relative and absolute; escaped.
		`<tr class="warning">`, `<span class="badge warning"><span aria-hidden="true">⚠ </span>Warning</span>`, `step &lt;provision&gt; failed`,
		`<td data-label="Count">3</td>`, `>2 min ago</time><small>` + st.Events[0].LastTimestamp + `</small>`, `from sandboxmesh-operator`,
	}
	for _, want := range checks {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(body, "No events reported.") || strings.Contains(body, "<provision>") {
		t.Error("empty state or unescaped message shown")
	}
	if w, n := strings.Index(body, "ResourceStepFailed"), strings.Index(body, "ForkCreated"); w < 0 || n < w {
		t.Errorf("events not in the reported order (newest first): %d %d", w, n)
	}
	if strings.Count(body, `class="warning"`) != 1 {
		t.Errorf("%d rows marked warning, want 1", strings.Count(body, `class="warning"`))
	}
}

// TestRouteGroupConditionsAndEvents: the route group page shows the
// conditions and events the agent reported for the RouteGroup CR, with the
// sandbox page's tables (empty states first).
func TestRouteGroupConditionsAndEvents(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	rg, err := e.admin.ApplyRouteGroup(ctx, "shop", &client.RouteGroup{Name: "team-a", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1",
		Match: v1alpha1.RouteGroupMatch{Label: &v1alpha1.LabelMatch{Key: "team", Value: "a"}}}})
	if err != nil {
		t.Fatal(err)
	}
	vic := e.login("vic@example.com", vicPass)
	if _, body := vic.get("/o/shop/routegroups/team-a"); !strings.Contains(body, `id="no-events">No events reported.`) || !strings.Contains(body, `id="no-conditions"`) {
		t.Fatalf("before a report: %.3000s", body)
	}
	now := time.Now().UTC()
	e.reportRG("team-a", rg.Version, apitypes.ObservedStatus{Ready: false, Reason: "NoMatch", Message: "no sandbox matches",
		Conditions: []apitypes.Condition{{Type: "Ready", Status: "False", Reason: "NoMatch", Message: "no sandbox has label team=a", LastTransitionTime: now.Add(-time.Minute).Format(time.RFC3339)}},
		Events:     []apitypes.ObjectEvent{{Type: "Warning", Reason: "NoSandboxMatched", Message: "no <sandbox> matches", Count: 2, LastTimestamp: now.Format(time.RFC3339)}}})
	_, body := vic.get("/o/shop/routegroups/team-a")
	for _, want := range []string{`<td data-label="Reason">NoMatch</td>`, `no sandbox has label team=a`, `<tr class="warning">`, `no &lt;sandbox&gt; matches`,
		`<td data-label="Count">2</td>`, `about the RouteGroup resource`} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}
