package portal_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// reportRG sends the agent's status of a route group.
func (e *env) reportRG(name string, version int64, st apitypes.ObservedStatus) {
	e.t.Helper()
	b, _ := json.Marshal(apitypes.AgentStatusReport{OperatorVersion: "v0.1.0", Items: []apitypes.AgentStatusItem{{Kind: "routegroup", Org: "shop", Name: name, Version: version, Status: st}}})
	e.apiCall("POST", "/api/v2/agent/status", apitypes.HeaderClusterToken, e.token, string(b), nil, 200)
}

const rgTeamA = `name: team-a
spec:
  cluster: c1
  match:
    label:
      key: team
      value: a
  endpoints:
    - name: web
      target: http://cart.shop.svc:8080
`

// TestRouteGroups: an owner creates a route group from pasted YAML (Show
// YAML first) over two sandboxes labelled team=a; the list shows the
// sandboxes it matches once the agent reports them; the detail shows the
// endpoints and the YAML; the detail's form updates the match (with
// If-Match: a stale version is refused); bad YAML and a spec the API
// refuses show the error's field path; delete after confirmation; a viewer
// sees no forms and its POSTs are 403; POSTs need the CSRF token.
func TestRouteGroups(t *testing.T) {
	e := newEnv(t)
	for _, n := range []string{"pr-1", "pr-2"} {
		e.apiCall("PUT", "/api/v2/orgs/shop/sandboxes/"+n, apitypes.HeaderAPIKey, e.adminKey(),
			`{"name":"`+n+`","spec":{"cluster":"c1","labels":{"team":"a"},"forks":[{"forkOf":{"kind":"Deployment","namespace":"shop","name":"cart"}}]}}`, nil, 200)
	}
	ann := e.login("ann@example.com", annPass)
	resp, body := ann.get("/o/shop/routegroups")
	if resp.StatusCode != 200 || !strings.Contains(body, "No route groups yet") || !strings.Contains(body, "two pull requests") || !strings.Contains(body, `id="create-rg"`) ||
		!strings.Contains(body, `for="rg-yaml"`) || !strings.Contains(body, `href="/o/shop/routegroups" aria-current="page"`) || !strings.Contains(body, "cluster: c1") {
		t.Fatalf("empty list: %d %.3000s", resp.StatusCode, body)
	}
	csrf := ann.csrf("/o/shop/routegroups")

	// Show YAML: what the form sends, nothing created.
	resp, body = ann.postForm("/o/shop/routegroups", url.Values{"csrf": {csrf}, "yaml": {rgTeamA}, "action": {"preview"}})
	if resp.StatusCode != 200 || !strings.Contains(body, `id="preview"`) || !strings.Contains(body, "key: team") {
		t.Fatalf("preview: %d %.2000s", resp.StatusCode, body)
	}
	e.apiCall("GET", "/api/v2/orgs/shop/routegroups/team-a", apitypes.HeaderAPIKey, e.adminKey(), "", nil, 404)

	// Bad YAML; a spec the API refuses (its field path shown); no name.
	for _, c := range []struct{ yaml, want string }{
		{"name: [x\n", `id="err-yaml"`},
		{"name: bad\nspec:\n  cluster: c1\n  match: {}\n", "<code>spec.match</code>"},
		{"spec:\n  cluster: c1\n", "<code>yaml.name</code>"},
		{"name: bad\nspec:\n  cluster: c1\n  match:\n    label: {key: team, value: a}\n  bogus: 1\n", "<code>spec.bogus</code>: unknown field"},
	} {
		resp, body := ann.postForm("/o/shop/routegroups", url.Values{"csrf": {csrf}, "yaml": {c.yaml}, "action": {"create"}})
		if resp.StatusCode != 400 || !strings.Contains(body, c.want) || !strings.Contains(body, "field-error") {
			t.Errorf("bad %q: %d %.3000s", c.yaml, resp.StatusCode, body)
		}
	}
	e.apiCall("GET", "/api/v2/orgs/shop/routegroups/bad", apitypes.HeaderAPIKey, e.adminKey(), "", nil, 404)

	// Create.
	resp, body = ann.postForm("/o/shop/routegroups", url.Values{"csrf": {csrf}, "yaml": {rgTeamA}, "action": {"create"}})
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/o/shop/routegroups/team-a" || !strings.Contains(body, "Route group created") {
		t.Fatalf("create: %d %s %.2000s", resp.StatusCode, resp.Request.URL, body)
	}
	var rg apitypes.RouteGroup
	e.apiCall("GET", "/api/v2/orgs/shop/routegroups/team-a", apitypes.HeaderAPIKey, e.adminKey(), "", &rg, 200)
	if rg.Spec.Match.Label == nil || rg.Spec.Match.Label.Value != "a" || rg.RoutingKey == "" {
		t.Fatalf("route group: %+v", rg)
	}
	// Creating it again is refused: the form creates, the detail page updates.
	if resp, body := ann.postForm("/o/shop/routegroups", url.Values{"csrf": {csrf}, "yaml": {rgTeamA}, "action": {"create"}}); resp.StatusCode != 409 || !strings.Contains(body, "exists already") {
		t.Fatalf("create again: %d %.1500s", resp.StatusCode, body)
	}

	// The agent reports the matched sandboxes: the list links them.
	e.reportRG("team-a", rg.Version, apitypes.ObservedStatus{Ready: true, Reason: "Available", Message: "routes configured", MatchedSandboxes: []string{"pr-1", "pr-2"}})
	resp, body = ann.get("/o/shop/routegroups")
	if resp.StatusCode != 200 || !strings.Contains(body, `id="rg-team-a"`) || !strings.Contains(body, `href="/o/shop/sandboxes/pr-1"`) || !strings.Contains(body, `href="/o/shop/sandboxes/pr-2"`) ||
		!strings.Contains(body, `<span class="chip">team=a</span>`) || !strings.Contains(body, rg.RoutingKey) || !strings.Contains(body, "Ready") || !strings.Contains(body, `data-label="Matched sandboxes"`) {
		t.Fatalf("list: %d %.4000s", resp.StatusCode, body)
	}

	// The detail: endpoints with their preview URL, the YAML.
	resp, body = ann.get("/o/shop/routegroups/team-a")
	if resp.StatusCode != 200 || !strings.Contains(body, `id="preview-web"`) || !strings.Contains(body, rg.Endpoints[0].URL) || !strings.Contains(body, "http://cart.shop.svc:8080") ||
		!strings.Contains(body, `id="rg-yaml-view"`) || !strings.Contains(body, "name: team-a") || !strings.Contains(body, `id="update-rg"`) || !strings.Contains(body, `id="delete"`) {
		t.Fatalf("detail: %d %.4000s", resp.StatusCode, body)
	}
	if resp, _ := ann.get("/o/shop/routegroups/nope"); resp.StatusCode != 404 {
		t.Fatalf("unknown: %d", resp.StatusCode)
	}

	// Update the match from the detail page's form (If-Match: the version shown).
	updated := strings.Replace(rgTeamA, "value: a", "value: b", 1)
	m := regexp.MustCompile(`name="version" value="(\d+)"`).FindStringSubmatch(body)
	if m == nil || m[1] != strconv.FormatInt(rg.Version, 10) {
		t.Fatalf("no version on the form: %q", m)
	}
	ver := m[1]
	resp, body = ann.postForm("/o/shop/routegroups", url.Values{"csrf": {csrf}, "yaml": {updated}, "name": {"team-a"}, "version": {ver}, "action": {"update"}})
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/o/shop/routegroups/team-a" || !strings.Contains(body, "Route group updated") || !strings.Contains(body, `<span class="chip">team=b</span>`) {
		t.Fatalf("update: %d %s %.3000s", resp.StatusCode, resp.Request.URL, body)
	}
	e.apiCall("GET", "/api/v2/orgs/shop/routegroups/team-a", apitypes.HeaderAPIKey, e.adminKey(), "", &rg, 200)
	if rg.Spec.Match.Label == nil || rg.Spec.Match.Label.Value != "b" {
		t.Fatalf("not updated: %+v", rg.Spec.Match)
	}
	// The same form again, at the old version: refused, the page says reload.
	if resp, body := ann.postForm("/o/shop/routegroups", url.Values{"csrf": {csrf}, "yaml": {rgTeamA}, "name": {"team-a"}, "version": {ver}, "action": {"update"}}); resp.StatusCode != 409 || !strings.Contains(body, "reload") {
		t.Fatalf("stale update: %d %.2000s", resp.StatusCode, body)
	}
	// A spec the API refuses, on the detail page's form.
	if resp, body := ann.postForm("/o/shop/routegroups", url.Values{"csrf": {csrf}, "yaml": {"name: team-a\nspec:\n  cluster: c1\n  match: {}\n"}, "name": {"team-a"}, "action": {"update"}}); resp.StatusCode != 400 || !strings.Contains(body, "<code>spec.match</code>") || !strings.Contains(body, `id="update-rg"`) {
		t.Fatalf("bad update: %d %.2000s", resp.StatusCode, body)
	}

	// The viewer: read-only pages, POSTs refused even with a valid token.
	vic := e.login("vic@example.com", vicPass)
	for _, path := range []string{"/o/shop/routegroups", "/o/shop/routegroups/team-a"} {
		resp, body := vic.get(path)
		if resp.StatusCode != 200 || !strings.Contains(body, "team-a") || strings.Contains(body, `<form method="post" action="/o/shop/routegroups" `) || strings.Contains(body, "/delete\"") {
			t.Fatalf("viewer %s: %d %.2000s", path, resp.StatusCode, body)
		}
	}
	vcsrf := vic.csrf("/o/shop/routegroups")
	refusesWrites(t, vic, ann, vcsrf, map[string]url.Values{
		"/o/shop/routegroups":               {"yaml": {rgTeamA}, "action": {"create"}},
		"/o/shop/routegroups/team-a/delete": {},
	})
	if resp, _ := vic.get("/o/shop/routegroups/team-a/delete"); resp.StatusCode != 403 {
		t.Fatalf("viewer confirm page: %d", resp.StatusCode)
	}

	// Delete after confirmation.
	if resp, body := ann.get("/o/shop/routegroups/team-a/delete"); resp.StatusCode != 200 || !strings.Contains(body, `id="confirm-delete-rg"`) || !strings.Contains(body, `action="/o/shop/routegroups/team-a/delete"`) {
		t.Fatalf("confirm: %d %.1500s", resp.StatusCode, body)
	}
	if resp, _ := ann.get("/o/shop/routegroups/nope/delete"); resp.StatusCode != 404 {
		t.Fatalf("confirm unknown: %d", resp.StatusCode)
	}
	resp, body = ann.postForm("/o/shop/routegroups/team-a/delete", url.Values{"csrf": {csrf}})
	if resp.Request.URL.Path != "/o/shop/routegroups" || !strings.Contains(body, "Route group team-a deleted") || !strings.Contains(body, "No route groups yet") {
		t.Fatalf("delete: %d %.1500s", resp.StatusCode, body)
	}
	e.apiCall("GET", "/api/v2/orgs/shop/routegroups/team-a", apitypes.HeaderAPIKey, e.adminKey(), "", nil, 404)
}

