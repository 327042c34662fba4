package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// get sends GET path?query with acme's key and returns the status, the
// headers and the body.
func (e *env) get(t *testing.T, path string, q url.Values) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+path+"?"+q.Encode(), nil)
	req.Header.Set(apitypes.HeaderSignadotAPIKey, e.keyA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, body
}

func TestListPagination(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		var want []string
		for i := range 12 {
			name := fmt.Sprintf("sb%02d", i)
			labels := map[string]string{"team": "b"}
			if i%2 == 0 {
				labels["team"] = "a"
			}
			if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox(name, labels)); err != nil {
				t.Fatal(err)
			}
			want = append(want, name)
		}
		const path = "/api/v2/orgs/acme/sandboxes"
		names := func(t *testing.T, body []byte) []string {
			t.Helper()
			var sbs []apitypes.Sandbox // the Signadot v2 shape: a plain array
			if err := json.Unmarshal(body, &sbs); err != nil {
				t.Fatalf("body is not a JSON array of sandboxes: %v: %s", err, body)
			}
			out := []string{}
			for _, sb := range sbs {
				out = append(out, sb.Name)
			}
			return out
		}

		t.Run("no limit: the whole list, no cursor", func(t *testing.T) {
			code, h, body := e.get(t, path, nil)
			if code != 200 || !slices.Equal(names(t, body), want) || h.Get(apitypes.HeaderContinue) != "" {
				t.Fatalf("%d %v %s", code, h, body)
			}
		})

		t.Run("pages follow the continue header and the Link header", func(t *testing.T) {
			var got []string
			q := url.Values{"limit": {"5"}}
			for pages := 0; ; pages++ {
				code, h, body := e.get(t, path, q)
				if code != 200 {
					t.Fatalf("page %d: %d %s", pages, code, body)
				}
				page := names(t, body)
				if len(page) > 5 {
					t.Fatalf("page of %d", len(page))
				}
				got = append(got, page...)
				tok := h.Get(apitypes.HeaderContinue)
				if tok == "" {
					if h.Get("Link") != "" || pages != 2 {
						t.Fatalf("last page %d, Link %q", pages, h.Get("Link"))
					}
					break
				}
				link := h.Get("Link")
				wantLink := fmt.Sprintf(`<%s?continue=%s&limit=5>; rel="next"`, path, url.QueryEscape(tok))
				if link != wantLink {
					t.Fatalf("Link %q, want %q", link, wantLink)
				}
				q.Set("continue", tok)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("paged %v, want %v", got, want)
			}
		})

		t.Run("large limits are clamped", func(t *testing.T) {
			code, h, body := e.get(t, path, url.Values{"limit": {"100000"}})
			if code != 200 || len(names(t, body)) != 12 || h.Get(apitypes.HeaderContinue) != "" {
				t.Fatalf("%d %s", code, body)
			}
		})

		_, h, _ := e.get(t, path, url.Values{"limit": {"2"}})
		tok := h.Get(apitypes.HeaderContinue)
		for _, tc := range []struct {
			name  string
			path  string
			q     url.Values
			field string
		}{
			{"limit zero", path, url.Values{"limit": {"0"}}, "limit"},
			{"limit negative", path, url.Values{"limit": {"-3"}}, "limit"},
			{"limit not a number", path, url.Values{"limit": {"ten"}}, "limit"},
			{"garbage continue", path, url.Values{"continue": {"%%%"}}, "continue"},
			{"continue of another selector", path, url.Values{"limit": {"2"}, "continue": {tok}, "labelSelector": {"team=a"}}, "continue"},
			{"continue of another list", "/api/v2/orgs/acme/routegroups", url.Values{"continue": {tok}}, "continue"},
			{"continue of another kind of list", "/api/v2/orgs/acme/clusters", url.Values{"continue": {tok}}, "continue"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				code, _, body := e.get(t, tc.path, tc.q)
				var er apitypes.ErrorResponse
				if err := json.Unmarshal(body, &er); err != nil || code != 400 || er.Code != 400 || er.RequestID == "" ||
					len(er.Fields) != 1 || er.Fields[0].Path != tc.field {
					t.Fatalf("%d %s", code, body)
				}
			})
		}

		t.Run("SDK", func(t *testing.T) {
			all, err := e.acme.ListSandboxes(ctx, "acme", map[string]string{"team": "a"})
			if err != nil || len(all) != 6 {
				t.Fatalf("%d %v", len(all), err)
			}
			pg, err := e.acme.ListSandboxesPage(ctx, "acme", nil, client.PageOptions{Limit: 10})
			if err != nil || len(pg.Items) != 10 || pg.Continue == "" {
				t.Fatalf("%+v %v", pg, err)
			}
			pg, err = e.acme.ListSandboxesPage(ctx, "acme", nil, client.PageOptions{Limit: 10, Continue: pg.Continue})
			if err != nil || len(pg.Items) != 2 || pg.Continue != "" {
				t.Fatalf("%+v %v", pg, err)
			}
			_, err = e.acme.ListSandboxesPage(ctx, "acme", nil, client.PageOptions{Continue: "bogus"})
			if !errors.Is(err, client.ErrInvalid) {
				t.Fatalf("bad continue: %v", err)
			}
			for i := range 3 {
				if _, err := e.acme.RegisterCluster(ctx, "acme", fmt.Sprintf("c%d", i+2)); err != nil {
					t.Fatal(err)
				}
			}
			cls, err := e.acme.ListClustersPage(ctx, "acme", client.PageOptions{Limit: 3})
			if err != nil || len(cls.Items) != 3 || cls.Continue == "" {
				t.Fatalf("%+v %v", cls, err)
			}
			if all, err := e.acme.ListClusters(ctx, "acme"); err != nil || len(all) != 4 {
				t.Fatalf("%d %v", len(all), err)
			}
			keys, err := e.acme.ListAPIKeysPage(ctx, "acme", client.PageOptions{Limit: 1})
			if err != nil || len(keys.Items) != 1 {
				t.Fatalf("%+v %v", keys, err)
			}
			toks, err := e.acme.ListClusterTokensPage(ctx, "acme", "c1", client.PageOptions{Limit: 1})
			if err != nil || len(toks.Items) != 1 {
				t.Fatalf("%+v %v", toks, err)
			}
		})
	})
}

