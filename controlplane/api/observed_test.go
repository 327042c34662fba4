package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestObservedConditionsAndEvents: the conditions and events an agent
// reports survive the store (every driver) and come back under status in a
// GET of one sandbox or route group, not in lists; a report with more than
// MaxObservedEvents events is refused.
func TestObservedConditionsAndEvents(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("obs", nil))
		if err != nil {
			t.Fatal(err)
		}
		rg, err := e.acme.ApplyRouteGroup(ctx, "acme", &client.RouteGroup{Name: "obs-rg", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1",
			Match: v1alpha1.RouteGroupMatch{Label: &v1alpha1.LabelMatch{Key: "a", Value: "*"}}}})
		if err != nil {
			t.Fatal(err)
		}
		conds := []apitypes.Condition{{Type: "Ready", Status: "False", Reason: "ForksNotReady", Message: "waiting for cart", LastTransitionTime: "2026-03-01T10:00:00Z"},
			{Type: "Degraded", Status: "True", Reason: "ImagePullBackOff", Message: "cart: <image> \"missing\"", LastTransitionTime: "2026-03-01T10:01:00Z"}}
		events := []apitypes.ObjectEvent{
			{Type: "Warning", Reason: "ResourceStepFailed", Message: "step provision attempt 2 failed", Count: 3, FirstTimestamp: "2026-03-01T10:10:00Z", LastTimestamp: "2026-03-01T10:20:00Z", ReportingController: "sandboxmesh-operator"},
			{Type: "Normal", Reason: "ForkCreated", Message: "created fork Deployment shop/cart-obs", Count: 1, FirstTimestamp: "2026-03-01T10:00:00Z", LastTimestamp: "2026-03-01T10:00:00Z", ReportingController: "sandboxmesh-operator"},
		}
		report := func(items ...apitypes.AgentStatusItem) int {
			b, _ := json.Marshal(apitypes.AgentStatusReport{Items: items})
			req, _ := http.NewRequest("POST", e.http.URL+"/api/v2/agent/status", bytes.NewReader(b))
			req.Header.Set(apitypes.HeaderClusterToken, e.tokenA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		st := apitypes.ObservedStatus{Reason: "ImagePullBackOff", Message: "cart: image not found", Conditions: conds, Events: events}
		if c := report(apitypes.AgentStatusItem{Kind: "sandbox", Org: "acme", Name: "obs", Version: sb.Version, Status: st},
			apitypes.AgentStatusItem{Kind: "routegroup", Org: "acme", Name: "obs-rg", Version: rg.Version, Status: st}); c != 200 {
			t.Fatalf("report: %d", c)
		}
		got, err := e.acme.GetSandbox(ctx, "acme", "obs")
		if err != nil {
			t.Fatal(err)
		}
		if g, w := fmt.Sprintf("%+v %+v", got.Status.Conditions, got.Status.Events), fmt.Sprintf("%+v %+v", conds, events); g != w {
			t.Fatalf("sandbox GET:\n got %s\nwant %s", g, w)
		}
		gotRG, err := e.acme.GetRouteGroup(ctx, "acme", "obs-rg")
		if err != nil {
			t.Fatal(err)
		}
		if g, w := fmt.Sprintf("%+v %+v", gotRG.Status.Conditions, gotRG.Status.Events), fmt.Sprintf("%+v %+v", conds, events); g != w {
			t.Fatalf("route group GET:\n got %s\nwant %s", g, w)
		}
		// The wire names under status (extensions next to Signadot's fields).
		req, _ := http.NewRequest("GET", e.http.URL+"/api/v2/orgs/acme/sandboxes/obs", nil)
		req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var raw struct {
			Status map[string]json.RawMessage `json:"status"`
		}
		json.NewDecoder(resp.Body).Decode(&raw)
		resp.Body.Close()
		for _, k := range []string{`"lastTransitionTime":"2026-03-01T10:01:00Z"`, `"reportingController":"sandboxmesh-operator"`, `"count":3`, `"firstTimestamp"`, `"lastTimestamp"`} {
			if !strings.Contains(string(raw.Status["conditions"])+string(raw.Status["events"]), k) {
				t.Errorf("status JSON lacks %s: %s %s", k, raw.Status["conditions"], raw.Status["events"])
			}
		}
		// Lists leave them out.
		list, err := e.acme.ListSandboxes(ctx, "acme", nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if len(s.Status.Conditions)+len(s.Status.Events) != 0 {
				t.Fatalf("list carries conditions or events: %+v", s.Status)
			}
		}
		// Too many events: refused, the stored status unchanged.
		many := make([]apitypes.ObjectEvent, apitypes.MaxObservedEvents+1)
		if c := report(apitypes.AgentStatusItem{Kind: "sandbox", Org: "acme", Name: "obs", Version: sb.Version, Status: apitypes.ObservedStatus{Events: many}}); c != 400 {
			t.Fatalf("report of %d events: %d, want 400", len(many), c)
		}
		if got, _ := e.acme.GetSandbox(ctx, "acme", "obs"); len(got.Status.Events) != 2 {
			t.Fatalf("events after a refused report: %+v", got.Status.Events)
		}
	})
}
