package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

type env struct {
	t           testing.TB
	srv         *api.Server
	http        *httptest.Server
	st          *store.Store
	admin       *client.Client
	acme        *client.Client // key of org acme
	other       *client.Client // key of org other
	keyA        string
	tokenA      string // cluster token of acme/c1
	adminSecret string
}

func newEnv(t *testing.T, driver string) *env { return newEnvTB(t, driver) }

func newEnvTB(t testing.TB, driver string, opts ...func(*api.Config)) *env {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t, driver)
	cfg := api.Config{Store: st, PreviewURL: "http://preview.localhost", LongPollTimeout: 5 * time.Second, PollInterval: 50 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := api.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	adminKey, created, err := api.Bootstrap(ctx, st, "", "")
	if err != nil || !created {
		t.Fatalf("bootstrap: %v %v", created, err)
	}
	e := &env{t: t, srv: srv, http: hs, st: st, adminSecret: adminKey}
	e.admin = e.client(adminKey)
	for _, org := range []string{"acme", "other"} {
		if _, err := e.admin.CreateOrg(ctx, org, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.admin.RegisterCluster(ctx, org, "c1"); err != nil {
			t.Fatal(err)
		}
		k, err := e.admin.CreateAPIKey(ctx, org, "test")
		if err != nil {
			t.Fatal(err)
		}
		if org == "acme" {
			e.acme, e.keyA = e.client(k.Key), k.Key
		} else {
			e.other = e.client(k.Key)
		}
	}
	tok, err := e.acme.CreateClusterToken(ctx, "acme", "c1")
	if err != nil {
		t.Fatal(err)
	}
	e.tokenA = tok.Token
	return e
}

func (e *env) client(key string) *client.Client {
	c, err := client.New(e.http.URL, key)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func forEachDriver(t *testing.T, f func(t *testing.T, e *env)) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) { f(t, newEnv(t, d)) })
	}
}

func sandbox(name string, labels map[string]string) *client.Sandbox {
	return &client.Sandbox{Name: name, Spec: v1alpha1.SandboxSpec{
		Cluster: "c1", Labels: labels, Description: "test",
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"},
			Customizations: &v1alpha1.Customizations{Images: []v1alpha1.ImageCustomization{{Image: "cart:v2"}}}}},
		DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://frontend.shop.svc:8080"}}},
	}}
}

func apiErr(t *testing.T, err error) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want *client.APIError, got %v", err)
	}
	return ae
}