func TestDefaultQuota(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		o, err := e.admin.CreateOrg(ctx, "fresh", 0)
		if err != nil || o.Quota.MaxSandboxes != store.DefaultMaxSandboxes {
			t.Fatalf("new org %+v, %v; want quota %d", o, err, store.DefaultMaxSandboxes)
		}
		if _, err := e.admin.RegisterCluster(ctx, "fresh", "c1"); err != nil {
			t.Fatal(err)
		}
		// The default is enforced (lowered here to keep the test short ...).
		if _, err := e.admin.SetQuota(ctx, "fresh", 1); err != nil {
			t.Fatal(err)
		}
		if _, err := e.admin.ApplySandbox(ctx, "fresh", sandbox("a", nil)); err != nil {
			t.Fatal(err)
		}
		_, err = e.admin.ApplySandbox(ctx, "fresh", sandbox("b", nil))
		if ae := apiErr(t, err); ae.Status != 429 || ae.Reason != apitypes.ReasonQuotaExceeded || !strings.Contains(ae.Message, "raise") {
			t.Fatalf("over quota: %+v", ae)
		}
		// ... and an admin raises it; an org key cannot.
		if _, err := e.acme.SetQuota(ctx, "acme", 1000); apiErr(t, err).Status != 403 {
			t.Fatalf("org key raised its quota: %v", err)
		}
		if q, err := e.admin.SetQuota(ctx, "fresh", 1000); err != nil || q.MaxSandboxes != 1000 {
			t.Fatalf("%+v %v", q, err)
		}
		if _, err := e.admin.ApplySandbox(ctx, "fresh", sandbox("b", nil)); err != nil {
			t.Fatal(err)
		}
		// PUT org without a quota keeps the org's quota; with an explicit 0 it lifts it.
		if o, err := e.admin.CreateOrg(ctx, "fresh", 0); err != nil || o.Quota.MaxSandboxes != 1000 {
			t.Fatalf("%+v %v", o, err)
		}
		code, body := putJSON(t, e, "/api/v2/orgs/unlimited", `{"quota":{"maxSandboxes":0}}`)
		if code != 200 || !strings.Contains(body, `"maxSandboxes":0`) {
			t.Fatalf("%d %s", code, body)
		}
		if code, body := putJSON(t, e, "/api/v2/orgs/neg", `{"quota":{"maxSandboxes":-1}}`); code != 400 || !strings.Contains(body, "quota.maxSandboxes") {
			t.Fatalf("%d %s", code, body)
		}
	})
}

func putJSON(t *testing.T, e *env, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, e.http.URL+path, strings.NewReader(body))
	req.Header.Set(apitypes.HeaderAPIKey, e.adminSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
