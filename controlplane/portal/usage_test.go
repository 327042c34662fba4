package portal_test

import (
	"context"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

var reCSVLink = regexp.MustCompile(`href="([^"]+)" id="download-csv"`)

// TestUsagePage: an owner sees the empty state that teaches how to create a sandbox, then the org's and
// teams' quotas with their live sandboxes and the month's usage per team, month links, a CSV download
// that works with the session, and a bad month's field error; a viewer gets no nav link and 403.
func TestUsagePage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ann := e.login("ann@example.com", annPass)
	resp, body := ann.get("/o/shop/usage")
	if resp.StatusCode != 200 || !strings.Contains(body, `id="usage-empty"`) || !strings.Contains(body, `href="/o/shop/new"`) || !strings.Contains(body, "sandboxmesh sandbox apply -f") ||
		!strings.Contains(body, `href="/o/shop/usage" aria-current="page"`) {
		t.Fatalf("empty usage: %d %.3000s", resp.StatusCode, body)
	}

	e.apiCall("PUT", "/api/v2/orgs/shop/teams/web", apitypes.HeaderAPIKey, e.adminKey(), `{"maxSandboxes":2}`, nil, 200)
	for name, team := range map[string]string{"s1": "web", "s2": "", "s3": "web"} {
		if _, _, err := e.st.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "shop", Name: name, Cluster: "c1", Spec: json.RawMessage(`{"cluster":"c1"}`), Team: team,
			NewRoutingKey: func() (string, error) { return "rk-" + name, nil }}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.st.Delete(ctx, store.KindSandbox, "shop", "s3"); err != nil {
		t.Fatal(err)
	}
	month := time.Now().UTC().Format("2006-01")
	resp, body = ann.get("/o/shop/usage")
	cell := func(row, class string) string {
		m := regexp.MustCompile(`(?s)id="` + row + `".*?class="` + class + `">([^<]*)`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return strings.TrimSpace(m[1])
	}
	if resp.StatusCode != 200 || strings.Contains(body, `id="usage-empty"`) || !strings.Contains(body, `<th scope="col">Sandbox-hours</th>`) ||
		!strings.Contains(body, `value="`+month+`"`) || !strings.Contains(body, `id="prev-month"`) || strings.Contains(body, `id="next-month"`) ||
		!strings.Contains(body, `href="/o/shop/teams">Change team quotas`) {
		t.Fatalf("usage: %d %.4000s", resp.StatusCode, body)
	}
	if q := cell("usage-web", "quota"); q != "1 of 2" {
		t.Errorf("web live / quota %q", q)
	}
	if h := cell("usage-web", "hours"); h != "0.00" {
		t.Errorf("web hours %q", h)
	}
	if !regexp.MustCompile(`(?s)id="usage-web".*?<td data-label="Sandboxes">2</td>\s*<td data-label="Most at once">2</td>`).MatchString(body) ||
		!regexp.MustCompile(`(?s)id="usage-none".*?<td data-label="Sandboxes">1</td>`).MatchString(body) ||
		!regexp.MustCompile(`(?s)id="usage-total".*?<td data-label="Sandboxes">3</td>`).MatchString(body) {
		t.Errorf("sandbox counts: %.4000s", body)
	}
	if !strings.Contains(body, `id="org-quota">shop: <strong>2</strong> sandboxes live of at most <strong>`) {
		t.Errorf("org quota: %.4000s", body)
	}

	// The CSV link is the API's, with the month; the session cookie is enough to download it.
	m := reCSVLink.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSV link: %.4000s", body)
	}
	link := html.UnescapeString(m[1])
	if link != "/api/v2/orgs/shop/usage?format=csv&month="+month {
		t.Fatalf("CSV link %q", link)
	}
	r, err := ann.c.Get(e.http.URL + link)
	if err != nil {
		t.Fatal(err)
	}
	csv, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 200 || !strings.HasPrefix(r.Header.Get("Content-Disposition"), "attachment;") || !strings.Contains(string(csv), "\nweb,"+month+",") {
		t.Fatalf("CSV: %d %v %s", r.StatusCode, r.Header, csv)
	}

	// Another month: links both ways, no usage but the live sandboxes; a bad month is the field's error.
	if _, body := ann.get("/o/shop/usage?month=2020-02"); !strings.Contains(body, `href="/o/shop/usage?month=2020-01" id="prev-month"`) || !strings.Contains(body, `href="/o/shop/usage?month=2020-03" id="next-month"`) ||
		!regexp.MustCompile(`(?s)id="usage-total".*?<td data-label="Sandboxes">0</td>`).MatchString(body) {
		t.Fatalf("february 2020: %.4000s", body)
	}
	if resp, body := ann.get("/o/shop/usage?month=2026-13"); resp.StatusCode != 400 || !strings.Contains(body, `id="err-month"`) || !strings.Contains(body, `value="2026-13"`) || !strings.Contains(body, `aria-describedby="month-hint err-month"`) {
		t.Fatalf("bad month: %d %.3000s", resp.StatusCode, body)
	}

	// A viewer: no link in the nav, the page and the download refused.
	vic := e.login("vic@example.com", vicPass)
	if _, body := vic.get("/o/shop/teams"); strings.Contains(body, `href="/o/shop/usage"`) {
		t.Fatal("a viewer has the usage link")
	}
	if resp, _ := vic.get("/o/shop/usage"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer page: %d", resp.StatusCode)
	}
	if resp, _ := vic.get(link); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("viewer CSV: %d", resp.StatusCode)
	}
}
