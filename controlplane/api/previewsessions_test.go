package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/preview"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestPreviewSessionRevocation: login links are single-use and bound to one
// endpoint; the cookie they set ends with the API key that made the link and
// with the sandbox (a sandbox deleted and created again under the same name
// does not accept it). On SQLite and PostgreSQL.
func TestPreviewSessionRevocation(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		rec := newRecorder(t)
		for _, n := range []string{"feat", "feat2"} {
			if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox(n, nil)); err != nil {
				t.Fatal(err)
			}
		}
		connectAgent(t, e, rec, "frontend.shop.svc:8080")
		do := func(host, path, cookie string) (int, *http.Cookie) {
			t.Helper()
			return previewGet(t, e, host, path, cookie)
		}
		// login makes a link with c and opens it at its own host.
		login := func(c *client.Client, name string) string {
			t.Helper()
			link, err := c.PreviewLink(ctx, "acme", name, "web")
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(link.URL)
			code, ck := do(u.Host, u.RequestURI(), "")
			if code != http.StatusFound || ck == nil {
				t.Fatalf("login: %d", code)
			}
			return ck.Value
		}

		t.Run("links are single-use", func(t *testing.T) {
			link, err := e.acme.PreviewLink(ctx, "acme", "feat", "web")
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(link.URL)
			// 8 browsers open the same link at once: exactly one gets a cookie.
			var wg sync.WaitGroup
			var mu sync.Mutex
			ok := 0
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if code, ck := do(u.Host, u.RequestURI(), ""); code == http.StatusFound && ck != nil {
						mu.Lock()
						ok++
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if ok != 1 {
				t.Fatalf("%d of 8 uses of one link succeeded, want 1", ok)
			}
			if code, _ := do(u.Host, u.RequestURI(), ""); code != http.StatusUnauthorized {
				t.Fatalf("reuse: %d", code)
			}
		})

		t.Run("links are bound to their endpoint", func(t *testing.T) {
			link, err := e.acme.PreviewLink(ctx, "acme", "feat", "web")
			if err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(link.URL)
			if code, _ := do("web--feat2.preview.localhost", u.RequestURI(), ""); code != http.StatusUnauthorized {
				t.Fatalf("link of feat opened at feat2: %d", code)
			}
			if code, _ := do(u.Host, u.RequestURI(), ""); code != http.StatusFound {
				t.Fatalf("the link, at its own host after a wrong one: %d", code)
			}
		})

		t.Run("cookie bound to its sandbox", func(t *testing.T) {
			ck := login(e.acme, "feat")
			if code, _ := do("web--feat.preview.localhost", "/", ck); code != 200 {
				t.Fatalf("cookie: %d", code)
			}
			if code, _ := do("web--feat2.preview.localhost", "/", ck); code != http.StatusUnauthorized {
				t.Fatalf("cookie on another sandbox: %d", code)
			}
			if code, _ := do("web--feat.preview.localhost", "/", "smp_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"); code != http.StatusUnauthorized {
				t.Fatalf("made-up cookie: %d", code)
			}
		})

		t.Run("cookie ends with the key", func(t *testing.T) {
			k, err := e.admin.CreateAPIKey(ctx, "acme", "browser")
			if err != nil {
				t.Fatal(err)
			}
			kc := e.client(k.Key)
			ck := login(kc, "feat")
			pending, err := kc.PreviewLink(ctx, "acme", "feat", "web")
			if err != nil {
				t.Fatal(err)
			}
			if code, _ := do("web--feat.preview.localhost", "/", ck); code != 200 {
				t.Fatalf("before revocation: %d", code)
			}
			if err := e.acme.RevokeAPIKey(ctx, "acme", k.ID); err != nil {
				t.Fatal(err)
			}
			if code, _ := do("web--feat.preview.localhost", "/", ck); code != http.StatusUnauthorized {
				t.Fatalf("cookie after its key was revoked: %d", code)
			}
			u, _ := url.Parse(pending.URL)
			if code, _ := do(u.Host, u.RequestURI(), ""); code != http.StatusUnauthorized {
				t.Fatalf("link after its key was revoked: %d", code)
			}
		})

		t.Run("cookie ends with the sandbox", func(t *testing.T) {
			ck := login(e.acme, "feat2")
			pending, err := e.acme.PreviewLink(ctx, "acme", "feat2", "web")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.acme.DeleteSandbox(ctx, "acme", "feat2"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("feat2", nil)); err != nil {
				t.Fatal(err)
			}
			if code, _ := do("web--feat2.preview.localhost", "/", ck); code != http.StatusUnauthorized {
				t.Fatalf("cookie after the sandbox was deleted and created again: %d", code)
			}
			u, _ := url.Parse(pending.URL)
			if code, _ := do(u.Host, u.RequestURI(), ""); code != http.StatusUnauthorized {
				t.Fatalf("link after the sandbox was deleted and created again: %d", code)
			}
			if code, _ := do("web--feat2.preview.localhost", "/", login(e.acme, "feat2")); code != 200 {
				t.Fatalf("a new link: %d", code)
			}
		})
	})
}

