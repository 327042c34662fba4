package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// BenchmarkOrgAuth measures an org route (GET one sandbox; PUT it
// unchanged, which records an audit event) side by side for the
// credentials' authorisation paths: an org key made before users (no role
// lookup), a user's own key (the user's membership is read) and a browser
// session (the session and the membership are read; writes carry the CSRF
// token). SQLite, 50 concurrent clients.
func BenchmarkOrgAuth(b *testing.B) {
	e := newEnvTB(b, store.DriverSQLite, fastIdentity)
	ctx := context.Background()
	if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("sb", nil)); err != nil {
		b.Fatal(err)
	}
	post := func(path, body string, hdr ...string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+path, strings.NewReader(body))
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		return resp
	}
	// A user joins acme as a member, with a session and a key of its own.
	resp := post("/api/v2/orgs/acme/invitations", `{"email":"mia@example.com","role":"member"}`, apitypes.HeaderAPIKey, e.keyA)
	var inv apitypes.Invitation
	decodeBody(b, resp, &inv)
	resp = post("/api/v2/auth/invitations/accept", `{"token":"`+inv.Token+`","password":"mias long passphrase"}`)
	var info apitypes.AuthInfo
	decodeBody(b, resp, &info)
	cookie := ""
	for _, c := range resp.Cookies() {
		cookie = c.Name + "=" + c.Value
	}
	resp = post("/api/v2/orgs/acme/api-keys", `{"name":"bench"}`, "Cookie", cookie, apitypes.HeaderCSRFToken, info.CSRFToken)
	var own apitypes.APIKey
	decodeBody(b, resp, &own)
	body := sandboxJSON(b, "sb")
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchClients}}
	for _, cred := range []struct {
		name string
		hdr  []string
	}{
		{"org-key", []string{apitypes.HeaderAPIKey, e.keyA}},
		{"user-key", []string{apitypes.HeaderAPIKey, own.Key}},
		{"session", []string{"Cookie", cookie, apitypes.HeaderCSRFToken, info.CSRFToken}},
	} {
		for _, m := range []string{http.MethodGet, http.MethodPut} {
			b.Run(cred.name+"/"+m, func(b *testing.B) {
				runConcurrent(b, func(ctx context.Context, _, _ int) error {
					var rd io.Reader
					if m == http.MethodPut {
						rd = strings.NewReader(body)
					}
					req, _ := http.NewRequestWithContext(ctx, m, e.http.URL+"/api/v2/orgs/acme/sandboxes/sb", rd)
					for i := 0; i+1 < len(cred.hdr); i += 2 {
						req.Header.Set(cred.hdr[i], cred.hdr[i+1])
					}
					resp, err := hc.Do(req)
					if err != nil {
						return err
					}
					defer resp.Body.Close()
					_, _ = io.Copy(io.Discard, resp.Body)
					if resp.StatusCode != http.StatusOK {
						return fmt.Errorf("%s: %d", m, resp.StatusCode)
					}
					return nil
				})
			})
		}
	}
}

func decodeBody(tb testing.TB, resp *http.Response, out any) {
	tb.Helper()
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		tb.Fatalf("%s: %d %s", resp.Request.URL.Path, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		tb.Fatal(err)
	}
}
