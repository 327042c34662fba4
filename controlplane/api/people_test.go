package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strconv"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// fastIdentity makes password hashing cheap and sign-up possible in tests.
func fastIdentity(c *api.Config) {
	c.Identity = identity.Config{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}, AllowSignup: true}
}

// browser is a user agent with a cookie jar and the session's CSRF token.
type browser struct {
	t    *testing.T
	e    *env
	hc   *http.Client
	csrf string
	// noCSRF leaves the token out (a forged cross-site request).
	noCSRF bool
	// key, when set, is sent as API key instead of the cookie.
	key string
}

func (e *env) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, e: e, hc: &http.Client{Jar: jar}}
}

// do sends a request and decodes a JSON answer into out (when not nil).
func (b *browser) do(method, path, body string, out any, hdr ...string) (*http.Response, apitypes.ErrorResponse) {
	b.t.Helper()
	req, _ := http.NewRequest(method, b.e.http.URL+path, strings.NewReader(body))
	if b.csrf != "" && !b.noCSRF {
		req.Header.Set(apitypes.HeaderCSRFToken, b.csrf)
	}
	if b.key != "" {
		req.Header.Set(apitypes.HeaderAPIKey, b.key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var er apitypes.ErrorResponse
	if resp.StatusCode >= 400 {
		if err := json.Unmarshal(raw, &er); err != nil || er.Code != resp.StatusCode {
			b.t.Fatalf("%s %s: %d with a body that is no JSON error: %s", method, path, resp.StatusCode, raw)
		}
	} else if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			b.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
		}
	}
	return resp, er
}

// must is do that fails the test unless the answer has status code.
func (b *browser) must(code int, method, path, body string, out any) {
	b.t.Helper()
	if resp, er := b.do(method, path, body, out); resp.StatusCode != code {
		b.t.Fatalf("%s %s: %d %+v, want %d", method, path, resp.StatusCode, er, code)
	}
}

// session logs in (or signs up, or accepts) with body at path and keeps the CSRF token.
func (b *browser) session(code int, path, body string) apitypes.AuthInfo {
	b.t.Helper()
	var info apitypes.AuthInfo
	b.must(code, http.MethodPost, path, body, &info)
	if info.CSRFToken == "" || info.User == nil {
		b.t.Fatalf("%s: no session: %+v", path, info)
	}
	b.csrf = info.CSRFToken
	return info
}

