package portal_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/portal"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// env is a real control plane (API and portal) on SQLite, an org "shop"
// with cluster c1 (a token for the agent test double), and users: ann
// (owner, signed up), vic (viewer, invited).
type env struct {
	t     testing.TB
	srv   *api.Server
	st    *store.Store
	http  *httptest.Server
	admin *client.Client
	token string // cluster token of shop/c1
	key   string // the bootstrap admin key
	// driver and dsn name the database (replica starts another control
	// plane on it).
	driver, dsn string
}

const annPass, vicPass = "anns long passphrase", "vics long passphrase"

func newEnv(t testing.TB, opts ...func(*portal.Config)) *env {
	return newEnvOn(t, store.DriverSQLite, opts...)
}

// newEnvOn is newEnv on a new database of driver.
func newEnvOn(t testing.TB, driver string, opts ...func(*portal.Config)) *env {
	t.Helper()
	ctx := context.Background()
	driver, dsn := storetest.DSN(t, driver)
	e := startControlPlane(t, driver, dsn, opts...)
	key, _, err := api.Bootstrap(ctx, e.st, "", "")
	if err != nil {
		t.Fatal(err)
	}
	e.key = key
	if e.admin, err = client.New(e.http.URL, key); err != nil {
		t.Fatal(err)
	}
	// ann signs up through the portal's form.
	ann := e.browser()
	resp, body := ann.postForm("/signup", url.Values{"email": {"ann@example.com"}, "password": {annPass}, "displayName": {"Ann"}, "org": {"shop"}})
	if resp.StatusCode != 200 || !strings.Contains(resp.Request.URL.Path, "/o/shop/sandboxes") {
		t.Fatalf("signup: %d %s %s", resp.StatusCode, resp.Request.URL, body)
	}
	if _, err := e.admin.RegisterCluster(ctx, "shop", "c1"); err != nil {
		t.Fatal(err)
	}
	tok, err := e.admin.CreateClusterToken(ctx, "shop", "c1")
	if err != nil {
		t.Fatal(err)
	}
	e.token = tok.Token
	// vic is invited as a viewer (with the admin key) and accepts.
	var inv apitypes.Invitation
	e.apiCall("POST", "/api/v2/orgs/shop/invitations", apitypes.HeaderAPIKey, key, `{"email":"vic@example.com","role":"viewer"}`, &inv, 201)
	e.apiCall("POST", "/api/v2/auth/invitations/accept", "", "", fmt.Sprintf(`{"token":%q,"password":%q,"displayName":"Vic"}`, inv.Token, vicPass), nil, 200)
	// The agent reports its workloads.
	e.apiCall("PUT", "/api/v2/agent/workloads", apitypes.HeaderClusterToken, e.token,
		`{"workloads":[{"kind":"Deployment","namespace":"shop","name":"cart","containers":[{"name":"cart","image":"cart:v1"}],"replicas":1,"readyReplicas":1,"services":[{"name":"cart","ports":[8080]}]}]}`, nil, 200)
	return e
}

// replica starts another control plane (API and portal) on e's database:
// a second replica, with the same users, keys and token.
func (e *env) replica() *env {
	e.t.Helper()
	r := startControlPlane(e.t, e.driver, e.dsn)
	r.key, r.token = e.key, e.token
	var err error
	if r.admin, err = client.New(r.http.URL, e.key); err != nil {
		e.t.Fatal(err)
	}
	return r
}

// startControlPlane starts an API server with the portal on the database at
// dsn, until the end of the test.
func startControlPlane(t testing.TB, driver, dsn string, opts ...func(*portal.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := store.Open(ctx, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := api.New(ctx, api.Config{Store: st, PreviewURL: "http://preview.localhost", LongPollTimeout: 5 * time.Second, PollInterval: 50 * time.Millisecond,
		Identity: identity.Config{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}, AllowSignup: true}})
	if err != nil {
		t.Fatal(err)
	}
	pc := portal.Config{API: srv.Handler(), Identity: srv.Identity(), Store: st, KeepAlive: time.Second}
	for _, o := range opts {
		o(&pc)
	}
	ui, err := portal.New(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetUI(ui)
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return &env{t: t, srv: srv, st: st, http: hs, driver: driver, dsn: dsn}
}

// apiCall calls the API with one header and checks the code.
func (e *env) apiCall(method, path, hk, hv, body string, out any, code int) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.http.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if hk != "" {
		req.Header.Set(hk, hv)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			e.t.Fatal(err)
		}
	}
}

