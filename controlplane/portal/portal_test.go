package portal_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/portal"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestLoginLogout: pages need a session; a wrong password shows the API's
// answer; logging in lands on the only org; logging out revokes the
// session (the copied cookie stops working).
func TestLoginLogout(t *testing.T) {
	e := newEnv(t)
	anon := e.browser()
	resp, body := anon.get("/o/shop/sandboxes")
	if resp.Request.URL.Path != "/login" || !strings.Contains(body, `name="password"`) || resp.Request.URL.Query().Get("next") != "/o/shop/sandboxes" {
		t.Fatalf("anonymous: %s %.200s", resp.Request.URL, body)
	}
	resp, body = anon.postForm("/login", url.Values{"email": {"ann@example.com"}, "password": {"wrong password!!"}})
	if resp.StatusCode != 401 || !strings.Contains(body, "role=\"alert\"") {
		t.Fatalf("wrong password: %d %.300s", resp.StatusCode, body)
	}
	// A login from another site is refused (the API's same-site check).
	if resp, _ := anon.postForm("/login", url.Values{"email": {"ann@example.com"}, "password": {annPass}}, "Origin", "http://evil.example"); resp.StatusCode != 403 {
		t.Fatalf("cross-site login: %d", resp.StatusCode)
	}
	if resp, body := anon.get("/signup"); resp.StatusCode != 200 || !strings.Contains(body, `name="org"`) {
		t.Fatalf("signup page: %d", resp.StatusCode)
	}
	if resp, _ := anon.get("/static/"); resp.StatusCode != 404 {
		t.Fatalf("static listing: %d", resp.StatusCode)
	}
	if resp, body := anon.get("/static/portal.js"); resp.StatusCode != 200 || !strings.Contains(body, "EventSource") {
		t.Fatalf("script: %d", resp.StatusCode)
	}
	// After login, next is followed on this site only.
	for next, want := range map[string]string{"/o/shop/new": "/o/shop/new", "//evil.example/x": "/o/shop/sandboxes", "https://evil.example": "/o/shop/sandboxes", "/\\evil.example": "/o/shop/sandboxes"} {
		b := e.browser()
		resp, _ := b.postForm("/login", url.Values{"email": {"ann@example.com"}, "password": {annPass}, "next": {next}})
		if resp.Request.URL.Host != strings.TrimPrefix(e.http.URL, "http://") || resp.Request.URL.Path != want {
			t.Errorf("next %q: landed on %s", next, resp.Request.URL)
		}
	}
	ann := e.login("ann@example.com", annPass)
	resp, body = ann.get("/o/shop/sandboxes")
	if resp.StatusCode != 200 || !strings.Contains(body, "No sandboxes yet") || !strings.Contains(body, "ann@example.com") {
		t.Fatalf("sandboxes: %d %.500s", resp.StatusCode, body)
	}
	if resp, body := ann.get("/orgs"); resp.StatusCode != 200 || !strings.Contains(body, "/o/shop/sandboxes") {
		t.Fatalf("org picker: %d %.300s", resp.StatusCode, body)
	}
	if resp, _ := ann.get("/o/other/sandboxes"); resp.StatusCode != 404 {
		t.Fatalf("unknown org: %d", resp.StatusCode)
	}
	u, _ := url.Parse(e.http.URL)
	cookies := ann.c.Jar.Cookies(u)
	resp, _ = ann.postForm("/logout", url.Values{"csrf": {ann.csrf("/o/shop/sandboxes")}})
	if resp.Request.URL.Path != "/login" {
		t.Fatalf("logout: %s", resp.Request.URL)
	}
	copied := e.browser()
	copied.c.Jar.SetCookies(u, cookies)
	if resp, _ := copied.get("/o/shop/sandboxes"); resp.Request.URL.Path != "/login" {
		t.Fatalf("the revoked cookie still works: %s", resp.Request.URL)
	}
}