func sandboxJSON(t testing.TB, name string) string {
	b, err := json.Marshal(sandbox(name, nil))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPeopleRolesSessionsAndAudit(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newEnvTB(t, d, fastIdentity)
			ann := e.browser(t)
			var info apitypes.AuthInfo
			resp, _ := ann.do(http.MethodPost, "/api/v2/auth/signup", `{"email":"ann@example.com","password":"anns long passphrase","org":"shop"}`, &info)
			if resp.StatusCode != http.StatusCreated || len(info.Orgs) != 1 || info.Orgs[0] != (apitypes.OrgRole{Org: "shop", Role: "owner"}) {
				t.Fatalf("sign-up: %d %+v", resp.StatusCode, info)
			}
			var ck *http.Cookie
			for _, c := range resp.Cookies() {
				if c.Name == apitypes.SessionCookie {
					ck = c
				}
			}
			if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Secure || ck.Domain != "" || !strings.HasPrefix(ck.Value, identity.SessionPrefix) {
				t.Fatalf("session cookie: %+v", ck)
			}
			ann.csrf = info.CSRFToken
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/clusters/c1", "", nil)

			// Invitations: a viewer and a member join.
			invite := func(email, role string) string {
				var inv apitypes.Invitation
				ann.must(201, http.MethodPost, "/api/v2/orgs/shop/invitations", `{"email":"`+email+`","role":"`+role+`"}`, &inv)
				if inv.Token == "" || inv.Role != role {
					t.Fatalf("invitation: %+v", inv)
				}
				return inv.Token
			}
			vic, mia := e.browser(t), e.browser(t)
			vicTok := invite("vic@example.com", "viewer")
			vic.session(200, "/api/v2/auth/invitations/accept", `{"token":"`+vicTok+`","password":"vics long passphrase","displayName":"Vic"}`)
			if r, er := e.browser(t).do(http.MethodPost, "/api/v2/auth/invitations/accept", `{"token":"`+vicTok+`","password":"vics long passphrase"}`, nil); r.StatusCode != 400 || er.Fields[0].Path != "token" {
				t.Fatalf("invitation used twice: %d %+v", r.StatusCode, er)
			}
			if r, er := ann.do(http.MethodPost, "/api/v2/orgs/shop/invitations", `{"email":"Vic@example.com","role":"member"}`, nil); r.StatusCode != 409 || !strings.Contains(er.Error, "member of org shop already") {
				t.Fatalf("invite a member: %d %+v", r.StatusCode, er)
			}
			mia.session(200, "/api/v2/auth/invitations/accept", `{"token":"`+invite("mia@example.com", "member")+`","password":"mias long passphrase"}`)

			// A member creates a sandbox; a viewer reads it but cannot delete it.
			mia.must(200, http.MethodPut, "/api/v2/orgs/shop/sandboxes/s1", sandboxJSON(t, "s1"), nil)
			vic.must(200, http.MethodGet, "/api/v2/orgs/shop/sandboxes/s1", "", nil)
			if r, er := vic.do(http.MethodDelete, "/api/v2/orgs/shop/sandboxes/s1", "", nil); r.StatusCode != 403 || er.Reason != apitypes.ReasonForbidden || !strings.Contains(er.Error, "sandbox.delete") {
				t.Fatalf("viewer deletes: %d %+v", r.StatusCode, er)
			}
			if r, _ := vic.do(http.MethodPut, "/api/v2/orgs/shop/sandboxes/s2", sandboxJSON(t, "s2"), nil); r.StatusCode != 403 {
				t.Fatalf("viewer creates: %d", r.StatusCode)
			}
			if r, _ := mia.do(http.MethodPut, "/api/v2/orgs/shop/clusters/c2", "", nil); r.StatusCode != 403 {
				t.Fatalf("member registers a cluster: %d", r.StatusCode)
			}
			if r, _ := mia.do(http.MethodGet, "/api/v2/orgs/acme/sandboxes", "", nil); r.StatusCode != 404 {
				t.Fatalf("another org: %d", r.StatusCode)
			}
			var orgs apitypes.OrgList
			vic.must(200, http.MethodGet, "/api/v2/orgs", "", &orgs)
			if len(orgs.Orgs) != 1 || orgs.Orgs[0].Name != "shop" {
				t.Fatalf("orgs of a session: %+v", orgs)
			}

			// CSRF: a cookie-authenticated write needs the token, and a foreign Origin is refused.
			mia.noCSRF = true
			if r, er := mia.do(http.MethodDelete, "/api/v2/orgs/shop/sandboxes/s1", "", nil); r.StatusCode != 403 || !strings.Contains(er.Error, "CSRF") {
				t.Fatalf("without CSRF token: %d %+v", r.StatusCode, er)
			}
			mia.noCSRF = false
			if r, er := mia.do(http.MethodDelete, "/api/v2/orgs/shop/sandboxes/s1", "", nil, "Origin", "https://evil.example"); r.StatusCode != 403 || !strings.Contains(er.Error, "cross-origin") {
				t.Fatalf("foreign origin: %d %+v", r.StatusCode, er)
			}
			mia.must(200, http.MethodGet, "/api/v2/orgs/shop/sandboxes/s1", "", nil) // reads need no token
			mia.must(200, http.MethodDelete, "/api/v2/orgs/shop/sandboxes/s1", "", nil)

			// Roles: an admin cannot make owners; the last owner cannot step down.
			var members []apitypes.Member
			ann.must(200, http.MethodGet, "/api/v2/orgs/shop/members", "", &members)
			ids := map[string]string{}
			for _, m := range members {
				ids[m.Email] = m.UserID
			}
			if len(members) != 3 || ids["vic@example.com"] == "" {
				t.Fatalf("members: %+v", members)
			}
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/members/"+ids["mia@example.com"], `{"role":"admin"}`, nil)
			if r, _ := mia.do(http.MethodPut, "/api/v2/orgs/shop/members/"+ids["vic@example.com"], `{"role":"owner"}`, nil); r.StatusCode != 403 {
				t.Fatalf("admin makes an owner: %d", r.StatusCode)
			}
			if r, er := ann.do(http.MethodPut, "/api/v2/orgs/shop/members/"+ids["ann@example.com"], `{"role":"viewer"}`, nil); r.StatusCode != 409 {
				t.Fatalf("last owner steps down: %d %+v", r.StatusCode, er)
			}
			if r, er := ann.do(http.MethodPut, "/api/v2/orgs/shop/members/"+ids["vic@example.com"], `{"role":"king"}`, nil); r.StatusCode != 400 || er.Fields[0].Path != "role" {
				t.Fatalf("unknown role: %d %+v", r.StatusCode, er)
			}

			// Teams.
			var team apitypes.Team
			mia.must(200, http.MethodPut, "/api/v2/orgs/shop/teams/web", `{"maxSandboxes":5}`, &team)
			if r, er := mia.do(http.MethodPut, "/api/v2/orgs/shop/teams/web", `{"maxSandboxes":-1}`, nil); r.StatusCode != 400 || er.Fields[0].Path != "maxSandboxes" {
				t.Fatalf("negative quota: %d %+v", r.StatusCode, er)
			}
			mia.must(200, http.MethodPut, "/api/v2/orgs/shop/teams/web/members/"+ids["vic@example.com"], "", nil)
			// Sandboxes belong to a team, whose quota counts them; a client that omits team keeps it.
			mia.must(200, http.MethodPut, "/api/v2/orgs/shop/teams/solo", `{"maxSandboxes":1}`, nil)
			withTeam := func(name, team string) string {
				var m map[string]any
				_ = json.Unmarshal([]byte(sandboxJSON(t, name)), &m)
				if team != "" {
					m["team"] = team
				}
				b, _ := json.Marshal(m)
				return string(b)
			}
			var sbv apitypes.Sandbox
			mia.must(200, http.MethodPut, "/api/v2/orgs/shop/sandboxes/t1", withTeam("t1", "solo"), &sbv)
			if sbv.Team != "solo" {
				t.Fatalf("team of a created sandbox: %+v", sbv)
			}
			if r, er := mia.do(http.MethodPut, "/api/v2/orgs/shop/sandboxes/t2", withTeam("t2", "solo"), nil); r.StatusCode != 429 || er.Reason != apitypes.ReasonQuotaExceeded || !strings.Contains(er.Error, "team solo") {
				t.Fatalf("over the team's quota: %d %+v", r.StatusCode, er)
			}
			if r, er := mia.do(http.MethodPut, "/api/v2/orgs/shop/sandboxes/t2", withTeam("t2", "nope"), nil); r.StatusCode != 400 || len(er.Fields) != 1 || er.Fields[0].Path != "team" {
				t.Fatalf("unknown team: %d %+v", r.StatusCode, er)
			}
			if r, er := mia.do(http.MethodPut, "/api/v2/orgs/shop/sandboxes/t2", withTeam("t2", "Bad_Team"), nil); r.StatusCode != 400 || len(er.Fields) == 0 || er.Fields[0].Path != "team" {
				t.Fatalf("invalid team name: %d %+v", r.StatusCode, er)
			}
			mia.must(200, http.MethodPut, "/api/v2/orgs/shop/sandboxes/t1", withTeam("t1", ""), &sbv)
			if sbv.Team != "solo" {
				t.Fatalf("an update without team left the team: %+v", sbv)
			}
			// The list filters by team (one SQL filter; the continue token is bound to it).
			var inTeam []apitypes.Sandbox
			vic.must(200, http.MethodGet, "/api/v2/orgs/shop/sandboxes?team=solo", "", &inTeam)
			if len(inTeam) != 1 || inTeam[0].Name != "t1" {
				t.Fatalf("sandboxes of team solo: %+v", inTeam)
			}
			vic.must(200, http.MethodGet, "/api/v2/orgs/shop/sandboxes?team=web", "", &inTeam)
			if len(inTeam) != 0 {
				t.Fatalf("sandboxes of team web: %+v", inTeam)
			}
			if r, er := vic.do(http.MethodGet, "/api/v2/orgs/shop/sandboxes?team=Bad_Team", "", nil); r.StatusCode != 400 || len(er.Fields) != 1 || er.Fields[0].Path != "team" {
				t.Fatalf("list with an invalid team: %d %+v", r.StatusCode, er)
			}
			if r, er := vic.do(http.MethodGet, "/api/v2/orgs/shop/routegroups?team=solo", "", nil); r.StatusCode != 400 || len(er.Fields) != 1 || er.Fields[0].Path != "team" {
				t.Fatalf("route groups by team: %d %+v", r.StatusCode, er)
			}
			if r, _ := mia.do(http.MethodDelete, "/api/v2/orgs/shop/teams/solo", "", nil); r.StatusCode != 409 {
				t.Fatalf("delete a team with sandboxes: %d", r.StatusCode)
			}
			var tm []apitypes.Member
			vic.must(200, http.MethodGet, "/api/v2/orgs/shop/teams/web/members", "", &tm)
			if len(tm) != 1 || tm[0].Email != "vic@example.com" {
				t.Fatalf("team members: %+v", tm)
			}

			// The audit trail: who did what, readable by admins, not by viewers.
			if r, _ := vic.do(http.MethodGet, "/api/v2/orgs/shop/events", "", nil); r.StatusCode != 403 {
				t.Fatalf("viewer reads the audit trail: %d", r.StatusCode)
			}
			var events []apitypes.AuditEvent
			ann.must(200, http.MethodGet, "/api/v2/orgs/shop/events", "", &events)
			seen := map[string]string{}
			for _, ev := range events {
				seen[ev.Action+" "+ev.ObjectName] = ev.Actor
			}
			for what, actor := range map[string]string{
				"signup shop":       "user:" + ids["ann@example.com"],
				"apply-sandbox s1":  "user:" + ids["mia@example.com"],
				"delete-sandbox s1": "user:" + ids["mia@example.com"],
				"accept-invitation " + ids["vic@example.com"]: "user:" + ids["vic@example.com"],
				"set-member-role " + ids["mia@example.com"]:   "user:" + ids["ann@example.com"],
				"apply-team web": "user:" + ids["mia@example.com"],
			} {
				if seen[what] != actor {
					t.Errorf("audit event %q by %q missing: %v", what, actor, seen)
				}
			}
			if _, ok := seen["delete-sandbox s1"]; ok && len(events) > 0 {
				for _, ev := range events {
					if strings.Contains(ev.Details, "passphrase") || strings.Contains(ev.Details, identity.InvitationPrefix) {
						t.Fatalf("secret in an audit event: %+v", ev)
					}
				}
			}
			var page []apitypes.AuditEvent
			if r, _ := ann.do(http.MethodGet, "/api/v2/orgs/shop/events?limit=2", "", &page); r.StatusCode != 200 || len(page) != 2 || r.Header.Get(apitypes.HeaderContinue) == "" {
				t.Fatalf("paged events: %d %d", r.StatusCode, len(page))
			}
			// Filtered by action or actor, newest first, paged within the filter.
			var mine []apitypes.AuditEvent
			ann.must(200, http.MethodGet, "/api/v2/orgs/shop/events?order=newest&actor=user:"+ids["mia@example.com"], "", &mine)
			var want []string // mia's of all events, newest first
			for _, ev := range events {
				if ev.Actor == "user:"+ids["mia@example.com"] {
					want = append([]string{ev.ID}, want...)
				}
			}
			var got []string
			for _, ev := range mine {
				got = append(got, ev.ID)
			}
			if len(want) < 3 || strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("mia's events, newest first: %v, want %v", got, want)
			}
			r, _ := ann.do(http.MethodGet, "/api/v2/orgs/shop/events?order=newest&actor=user:"+ids["mia@example.com"]+"&limit=1", "", &page)
			if len(page) != 1 || page[0].ID != mine[0].ID || r.Header.Get(apitypes.HeaderContinue) == "" {
				t.Fatalf("first page: %+v", page)
			}
			ann.must(200, http.MethodGet, "/api/v2/orgs/shop/events?order=newest&actor=user:"+ids["mia@example.com"]+"&limit=1&continue="+r.Header.Get(apitypes.HeaderContinue), "", &page)
			if len(page) != 1 || page[0].ID != mine[1].ID {
				t.Fatalf("second page: %+v, want %+v", page, mine[1])
			}
			if r, _ := ann.do(http.MethodGet, "/api/v2/orgs/shop/events?order=oldest&limit=1&continue="+r.Header.Get(apitypes.HeaderContinue), "", nil); r.StatusCode != 400 {
				t.Fatalf("a token of another filter: %d", r.StatusCode)
			}
			var deletes []apitypes.AuditEvent
			ann.must(200, http.MethodGet, "/api/v2/orgs/shop/events?action=delete-sandbox", "", &deletes)
			if len(deletes) != 1 || deletes[0].ObjectName != "s1" {
				t.Fatalf("by action: %+v", deletes)
			}
			if r, _ := ann.do(http.MethodGet, "/api/v2/orgs/shop/events?order=sideways", "", nil); r.StatusCode != 400 {
				t.Fatalf("bad order: %d", r.StatusCode)
			}

			// Logout ends one session; logout-all every one, for real.
			ann2, ann3 := e.browser(t), e.browser(t)
			ann2.session(200, "/api/v2/auth/login", `{"email":"ANN@example.com","password":"anns long passphrase"}`)
			ann3.session(200, "/api/v2/auth/login", `{"email":"ann@example.com","password":"anns long passphrase"}`)
			ann3.must(200, http.MethodPost, "/api/v2/auth/logout", "", nil)
			ann3.csrf = ""
			// The revoked cookie, replayed by hand, is refused too.
			if r, _ := ann3.do(http.MethodGet, "/api/v2/auth/me", "", nil, "Cookie", ck.Name+"=stale"); r.StatusCode != 401 {
				t.Fatalf("after logout: %d", r.StatusCode)
			}
			var out apitypes.LogoutAllResponse
			ann2.must(200, http.MethodPost, "/api/v2/auth/logout-all", "", &out)
			if out.Revoked != 2 { // ann's first session and ann2's
				t.Fatalf("logout-all revoked %d", out.Revoked)
			}
			if r, _ := ann.do(http.MethodGet, "/api/v2/auth/me", "", nil, "Cookie", ck.Name+"="+ck.Value); r.StatusCode != 401 {
				t.Fatalf("the first session after logout-all: %d", r.StatusCode)
			}
			if r, _ := ann.do(http.MethodGet, "/api/v2/orgs/shop/sandboxes", "", nil, "Cookie", ck.Name+"="+ck.Value); r.StatusCode != 401 {
				t.Fatalf("an org route after logout-all: %d", r.StatusCode)
			}
			vic.must(200, http.MethodGet, "/api/v2/auth/me", "", nil) // other users stay logged in

			// A new password: the other sessions end, this one stays, the old password is refused.
			vic2 := e.browser(t)
			vic2.session(200, "/api/v2/auth/login", `{"email":"vic@example.com","password":"vics long passphrase"}`)
			if r, er := vic.do(http.MethodPut, "/api/v2/auth/password", `{"currentPassword":"not vics","newPassword":"vics new passphrase"}`, nil); r.StatusCode != 400 || er.Fields[0].Path != "currentPassword" {
				t.Fatalf("wrong current password: %d %+v", r.StatusCode, er)
			}
			if r, er := vic.do(http.MethodPut, "/api/v2/auth/password", `{"currentPassword":"vics long passphrase","newPassword":"vic@example.com"}`, nil); r.StatusCode != 400 || er.Fields[0].Path != "newPassword" {
				t.Fatalf("new password = email: %d %+v", r.StatusCode, er)
			}
			vic.must(200, http.MethodPut, "/api/v2/auth/password", `{"currentPassword":"vics long passphrase","newPassword":"vics new passphrase"}`, nil)
			vic.must(200, http.MethodGet, "/api/v2/auth/me", "", nil)
			if r, _ := vic2.do(http.MethodGet, "/api/v2/auth/me", "", nil); r.StatusCode != 401 {
				t.Fatalf("other session after a password change: %d", r.StatusCode)
			}
			if r, _ := e.browser(t).do(http.MethodPost, "/api/v2/auth/login", `{"email":"vic@example.com","password":"vics long passphrase"}`, nil); r.StatusCode != 401 {
				t.Fatalf("old password: %d", r.StatusCode)
			}
			e.browser(t).session(200, "/api/v2/auth/login", `{"email":"vic@example.com","password":"vics new passphrase"}`)
		})
	}
}

