package portal_test

import (
	"net/url"
	"regexp"
	"strconv"
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
	refusesWrites(t, vic, ann, vcsrf, map[string]url.Values{
		"/o/shop/teams":                                       {"name": {"mine"}, "maxSandboxes": {"1"}},
		"/o/shop/teams/payments/members":                      {"user": {vicID}},
		"/o/shop/teams/payments/members/" + vicID + "/remove": {},
		"/o/shop/teams/payments/delete":                       {},
	})
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

var reAPIKey = regexp.MustCompile(`id="apikey" class="code"|value="([^"]+)" aria-label="API key"`)

// newKeyOn reads the API key shown on a page ("" when none).
func newKeyOn(body string) string {
	for _, m := range reAPIKey.FindAllStringSubmatch(body, -1) {
		if m[1] != "" {
			return m[1]
		}
	}
	return ""
}

// TestServiceAccounts: an owner creates a service account; its key is
// shown once and works against the API; another key can be made; deleting
// the account (after confirmation) revokes its keys; a key is revoked from
// the list; members and viewers get 403; POSTs need the CSRF token.
func TestServiceAccounts(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	resp, body := ann.get("/o/shop/service-accounts")
	if resp.StatusCode != 200 || !strings.Contains(body, "No service accounts yet") || !strings.Contains(body, `id="create-sa"`) || !strings.Contains(body, `for="sa-name"`) {
		t.Fatalf("page: %d %.1500s", resp.StatusCode, body)
	}
	csrf := ann.csrf("/o/shop/service-accounts")
	resp, body = ann.postForm("/o/shop/service-accounts", url.Values{"csrf": {csrf}, "name": {"ci"}, "role": {"member"}, "description": {"GitHub Actions"}})
	key := newKeyOn(body)
	if resp.StatusCode != 200 || key == "" || !strings.Contains(body, `id="sa-ci"`) || !strings.Contains(body, "shown only once") {
		t.Fatalf("create: %d %.2500s", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the key page may be cached: %q", resp.Header.Get("Cache-Control"))
	}
	e.apiCall("GET", "/api/v2/orgs/shop/sandboxes", apitypes.HeaderAPIKey, key, "", nil, 200)
	if _, body := ann.get("/o/shop/service-accounts"); strings.Contains(body, key) || !strings.Contains(body, "service account ci") {
		t.Fatalf("the key is shown again, or not listed: %.2500s", body)
	}
	// A second key, from the row's button; the list revokes it.
	_, body = ann.postForm("/o/shop/service-accounts/ci/keys", url.Values{"csrf": {csrf}})
	key2 := newKeyOn(body)
	if key2 == "" || key2 == key {
		t.Fatalf("second key: %.1500s", body)
	}
	var keys []apitypes.APIKey
	e.apiCall("GET", "/api/v2/orgs/shop/service-accounts/ci/keys", apitypes.HeaderAPIKey, e.adminKey(), "", &keys, 200)
	if len(keys) != 2 {
		t.Fatalf("keys: %+v", keys)
	}
	id2 := keys[1].ID // the list is oldest first
	// The first key was used (above), the second not yet: the API and the page say so.
	if keys[0].LastUsedAt == "" || keys[1].LastUsedAt != "" {
		t.Fatalf("last used: %+v", keys)
	}
	if _, body := ann.get("/o/shop/service-accounts"); !strings.Contains(body, `<td data-label="Last used"><time datetime="`+keys[0].LastUsedAt+`">just now</time>`) ||
		!strings.Contains(body, `<td data-label="Last used">never</td>`) {
		t.Fatalf("last used on the page: %.3000s", body)
	}
	e.apiCall("GET", "/api/v2/orgs/shop/sandboxes", apitypes.HeaderAPIKey, key2, "", nil, 200)
	resp, _ = ann.postForm("/o/shop/apikeys/"+id2+"/revoke", url.Values{"csrf": {csrf}})
	if resp.Request.URL.Path != "/o/shop/service-accounts" {
		t.Fatalf("revoke: %d %s", resp.StatusCode, resp.Request.URL)
	}
	e.apiCall("GET", "/api/v2/orgs/shop/sandboxes", apitypes.HeaderAPIKey, key2, "", nil, 401)
	e.apiCall("GET", "/api/v2/orgs/shop/sandboxes", apitypes.HeaderAPIKey, key, "", nil, 200)

	// Errors show on the form, refilled.
	if resp, body := ann.postForm("/o/shop/service-accounts", url.Values{"csrf": {csrf}, "name": {"Bad_Name"}, "role": {"member"}}); resp.StatusCode != 400 || !strings.Contains(body, "field-error") || !strings.Contains(body, `value="Bad_Name"`) || newKeyOn(body) != "" {
		t.Fatalf("bad name: %d %.1000s", resp.StatusCode, body)
	}
	if resp, _ := ann.postForm("/o/shop/service-accounts", url.Values{"csrf": {csrf}, "name": {"root"}, "role": {"owner"}}); resp.StatusCode < 400 {
		t.Fatalf("owner service account: %d", resp.StatusCode)
	}

	// A viewer (and a member) may not see or use the page.
	vic := e.login("vic@example.com", vicPass)
	if resp, _ := vic.get("/o/shop/service-accounts"); resp.StatusCode != 403 {
		t.Fatalf("viewer: %d", resp.StatusCode)
	}
	if _, body := vic.get("/o/shop/teams"); strings.Contains(body, `href="/o/shop/service-accounts"`) {
		t.Fatal("viewer sees the nav link")
	}
	vcsrf := vic.csrf("/o/shop/teams")
	for _, path := range []string{"/o/shop/service-accounts", "/o/shop/service-accounts/ci/keys", "/o/shop/service-accounts/ci/delete", "/o/shop/apikeys/" + id2 + "/revoke"} {
		if resp, _ := vic.postForm(path, url.Values{"csrf": {vcsrf}, "name": {"mine"}}); resp.StatusCode != 403 {
			t.Errorf("viewer POST %s: %d", path, resp.StatusCode)
		}
		if resp, _ := ann.postForm(path, url.Values{"name": {"mine"}}); resp.StatusCode != 403 {
			t.Errorf("POST %s without token: %d", path, resp.StatusCode)
		}
	}

	// Delete after confirmation: the key stops working.
	if resp, body := ann.get("/o/shop/service-accounts/ci/delete"); resp.StatusCode != 200 || !strings.Contains(body, `id="confirm-delete-sa"`) || !strings.Contains(body, "revoked") {
		t.Fatalf("confirm: %d %.800s", resp.StatusCode, body)
	}
	if resp, _ := ann.get("/o/shop/service-accounts/nope/delete"); resp.StatusCode != 404 {
		t.Fatalf("confirm unknown: %d", resp.StatusCode)
	}
	resp, body = ann.postForm("/o/shop/service-accounts/ci/delete", url.Values{"csrf": {csrf}})
	if resp.Request.URL.Path != "/o/shop/service-accounts" || !strings.Contains(body, "No service accounts yet") {
		t.Fatalf("delete: %d %.800s", resp.StatusCode, body)
	}
	e.apiCall("GET", "/api/v2/orgs/shop/sandboxes", apitypes.HeaderAPIKey, key, "", nil, 401)
}

var reAuditRow = regexp.MustCompile(`<tr id="ev-[^"]+">\s*<td data-label="Time">.*?</td>\s*<td data-label="Actor"><a [^>]*>([^<]*)</a></td>\s*<td data-label="Action"><a [^>]*>([^<]*)</a></td>\s*<td data-label="Object">(?:<span class="muted">[^<]*</span> )?([^<]*)</td>`)

// auditRows reads the audit page's rows as "actor action object".
func auditRows(body string) []string {
	var out []string
	for _, m := range reAuditRow.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1]+" "+m[2]+" "+m[3])
	}
	return out
}