// TestCSRF: every form POST needs the session's token and this site.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	form := url.Values{"name": {"s1"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "action": {"create"}}
	for _, tc := range []struct {
		name string
		csrf string
		hdr  []string
	}{
		{"no token", "", nil},
		{"wrong token", "not-the-token", nil},
		{"another site", ann.csrf("/o/shop/new"), []string{"Origin", "http://evil.example"}},
		{"cross-site fetch", ann.csrf("/o/shop/new"), []string{"Origin", "", "Sec-Fetch-Site", "cross-site"}},
	} {
		f := url.Values{}
		for k, v := range form {
			f[k] = v
		}
		if tc.csrf != "" {
			f.Set("csrf", tc.csrf)
		}
		if resp, body := ann.postForm("/o/shop/new", f, tc.hdr...); resp.StatusCode != 403 {
			t.Errorf("%s: %d %.200s", tc.name, resp.StatusCode, body)
		}
	}
	for _, p := range []string{"/logout", "/o/shop/sandboxes/s1/delete"} {
		if resp, _ := ann.postForm(p, url.Values{}); resp.StatusCode != 403 {
			t.Errorf("%s without token: %d", p, resp.StatusCode)
		}
	}
	if got, _ := e.admin.ListSandboxes(context.Background(), "shop", nil); len(got) != 0 {
		t.Fatalf("a refused form wrote: %+v", got)
	}
}

// TestCreateSandboxForm: the form lists the cluster's reported workloads,
// shows the YAML it sends, creates a valid sandbox through the API (audited
// as the user), accepts pasted YAML, and shows the API's errors.
func TestCreateSandboxForm(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann := e.login("ann@example.com", annPass)
	resp, body := ann.get("/o/shop/new")
	if resp.StatusCode != 200 || !strings.Contains(body, `value="Deployment/shop/cart"`) || !strings.Contains(body, "cart:v1") {
		t.Fatalf("new: %d %.800s", resp.StatusCode, body)
	}
	csrf := ann.csrf("/o/shop/new")
	form := url.Values{"csrf": {csrf}, "name": {"cart-pr1"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "image": {"cart:pr1"},
		"env": {"DEBUG=1\nGREETING=hi there"}, "labels": {"team=cart"}, "endpoint": {"1"}, "action": {"preview"}}
	resp, body = ann.postForm("/o/shop/new", form)
	for _, want := range []string{"name: cart-pr1", "image: cart:pr1", "name: GREETING", "target: http://cart.shop.deploy:8080", "team: cart"} {
		if !strings.Contains(body, want) {
			t.Fatalf("preview lacks %q: %d %.3000s", want, resp.StatusCode, body)
		}
	}
	if got, _ := e.admin.ListSandboxes(ctx, "shop", nil); len(got) != 0 {
		t.Fatal("preview created a sandbox")
	}
	form.Set("action", "create")
	resp, body = ann.postForm("/o/shop/new", form)
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/o/shop/sandboxes/cart-pr1" || !strings.Contains(body, "Pending") {
		t.Fatalf("create: %d %s %.500s", resp.StatusCode, resp.Request.URL, body)
	}
	sb, err := e.admin.GetSandbox(ctx, "shop", "cart-pr1")
	if err != nil || sb.Spec.Cluster != "c1" || len(sb.Spec.Forks) != 1 || sb.Spec.Forks[0].Customizations.Images[0].Image != "cart:pr1" ||
		*sb.Spec.Forks[0].Customizations.Env[1].Value != "hi there" || sb.Spec.Labels["team"] != "cart" || sb.RoutingKey == "" {
		t.Fatalf("created: %+v %v", sb, err)
	}
	if !strings.Contains(body, sb.RoutingKey) || !strings.Contains(body, "http://cart.shop.deploy:8080") {
		t.Fatalf("detail lacks routing key or endpoint: %.2000s", body)
	}
	// The same name again: refused, nothing overwritten.
	form.Set("image", "cart:other")
	if resp, body := ann.postForm("/o/shop/new", form); resp.StatusCode == 200 || !strings.Contains(body, "exists already") {
		t.Fatalf("duplicate: %d %.500s", resp.StatusCode, body)
	}
	// Pasted YAML.
	yml := "name: from-yaml\nspec:\n  cluster: c1\n  description: pasted\n  forks:\n  - forkOf: {kind: Deployment, namespace: shop, name: cart}\n"
	resp, body = ann.postForm("/o/shop/new", url.Values{"csrf": {csrf}, "yaml": {yml}, "action": {"create"}})
	if resp.Request.URL.Path != "/o/shop/sandboxes/from-yaml" {
		t.Fatalf("yaml: %d %s %.500s", resp.StatusCode, resp.Request.URL, body)
	}
	// Errors: the form's and the API's (field paths shown).
	if resp, body := ann.postForm("/o/shop/new", url.Values{"csrf": {csrf}, "yaml": {"name: [oops"}, "action": {"create"}}); resp.StatusCode != 400 || !strings.Contains(body, "not valid YAML") {
		t.Fatalf("bad yaml: %d %.500s", resp.StatusCode, body)
	}
	if resp, body := ann.postForm("/o/shop/new", url.Values{"csrf": {csrf}, "yaml": {"name: Bad_Name\nspec: {cluster: c1}"}, "action": {"create"}}); resp.StatusCode != 400 || !strings.Contains(body, "name") {
		t.Fatalf("invalid sandbox: %d %.500s", resp.StatusCode, body)
	}
	// The audit trail names the user (the API's orgAccess recorded it).
	var evs []apitypes.AuditEvent
	e.apiCall("GET", "/api/v2/orgs/shop/events", apitypes.HeaderAPIKey, e.adminKey(), "", &evs, 200)
	found := false
	for _, ev := range evs {
		found = found || (ev.ObjectName == "cart-pr1" && strings.HasPrefix(ev.Actor, "user:") && ev.Action == "apply-sandbox")
	}
	if !found {
		b, _ := json.Marshal(evs)
		t.Fatalf("no audit event of the create: %s", b)
	}
}

