// Package portal owns the web pages of the control plane: server-rendered
// html/template pages with embedded assets, served at / next to the API
// (api.Server.SetUI). It owns no rule of its own: every page checks the
// browser session with identity.Service.Session, authorises with
// identity.Service.Authorize and identity.Allowed (what a role may see and
// which buttons it gets), checks every form's CSRF token with
// identity.Service.CheckCSRF, and then reads and writes through the REST
// API's own handlers, called in process with the visitor's session. So
// validation, quotas, after-write effects and the audit trail (the API's
// orgAccess records every write) are the REST layer's, not a copy of it.
// Live status comes from the store's change feed (store.Watch, the one that
// wakes the agents' long polls) as Server-Sent Events.
package portal

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config configures the portal.
type Config struct {
	// API is the REST API's handler (api.Server.Handler); pages call it in
	// process with the visitor's session cookie.
	API http.Handler
	// Identity is the API server's identity service (api.Server.Identity).
	Identity *identity.Service
	// Store is the control plane's store: its change feed (Watch) drives
	// the live status streams.
	Store *store.Store
	// Logger logs failures (nil: discard).
	Logger *slog.Logger
	// KeepAlive is the interval of comments on idle event streams (default 25 s).
	KeepAlive time.Duration
	// SSO shows "Sign in with single sign-on" on the login page (the API's OpenID Connect routes,
	// GET /api/v2/auth/oidc/login, are configured).
	SSO bool
}

// Portal serves the pages.
type Portal struct {
	cfg   Config
	ids   *identity.Service
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
	feed  *feed
	ctx   context.Context
}

// New builds the portal. Event streams end when ctx ends.
func New(ctx context.Context, cfg Config) (*Portal, error) {
	if cfg.API == nil || cfg.Identity == nil || cfg.Store == nil {
		return nil, errors.New("portal: Config.API, Identity and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 25 * time.Second
	}
	p := &Portal{cfg: cfg, ids: cfg.Identity, log: cfg.Logger, pages: map[string]*template.Template{}, feed: newFeed(), ctx: ctx}
	cfg.Store.Watch(p.feed.observe)
	if err := p.parse(); err != nil {
		return nil, err
	}
	p.routes()
	return p, nil
}

// ServeHTTP serves the pages.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	p.mux.ServeHTTP(w, r)
}

var funcs = template.FuncMap{
	"join":     strings.Join,
	"field":    fieldMsg,
	"add":      func(a, b int) int { return a + b },
	"pageSize": func() int { return pageSize },
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			if k, ok := kv[i].(string); ok {
				m[k] = kv[i+1]
			}
		}
		return m
	},
	"since": func(s string) string {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return s
		}
		d := time.Since(t).Round(time.Second)
		switch {
		case d < time.Minute:
			return "just now"
		case d < time.Hour:
			return fmt.Sprintf("%d min ago", int(d.Minutes()))
		case d < 48*time.Hour:
			return fmt.Sprintf("%d h ago", int(d.Hours()))
		}
		return t.Format("2006-01-02")
	},
}

// parse parses each page with the layout and the shared fragments
// (templates/fragments*.html).
func (p *Portal) parse() error {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || strings.HasPrefix(base, "fragments") {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/fragments*.html", n)
		if err != nil {
			return fmt.Errorf("portal: template %s: %w", n, err)
		}
		p.pages[base] = t
	}
	return nil
}

// view is what every page's layout needs.
type view struct {
	Title   string
	User    *apitypes.User
	Org     string
	Role    identity.Role
	Orgs    []apitypes.OrgRole
	CSRF    string
	Nav     string
	Flash   string
	Error   string
	Fields  []apitypes.FieldError
	Signup  bool
	Data    any
	Can     map[string]bool
	Request *http.Request
}