// TestAudit: the audit page lists what the pages did, newest first, by
// whom; filters by action and actor; pages 50 at a time; viewers get 403.
func TestAudit(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	csrf := ann.csrf("/o/shop/teams")
	ann.postForm("/o/shop/teams", url.Values{"csrf": {csrf}, "name": {"payments"}, "maxSandboxes": {"2"}})
	ann.postForm("/o/shop/service-accounts", url.Values{"csrf": {csrf}, "name": {"ci"}, "role": {"member"}})
	ann.postForm("/o/shop/teams/payments/delete", url.Values{"csrf": {csrf}})
	resp, body := ann.get("/o/shop/audit")
	rows := auditRows(body)
	want := []string{"ann@example.com delete-team payments", "ann@example.com create-service-account-key ci", "ann@example.com create-service-account shop", // a POST to the collection: the API records the org as its object
		"ann@example.com apply-team payments"}
	if resp.StatusCode != 200 || len(rows) < len(want) || strings.Join(rows[:len(want)], "|") != strings.Join(want, "|") {
		t.Fatalf("audit: %d %q\n%.3000s", resp.StatusCode, rows, body)
	}
	if strings.Contains(body, `id="next-page"`) || !strings.Contains(body, `for="f-action"`) {
		t.Fatal("a next page of a short trail, or no filter form")
	}
	// By action; by actor (the admin key's writes are not ann's).
	if _, body := ann.get("/o/shop/audit?action=apply-team"); strings.Join(auditRows(body), "|") != "ann@example.com apply-team payments" {
		t.Fatalf("by action: %q", auditRows(body))
	}
	e.apiCall("PUT", "/api/v2/orgs/shop/teams/web", apitypes.HeaderAPIKey, e.adminKey(), `{"maxSandboxes":1}`, nil, 200)
	annID := e.memberIDs()["ann@example.com"]
	_, body = ann.get("/o/shop/audit?actor=" + url.QueryEscape("user:"+annID))
	rows = auditRows(body)
	if len(rows) < len(want) || strings.Join(rows[:len(want)], "|") != strings.Join(want, "|") || strings.Contains(body, ">web<") || !strings.Contains(body, `value="user:`+annID+`"`) {
		t.Fatalf("by actor: %q", rows)
	}
	if _, body := ann.get("/o/shop/audit?action=no-such-action"); len(auditRows(body)) != 0 || !strings.Contains(body, "No events match") {
		t.Fatalf("no match: %.2000s", body)
	}

	// 60 more writes: 50 on the first page, the rest (and older) behind "next".
	for i := range 60 {
		e.apiCall("PUT", "/api/v2/orgs/shop/teams/t"+strconv.Itoa(i), apitypes.HeaderAPIKey, e.adminKey(), `{"maxSandboxes":1}`, nil, 200)
	}
	_, body = ann.get("/o/shop/audit?action=apply-team")
	rows = auditRows(body)
	if len(rows) != 50 || !strings.HasSuffix(rows[0], "apply-team t59") || !strings.HasSuffix(rows[49], "apply-team t10") {
		t.Fatalf("first page: %d %q", len(rows), rows)
	}
	next := regexp.MustCompile(`id="next-page" rel="next"|href="([^"]+)" id="next-page"`).FindStringSubmatch(body)
	if next == nil || next[1] == "" {
		t.Fatalf("no next link: %.500s", body[len(body)-800:])
	}
	resp, body = ann.get(strings.ReplaceAll(next[1], "&amp;", "&"))
	rows = auditRows(body)
	// t9..t0, web, payments: 12 apply-team events after the first 50.
	if resp.StatusCode != 200 || len(rows) != 12 || !strings.HasSuffix(rows[0], "apply-team t9") || rows[11] != "ann@example.com apply-team payments" || strings.Contains(body, `id="next-page"`) || !strings.Contains(body, `id="first-page"`) {
		t.Fatalf("second page: %d %q", resp.StatusCode, rows)
	}
	if resp, _ := ann.get("/o/shop/audit?continue=garbage"); resp.StatusCode != 400 {
		t.Fatalf("bad continue token: %d", resp.StatusCode)
	}

	// Viewers do not read the trail, nor see its link.
	vic := e.login("vic@example.com", vicPass)
	if resp, _ := vic.get("/o/shop/audit"); resp.StatusCode != 403 {
		t.Fatalf("viewer: %d", resp.StatusCode)
	}
	if _, body := vic.get("/o/shop/teams"); strings.Contains(body, `href="/o/shop/audit"`) {
		t.Fatal("viewer sees the audit link")
	}
	if _, body := ann.get("/o/shop/teams"); !strings.Contains(body, `href="/o/shop/audit"`) || !strings.Contains(body, `href="/o/shop/service-accounts"`) {
		t.Fatal("owner misses the nav links")
	}
}