func TestSandboxLifecycle(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("feature-x", map[string]string{"team": "cart"}))
		if err != nil {
			t.Fatal(err)
		}
		if sb.RoutingKey == "" || sb.Status.Ready || sb.Status.Reason != "Pending" || sb.Version != 1 {
			t.Fatalf("created: %+v", sb)
		}
		if len(sb.Endpoints) != 1 || sb.Endpoints[0].URL != "http://web--feature-x.preview.localhost" || sb.Endpoints[0].Host != "frontend.shop.svc" || sb.Endpoints[0].Port != 8080 {
			t.Fatalf("endpoints: %+v", sb.Endpoints)
		}
		up := sandbox("feature-x", map[string]string{"team": "cart"})
		up.Spec.Description = "changed"
		sb2, err := e.acme.ApplySandbox(ctx, "acme", up)
		if err != nil || sb2.RoutingKey != sb.RoutingKey || sb2.Version != 2 || sb2.Spec.Description != "changed" {
			t.Fatalf("update: %+v %v", sb2, err)
		}
		e.acme.ApplySandbox(ctx, "acme", sandbox("feature-y", map[string]string{"team": "pay"}))
		for _, tc := range []struct {
			sel  map[string]string
			want []string
		}{
			{nil, []string{"feature-x", "feature-y"}},
			{map[string]string{"team": "pay"}, []string{"feature-y"}},
			{map[string]string{"team": "none"}, nil},
		} {
			list, err := e.acme.ListSandboxes(ctx, "acme", tc.sel)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, s := range list {
				names = append(names, s.Name)
			}
			if fmt.Sprint(names) != fmt.Sprint(tc.want) {
				t.Errorf("list %v = %v, want %v", tc.sel, names, tc.want)
			}
		}
		got, err := e.acme.GetSandbox(ctx, "acme", "feature-x")
		if err != nil || got.Spec.Forks[0].ForkOf.Name != "cart" {
			t.Fatalf("get: %+v %v", got, err)
		}
		if err := e.acme.DeleteSandbox(ctx, "acme", "feature-x"); err != nil {
			t.Fatal(err)
		}
		_, err = e.acme.GetSandbox(ctx, "acme", "feature-x")
		if !errors.Is(err, client.ErrNotFound) || apiErr(t, err).RequestID == "" {
			t.Fatalf("get deleted: %v", err)
		}
		if err := e.acme.DeleteSandbox(ctx, "acme", "feature-x"); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		// Route groups.
		rg := &client.RouteGroup{Name: "rg1", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1",
			Match:     v1alpha1.RouteGroupMatch{Label: &v1alpha1.LabelMatch{Key: "team", Value: "p*"}},
			Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://frontend.shop.svc:8080"}}}}
		out, err := e.acme.ApplyRouteGroup(ctx, "acme", rg)
		if err != nil || out.RoutingKey == "" || len(out.Endpoints) != 1 {
			t.Fatalf("apply rg: %+v %v", out, err)
		}
		if rgs, err := e.acme.ListRouteGroups(ctx, "acme"); err != nil || len(rgs) != 1 {
			t.Fatalf("list rg: %v %v", rgs, err)
		}
		// A sandbox cannot take a route group's name (preview URLs name one object).
		if _, err := e.acme.ApplySandbox(ctx, "acme", &client.Sandbox{Name: "rg1", Spec: v1alpha1.SandboxSpec{Cluster: "c1",
			Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}}}}); apiErr(t, err).Reason != apitypes.ReasonConflict ||
			!strings.Contains(err.Error(), "taken by route group rg1") {
			t.Fatalf("sandbox named like a route group: %v", err)
		}
		if _, err := e.acme.GetRouteGroup(ctx, "acme", "rg1"); err != nil {
			t.Fatal(err)
		}
		if err := e.acme.DeleteRouteGroup(ctx, "acme", "rg1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.acme.GetRouteGroup(ctx, "acme", "rg1"); !errors.Is(err, client.ErrNotFound) {
			t.Fatal(err)
		}
	})
}