// render writes a page.
func (p *Portal) render(w http.ResponseWriter, code int, page string, v *view) {
	t, ok := p.pages[page]
	if !ok {
		http.Error(w, "no page "+page, http.StatusInternalServerError)
		return
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		p.log.Error("portal: render", "page", page, "err", err)
		http.Error(w, "internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// fragment renders a named template of the fragments (rows, badges).
func (p *Portal) fragment(name string, data any) (string, error) {
	var buf bytes.Buffer
	if err := p.pages["sandboxes"].ExecuteTemplate(&buf, name, data); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// ---- calls to the REST API, in process ----

// apiResult is a recorded answer of the API.
type apiResult struct {
	code int
	hdr  http.Header
	body bytes.Buffer
	err  apitypes.ErrorResponse
}

func (a *apiResult) Header() http.Header         { return a.hdr }
func (a *apiResult) Write(b []byte) (int, error) { return a.body.Write(b) }
func (a *apiResult) WriteHeader(code int) {
	if a.code == 0 {
		a.code = code
	}
}

// ok reports a 2xx answer.
func (a *apiResult) ok() bool { return a.code >= 200 && a.code < 300 }

// decode reads a 2xx answer's JSON into out.
func (a *apiResult) decode(out any) error {
	if err := json.Unmarshal(a.body.Bytes(), out); err != nil {
		return fmt.Errorf("portal: decoding the API's answer: %w", err)
	}
	return nil
}

// callAPI calls the REST API in process as the visitor of r: with its
// session cookie, its address, Origin and Sec-Fetch-Site (the API's
// same-site checks), and for writes the form's CSRF token in the header the
// API checks. body, when not nil, is sent as JSON.
func (p *Portal) callAPI(r *http.Request, method, path, csrf string, body any) *apiResult {
	return p.callAPIHeaders(r, method, path, csrf, body, nil)
}

// callAPIHeaders is callAPI with extra request headers.
func (p *Portal) callAPIHeaders(r *http.Request, method, path, csrf string, body any, extra map[string]string) *apiResult {
	var rd io.Reader = http.NoBody
	if body != nil {
		var b []byte
		switch v := body.(type) {
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(body); err != nil {
				return &apiResult{code: http.StatusInternalServerError, err: apitypes.ErrorResponse{Error: err.Error()}}
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return &apiResult{code: http.StatusInternalServerError, err: apitypes.ErrorResponse{Error: err.Error()}}
	}
	req.Host, req.RemoteAddr, req.TLS = r.Host, r.RemoteAddr, r.TLS
	for _, h := range []string{"Cookie", "Origin", "Sec-Fetch-Site", "X-Forwarded-For", "X-Forwarded-Proto", "X-Real-Ip", "User-Agent", apitypes.HeaderRequestID} {
		if v := r.Header.Values(h); len(v) > 0 {
			req.Header[h] = v
		}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf != "" {
		req.Header.Set(apitypes.HeaderCSRFToken, csrf)
	}
	for k, v := range extra {
		req.Header.Set(k, v)
	}
	res := &apiResult{hdr: http.Header{}}
	p.cfg.API.ServeHTTP(res, req)
	if res.code == 0 {
		res.code = http.StatusOK
	}
	if !res.ok() {
		if json.Unmarshal(res.body.Bytes(), &res.err) != nil || res.err.Error == "" {
			res.err.Error = fmt.Sprintf("the API answered %d", res.code)
		}
	}
	return res
}

// orgPath is the API path of an org's collection.
func orgPath(org string, parts ...string) string {
	s := "/api/v2/orgs/" + url.PathEscape(org)
	for _, x := range parts {
		s += "/" + url.PathEscape(x)
	}
	return s
}

// ---- sessions and authorisation ----

// session returns the visitor's session, or redirects to the login page.
func (p *Portal) session(w http.ResponseWriter, r *http.Request) (identity.Principal, bool) {
	ck, err := r.Cookie(apitypes.SessionCookie)
	if err == nil && ck.Value != "" {
		pr, err := p.ids.Session(r.Context(), ck.Value)
		if err == nil {
			return pr, true
		}
		if !errors.Is(err, identity.ErrNoSession) {
			p.fail(w, r, http.StatusInternalServerError, "session", err)
			return pr, false
		}
	}
	next := r.URL.RequestURI()
	if r.Method != http.MethodGet { // a form sent after the session ended: back to its page after login
		next = r.Referer()
		if u, err := url.Parse(next); err == nil && strings.EqualFold(u.Host, r.Host) {
			next = u.RequestURI()
		} else {
			next = ""
		}
	}
	http.Redirect(w, r, "/login?next="+url.QueryEscape(next), http.StatusSeeOther)
	return identity.Principal{}, false
}

// orgView checks the session and that its role in the org allows action; it
// fills the layout's view. A visitor without a role in the org gets 404 (as
// the API), a role that may not gets 403.
func (p *Portal) orgView(w http.ResponseWriter, r *http.Request, action identity.Action, nav string) (identity.Principal, *view, bool) {
	pr, ok := p.session(w, r)
	if !ok {
		return pr, nil, false
	}
	org := r.PathValue("org")
	role, err := p.ids.Authorize(r.Context(), pr, org, action)
	switch {
	case errors.Is(err, identity.ErrNoAccess):
		p.page(w, r, pr, http.StatusNotFound, "Not found", fmt.Sprintf("There is no org %q, or you are not a member of it.", org))
		return pr, nil, false
	case errors.Is(err, identity.ErrForbidden):
		p.page(w, r, pr, http.StatusForbidden, "Forbidden", fmt.Sprintf("Your role in %s (%s) may not do this (%s). Ask an owner or admin of the org.", org, role, action))
		return pr, nil, false
	case err != nil:
		p.fail(w, r, http.StatusInternalServerError, "authorisation", err)
		return pr, nil, false
	}
	v, ok := p.baseView(w, r, pr)
	if !ok {
		return pr, nil, false
	}
	v.Org, v.Role, v.Nav = org, role, nav
	for _, a := range identity.Actions() {
		v.Can[string(a)] = identity.Allowed(role, a)
	}
	return pr, v, true
}

// baseView fills the user, orgs and CSRF token of a logged-in visitor.
func (p *Portal) baseView(w http.ResponseWriter, r *http.Request, pr identity.Principal) (*view, bool) {
	res := p.callAPI(r, http.MethodGet, "/api/v2/auth/me", "", nil)
	var info apitypes.AuthInfo
	if !res.ok() || res.decode(&info) != nil {
		p.fail(w, r, res.code, "who you are", errors.New(res.err.Error))
		return nil, false
	}
	return &view{User: info.User, Orgs: info.Orgs, CSRF: info.CSRFToken, Can: map[string]bool{}, Request: r}, true
}

// checkForm parses a POSTed form and checks that it comes from this site
// and carries the session's CSRF token (identity.CheckCSRF).
func (p *Portal) checkForm(w http.ResponseWriter, r *http.Request, pr identity.Principal) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return false
	}
	if !sameSite(r) {
		http.Error(w, "cross-site form refused", http.StatusForbidden)
		return false
	}
	ok, err := p.ids.CheckCSRF(r.Context(), pr.SessionHash, r.PostFormValue("csrf"))
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "csrf token", err)
		return false
	}
	if !ok {
		http.Error(w, "missing or wrong CSRF token: reload the page and try again", http.StatusForbidden)
		return false
	}
	return true
}

// sameSite refuses requests a browser sent from another site (as the API's
// check: an Origin of another host, or Sec-Fetch-Site: cross-site).
func sameSite(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || !strings.EqualFold(u.Host, r.Host) {
			return false
		}
	}
	return r.Header.Get("Sec-Fetch-Site") != "cross-site"
}

// page renders a message page (errors, not found).
func (p *Portal) page(w http.ResponseWriter, r *http.Request, pr identity.Principal, code int, title, msg string) {
	v := &view{Title: title, Error: msg, Can: map[string]bool{}, Request: r}
	if pr.UserID != "" {
		if bv, ok := p.baseView(httpDiscard{}, r, pr); ok {
			v = bv
			v.Title, v.Error = title, msg
		}
	}
	p.render(w, code, "message", v)
}

// fail logs an internal failure and answers with a page that says what failed.
func (p *Portal) fail(w http.ResponseWriter, r *http.Request, code int, what string, err error) {
	if code < 400 {
		code = http.StatusInternalServerError
	}
	if code >= 500 {
		p.log.ErrorContext(r.Context(), "portal: "+what, "err", err, "path", r.URL.Path)
	}
	p.render(w, code, "message", &view{Title: "Something went wrong", Error: what + ": " + err.Error(), Can: map[string]bool{}, Request: r})
}

// httpDiscard is a ResponseWriter that drops everything (baseView inside page).
type httpDiscard struct{}

func (httpDiscard) Header() http.Header         { return http.Header{} }
func (httpDiscard) Write(b []byte) (int, error) { return len(b), nil }
func (httpDiscard) WriteHeader(int)             {}

// copyCookies passes the API's Set-Cookie headers to the browser.
func copyCookies(w http.ResponseWriter, res *apiResult) {
	for _, c := range res.hdr.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", c)
	}
}

// safeNext keeps a redirect after login on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}