// TestPreviewPathFormURLs: with --preview-url /preview the endpoint URLs the
// API returns are path-form URLs on the address the client used, and they
// work as returned: with the API key header, and in a browser through a login
// link whose cookie is scoped to that endpoint's path. On SQLite and PostgreSQL.
func TestPreviewPathFormURLs(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newEnvTB(t, d, func(c *api.Config) { c.PreviewURL = "/preview" })
			ctx := context.Background()
			rec := newRecorder(t)
			for _, n := range []string{"feat", "feat2"} {
				if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox(n, nil)); err != nil {
					t.Fatal(err)
				}
			}
			connectAgent(t, e, rec, "frontend.shop.svc:8080")
			sb, err := e.acme.GetSandbox(ctx, "acme", "feat")
			if err != nil {
				t.Fatal(err)
			}
			want := e.http.URL + "/preview/acme/feat/web"
			if len(sb.Endpoints) != 1 || sb.Endpoints[0].URL != want {
				t.Fatalf("endpoints %+v, want URL %s", sb.Endpoints, want)
			}
			get := func(u, key, cookie string) (int, *http.Cookie, string) {
				t.Helper()
				req, _ := http.NewRequest("GET", u, nil)
				if key != "" {
					req.Header.Set(apitypes.HeaderAPIKey, key)
				}
				if cookie != "" {
					req.Header.Set("Cookie", preview.CookieName+"="+cookie)
				}
				c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				for _, ck := range resp.Cookies() {
					if ck.Name == preview.CookieName {
						return resp.StatusCode, ck, resp.Header.Get("Location")
					}
				}
				return resp.StatusCode, nil, resp.Header.Get("Location")
			}
			if code, _, _ := get(want+"/api/x?q=1", e.keyA, ""); code != http.StatusOK {
				t.Fatalf("returned URL with the key: %d", code)
			}
			if got := rec.last(); got == nil || got.URL.Path != "/api/x" || got.URL.RawQuery != "q=1" {
				t.Fatalf("upstream saw %+v", got)
			}
			if code, _, _ := get(want+"/", "", ""); code != http.StatusUnauthorized {
				t.Fatalf("returned URL without credentials: %d", code)
			}
			link, err := e.acme.PreviewLink(ctx, "acme", "feat", "web")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(link.URL, want+preview.LoginPath+"?token=") {
				t.Fatalf("login link %s", link.URL)
			}
			code, ck, loc := get(link.URL, "", "")
			if code != http.StatusFound || ck == nil || ck.Path != "/preview/acme/feat/web/" || loc != "/preview/acme/feat/web/" {
				t.Fatalf("login: %d cookie %+v location %q", code, ck, loc)
			}
			if code, _, _ := get(want+"/", "", ck.Value); code != http.StatusOK {
				t.Fatalf("cookie on its endpoint: %d", code)
			}
			if code, _, _ := get(e.http.URL+"/preview/acme/feat2/web/", "", ck.Value); code != http.StatusUnauthorized {
				t.Fatalf("cookie on another sandbox: %d", code)
			}
			if code, _, _ := get(e.http.URL+"/preview/other/feat/web/", "", ck.Value); code != http.StatusUnauthorized {
				t.Fatalf("cookie on another org's path: %d", code)
			}
		})
	}
}

