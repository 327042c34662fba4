package portal_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// TestClusters: an admin registers a cluster and gets its token once with
// the helm command (the token works for the agent); a viewer gets no form
// and a direct POST is 403.
func TestClusters(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	resp, body := ann.get("/o/shop/clusters")
	if resp.StatusCode != 200 || !strings.Contains(body, ">c1<") || !strings.Contains(body, `id="register"`) {
		t.Fatalf("clusters: %d %.1000s", resp.StatusCode, body)
	}
	csrf := ann.csrf("/o/shop/clusters")
	resp, body = ann.postForm("/o/shop/clusters", url.Values{"csrf": {csrf}, "name": {"prod-eu"}})
	m := regexp.MustCompile(`id="token" class="code"|value="(smc_[a-z0-9]+)"`).FindAllStringSubmatch(body, -1)
	var tok string
	for _, x := range m {
		if x[1] != "" {
			tok = x[1]
		}
	}
	if resp.StatusCode != 200 || tok == "" || !strings.Contains(body, "--set agent.token="+tok) || !strings.Contains(body, "agent.controlPlaneURL="+e.http.URL) {
		t.Fatalf("register: %d %.2000s", resp.StatusCode, body)
	}
	e.apiCall("PUT", "/api/v2/agent/workloads", apitypes.HeaderClusterToken, tok, `{"workloads":[]}`, nil, 200)
	if _, body := ann.get("/o/shop/clusters"); strings.Contains(body, tok) {
		t.Fatal("the token is shown again")
	}
	if resp, body := ann.postForm("/o/shop/clusters", url.Values{"csrf": {csrf}, "name": {"Bad_Name"}}); resp.StatusCode != 400 || !strings.Contains(body, "field-error") {
		t.Fatalf("bad name: %d %.500s", resp.StatusCode, body)
	}
	vic := e.login("vic@example.com", vicPass)
	resp, body = vic.get("/o/shop/clusters")
	if resp.StatusCode != 200 || strings.Contains(body, `id="register"`) || strings.Contains(body, "New token") {
		t.Fatalf("viewer: %d", resp.StatusCode)
	}
	vcsrf := vic.csrf("/o/shop/clusters")
	if resp, _ := vic.postForm("/o/shop/clusters", url.Values{"csrf": {vcsrf}, "name": {"mine"}}); resp.StatusCode != 403 {
		t.Fatalf("viewer register: %d", resp.StatusCode)
	}
	if resp, _ := vic.postForm("/o/shop/clusters/c1/tokens", url.Values{"csrf": {vcsrf}}); resp.StatusCode != 403 {
		t.Fatalf("viewer token: %d", resp.StatusCode)
	}
}

// TestMembers: invite (link shown once), join through the link, change a
// role, remove after confirmation; viewers cannot; the last owner stays.
func TestMembers(t *testing.T) {
	e := newEnv(t)
	ann := e.login("ann@example.com", annPass)
	csrf := ann.csrf("/o/shop/members")
	resp, body := ann.postForm("/o/shop/invitations", url.Values{"csrf": {csrf}, "email": {"mia@example.com"}, "role": {"member"}})
	link := regexp.MustCompile(`id="invite-link"|value="(http[^"]+/invite\?token=[^"]+)"`).FindAllStringSubmatch(body, -1)
	var inviteURL string
	for _, x := range link {
		if x[1] != "" {
			inviteURL = strings.ReplaceAll(x[1], "&amp;", "&")
		}
	}
	if resp.StatusCode != 200 || inviteURL == "" || !strings.Contains(body, "mia@example.com (member)") {
		t.Fatalf("invite: %d %.2000s", resp.StatusCode, body)
	}
	u, _ := url.Parse(inviteURL)
	mia := e.browser()
	if resp, body := mia.get(u.RequestURI()); resp.StatusCode != 200 || !strings.Contains(body, u.Query().Get("token")) {
		t.Fatalf("invite page: %d", resp.StatusCode)
	}
	resp, _ = mia.postForm("/invite", url.Values{"token": {u.Query().Get("token")}, "password": {"mias long passphrase"}, "displayName": {"Mia"}})
	if resp.Request.URL.Path != "/o/shop/sandboxes" {
		t.Fatalf("join: %d %s", resp.StatusCode, resp.Request.URL)
	}
	if resp, body := mia.postForm("/invite", url.Values{"token": {u.Query().Get("token")}, "password": {"mias long passphrase"}}); resp.StatusCode != 400 || !strings.Contains(body, "invitation") {
		t.Fatalf("used twice: %d", resp.StatusCode)
	}
	var members []apitypes.Member
	e.apiCall("GET", "/api/v2/orgs/shop/members", apitypes.HeaderAPIKey, e.adminKey(), "", &members, 200)
	ids := map[string]string{}
	for _, m := range members {
		ids[m.Email] = m.UserID
	}
	miaID, annID := ids["mia@example.com"], ids["ann@example.com"]
	if miaID == "" {
		t.Fatalf("mia is no member: %+v", members)
	}
	// A viewer cannot change roles, even with a valid token.
	vic := e.login("vic@example.com", vicPass)
	if _, body := vic.get("/o/shop/members"); strings.Contains(body, "/role\"") || strings.Contains(body, `id="invite"`) {
		t.Fatal("viewer sees management forms")
	}
	if resp, _ := vic.postForm("/o/shop/members/"+miaID+"/role", url.Values{"csrf": {vic.csrf("/o/shop/members")}, "role": {"admin"}}); resp.StatusCode != 403 {
		t.Fatalf("viewer role change: %d", resp.StatusCode)
	}
	resp, _ = ann.postForm("/o/shop/members/"+miaID+"/role", url.Values{"csrf": {csrf}, "role": {"viewer"}})
	if resp.Request.URL.Path != "/o/shop/members" {
		t.Fatalf("role change: %d", resp.StatusCode)
	}
	if resp, body := ann.postForm("/o/shop/members/"+annID+"/role", url.Values{"csrf": {csrf}, "role": {"admin"}}); resp.StatusCode != 409 || !strings.Contains(body, "owner") {
		t.Fatalf("last owner demoted: %d %.300s", resp.StatusCode, body)
	}
	if resp, body := ann.get("/o/shop/members/" + miaID + "/remove"); resp.StatusCode != 200 || !strings.Contains(body, "mia@example.com") {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	ann.postForm("/o/shop/members/"+miaID+"/remove", url.Values{"csrf": {csrf}})
	if resp, _ := mia.get("/o/shop/sandboxes"); resp.StatusCode != 404 {
		t.Fatalf("removed member still sees the org: %d", resp.StatusCode)
	}
}
