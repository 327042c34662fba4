package portal_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// memberIDs maps the org's members' emails to their user IDs.
func (e *env) memberIDs() map[string]string {
	e.t.Helper()
	var members []apitypes.Member
	e.apiCall("GET", "/api/v2/orgs/shop/members", apitypes.HeaderAPIKey, e.adminKey(), "", &members, 200)
	ids := map[string]string{}
	for _, m := range members {
		ids[m.Email] = m.UserID
	}
	return ids
}

// TestTeams: an owner creates a team, sets its quota, adds and removes a
// member and deletes it after confirmation; a viewer sees the list without
// forms and its POSTs are 403; every POST needs the CSRF token.
func TestTeams(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	resp, body := ann.get("/o/shop/teams")
	if resp.StatusCode != 200 || !strings.Contains(body, "No teams yet") || !strings.Contains(body, `id="create-team"`) || !strings.Contains(body, `href="/o/shop/teams" aria-current="page"`) {
		t.Fatalf("teams: %d %.1500s", resp.StatusCode, body)
	}
	csrf := ann.csrf("/o/shop/teams")
	resp, body = ann.postForm("/o/shop/teams", url.Values{"csrf": {csrf}, "name": {"payments"}, "maxSandboxes": {"3"}})
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/o/shop/teams" || !strings.Contains(body, `id="team-payments"`) || !strings.Contains(body, `value="3"`) {
		t.Fatalf("create: %d %s %.1500s", resp.StatusCode, resp.Request.URL, body)
	}
	var team apitypes.Team
	e.apiCall("GET", "/api/v2/orgs/shop/teams/payments", apitypes.HeaderAPIKey, e.adminKey(), "", &team, 200)
	if team.MaxSandboxes != 3 {
		t.Fatalf("team: %+v", team)
	}
	ann.postForm("/o/shop/teams", url.Values{"csrf": {csrf}, "name": {"payments"}, "maxSandboxes": {"5"}})
	e.apiCall("GET", "/api/v2/orgs/shop/teams/payments", apitypes.HeaderAPIKey, e.adminKey(), "", &team, 200)
	if team.MaxSandboxes != 5 {
		t.Fatalf("quota not set: %+v", team)
	}
	for _, bad := range []url.Values{{"name": {"Bad_Name"}, "maxSandboxes": {"1"}}, {"name": {"ok"}, "maxSandboxes": {"-1"}}, {"name": {"ok"}, "maxSandboxes": {"x"}}} {
		bad.Set("csrf", csrf)
		if resp, body := ann.postForm("/o/shop/teams", bad); resp.StatusCode != 400 || !strings.Contains(body, "field-error") || !strings.Contains(body, `value="`+bad.Get("name")+`"`) {
			t.Errorf("bad %v: %d %.800s", bad, resp.StatusCode, body)
		}
	}
	ids := e.memberIDs()
	vicID := ids["vic@example.com"]
	resp, body = ann.postForm("/o/shop/teams/payments/members", url.Values{"csrf": {csrf}, "user": {vicID}})
	if resp.Request.URL.Path != "/o/shop/teams" || !strings.Contains(body, "vic@example.com") || !strings.Contains(body, `<span class="count">1</span>`) {
		t.Fatalf("add member: %d %.1500s", resp.StatusCode, body)
	}
	var tm []apitypes.Member
	e.apiCall("GET", "/api/v2/orgs/shop/teams/payments/members", apitypes.HeaderAPIKey, e.adminKey(), "", &tm, 200)
	if len(tm) != 1 || tm[0].UserID != vicID {
		t.Fatalf("team members: %+v", tm)
	}
	if resp, _ := ann.postForm("/o/shop/teams/payments/members", url.Values{"csrf": {csrf}, "user": {"nobody"}}); resp.StatusCode != 404 {
		t.Fatalf("add unknown member: %d", resp.StatusCode)
	}

	// The viewer: the list, no forms; POSTs refused even with a valid token.
	vic := e.login("vic@example.com", vicPass)
	resp, body = vic.get("/o/shop/teams")
	if resp.StatusCode != 200 || !strings.Contains(body, "payments") || strings.Contains(body, "<form method=\"post\" action=\"/o/shop/teams") || strings.Contains(body, "/delete\"") {
		t.Fatalf("viewer: %d %.1500s", resp.StatusCode, body)
	}
	vcsrf := vic.csrf("/o/shop/teams")
	for path, f := range map[string]url.Values{
		"/o/shop/teams":                                       {"name": {"mine"}, "maxSandboxes": {"1"}},
		"/o/shop/teams/payments/members":                      {"user": {vicID}},
		"/o/shop/teams/payments/members/" + vicID + "/remove": {},
		"/o/shop/teams/payments/delete":                       {},
	} {
		f.Set("csrf", vcsrf)
		if resp, _ := vic.postForm(path, f); resp.StatusCode != 403 {
			t.Errorf("viewer POST %s: %d", path, resp.StatusCode)
		}
		// And the owner's POSTs need the token.
		f.Del("csrf")
		if resp, _ := ann.postForm(path, f); resp.StatusCode != 403 {
			t.Errorf("POST %s without token: %d", path, resp.StatusCode)
		}
	}
	if resp, _ := vic.get("/o/shop/teams/payments/delete"); resp.StatusCode != 403 {
		t.Fatalf("viewer confirm page: %d", resp.StatusCode)
	}

	resp, body = ann.postForm("/o/shop/teams/payments/members/"+vicID+"/remove", url.Values{"csrf": {csrf}})
	if resp.Request.URL.Path != "/o/shop/teams" || !strings.Contains(body, `<span class="count">0</span>`) {
		t.Fatalf("remove member: %d %.1500s", resp.StatusCode, body)
	}
	if resp, body := ann.get("/o/shop/teams/payments/delete"); resp.StatusCode != 200 || !strings.Contains(body, `id="confirm-delete-team"`) || !strings.Contains(body, `action="/o/shop/teams/payments/delete"`) {
		t.Fatalf("confirm: %d %.800s", resp.StatusCode, body)
	}
	if resp, _ := ann.get("/o/shop/teams/nope/delete"); resp.StatusCode != 404 {
		t.Fatalf("confirm unknown team: %d", resp.StatusCode)
	}
	resp, body = ann.postForm("/o/shop/teams/payments/delete", url.Values{"csrf": {csrf}})
	if resp.Request.URL.Path != "/o/shop/teams" || !strings.Contains(body, "No teams yet") {
		t.Fatalf("delete: %d %.800s", resp.StatusCode, body)
	}
	e.apiCall("GET", "/api/v2/orgs/shop/teams/payments", apitypes.HeaderAPIKey, e.adminKey(), "", nil, 404)
}
