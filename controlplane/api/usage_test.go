package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// TestUsageReport: GET /orgs/{org}/usage answers the month's usage per team as JSON, and as a CSV
// download with ?format=csv or Accept: text/csv; a bad month or format is 400 at its field; a viewer is
// refused (usage.read is members' and up), another org is 404.
func TestUsageReport(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newEnvTB(t, d, fastIdentity)
			ann := e.browser(t)
			ann.session(201, "/api/v2/auth/signup", `{"email":"ann@example.com","password":"anns long passphrase","org":"shop"}`)
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/clusters/c1", "", nil)
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/teams/web", `{"maxSandboxes":2}`, nil)
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/teams/pay", `{}`, nil)
			inTeam := func(name, team string) string {
				var m map[string]any
				if err := json.Unmarshal([]byte(sandboxJSON(t, name)), &m); err != nil {
					t.Fatal(err)
				}
				m["team"] = team
				b, _ := json.Marshal(m)
				return string(b)
			}
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/sandboxes/s1", inTeam("s1", "web"), nil)
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/sandboxes/s2", sandboxJSON(t, "s2"), nil)
			ann.must(200, http.MethodPut, "/api/v2/orgs/shop/sandboxes/s3", inTeam("s3", "web"), nil)
			ann.must(200, http.MethodDelete, "/api/v2/orgs/shop/sandboxes/s3", "", nil)

			month := time.Now().UTC().Format("2006-01")
			var u apitypes.Usage
			ann.must(200, http.MethodGet, "/api/v2/orgs/shop/usage", "", &u)
			if u.Month != month || u.OrgQuota.Sandboxes != 2 || len(u.Teams) != 3 || u.Total.Sandboxes != 3 || u.Total.LiveSandboxes != 2 {
				t.Fatalf("usage: %+v", u)
			}
			got := map[string]apitypes.TeamUsage{}
			for _, tu := range u.Teams {
				got[tu.Team] = tu
			}
			if w := got["web"]; w.Sandboxes != 2 || w.LiveSandboxes != 1 || w.MaxSandboxes != 2 || w.PeakSandboxes != 2 || w.SandboxHours < 0 || w.SandboxHours > 0.1 {
				t.Fatalf("team web: %+v", w)
			}
			if n := got[""]; n.Sandboxes != 1 || n.LiveSandboxes != 1 || u.Teams[0].Team != "" {
				t.Fatalf("no team: %+v (%+v)", n, u.Teams)
			}
			if p := got["pay"]; p.Sandboxes != 0 || p.SandboxHours != 0 || p.Deleted {
				t.Fatalf("team pay: %+v", p)
			}
			var old apitypes.Usage
			ann.must(200, http.MethodGet, "/api/v2/orgs/shop/usage?month=2020-02", "", &old)
			if old.Month != "2020-02" || old.From != "2020-02-01T00:00:00Z" || old.To != "2020-03-01T00:00:00Z" || old.Total.Sandboxes != 0 || old.Total.LiveSandboxes != 2 {
				t.Fatalf("a past month: %+v", old)
			}

			// CSV, by query and by Accept.
			for _, hdr := range [][]string{{"?format=csv&month=" + month}, {"?month=" + month, "Accept", "text/csv"}} {
				req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v2/orgs/shop/usage"+hdr[0], nil)
				if len(hdr) == 3 {
					req.Header.Set(hdr[1], hdr[2])
				}
				resp, err := ann.hc.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				rows, err := csv.NewReader(resp.Body).ReadAll()
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
					resp.Header.Get("Content-Disposition") != `attachment; filename="usage-shop-`+month+`.csv"` {
					t.Fatalf("csv %v: %d %v %v", hdr, resp.StatusCode, resp.Header, err)
				}
				want := [][]string{{"team", "month", "sandbox_hours", "sandboxes", "quota"}, {"", month, "", "1", ""}, {"pay", month, "0.000", "0", "0"}, {"web", month, "", "2", "2"}}
				if len(rows) != len(want) {
					t.Fatalf("csv rows: %q", rows)
				}
				for i, r := range rows {
					for j := range r {
						if want[i][j] != "" && r[j] != want[i][j] || (want[i][j] == "" && j != 2 && r[j] != "") {
							t.Fatalf("csv row %d: %q, want %q", i, r, want[i])
						}
					}
				}
			}

			// Bad inputs: 400 at the field.
			for _, q := range []string{"month=2026-13", "month=2026-1", "month=26-12", "month=2026-12-01", "month=1969-12", "month=2201-01", "month=dec", "format=xml"} {
				r, er := ann.do(http.MethodGet, "/api/v2/orgs/shop/usage?"+q, "", nil)
				field, _, _ := strings.Cut(q, "=")
				if r.StatusCode != 400 || er.Reason != apitypes.ReasonValidation || len(er.Fields) != 1 || er.Fields[0].Path != field {
					t.Fatalf("%s: %d %+v", q, r.StatusCode, er)
				}
			}

			// A viewer may not read usage; another org looks like none.
			var inv apitypes.Invitation
			ann.must(201, http.MethodPost, "/api/v2/orgs/shop/invitations", `{"email":"vic@example.com","role":"viewer"}`, &inv)
			vic := e.browser(t)
			vic.session(200, "/api/v2/auth/invitations/accept", `{"token":"`+inv.Token+`","password":"vics long passphrase"}`)
			if r, er := vic.do(http.MethodGet, "/api/v2/orgs/shop/usage?format=csv", "", nil); r.StatusCode != 403 || !strings.Contains(er.Error, "usage.read") {
				t.Fatalf("viewer: %d %+v", r.StatusCode, er)
			}
			if r, _ := ann.do(http.MethodGet, "/api/v2/orgs/acme/usage", "", nil); r.StatusCode != 404 {
				t.Fatalf("another org: %d", r.StatusCode)
			}
			// An org key (it acts as an org admin) reads it.
			if r, _, _ := e.raw(http.MethodGet, "/api/v2/orgs/acme/usage", e.keyA, ""); r.StatusCode != 200 {
				t.Fatalf("org key: %d", r.StatusCode)
			}
		})
	}
}