func TestLoginRateLimit(t *testing.T) {
	e := newEnvTB(t, store.DriverSQLite, fastIdentity)
	b := e.browser(t)
	b.session(201, "/api/v2/auth/signup", `{"email":"ann@example.com","password":"anns long passphrase","org":"shop"}`)
	for i := range 5 {
		if r, er := b.do(http.MethodPost, "/api/v2/auth/login", `{"email":"ann@example.com","password":"wrong guess `+strconv.Itoa(i)+`"}`, nil); r.StatusCode != 401 || er.Reason != apitypes.ReasonUnauthorized {
			t.Fatalf("guess %d: %d %+v", i, r.StatusCode, er)
		}
	}
	r, er := b.do(http.MethodPost, "/api/v2/auth/login", `{"email":"ann@example.com","password":"anns long passphrase"}`, nil)
	ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if r.StatusCode != 429 || er.Reason != apitypes.ReasonRateLimited || ra < 1 || ra > 60 || !strings.Contains(er.Error, "retry in") {
		t.Fatalf("sixth attempt: %d Retry-After %q %+v", r.StatusCode, r.Header.Get("Retry-After"), er)
	}
	// Another site cannot log a visitor in (to the attacker's account, say).
	if r, er := e.browser(t).do(http.MethodPost, "/api/v2/auth/login", `{"email":"ann@example.com","password":"anns long passphrase"}`, nil, "Origin", "https://evil.example"); r.StatusCode != 403 || !strings.Contains(er.Error, "cross-origin") {
		t.Fatalf("cross-origin login: %d %+v", r.StatusCode, er)
	}
	if r, _ := e.browser(t).do(http.MethodPost, "/api/v2/auth/signup", `{"email":"x@example.com","password":"anns long passphrase","org":"x"}`, nil, "Sec-Fetch-Site", "cross-site"); r.StatusCode != 403 {
		t.Fatalf("cross-site sign-up: %d", r.StatusCode)
	}
	// Bad input is a 400 with the field's path, not a login attempt.
	if r, er := b.do(http.MethodPost, "/api/v2/auth/login", `{"email":"a@b.c","password":"x","remember":true}`, nil); r.StatusCode != 400 || er.Fields[0].Path != "remember" {
		t.Fatalf("unknown field: %d %+v", r.StatusCode, er)
	}
	if r, er := b.do(http.MethodPost, "/api/v2/auth/signup", `{"email":"bob","password":"short","org":"Shop!"}`, nil); r.StatusCode != 400 || len(er.Fields) != 3 {
		t.Fatalf("bad sign-up: %d %+v", r.StatusCode, er)
	}
}