func (e *env) raw(method, path, key, body string, hdr ...string) (*http.Response, apitypes.ErrorResponse, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set(apitypes.HeaderSignadotAPIKey, key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var er apitypes.ErrorResponse
	_ = json.Unmarshal(b, &er)
	return resp, er, b
}

func TestBadInputs(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		good, _ := json.Marshal(sandbox("ok", nil))
		big := `{"name":"big","spec":{"description":"` + strings.Repeat("x", 2<<20) + `"}}`
		tests := []struct {
			name, path, body string
			code             int
			field            string
		}{
			{"malformed JSON", "/sandboxes/a", `{"spec":`, 400, ""},
			{"not an object", "/sandboxes/a", `[1,2]`, 400, ""},
			{"empty body", "/sandboxes/a", ``, 400, ""},
			{"trailing data", "/sandboxes/a", string(good) + `{}`, 400, ""},
			{"wrong type", "/sandboxes/a", `{"spec":{"cluster":"c1","forks":"cart"}}`, 400, "spec.forks"},
			{"wrong nested type", "/sandboxes/a", `{"spec":{"cluster":"c1","local":[{"name":"l","from":{"namespace":"a","name":"b"},"mappings":[{"port":"80","toLocal":"x"}]}]}}`, 400, "spec.local[0].mappings[0].port"},
			{"unknown field", "/sandboxes/a", `{"spec":{"cluster":"c1","forkz":[]}}`, 400, "spec.forkz"},
			{"oversized", "/sandboxes/a", big, 413, ""},
			{"uppercase name", "/sandboxes/Feature", string(good), 400, "name"},
			{"long name", "/sandboxes/" + strings.Repeat("a", 31), string(good), 400, "name"},
			{"name mismatch", "/sandboxes/other", string(good), 400, "name"},
			{"nothing to do", "/sandboxes/a", `{"spec":{"cluster":"c1"}}`, 400, "spec"},
			{"no cluster", "/sandboxes/a", `{"spec":{"forks":[{"forkOf":{"namespace":"a","name":"b"}}]}}`, 400, "spec.cluster"},
			{"unknown cluster", "/sandboxes/a", `{"spec":{"cluster":"c9","forks":[{"forkOf":{"namespace":"a","name":"b"}}]}}`, 400, "spec.cluster"},
			{"bad namespace", "/sandboxes/a", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"A_B","name":"b"}}]}}`, 400, "spec.forks[0].forkOf.namespace"},
			{"fork twice", "/sandboxes/a", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"a","name":"b"}},{"forkOf":{"kind":"Deployment","namespace":"a","name":"b"}}]}}`, 400, "spec.forks[1].forkOf"},
			{"bad target", "/sandboxes/a", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"a","name":"b"}}],"defaultRouteGroup":{"endpoints":[{"name":"web","target":"http://10.0.0.1:80"}]}}}`, 400, "spec.defaultRouteGroup.endpoints[0].target"},
			{"bad ttl", "/sandboxes/a", `{"spec":{"cluster":"c1","ttl":{"duration":"2 days"},"forks":[{"forkOf":{"namespace":"a","name":"b"}}]}}`, 400, "spec.ttl.duration"},
			{"env value and delete", "/sandboxes/a", `{"spec":{"cluster":"c1","forks":[{"forkOf":{"namespace":"a","name":"b"},"customizations":{"env":[{"name":"X","value":"1","operation":"delete"}]}}]}}`, 400, "spec.forks[0].customizations.env[0]"},
			{"rg match none", "/routegroups/a", `{"spec":{"cluster":"c1","match":{}}}`, 400, "spec.match"},
			{"rg match two", "/routegroups/a", `{"spec":{"cluster":"c1","match":{"label":{"key":"a","value":"b"},"any":[{"label":{"key":"a","value":"b"}}]}}}`, 400, "spec.match"},
			{"bad if-match", "/sandboxes/ok", string(good), 400, ""},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var hdr []string
				if tc.name == "bad if-match" {
					hdr = []string{"If-Match", "abc"}
				}
				resp, er, body := e.raw("PUT", "/api/v2/orgs/acme"+tc.path, e.keyA, tc.body, hdr...)
				if resp.StatusCode != tc.code {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
				}
				if er.Code != tc.code || er.Error == "" || er.RequestID == "" || er.RequestID != resp.Header.Get("X-Request-Id") {
					t.Fatalf("error body: %s", body)
				}
				if tc.field == "" {
					return
				}
				for _, f := range er.Fields {
					if f.Path == tc.field {
						return
					}
				}
				t.Fatalf("no field %q in %s", tc.field, body)
			})
		}
		t.Run("unknown route", func(t *testing.T) {
			resp, er, _ := e.raw("GET", "/api/v2/nope", e.keyA, "")
			if resp.StatusCode != 404 || er.Code != 404 {
				t.Fatalf("%d %+v", resp.StatusCode, er)
			}
		})
		t.Run("bad label selector", func(t *testing.T) {
			resp, er, _ := e.raw("GET", "/api/v2/orgs/acme/sandboxes?labelSelector=novalue", e.keyA, "")
			if resp.StatusCode != 400 || len(er.Fields) != 1 {
				t.Fatalf("%d %+v", resp.StatusCode, er)
			}
		})
		t.Run("request id is kept", func(t *testing.T) {
			resp, er, _ := e.raw("GET", "/api/v2/orgs/acme/sandboxes/none", e.keyA, "", "X-Request-Id", "abc-123")
			if resp.StatusCode != 404 || er.RequestID != "abc-123" {
				t.Fatalf("%d %+v", resp.StatusCode, er)
			}
		})
		t.Run("signadot trailing slash paths", func(t *testing.T) {
			resp, _, body := e.raw("GET", "/api/v2/orgs/acme/clusters/", e.keyA, "")
			if resp.StatusCode != 200 || !strings.Contains(string(body), `"c1"`) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	})
}

func TestAuthAndIsolation(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("secret", nil)); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name   string
			method string
			path   string
			key    string
			header string
			code   int
		}{
			{"no key", "GET", "/api/v2/orgs/acme/sandboxes", "", "", 401},
			{"bad key", "GET", "/api/v2/orgs/acme/sandboxes", "smk_nope", "", 401},
			{"other org get", "GET", "/api/v2/orgs/acme/sandboxes/secret", "other", "", 404},
			{"other org list", "GET", "/api/v2/orgs/acme/sandboxes", "other", "", 404},
			{"other org delete", "DELETE", "/api/v2/orgs/acme/sandboxes/secret", "other", "", 404},
			{"other org clusters", "GET", "/api/v2/orgs/acme/clusters", "other", "", 404},
			{"other org token", "POST", "/api/v2/orgs/acme/clusters/c1/tokens", "other", "", 404},
			{"other org keys", "GET", "/api/v2/orgs/acme/apikeys", "other", "", 404},
			{"unknown org for admin", "GET", "/api/v2/orgs/ghost/sandboxes", "admin", "", 404},
			{"cluster token as api key", "GET", "/api/v2/orgs/acme/sandboxes", "token", "", 401},
			{"api key as cluster token", "GET", "/api/v2/agent/state?wait=0s", "", "acme", 401},
			{"org key creates org", "PUT", "/api/v2/orgs/newone", "acme", "", 403},
			{"org key sets quota", "PUT", "/api/v2/orgs/acme/quota", "acme", "", 403},
			{"cluster token on agent", "GET", "/api/v2/agent/state?wait=0s", "", "token", 200},
		}
		keys := map[string]string{"acme": e.keyA, "token": e.tokenA}
		ok, _ := e.other.ListAPIKeys(ctx, "other")
		_ = ok
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				req, _ := http.NewRequest(tc.method, e.http.URL+tc.path, strings.NewReader(`{"maxSandboxes":9}`))
				switch tc.key {
				case "other":
					k, _ := e.admin.CreateAPIKey(ctx, "other", "x")
					req.Header.Set(apitypes.HeaderAPIKey, k.Key)
				case "admin":
					req.Header.Set(apitypes.HeaderAPIKey, e.adminSecret)
				case "":
				default:
					req.Header.Set(apitypes.HeaderAPIKey, keys[tc.key])
				}
				if tc.header != "" {
					v := keys[tc.header]
					if tc.header == "acme" {
						v = e.keyA
					}
					req.Header.Set(apitypes.HeaderClusterToken, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.code {
					t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, b)
				}
				if bytes.Contains(b, []byte("secret")) && tc.code != 200 {
					t.Fatalf("leak: %s", b)
				}
			})
		}
		// Same sandbox name in two orgs: two objects with different keys.
		a, _ := e.acme.GetSandbox(ctx, "acme", "secret")
		b, err := e.other.ApplySandbox(ctx, "other", sandbox("secret", nil))
		if err != nil || a.RoutingKey == b.RoutingKey {
			t.Fatalf("same name in two orgs: %v", err)
		}
	})
}

func TestAPIKeysAndRevocation(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		k, err := e.acme.CreateAPIKey(ctx, "acme", "ci")
		if err != nil || !strings.HasPrefix(k.Key, api.APIKeyPrefix) {
			t.Fatalf("create key: %+v %v", k, err)
		}
		ci := e.client(k.Key)
		if _, err := ci.ListSandboxes(ctx, "acme", nil); err != nil {
			t.Fatal(err)
		}
		keys, err := e.acme.ListAPIKeys(ctx, "acme")
		if err != nil || len(keys) != 2 {
			t.Fatalf("list keys: %v %v", keys, err)
		}
		for _, kk := range keys {
			if kk.Key != "" || kk.MaskedValue == "" {
				t.Fatalf("listed key shows its value: %+v", kk)
			}
		}
		if err := e.other.RevokeAPIKey(ctx, "acme", k.ID); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("revoke from other org: %v", err)
		}
		if err := e.acme.RevokeAPIKey(ctx, "acme", k.ID); err != nil {
			t.Fatal(err)
		}
		_, err = ci.ListSandboxes(ctx, "acme", nil)
		if !errors.Is(err, client.ErrUnauthorized) {
			t.Fatalf("revoked key still works: %v", err)
		}
		if _, err := e.acme.CreateAPIKey(ctx, "acme", ""); !errors.Is(err, client.ErrInvalid) {
			t.Fatalf("key without name: %v", err)
		}
	})
}

func TestClustersAndTokens(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		cl, err := e.acme.RegisterCluster(ctx, "acme", "c2")
		if err != nil || cl.Name != "c2" || cl.CreatedAt == "" {
			t.Fatalf("register: %+v %v", cl, err)
		}
		if _, err := e.acme.RegisterCluster(ctx, "acme", "Bad_Name"); !errors.Is(err, client.ErrInvalid) {
			t.Fatalf("bad cluster name: %v", err)
		}
		cls, _ := e.acme.ListClusters(ctx, "acme")
		if len(cls) != 2 {
			t.Fatalf("clusters: %+v", cls)
		}
		if _, err := e.acme.GetCluster(ctx, "acme", "c3"); !errors.Is(err, client.ErrNotFound) {
			t.Fatal(err)
		}
		tok, err := e.acme.CreateClusterToken(ctx, "acme", "c2")
		if err != nil || !strings.HasPrefix(tok.Token, api.ClusterTokenPrefix) || tok.ID == "" {
			t.Fatalf("token: %+v %v", tok, err)
		}
		toks, _ := e.acme.ListClusterTokens(ctx, "acme", "c2")
		if len(toks) != 1 || toks[0].Token != "" || toks[0].MaskedValue == "" {
			t.Fatalf("tokens: %+v", toks)
		}
		resp, _, _ := e.raw("GET", "/api/v2/orgs/acme/clusters/c2/tokens/"+tok.ID, e.keyA, "")
		if resp.StatusCode != 200 {
			t.Fatalf("get token: %d", resp.StatusCode)
		}
		// The token works for the agent, then not after deletion.
		agent := func(tk string) int {
			req, _ := http.NewRequest("GET", e.http.URL+"/api/v2/agent/state?wait=0s", nil)
			req.Header.Set(apitypes.HeaderClusterToken, tk)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if c := agent(tok.Token); c != 200 {
			t.Fatalf("agent with token: %d", c)
		}
		if got, _ := e.acme.GetCluster(ctx, "acme", "c2"); got.LastSeenAt == "" {
			t.Fatal("last seen not recorded")
		}
		if err := e.acme.DeleteClusterToken(ctx, "acme", "c2", tok.ID); err != nil {
			t.Fatal(err)
		}
		if c := agent(tok.Token); c != 401 {
			t.Fatalf("deleted token: %d", c)
		}
		sb := sandbox("on-c2", nil)
		sb.Spec.Cluster = "c2"
		if _, err := e.acme.ApplySandbox(ctx, "acme", sb); err != nil {
			t.Fatal(err)
		}
		if err := e.acme.DeleteCluster(ctx, "acme", "c2"); !errors.Is(err, client.ErrConflict) {
			t.Fatalf("delete used cluster: %v", err)
		}
		sb.Spec.Cluster = "c1"
		if _, err := e.acme.ApplySandbox(ctx, "acme", sb); !errors.Is(err, client.ErrInvalid) || apiErr(t, err).Fields[0].Path != "spec.cluster" {
			t.Fatalf("cluster is immutable: %v", err)
		}
		e.acme.DeleteSandbox(ctx, "acme", "on-c2")
		if err := e.acme.DeleteCluster(ctx, "acme", "c2"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestQuota(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.admin.SetQuota(ctx, "acme", 2); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox(fmt.Sprintf("s%d", i), nil)); err != nil {
				t.Fatal(err)
			}
		}
		_, err := e.acme.ApplySandbox(ctx, "acme", sandbox("s2", nil))
		ae := apiErr(t, err)
		if !errors.Is(err, client.ErrQuotaExceeded) || ae.Status != 429 || ae.Reason != apitypes.ReasonQuotaExceeded || !strings.Contains(ae.Message, "quota") {
			t.Fatalf("quota: %+v", ae)
		}
		// Updating an existing sandbox is fine; other orgs are not affected.
		up := sandbox("s1", nil)
		up.Spec.Description = "x"
		if _, err := e.acme.ApplySandbox(ctx, "acme", up); err != nil {
			t.Fatal(err)
		}
		if _, err := e.other.ApplySandbox(ctx, "other", sandbox("s2", nil)); err != nil {
			t.Fatal(err)
		}
		o, _ := e.acme.GetOrg(ctx, "acme")
		if o.Quota.MaxSandboxes != 2 || o.Quota.Sandboxes != 2 {
			t.Fatalf("org: %+v", o)
		}
		e.acme.DeleteSandbox(ctx, "acme", "s0")
		if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("s2", nil)); err != nil {
			t.Fatalf("after delete: %v", err)
		}
	})
}

func TestConcurrentApplies(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const n = 16
		var wg sync.WaitGroup
		keys := make(chan string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sb := sandbox("shared", nil)
				sb.Spec.Description = fmt.Sprint(i)
				out, err := e.acme.ApplySandbox(ctx, "acme", sb)
				if err != nil {
					t.Error(err)
					return
				}
				keys <- out.RoutingKey
			}()
		}
		wg.Wait()
		close(keys)
		seen := map[string]bool{}
		for k := range keys {
			seen[k] = true
		}
		if len(seen) != 1 {
			t.Fatalf("routing keys: %v", seen)
		}
		// Read-modify-write with If-Match: no lost update.
		cur, _ := e.acme.GetSandbox(ctx, "acme", "shared")
		var wins, conflicts int
		var mu sync.Mutex
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sb := sandbox("shared", map[string]string{"writer": fmt.Sprint(i)})
				_, err := e.acme.ApplySandbox(ctx, "acme", sb, client.IfMatch(cur.Version))
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					wins++
				case errors.Is(err, client.ErrConflict):
					conflicts++
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 || conflicts != n-1 {
			t.Fatalf("wins=%d conflicts=%d", wins, conflicts)
		}
		if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("shared", nil), client.IfNoneMatch()); !errors.Is(err, client.ErrConflict) {
			t.Fatalf("If-None-Match on existing: %v", err)
		}
	})
}

func TestOpenAPIInSync(t *testing.T) {
	e := newEnv(t, store.DriverSQLite)
	routes := map[string]bool{}
	for _, r := range e.srv.Routes() {
		routes[r.Method+" "+r.Path] = true
	}
	documented := map[string]bool{}
	for _, op := range api.Operations {
		documented[op.Method+" "+op.Path] = true
		if !routes[op.Method+" "+op.Path] {
			t.Errorf("documented but not routed: %s %s", op.Method, op.Path)
		}
	}
	for r := range routes {
		if !documented[r] {
			t.Errorf("routed but not documented: %s", r)
		}
	}
	resp, _, body := e.raw("GET", "/api/v2/openapi.json", "", "")
	if resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	var doc struct {
		OpenAPI    string                               `json:"openapi"`
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("document: %v", err)
	}
	for _, op := range api.Operations {
		if _, ok := doc.Paths[api.OpenAPIPath(op.Path)][strings.ToLower(op.Method)]; !ok {
			t.Errorf("served document lacks %s %s", op.Method, op.Path)
		}
	}
	sb := doc.Components.Schemas["apitypes.Sandbox"]["properties"].(map[string]any)
	for _, f := range []string{"name", "spec", "routingKey", "endpoints", "status", "createdAt", "updatedAt"} {
		if _, ok := sb[f]; !ok {
			t.Errorf("Sandbox schema lacks %s", f)
		}
	}
	// Every $ref resolves.
	for _, m := range bytes.Split(body, []byte(`"$ref": "#/components/schemas/`))[1:] {
		name := string(m[:bytes.IndexByte(m, '"')])
		if _, ok := doc.Components.Schemas[name]; !ok {
			t.Errorf("dangling $ref %s", name)
		}
	}
}

