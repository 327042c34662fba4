package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// callbackHost stands for the control plane in the redirect URL given to the provider; the test follows
// the redirects by hand and sends the callback to the real server.
const callbackHost = "http://cp.test"

// TestOIDCSignIn signs in through a real OpenID Connect provider run in the test (mockoidc: discovery,
// authorization with PKCE and nonce, token endpoint, JWKS): the first sign-in creates the user and makes
// them a viewer of the configured org; a session cookie works on the API. Refused: a callback without the
// flow cookie, with another state, an unverified email, a disallowed domain, an ID token for another
// audience, an expired one, and a forged flow cookie.
func TestOIDCSignIn(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	cfg := identity.OIDCConfig{Issuer: m.Issuer(), ClientID: m.ClientID, ClientSecret: m.ClientSecret,
		RedirectURL: callbackHost + "/api/v2/auth/oidc/callback", Org: "acme", AllowedDomains: []string{"example.com"}}
	e := newEnvTB(t, storetest.Drivers[0], func(c *api.Config) { c.OIDC = cfg })
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	get := func(u string, cookies ...*http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		for _, c := range cookies {
			req.AddCookie(c)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	cookie := func(resp *http.Response, name string) *http.Cookie {
		for _, c := range resp.Cookies() {
			if c.Name == name && c.Value != "" {
				return c
			}
		}
		return nil
	}
	// signIn runs the flow up to the callback and returns its answer; tamper may change the callback URL.
	signIn := func(user *mockoidc.MockUser, tamper func(cb *url.URL, flow **http.Cookie)) *http.Response {
		t.Helper()
		m.QueueUser(user)
		start := get(e.http.URL + "/api/v2/auth/oidc/login?next=/sandboxes")
		flow := cookie(start, "sandboxmesh_oidc")
		if start.StatusCode != http.StatusFound || flow == nil || !flow.HttpOnly || flow.SameSite != http.SameSiteLaxMode {
			t.Fatalf("login: %d %v", start.StatusCode, start.Cookies())
		}
		authz := get(start.Header.Get("Location"))
		if authz.StatusCode != http.StatusFound {
			b, _ := io.ReadAll(authz.Body)
			t.Fatalf("provider authorize: %d %s", authz.StatusCode, b)
		}
		cb, err := url.Parse(authz.Header.Get("Location"))
		if err != nil || !strings.HasPrefix(cb.String(), callbackHost) {
			t.Fatalf("provider redirect %q", authz.Header.Get("Location"))
		}
		if tamper != nil {
			tamper(cb, &flow)
		}
		real, _ := url.Parse(e.http.URL)
		cb.Scheme, cb.Host = real.Scheme, real.Host
		if flow == nil {
			return get(cb.String())
		}
		return get(cb.String(), flow)
	}

	ann := &mockoidc.MockUser{Subject: "ann-1", Email: "ann@example.com", EmailVerified: true, PreferredUsername: "ann"}
	resp := signIn(ann, nil)
	session := cookie(resp, apitypes.SessionCookie)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/sandboxes" || session == nil || !session.HttpOnly {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("callback: %d %q %s", resp.StatusCode, resp.Header.Get("Location"), b)
	}
	me := get(e.http.URL+"/api/v2/auth/me", session)
	var info apitypes.AuthInfo
	if err := json.NewDecoder(me.Body).Decode(&info); err != nil || me.StatusCode != 200 || info.User == nil || info.User.Email != "ann@example.com" ||
		len(info.Orgs) != 1 || info.Orgs[0] != (apitypes.OrgRole{Org: "acme", Role: "viewer"}) {
		t.Fatalf("me: %d %+v %v", me.StatusCode, info, err)
	}
	// A second sign-in finds the same user.
	if resp := signIn(ann, nil); resp.StatusCode != http.StatusFound {
		t.Fatalf("second sign-in: %d", resp.StatusCode)
	}

	refused := func(what string, resp *http.Response, want string) {
		t.Helper()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), want) || cookie(resp, apitypes.SessionCookie) != nil {
			t.Errorf("%s: %d %s; want 401 with %q and no session", what, resp.StatusCode, b, want)
		}
	}
	refused("no flow cookie", signIn(ann, func(_ *url.URL, f **http.Cookie) { *f = nil }), "no sign-in in progress")
	refused("another state", signIn(ann, func(cb *url.URL, _ **http.Cookie) {
		q := cb.Query()
		q.Set("state", "x"+q.Get("state"))
		cb.RawQuery = q.Encode()
	}), "state does not match")
	refused("forged flow cookie", signIn(ann, func(_ *url.URL, f **http.Cookie) {
		c := **f
		c.Value = "e30." + strings.SplitN(c.Value, ".", 2)[1]
		*f = &c
	}), "not ours")
	refused("unverified email", signIn(&mockoidc.MockUser{Subject: "bob", Email: "bob@example.com", EmailVerified: false}, nil), "not verified")
	refused("other domain", signIn(&mockoidc.MockUser{Subject: "eve", Email: "eve@evil.test", EmailVerified: true}, nil), "not an allowed email domain")

	// ID tokens signed by the provider's key but for another audience, or expired.
	o, err := e.srv.Identity().NewOIDC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	token := func(aud string, exp time.Time) string {
		raw, err := m.Keypair.SignJWT(jwt.MapClaims{"iss": m.Issuer(), "sub": "ann-1", "aud": aud, "iat": now.Add(-time.Hour).Unix(),
			"exp": exp.Unix(), "nonce": "n1", "email": "ann@example.com", "email_verified": true})
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	ctx := context.Background()
	if _, err := o.VerifyIDToken(ctx, token(m.ClientID, now.Add(time.Hour)), "n1"); err != nil {
		t.Fatalf("a good token: %v", err)
	}
	for what, raw := range map[string]string{
		"audience": token("another-client", now.Add(time.Hour)),
		"expired":  token(m.ClientID, now.Add(-time.Minute)),
	} {
		if _, err := o.VerifyIDToken(ctx, raw, "n1"); err == nil || !strings.Contains(err.Error(), what) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if _, err := o.VerifyIDToken(ctx, token(m.ClientID, now.Add(time.Hour)), "other-nonce"); err == nil || !strings.Contains(err.Error(), "nonce") {
		t.Errorf("nonce: %v", err)
	}
}

// TestOIDCDisabled: without a provider the routes answer 404 saying so.
func TestOIDCDisabled(t *testing.T) {
	e := newEnvTB(t, storetest.Drivers[0])
	resp, err := http.Get(e.http.URL + "/api/v2/auth/oidc/login")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || !strings.Contains(string(b), "single sign-on is not configured") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}
