//go:build e2e

package e2e_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
)

// portalOnCluster is the portal's "Done when" on the demo cluster, driven over HTTP as a browser would (forms,
// cookies, the Origin header; Chromium drives the same pages in controlplane/portal TestBrowser): the org's
// admin invites a developer (REST, the bootstrap key), the developer joins through the invitation page,
// opens the sandbox list's live stream, creates a sandbox from the form by picking route from the workloads
// the cluster's agent reported, and the stream shows it turn Ready as the operator brings its fork up; a keyed
// request then reaches the fork; the developer deletes it from the portal.
func portalOnCluster(ctx context.Context, t *testing.T, e *demo.Env, h *hitter) {
	const name = "portal-route"
	base := e.ControlPlaneURL
	// The admin's invitation (its token is returned once), the link `make demo` prints.
	link, err := e.PortalInvitation(ctx, "dev@example.com", "member")
	if err != nil {
		t.Fatal(err)
	}
	lu, err := url.Parse(link)
	if err != nil || lu.Path != "/invite" || lu.Query().Get("token") == "" || !strings.HasPrefix(link, base+"/") {
		t.Fatalf("invitation link %q: %v", link, err)
	}
	token := lu.Query().Get("token")
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Timeout: 30 * time.Second}
	post := func(path string, form url.Values) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", base)
		resp, err := b.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, string(out)
	}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := b.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp, string(out)
	}
	if resp, page := get("/invite?token=" + url.QueryEscape(token)); resp.StatusCode != 200 {
		t.Fatalf("invitation page: %d %.300s", resp.StatusCode, page)
	}
	resp, page := post("/invite", url.Values{"token": {token}, "password": {"a long developer passphrase"}, "displayName": {"Dev"}})
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/o/"+e.Org+"/sandboxes" {
		t.Fatalf("joining through the invitation: %d %s %.500s", resp.StatusCode, resp.Request.URL, page)
	}

	// The live list's event stream, open before the sandbox exists.
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	sreq, _ := http.NewRequestWithContext(sctx, http.MethodGet, base+"/o/"+e.Org+"/events", nil)
	stream, err := (&http.Client{Jar: jar}).Do(sreq)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("event stream: %v %v", err, stream)
	}
	defer stream.Body.Close()
	readyc := make(chan time.Duration, 1)
	start := time.Now()
	go func() {
		sc := bufio.NewScanner(stream.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			data, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev struct{ Name, Badge string }
			if json.Unmarshal([]byte(data), &ev) == nil && ev.Name == name && strings.Contains(ev.Badge, ">Ready<") {
				readyc <- time.Since(start)
				return
			}
		}
	}()

	// The form: its CSRF token, the cluster's reported workloads (route's option names its image).
	resp, page = get("/o/" + e.Org + "/new")
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	opt := regexp.MustCompile(`<option value="(Deployment/` + demo.ExampleNamespace + `/route)"[^>]*>[^<(]*\(Deployment, ([^,)]+)`).FindStringSubmatch(page)
	if resp.StatusCode != 200 || csrf == nil || opt == nil {
		t.Fatalf("new sandbox form: %d csrf %v route option %v\n%.1500s", resp.StatusCode, csrf != nil, opt, page)
	}
	resp, page = post("/o/"+e.Org+"/new", url.Values{"csrf": {csrf[1]}, "name": {name}, "cluster": {e.Cluster}, "workload": {opt[1]},
		"image": {opt[2]}, "env": {"FROM_PORTAL=1"}, "action": {"create"}})
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/o/"+e.Org+"/sandboxes/"+name {
		t.Fatalf("create from the form: %d %s %.800s", resp.StatusCode, resp.Request.URL, page)
	}
	defer func() { _ = e.API.DeleteSandbox(context.Background(), e.Org, name) }()
	select {
	case took := <-readyc:
		record(t, "portal_create_to_live_ready", took)
	case <-sctx.Done():
		t.Fatal("the portal's live list never showed the sandbox Ready")
	}
	sb, err := e.API.GetSandbox(ctx, e.Org, name)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, time.Minute, "a keyed request reaching the portal-made fork", func() error {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+sb.RoutingKey)
		if err != nil {
			return err
		}
		if got := servedBy(tree)["route"]; got != name {
			return fmt.Errorf("route served by %q", got)
		}
		return nil
	})

	// The sandbox page shows what the real operator reported about the CR: its conditions and its events
	// (the agent lists the namespace's Events every 10 s).
	waitFor(ctx, t, time.Minute, "the operator's conditions and events on the sandbox page", func() error {
		_, page := get("/o/" + e.Org + "/sandboxes/" + name)
		for _, want := range []string{`id="conditions"`, `<td data-label="Type">Ready</td>`, `id="events"`, "ForkCreated"} {
			if !strings.Contains(page, want) {
				return fmt.Errorf("the page lacks %s", want)
			}
		}
		return nil
	})
	// The cluster's page lists the workloads its agent reported, with a link that forks one.
	if resp, page := get("/o/" + e.Org + "/clusters/" + e.Cluster); resp.StatusCode != 200 ||
		!strings.Contains(page, "/o/"+e.Org+"/new?cluster="+e.Cluster+"&amp;workload=Deployment%2f"+demo.ExampleNamespace+"%2froute") {
		i := max(0, strings.Index(page, `id="cluster-state"`))
		t.Fatalf("the cluster's workloads page: %d %.3000s", resp.StatusCode, page[i:])
	}
	// The usage page and its CSV count the sandbox in this month.
	if resp, page := get("/o/" + e.Org + "/usage"); resp.StatusCode != 200 || !strings.Contains(page, `<td data-label="Sandbox-hours"`) {
		t.Fatalf("the usage page: %d %.1500s", resp.StatusCode, page)
	}
	if resp, csv := get("/api/v2/orgs/" + e.Org + "/usage?format=csv"); resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.HasPrefix(csv, "team,month,sandbox_hours,sandboxes,quota") || strings.Count(csv, "\n") < 2 {
		t.Fatalf("the usage CSV: %d %q %.500s", resp.StatusCode, resp.Header.Get("Content-Type"), csv)
	}

	// Delete from the portal (confirmation page's form).
	_, page = get("/o/" + e.Org + "/sandboxes/" + name + "/delete")
	csrf = regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("delete confirmation: %.500s", page)
	}
	if resp, page := post("/o/"+e.Org+"/sandboxes/"+name+"/delete", url.Values{"csrf": {csrf[1]}}); resp.StatusCode != 200 {
		t.Fatalf("delete from the portal: %d %.500s", resp.StatusCode, page)
	}
	waitFor(ctx, t, time.Minute, "the sandbox gone", func() error {
		if _, err := e.API.GetSandbox(ctx, e.Org, name); err == nil {
			return fmt.Errorf("still there")
		}
		return nil
	})
}

// doJSON sends req and decodes a JSON answer of status want into out.
func doJSON(req *http.Request, want int, out any) error {
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", req.Method, req.URL, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}