// TestRouteGroupPreviewLink: a route group's endpoints get login links as a
// sandbox's do (the same handler): the link opens a preview session at its
// endpoint only, ends with the route group's incarnation, lasts the same
// time and is audited; unknown endpoints, route groups without endpoints and
// unknown route groups are refused.
func TestRouteGroupPreviewLink(t *testing.T) {
	e := newEnv(t, storetest.Drivers[0])
	ctx := context.Background()
	rec := newRecorder(t)
	rg := &client.RouteGroup{Name: "rg1", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1",
		Match:     v1alpha1.RouteGroupMatch{Label: &v1alpha1.LabelMatch{Key: "team", Value: "p*"}},
		Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://frontend.shop.svc:8080"}}}}
	if _, err := e.acme.ApplyRouteGroup(ctx, "acme", rg); err != nil {
		t.Fatal(err)
	}
	connectAgent(t, e, rec, "frontend.shop.svc:8080")
	do := func(host, path, cookie string) (int, *http.Cookie) {
		t.Helper()
		return previewGet(t, e, host, path, cookie)
	}
	link, err := e.acme.RouteGroupPreviewLink(ctx, "acme", "rg1", "")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(link.URL)
	exp, _ := time.Parse(time.RFC3339, link.ExpiresAt)
	if u.Host != "web--rg1.preview.localhost" || time.Until(exp) > 5*time.Minute || time.Until(exp) < 4*time.Minute {
		t.Fatalf("link %+v", link)
	}
	code, ck := do(u.Host, u.RequestURI(), "")
	if code != http.StatusFound || ck == nil {
		t.Fatalf("login: %d", code)
	}
	if code, _ := do("web--rg1.preview.localhost", "/", ck.Value); code != http.StatusOK {
		t.Fatalf("cookie on its endpoint: %d", code)
	}
	if code, _ := do(u.Host, u.RequestURI(), ""); code != http.StatusUnauthorized {
		t.Fatalf("link used twice: %d", code)
	}
	// Refusals.
	if _, err := e.acme.RouteGroupPreviewLink(ctx, "acme", "rg1", "nope"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown endpoint: %v", err)
	}
	if _, err := e.acme.RouteGroupPreviewLink(ctx, "acme", "nope", ""); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown route group: %v", err)
	}
	bare := &client.RouteGroup{Name: "bare", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1", Match: rg.Spec.Match}}
	if _, err := e.acme.ApplyRouteGroup(ctx, "acme", bare); err != nil {
		t.Fatal(err)
	}
	if _, err := e.acme.RouteGroupPreviewLink(ctx, "acme", "bare", ""); err == nil || !strings.Contains(err.Error(), "spec.endpoints") {
		t.Fatalf("no endpoints: %v", err)
	}
	// Audited, as the sandbox's links are.
	resp, _, body := e.raw("GET", "/api/v2/orgs/acme/events?action=create-routegroup-preview-link", e.keyA, "")
	var evs []apitypes.AuditEvent
	if err := json.Unmarshal(body, &evs); err != nil || resp.StatusCode != 200 || len(evs) != 1 || evs[0].ObjectName != "rg1" {
		t.Fatalf("audit: %d %s", resp.StatusCode, body)
	}
	// Deleted and created again: the session ends.
	if err := e.acme.DeleteRouteGroup(ctx, "acme", "rg1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.acme.ApplyRouteGroup(ctx, "acme", rg); err != nil {
		t.Fatal(err)
	}
	if code, _ := do("web--rg1.preview.localhost", "/", ck.Value); code != http.StatusUnauthorized {
		t.Fatalf("cookie of the old route group: %d", code)
	}
}

// previewGet sends GET path to the control plane with Host host and, when
// cookie is set, the preview session cookie; it does not follow redirects
// and returns the status and the preview session cookie set, if any.
func previewGet(t *testing.T, e *env, host, path, cookie string) (int, *http.Cookie) {
	t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", e.http.URL+path, nil)
	req.Host = host
	if cookie != "" {
		req.Header.Set("Cookie", preview.CookieName+"="+cookie)
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == preview.CookieName {
			return resp.StatusCode, c
		}
	}
	return resp.StatusCode, nil
}