func TestSignupDisabledByDefault(t *testing.T) {
	e := newEnvTB(t, store.DriverSQLite)
	if r, er := e.browser(t).do(http.MethodPost, "/api/v2/auth/signup", `{"email":"ann@example.com","password":"anns long passphrase","org":"shop"}`, nil); r.StatusCode != 403 || !strings.Contains(er.Error, "sign-up is disabled") {
		t.Fatalf("sign-up: %d %+v", r.StatusCode, er)
	}
}

func TestSecureCookieBehindTLSProxy(t *testing.T) {
	e := newEnvTB(t, store.DriverSQLite, fastIdentity, func(c *api.Config) { c.SecureCookies = true })
	resp, _ := e.browser(t).do(http.MethodPost, "/api/v2/auth/signup", `{"email":"ann@example.com","password":"anns long passphrase","org":"shop"}`, nil)
	if len(resp.Cookies()) != 1 || !resp.Cookies()[0].Secure {
		t.Fatalf("cookie: %+v", resp.Cookies())
	}
}

func TestServiceAccountsAndOwnKeys(t *testing.T) {
	e := newEnvTB(t, store.DriverSQLite, fastIdentity)
	ctx := context.Background()
	legacy := &browser{t: t, e: e, hc: http.DefaultClient, key: e.keyA} // an org key made before users: an org admin

	var sa apitypes.ServiceAccount
	legacy.must(201, http.MethodPost, "/api/v2/orgs/acme/service-accounts", `{"name":"ci","description":"CI pipeline","role":"viewer"}`, &sa)
	if r, er := legacy.do(http.MethodPost, "/api/v2/orgs/acme/service-accounts", `{"name":"bot","role":"owner"}`, nil); r.StatusCode != 400 || er.Fields[0].Path != "role" {
		t.Fatalf("owner service account: %d %+v", r.StatusCode, er)
	}
	var k apitypes.APIKey
	legacy.must(201, http.MethodPost, "/api/v2/orgs/acme/service-accounts/ci/keys", `{"name":"gha"}`, &k)
	if k.Key == "" || k.ServiceAccount != "ci" {
		t.Fatalf("service account key: %+v", k)
	}
	ci := &browser{t: t, e: e, hc: http.DefaultClient, key: k.Key}
	ci.must(200, http.MethodGet, "/api/v2/orgs/acme/sandboxes", "", nil)
	if r, _ := ci.do(http.MethodPut, "/api/v2/orgs/acme/sandboxes/x", sandboxJSON(t, "x"), nil); r.StatusCode != 403 {
		t.Fatalf("viewer service account writes: %d", r.StatusCode)
	}
	var me apitypes.AuthInfo
	ci.must(200, http.MethodGet, "/api/v2/auth/me", "", &me)
	if me.ServiceAccount != "ci" || len(me.Orgs) != 1 || me.Orgs[0].Role != "viewer" || me.CSRFToken != "" {
		t.Fatalf("me of a service account key: %+v", me)
	}
	var keys []apitypes.APIKey
	legacy.must(200, http.MethodGet, "/api/v2/orgs/acme/service-accounts/ci/keys", "", &keys)
	if len(keys) != 1 || keys[0].Key != "" {
		t.Fatalf("keys: %+v", keys)
	}
	if r, _ := legacy.do(http.MethodPost, "/api/v2/orgs/acme/api-keys", `{"name":"mine"}`, nil); r.StatusCode != 400 {
		t.Fatalf("own key of a key without a user: %d", r.StatusCode)
	}
	legacy.must(200, http.MethodDelete, "/api/v2/orgs/acme/service-accounts/ci", "", nil)
	if r, _ := ci.do(http.MethodGet, "/api/v2/orgs/acme/sandboxes", "", nil); r.StatusCode != 401 {
		t.Fatalf("key of a deleted service account: %d", r.StatusCode)
	}

	// A user's own keys act with the user's role, now.
	ann := e.browser(t)
	ann.session(201, "/api/v2/auth/signup", `{"email":"ann@example.com","password":"anns long passphrase","org":"shop"}`)
	ann.must(200, http.MethodPut, "/api/v2/orgs/shop/clusters/c1", "", nil)
	var inv apitypes.Invitation
	ann.must(201, http.MethodPost, "/api/v2/orgs/shop/invitations", `{"email":"mia@example.com"}`, &inv)
	mia := e.browser(t)
	info := mia.session(200, "/api/v2/auth/invitations/accept", `{"token":"`+inv.Token+`","password":"mias long passphrase"}`)
	var own apitypes.APIKey
	mia.must(201, http.MethodPost, "/api/v2/orgs/shop/api-keys", `{"name":"laptop"}`, &own)
	if own.OwnerUser != info.User.ID {
		t.Fatalf("own key: %+v", own)
	}
	mk := &browser{t: t, e: e, hc: http.DefaultClient, key: own.Key}
	mk.must(200, http.MethodPut, "/api/v2/orgs/shop/sandboxes/k", sandboxJSON(t, "k"), nil) // no CSRF token needed with a key
	ann.must(200, http.MethodPut, "/api/v2/orgs/shop/members/"+info.User.ID, `{"role":"viewer"}`, nil)
	if r, _ := mk.do(http.MethodDelete, "/api/v2/orgs/shop/sandboxes/k", "", nil); r.StatusCode != 403 {
		t.Fatalf("key of a user demoted to viewer deletes: %d", r.StatusCode)
	}
	var mine []apitypes.APIKey
	mia.must(200, http.MethodGet, "/api/v2/orgs/shop/api-keys", "", &mine)
	if len(mine) != 1 {
		t.Fatalf("own keys: %+v", mine)
	}
	var annKey apitypes.APIKey
	ann.must(201, http.MethodPost, "/api/v2/orgs/shop/api-keys", `{"name":"ann"}`, &annKey)
	if r, _ := mia.do(http.MethodDelete, "/api/v2/orgs/shop/api-keys/"+annKey.ID, "", nil); r.StatusCode != 404 {
		t.Fatalf("revoke another user's key as own: %d", r.StatusCode)
	}
	ann.must(200, http.MethodDelete, "/api/v2/orgs/shop/members/"+info.User.ID, "", nil)
	if r, _ := mk.do(http.MethodGet, "/api/v2/orgs/shop/sandboxes", "", nil); r.StatusCode != 401 {
		t.Fatalf("key of a removed member: %d", r.StatusCode)
	}
	// Admin keys still act on every org, as owners.
	if _, err := e.admin.GetOrg(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
}

// TestEveryOrgRouteHasAnAction checks the role table covers the router
// (routeAction panics at registration otherwise) and that viewers may only
// read (and manage their own keys, which act as viewers).
func TestEveryOrgRouteHasAnAction(t *testing.T) {
	for _, op := range api.Operations {
		if !strings.HasPrefix(op.Path, "/api/v2/orgs/:org") {
			continue
		}
		a := api.RouteAction(op.Method, op.Path)
		if identity.Allowed(identity.RoleViewer, a) && op.Method != http.MethodGet && !strings.HasSuffix(op.Path, "/preview-link") && a != identity.ActionAPIKeyOwn {
			t.Errorf("viewers may %s %s (%s)", op.Method, op.Path, a)
		}
	}
}