// TestOpenRouteGroupPreview: the route group page's "Open preview" (viewers
// too) asks the API for a login link of the endpoint (POST
// …/routegroups/{name}/preview-link) and redirects to it; without the CSRF
// token it is 403; an unknown endpoint says why there is no preview.
func TestOpenRouteGroupPreview(t *testing.T) {
	e := newEnv(t)
	b, _ := json.Marshal(map[string]any{"name": "team-a", "spec": map[string]any{"cluster": "c1", "match": map[string]any{"label": map[string]string{"key": "team", "value": "a"}},
		"endpoints": []map[string]string{{"name": "web", "target": "http://cart.shop.svc:8080"}}}})
	e.apiCall("PUT", "/api/v2/orgs/shop/routegroups/team-a", apitypes.HeaderAPIKey, e.adminKey(), string(b), nil, 200)
	vic := e.login("vic@example.com", vicPass)
	resp, body := vic.get("/o/shop/routegroups/team-a")
	if resp.StatusCode != 200 || !strings.Contains(body, `action="/o/shop/routegroups/team-a/preview"`) || !strings.Contains(body, `id="preview-web">Open preview<`) {
		t.Fatalf("no Open preview: %d %.3000s", resp.StatusCode, body)
	}
	vcsrf := vic.csrf("/o/shop/routegroups/team-a")
	vic.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, body = vic.postForm("/o/shop/routegroups/team-a/preview", url.Values{"csrf": {vcsrf}, "endpoint": {"web"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.HasPrefix(loc, "http://web--team-a.preview.localhost/") || !strings.Contains(loc, "token=") {
		t.Fatalf("open preview: %d %q %.300s", resp.StatusCode, loc, body)
	}
	if resp, _ := vic.postForm("/o/shop/routegroups/team-a/preview", url.Values{"endpoint": {"web"}}); resp.StatusCode != 403 {
		t.Fatalf("without csrf: %d", resp.StatusCode)
	}
	if resp, body := vic.postForm("/o/shop/routegroups/team-a/preview", url.Values{"csrf": {vcsrf}, "endpoint": {"nope"}}); resp.StatusCode != 404 || !strings.Contains(body, `has no endpoint &#34;nope&#34;`) {
		t.Fatalf("unknown endpoint: %d %.2000s", resp.StatusCode, body)
	}
}