// TestViewerCannotDelete: a viewer sees no delete button or create link,
// and direct requests (with a valid CSRF token) are 403; a member deletes
// after the confirmation page.
func TestViewerCannotDelete(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann := e.login("ann@example.com", annPass)
	csrf := ann.csrf("/o/shop/new")
	ann.postForm("/o/shop/new", url.Values{"csrf": {csrf}, "name": {"s1"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "action": {"create"}})
	vic := e.login("vic@example.com", vicPass)
	resp, body := vic.get("/o/shop/sandboxes/s1")
	if resp.StatusCode != 200 || strings.Contains(body, `id="delete"`) || strings.Contains(body, "/o/shop/new") {
		t.Fatalf("viewer detail: %d %.2000s", resp.StatusCode, body)
	}
	if _, body := ann.get("/o/shop/sandboxes/s1"); !strings.Contains(body, `id="delete"`) {
		t.Fatal("the owner has no delete button")
	}
	if resp, _ := vic.get("/o/shop/sandboxes/s1/delete"); resp.StatusCode != 403 {
		t.Fatalf("viewer confirm page: %d", resp.StatusCode)
	}
	vcsrf := vic.csrf("/o/shop/sandboxes/s1")
	if resp, _ := vic.postForm("/o/shop/sandboxes/s1/delete", url.Values{"csrf": {vcsrf}}); resp.StatusCode != 403 {
		t.Fatalf("viewer delete: %d", resp.StatusCode)
	}
	if resp, _ := vic.postForm("/o/shop/new", url.Values{"csrf": {vcsrf}, "name": {"s2"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "action": {"create"}}); resp.StatusCode != 403 {
		t.Fatalf("viewer create: %d", resp.StatusCode)
	}
	if _, err := e.admin.GetSandbox(ctx, "shop", "s1"); err != nil {
		t.Fatal(err)
	}
	if resp, body := ann.get("/o/shop/sandboxes/s1/delete"); resp.StatusCode != 200 || !strings.Contains(body, "cannot be undone") {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	resp, body = ann.postForm("/o/shop/sandboxes/s1/delete", url.Values{"csrf": {csrf}})
	if resp.Request.URL.Path != "/o/shop/sandboxes" || !strings.Contains(body, "Sandbox s1 deleted") {
		t.Fatalf("delete: %d %s", resp.StatusCode, resp.Request.URL)
	}
	if _, err := e.admin.GetSandbox(ctx, "shop", "s1"); err == nil {
		t.Fatal("not deleted")
	}
}

// TestLiveStatus: the event stream sends a sandbox's new row when the agent
// reports its status, and ends when the session is revoked.
func TestLiveStatus(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	csrf := ann.csrf("/o/shop/new")
	ann.postForm("/o/shop/new", url.Values{"csrf": {csrf}, "name": {"s1"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "action": {"create"}})
	sb, err := e.admin.GetSandbox(context.Background(), "shop", "s1")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.http.URL+"/o/shop/events?cluster=c1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := ann.c.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %v %+v", err, resp)
	}
	defer resp.Body.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		e.report("s1", sb.Version, apitypes.ObservedStatus{Ready: true, Reason: "Available", Message: "all forks ready"})
	}()
	if !readSSE(t, resp.Body, 5*time.Second, func(ev, data string) bool {
		var d struct{ Name, Row, Badge string }
		_ = json.Unmarshal([]byte(data), &d)
		return ev == "sandbox" && d.Name == "s1" && strings.Contains(d.Row, `id="sb-s1"`) && strings.Contains(d.Badge, "Ready")
	}) {
		t.Fatal("no live update")
	}
	// A deletion is sent as such.
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = e.admin.DeleteSandbox(context.Background(), "shop", "s1")
	}()
	if !readSSE(t, resp.Body, 5*time.Second, func(ev, data string) bool {
		return ev == "sandbox" && strings.Contains(data, `"name":"s1","deleted":true`)
	}) {
		t.Fatal("no deletion event")
	}
	// Sign out everywhere: the next change ends the stream.
	ann.postForm("/logout", url.Values{"csrf": {csrf}, "everywhere": {"1"}})
	created := make(chan error, 1)
	go func() {
		time.Sleep(100 * time.Millisecond)
		_, err := e.admin.ApplySandbox(context.Background(), "shop", &client.Sandbox{Name: "s2", Spec: v1alpha1.SandboxSpec{Cluster: "c1", Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}}}})
		created <- err
	}()
	defer func() {
		if err := <-created; err != nil {
			t.Error(err)
		}
	}()
	if !readSSE(t, resp.Body, 5*time.Second, func(ev, _ string) bool { return ev == "end" }) {
		t.Fatal("the stream outlived the session")
	}
}