func TestAgentProtocolAndWaitForReady(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		poll := func(since int64, wait string, tok string) (apitypes.AgentState, int) {
			req, _ := http.NewRequest("GET", fmt.Sprintf("%s/api/v2/agent/state?since=%d&wait=%s", e.http.URL, since, wait), nil)
			req.Header.Set(apitypes.HeaderClusterToken, tok)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var st apitypes.AgentState
			json.NewDecoder(resp.Body).Decode(&st)
			return st, resp.StatusCode
		}
		e.other.ApplySandbox(ctx, "other", sandbox("theirs", nil))
		full, code := poll(0, "0s", e.tokenA)
		if code != 200 || !full.Full || len(full.Objects) != 0 {
			t.Fatalf("full: %d %+v", code, full)
		}
		type result struct {
			st  apitypes.AgentState
			dur time.Duration
		}
		ch := make(chan result)
		go func() {
			start := time.Now()
			st, _ := poll(full.Revision, "5s", e.tokenA)
			ch <- result{st, time.Since(start)}
		}()
		time.Sleep(200 * time.Millisecond)
		sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("mine", nil))
		if err != nil {
			t.Fatal(err)
		}
		r := <-ch
		if r.st.Full || len(r.st.Objects) != 1 || r.st.Objects[0].Name != "mine" || r.st.Objects[0].RoutingKey != sb.RoutingKey || r.dur > 4*time.Second {
			t.Fatalf("long poll: %+v after %v", r.st, r.dur)
		}
		// Status report: own org only.
		report := func(rep apitypes.AgentStatusReport) int {
			b, _ := json.Marshal(rep)
			req, _ := http.NewRequest("POST", e.http.URL+"/api/v2/agent/status", bytes.NewReader(b))
			req.Header.Set(apitypes.HeaderClusterToken, e.tokenA)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		if c := report(apitypes.AgentStatusReport{Items: []apitypes.AgentStatusItem{{Kind: "sandbox", Org: "other", Name: "theirs", Version: 1, Status: apitypes.ObservedStatus{Ready: true}}}}); c != 403 {
			t.Fatalf("report for other org: %d", c)
		}
		if got, _ := e.other.GetSandbox(ctx, "other", "theirs"); got.Status.Ready {
			t.Fatal("other org's sandbox changed")
		}
		var progress []string
		done := make(chan error)
		go func() {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := e.acme.WaitForReady(wctx, "acme", "mine", &client.WaitOptions{Interval: 50 * time.Millisecond, Progress: func(s *client.Sandbox) {
				progress = append(progress, s.Status.Reason)
			}})
			done <- err
		}()
		time.Sleep(200 * time.Millisecond)
		report(apitypes.AgentStatusReport{OperatorVersion: "v0.1.0", Items: []apitypes.AgentStatusItem{{Kind: "sandbox", Org: "acme", Name: "mine", Version: sb.Version,
			Status: apitypes.ObservedStatus{Reason: "ForksNotReady", Message: "cart fork starting"}}}})
		time.Sleep(200 * time.Millisecond)
		report(apitypes.AgentStatusReport{Items: []apitypes.AgentStatusItem{{Kind: "sandbox", Org: "acme", Name: "mine", Version: sb.Version,
			Status: apitypes.ObservedStatus{Ready: true, Reason: "Available", Endpoints: []v1alpha1.EndpointStatus{{Name: "web", Host: "frontend.shop.svc.cluster.local", Port: 8080}}}}}})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if strings.Join(progress, ",") != "Pending,ForksNotReady,Available" {
			t.Fatalf("progress: %v", progress)
		}
		got, _ := e.acme.GetSandbox(ctx, "acme", "mine")
		if !got.Status.Ready || got.Endpoints[0].Host != "frontend.shop.svc.cluster.local" {
			t.Fatalf("status: %+v", got)
		}
		if cl, _ := e.acme.GetCluster(ctx, "acme", "c1"); cl.Operator == nil || cl.Operator.Version != "v0.1.0" {
			t.Fatalf("operator version: %+v", cl)
		}
		// WaitForReady times out with the last reason.
		e.acme.ApplySandbox(ctx, "acme", sandbox("never", nil))
		wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err = e.acme.WaitForReady(wctx, "acme", "never", &client.WaitOptions{Interval: 50 * time.Millisecond})
		if !errors.Is(err, client.ErrWaitTimeout) || !strings.Contains(err.Error(), "Pending") {
			t.Fatalf("timeout: %v", err)
		}
		// Delete shows up as a tombstone.
		e.acme.DeleteSandbox(ctx, "acme", "mine")
		ch2, _ := poll(r.st.Revision, "0s", e.tokenA)
		found := false
		for _, o := range ch2.Objects {
			found = found || (o.Name == "mine" && o.Deleted)
		}
		if !found {
			t.Fatalf("no tombstone: %+v", ch2)
		}
	})
}