// report sends the agent's status of a sandbox.
func (e *env) report(name string, version int64, st apitypes.ObservedStatus) {
	e.t.Helper()
	b, _ := json.Marshal(apitypes.AgentStatusReport{OperatorVersion: "v0.1.0", Items: []apitypes.AgentStatusItem{{Kind: "sandbox", Org: "shop", Name: name, Version: version, Status: st}}})
	e.apiCall("POST", "/api/v2/agent/status", apitypes.HeaderClusterToken, e.token, string(b), nil, 200)
}

// browser is an HTTP client with a cookie jar that sends Origin like a browser.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, Timeout: 20 * time.Second}}
}

// login logs in through the portal's form (a user of one org lands on its
// sandboxes).
func (e *env) login(email, pass string) *browser {
	e.t.Helper()
	b := e.browser()
	resp, body := b.postForm("/login", url.Values{"email": {email}, "password": {pass}})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Request.URL.Path, "/o/") || !strings.HasSuffix(resp.Request.URL.Path, "/sandboxes") {
		e.t.Fatalf("login %s: %d %s %.300s", email, resp.StatusCode, resp.Request.URL, body)
	}
	return b
}

func (b *browser) get(path string) (*http.Response, string) {
	b.e.t.Helper()
	resp, err := b.c.Get(b.e.http.URL + path)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) postForm(path string, form url.Values, hdr ...string) (*http.Response, string) {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.http.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.e.http.URL)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var reCSRF = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// csrf reads the CSRF token of a page's forms.
func (b *browser) csrf(path string) string {
	b.e.t.Helper()
	_, body := b.get(path)
	m := reCSRF.FindStringSubmatch(body)
	if m == nil {
		b.e.t.Fatalf("no csrf token on %s: %.500s", path, body)
	}
	return m[1]
}

// readSSE reads events from an event stream until want returns true or the timeout.
func readSSE(t testing.TB, body io.Reader, timeout time.Duration, want func(event, data string) bool) bool {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		buf := make([]byte, 0, 4096)
		tmp := make([]byte, 4096)
		for {
			n, err := body.Read(tmp)
			buf = append(buf, tmp[:n]...)
			for {
				i := bytes.Index(buf, []byte("\n\n"))
				if i < 0 {
					break
				}
				var ev, data string
				for _, line := range strings.Split(string(buf[:i]), "\n") {
					if v, ok := strings.CutPrefix(line, "event: "); ok {
						ev = v
					}
					if v, ok := strings.CutPrefix(line, "data: "); ok {
						data += v
					}
				}
				buf = buf[i+2:]
				if ev != "" && want(ev, data) {
					done <- true
					return
				}
			}
			if err != nil {
				done <- false
				return
			}
		}
	}()
	select {
	case ok := <-done:
		return ok
	case <-time.After(timeout):
		return false
	}
}

func (e *env) adminKey() string { return e.key }

// refusesWrites checks the role and CSRF guards of forms: each POST (path → form) is 403 for viewer with a
// valid token (viewerCSRF) and 403 for writer without one.
func refusesWrites(t *testing.T, viewer, writer *browser, viewerCSRF string, forms map[string]url.Values) {
	t.Helper()
	for path, f := range forms {
		f.Set("csrf", viewerCSRF)
		if resp, _ := viewer.postForm(path, f); resp.StatusCode != 403 {
			t.Errorf("viewer POST %s: %d", path, resp.StatusCode)
		}
		f.Del("csrf")
		if resp, _ := writer.postForm(path, f); resp.StatusCode != 403 {
			t.Errorf("POST %s without token: %d", path, resp.StatusCode)
		}
	}
}