// TestLiveStatusAcrossReplicas: with two replicas on one PostgreSQL
// database, the event stream a browser holds on replica B sends the new row
// of a sandbox whose status the agent reported to replica A (the change
// feed), and its deletion through A.
func TestLiveStatusAcrossReplicas(t *testing.T) {
	a := newEnvOn(t, store.DriverPostgres)
	b := a.replica()
	ctx := context.Background()
	sb, err := a.admin.ApplySandbox(ctx, "shop", &client.Sandbox{Name: "s1", Spec: v1alpha1.SandboxSpec{Cluster: "c1", Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	ann := b.login("ann@example.com", annPass)
	req, _ := http.NewRequest("GET", b.http.URL+"/o/shop/events?cluster=c1", nil)
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := ann.c.Do(req.WithContext(sctx))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("events on B: %v %+v", err, resp)
	}
	defer resp.Body.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		a.report("s1", sb.Version, apitypes.ObservedStatus{Ready: true, Reason: "Available", Message: "all forks ready"})
	}()
	if !readSSE(t, resp.Body, 20*time.Second, func(ev, data string) bool {
		var d struct{ Name, Row, Badge string }
		_ = json.Unmarshal([]byte(data), &d)
		return ev == "sandbox" && d.Name == "s1" && strings.Contains(d.Badge, "Ready")
	}) {
		t.Fatal("B's stream missed the status reported to A")
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		_ = a.admin.DeleteSandbox(context.Background(), "shop", "s1")
	}()
	if !readSSE(t, resp.Body, 20*time.Second, func(ev, data string) bool {
		return ev == "sandbox" && strings.Contains(data, `"name":"s1","deleted":true`)
	}) {
		t.Fatal("B's stream missed the deletion through A")
	}
}

// TestOpenPreview: "Open preview" asks the API for a login link (a form
// POST with the CSRF token; viewers may) and redirects to it.
func TestOpenPreview(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	csrf := ann.csrf("/o/shop/new")
	ann.postForm("/o/shop/new", url.Values{"csrf": {csrf}, "name": {"s1"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "endpoint": {"1"}, "action": {"create"}})
	vic := e.login("vic@example.com", vicPass)
	vcsrf := vic.csrf("/o/shop/sandboxes/s1")
	vic.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, body := vic.postForm("/o/shop/sandboxes/s1/preview", url.Values{"csrf": {vcsrf}, "endpoint": {"web"}})
	if loc := resp.Header.Get("Location"); resp.StatusCode != 303 || !strings.Contains(loc, "preview.localhost") {
		t.Fatalf("open preview: %d %q %.300s", resp.StatusCode, loc, body)
	}
	if resp, _ := vic.postForm("/o/shop/sandboxes/s1/preview", url.Values{"endpoint": {"web"}}); resp.StatusCode != 403 {
		t.Fatalf("without csrf: %d", resp.StatusCode)
	}
}

// TestEmptyStates: a new org's pages say what to do next.
func TestEmptyStates(t *testing.T) {
	e := newEnv(t)
	bo := e.browser()
	resp, _ := bo.postForm("/signup", url.Values{"email": {"bo@example.com"}, "password": {"bos long passphrase"}, "org": {"fresh"}})
	if resp.Request.URL.Path != "/o/fresh/sandboxes" {
		t.Fatalf("signup: %s", resp.Request.URL)
	}
	for path, want := range map[string]string{
		"/o/fresh/sandboxes": "Register a cluster",
		"/o/fresh/new":       "There is no cluster in fresh yet",
		"/o/fresh/clusters":  "you get a token and the helm command",
	} {
		if resp, body := bo.get(path); resp.StatusCode != 200 || !strings.Contains(body, want) {
			t.Errorf("%s: %d, want %q", path, resp.StatusCode, want)
		}
	}
	// A signed-up user with two orgs picks one.
	bo.postForm("/logout", url.Values{"csrf": {bo.csrf("/o/fresh/sandboxes")}})
	var inv apitypes.Invitation
	e.apiCall("POST", "/api/v2/orgs/shop/invitations", apitypes.HeaderAPIKey, e.adminKey(), `{"email":"bo@example.com","role":"member"}`, &inv, 201)
	bo.postForm("/invite", url.Values{"token": {inv.Token}, "password": {"bos long passphrase"}})
	if resp, body := bo.get("/"); resp.Request.URL.Path != "/orgs" || !strings.Contains(body, "/o/fresh/sandboxes") || !strings.Contains(body, "/o/shop/sandboxes") {
		t.Fatalf("org picker: %s %.300s", resp.Request.URL, body)
	}
}

// TestSSOLink: the login page offers single sign-on only when the API's OpenID Connect routes are
// configured, and passes the page to return to.
func TestSSOLink(t *testing.T) {
	if _, body := newEnv(t).browser().get("/login?next=/o/shop/sandboxes"); strings.Contains(body, `id="sso"`) {
		t.Fatal("an SSO link without single sign-on")
	}
	_, body := newEnv(t, func(c *portal.Config) { c.SSO = true }).browser().get("/login?next=/o/shop/sandboxes")
	if !strings.Contains(body, `id="sso" href="/api/v2/auth/oidc/login?next=%2fo%2fshop%2fsandboxes"`) {
		t.Fatalf("login page: %.2000s", body)
	}
}

// TestSandboxTeams: the create form offers the org's teams and the sandbox lands in the chosen one (its
// YAML says so); over the team's quota the form shows the API's refusal; the list filters by team and the
// detail names it.
func TestSandboxTeams(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.apiCall("PUT", "/api/v2/orgs/shop/teams/payments", apitypes.HeaderAPIKey, e.adminKey(), `{"maxSandboxes":1}`, nil, 200)
	ann := e.login("ann@example.com", annPass)
	if _, body := ann.get("/o/shop/new"); !strings.Contains(body, `<option value="payments"`) || !strings.Contains(body, "(quota 1)") {
		t.Fatalf("the form offers no team: %.3000s", body)
	}
	csrf := ann.csrf("/o/shop/new")
	form := url.Values{"csrf": {csrf}, "name": {"pay-1"}, "cluster": {"c1"}, "workload": {"Deployment/shop/cart"}, "image": {"cart:pr1"}, "team": {"payments"}, "action": {"preview"}}
	if _, body := ann.postForm("/o/shop/new", form); !strings.Contains(body, "team: payments") {
		t.Fatalf("preview lacks the team: %.3000s", body)
	}
	form.Set("action", "create")
	resp, body := ann.postForm("/o/shop/new", form)
	if resp.Request.URL.Path != "/o/shop/sandboxes/pay-1" || !strings.Contains(body, `id="team">payments<`) {
		t.Fatalf("create in a team: %d %s %.800s", resp.StatusCode, resp.Request.URL, body)
	}
	if sb, err := e.admin.GetSandbox(ctx, "shop", "pay-1"); err != nil || sb.Team != "payments" {
		t.Fatalf("created: %+v %v", sb, err)
	}
	form.Set("name", "pay-2")
	if resp, body := ann.postForm("/o/shop/new", form); resp.StatusCode != 429 || !strings.Contains(body, "team payments") {
		t.Fatalf("over the team's quota: %d %.800s", resp.StatusCode, body)
	}
	form.Set("team", "")
	if resp, _ := ann.postForm("/o/shop/new", form); resp.Request.URL.Path != "/o/shop/sandboxes/pay-2" {
		t.Fatalf("create without a team: %d %s", resp.StatusCode, resp.Request.URL)
	}
	_, body = ann.get("/o/shop/sandboxes?team=payments")
	if !strings.Contains(body, `id="sb-pay-1"`) || strings.Contains(body, `id="sb-pay-2"`) || !strings.Contains(body, `<option value="payments" selected`) {
		t.Fatalf("list filtered by team: %.3000s", body)
	}
}
