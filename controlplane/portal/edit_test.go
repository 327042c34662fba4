package portal_test

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

var reVersion = regexp.MustCompile(`name="version" value="(\d+)"`)

// TestEditSandboxForm: the detail page's Edit (writers only) opens the
// create form's fields pre-filled from the spec and its YAML; Show YAML
// writes nothing; Save changes the image and env with If-Match of the
// version shown (a stale version is refused: reload); bad input shows the
// field errors and changes nothing; the YAML form updates too (the name
// stays); a viewer gets neither link nor page (403), nor POSTs, and POSTs
// need the CSRF token; the audit trail names the user.
func TestEditSandboxForm(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann := e.login("ann@example.com", annPass)
	csrf := ann.csrf("/o/shop/new")
	ann.postForm("/o/shop/new", url.Values{"csrf": {csrf}, "name": {"s1"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "image": {"cart:pr1"},
		"env": {"DEBUG=1"}, "labels": {"team=cart"}, "endpoint": {"1"}, "action": {"create"}})
	before, err := e.admin.GetSandbox(ctx, "shop", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if _, body := ann.get("/o/shop/sandboxes/s1"); !strings.Contains(body, `id="edit" href="/o/shop/sandboxes/s1/edit"`) && !strings.Contains(body, `href="/o/shop/sandboxes/s1/edit" id="edit"`) {
		t.Fatalf("no Edit on the detail page: %.2000s", body)
	}
	resp, body := ann.get("/o/shop/sandboxes/s1/edit")
	for _, want := range []string{`id="edit-form"`, `value="cart:pr1"`, "DEBUG=1", `value="team=cart"`, `<option value="Deployment/shop/cart" selected`, `name="endpoint" value="1" checked`,
		"image: cart:pr1", `for="yaml"`, `id="save-yaml"`} {
		if resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Fatalf("edit form lacks %q: %d %.4000s", want, resp.StatusCode, body)
		}
	}
	if strings.Contains(body, `name="name"`) {
		t.Fatal("the name is editable")
	}
	m := reVersion.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no version: %.2000s", body)
	}
	ver := m[1]
	form := url.Values{"csrf": {csrf}, "version": {ver}, "source": {"fields"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "image": {"cart:pr2"},
		"env": {"DEBUG=0\nMODE=fast"}, "labels": {"team=cart"}, "endpoint": {"1"}, "action": {"preview"}}
	if resp, body := ann.postForm("/o/shop/sandboxes/s1/edit", form); resp.StatusCode != 200 || !strings.Contains(body, `id="preview"`) || !strings.Contains(body, "image: cart:pr2") || !strings.Contains(body, "name: MODE") {
		t.Fatalf("preview: %d %.3000s", resp.StatusCode, body)
	}
	if sb, _ := e.admin.GetSandbox(ctx, "shop", "s1"); sb.Version != before.Version {
		t.Fatal("Show YAML wrote")
	}
	// Bad input: the field errors with their paths, nothing changed.
	bad := url.Values{}
	for k, v := range form {
		bad[k] = v
	}
	bad.Set("env", "no equals sign")
	bad.Set("action", "save")
	if resp, body := ann.postForm("/o/shop/sandboxes/s1/edit", bad); resp.StatusCode != 400 || !strings.Contains(body, `id="err-env"`) || !strings.Contains(body, "<code>env</code>") {
		t.Fatalf("bad env: %d %.3000s", resp.StatusCode, body)
	}
	bad.Set("env", "A=1")
	bad.Set("workload", "Job/shop/cart")
	if resp, body := ann.postForm("/o/shop/sandboxes/s1/edit", bad); resp.StatusCode != 400 || !strings.Contains(body, "<code>spec.forks[0].forkOf.kind</code>") {
		t.Fatalf("the API's field errors: %d %.3000s", resp.StatusCode, body)
	}
	if sb, _ := e.admin.GetSandbox(ctx, "shop", "s1"); sb.Version != before.Version {
		t.Fatal("bad input wrote")
	}
	// Save.
	form.Set("action", "save")
	resp, body = ann.postForm("/o/shop/sandboxes/s1/edit", form)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/o/shop/sandboxes/s1" || !strings.Contains(body, "Sandbox updated") || !strings.Contains(body, "cart:pr2") {
		t.Fatalf("save: %d %s %.2000s", resp.StatusCode, resp.Request.URL, body)
	}
	sb, err := e.admin.GetSandbox(ctx, "shop", "s1")
	if err != nil || sb.Version == before.Version || sb.RoutingKey != before.RoutingKey {
		t.Fatalf("updated: %+v %v", sb, err)
	}
	c := sb.Spec.Forks[0].Customizations
	if c.Images[0].Image != "cart:pr2" || len(c.Env) != 2 || c.Env[0].Name != "DEBUG" || *c.Env[0].Value != "0" || c.Env[1].Name != "MODE" || sb.Spec.DefaultRouteGroup == nil {
		t.Fatalf("spec: %+v", sb.Spec)
	}
	// The same form at the old version: refused, the page says reload.
	form.Set("image", "cart:stale")
	if resp, body := ann.postForm("/o/shop/sandboxes/s1/edit", form); (resp.StatusCode != 409 && resp.StatusCode != 412) || !strings.Contains(body, "reload") {
		t.Fatalf("stale: %d %.2000s", resp.StatusCode, body)
	}
	if got, _ := e.admin.GetSandbox(ctx, "shop", "s1"); got.Spec.Forks[0].Customizations.Images[0].Image != "cart:pr2" {
		t.Fatal("a stale form wrote")
	}
	// The YAML form: a description added; another name is refused.
	_, body = ann.get("/o/shop/sandboxes/s1/edit")
	ver = reVersion.FindStringSubmatch(body)[1]
	yml := "name: s1\nspec:\n  cluster: c1\n  description: edited\n  forks:\n  - forkOf: {kind: Deployment, namespace: shop, name: cart}\n"
	if resp, body := ann.postForm("/o/shop/sandboxes/s1/edit", url.Values{"csrf": {csrf}, "version": {ver}, "source": {"yaml"}, "yaml": {strings.Replace(yml, "name: s1", "name: s2", 1)}, "action": {"save"}}); resp.StatusCode != 400 || !strings.Contains(body, "<code>yaml.name</code>") {
		t.Fatalf("renamed: %d %.2000s", resp.StatusCode, body)
	}
	resp, _ = ann.postForm("/o/shop/sandboxes/s1/edit", url.Values{"csrf": {csrf}, "version": {ver}, "source": {"yaml"}, "yaml": {yml}, "action": {"save"}})
	if sb, _ := e.admin.GetSandbox(ctx, "shop", "s1"); resp.Request.URL.Path != "/o/shop/sandboxes/s1" || sb.Spec.Description != "edited" {
		t.Fatalf("yaml save: %d %s %+v", resp.StatusCode, resp.Request.URL, sb.Spec)
	}
	// A spec the fields cannot show (a description): its YAML only.
	if _, body := ann.get("/o/shop/sandboxes/s1/edit"); strings.Contains(body, `id="edit-form"`) || !strings.Contains(body, `id="yaml-only"`) || !strings.Contains(body, "description: edited") {
		t.Fatalf("yaml-only edit: %.3000s", body)
	}

	// A viewer: no Edit, no page, no POST; no CSRF token, no POST.
	vic := e.login("vic@example.com", vicPass)
	if _, body := vic.get("/o/shop/sandboxes/s1"); strings.Contains(body, "/edit") {
		t.Fatal("a viewer sees Edit")
	}
	if resp, _ := vic.get("/o/shop/sandboxes/s1/edit"); resp.StatusCode != 403 {
		t.Fatalf("viewer edit page: %d", resp.StatusCode)
	}
	refusesWrites(t, vic, ann, vic.csrf("/o/shop/sandboxes/s1"), map[string]url.Values{
		"/o/shop/sandboxes/s1/edit": {"version": {ver}, "source": {"yaml"}, "yaml": {strings.Replace(yml, "edited", "viewer", 1)}, "action": {"save"}},
	})
	if resp, _ := ann.get("/o/shop/sandboxes/nope/edit"); resp.StatusCode != 404 {
		t.Fatalf("unknown: %d", resp.StatusCode)
	}

	// The audit trail: apply-sandbox by the user.
	var evs []apitypes.AuditEvent
	e.apiCall("GET", "/api/v2/orgs/shop/events", apitypes.HeaderAPIKey, e.adminKey(), "", &evs, 200)
	n := 0
	for _, ev := range evs {
		if ev.ObjectName == "s1" && strings.HasPrefix(ev.Actor, "user:") && ev.Action == "apply-sandbox" {
			n++
		}
	}
	if n != 3 { // create, the fields' save, the YAML's save
		b, _ := json.Marshal(evs)
		t.Fatalf("%d apply-sandbox events by the user: %s", n, b)
	}
}