// TestWorkloads: the agent reports with its cluster token only; users of the
// org list them (with a namespace filter); other orgs and bad input get 4xx.
func TestWorkloads(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		put := func(token, body string) (*http.Response, apitypes.ErrorResponse) {
			resp, er, _ := e.raw("PUT", "/api/v2/agent/workloads", "", body, apitypes.HeaderClusterToken, token)
			return resp, er
		}
		if _, err := e.acme.ListWorkloads(ctx, "acme", "c1", ""); !errors.Is(err, client.ErrNotFound) || !strings.Contains(err.Error(), "has not reported") {
			t.Fatalf("before report: %v", err)
		}
		good := `{"workloads":[{"kind":"Deployment","namespace":"shop","name":"cart","containers":[{"name":"cart","image":"cart:v1"}],"replicas":1,"readyReplicas":1,"devmeshInjected":true,"services":[{"name":"cart","ports":[80]}]},
			{"kind":"Deployment","namespace":"web","name":"frontend","containers":[{"name":"web","image":"web:v1"}],"replicas":1}]}`
		for _, tc := range []struct {
			name, token, body string
			code              int
			path              string
		}{
			{"no token", "", good, 401, ""},
			{"an API key is not a cluster token", e.keyA, good, 401, ""},
			{"malformed JSON", e.tokenA, `{"workloads":[`, 400, ""},
			{"wrong kind", e.tokenA, `{"workloads":[{"kind":"StatefulSet","namespace":"shop","name":"db"}]}`, 400, "workloads[0].kind"},
			{"bad namespace", e.tokenA, `{"workloads":[{"kind":"Deployment","namespace":"Shop!","name":"db"}]}`, 400, "workloads[0].namespace"},
			{"good", e.tokenA, good, 200, ""},
		} {
			resp, er := put(tc.token, tc.body)
			if resp.StatusCode != tc.code || (tc.path != "" && (len(er.Fields) == 0 || er.Fields[0].Path != tc.path)) {
				t.Errorf("%s: %d %+v", tc.name, resp.StatusCode, er)
			}
		}
		wl, err := e.acme.ListWorkloads(ctx, "acme", "c1", "")
		if err != nil || wl.Cluster != "c1" || wl.ReportedAt == "" || len(wl.Workloads) != 2 || wl.Workloads[0].Services[0].Ports[0] != 80 || !wl.Workloads[0].DevmeshInjected {
			t.Fatalf("list: %+v %v", wl, err)
		}
		if wl, _ := e.acme.ListWorkloads(ctx, "acme", "c1", "web"); len(wl.Workloads) != 1 || wl.Workloads[0].Name != "frontend" {
			t.Fatalf("namespace filter: %+v", wl)
		}
		if _, err := e.acme.ListWorkloads(ctx, "acme", "c1", "Bad_NS"); !errors.Is(err, client.ErrInvalid) {
			t.Fatalf("bad namespace filter: %v", err)
		}
		// Org isolation: the other org's cluster c1 has no report, and acme's is not reachable with its key.
		if _, err := e.other.ListWorkloads(ctx, "other", "c1", ""); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("other org's cluster: %v", err)
		}
		if _, err := e.other.ListWorkloads(ctx, "acme", "c1", ""); err == nil {
			t.Fatal("other org read acme's workloads")
		}
		if _, err := e.acme.ListWorkloads(ctx, "acme", "nope", ""); !errors.Is(err, client.ErrNotFound) {
			t.Fatalf("unknown cluster: %v", err)
		}
		// A cluster token cannot read the list (it only does agent work).
		if resp, _, _ := e.raw("GET", "/api/v2/orgs/acme/clusters/c1/workloads", "", "", apitypes.HeaderClusterToken, e.tokenA); resp.StatusCode != 401 {
			t.Fatalf("cluster token reading: %d", resp.StatusCode)
		}
	})
}
