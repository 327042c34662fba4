package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// OIDCConfig configures single sign-on with an OpenID Connect provider (authorization code flow with
// PKCE and a nonce; docs/controlplane.md, "Single sign-on").
type OIDCConfig struct {
	// Issuer is the provider's issuer URL (discovery at <Issuer>/.well-known/openid-configuration).
	Issuer string
	// ClientID and ClientSecret are the control plane's client at the provider; ID tokens must name
	// ClientID as their audience.
	ClientID, ClientSecret string
	// RedirectURL is where the provider sends the browser back: <control plane>/api/v2/auth/oidc/callback.
	RedirectURL string
	// Scopes asked for besides openid (default email, profile).
	Scopes []string
	// AllowedDomains, when set, are the only email domains that may sign in.
	AllowedDomains []string
	// Org, when set, is the org a user signing in for the first time joins, with Role (default viewer);
	// without it a new user belongs to no org until invited.
	Org  string
	Role Role
	// HTTPClient talks to the provider (default: a client with a 10 s timeout).
	HTTPClient *http.Client
}

// Errors of single sign-on.
var (
	// ErrOIDCDisabled means no provider is configured.
	ErrOIDCDisabled = errors.New("single sign-on is not configured")
	// ErrOIDC is wrapped by every refusal of a sign-in (bad state, code, token, audience, expiry, nonce,
	// unverified or disallowed email); the message says which.
	ErrOIDC = errors.New("single sign-on refused")
)

// OIDCFlowTTL bounds the time between leaving for the provider and coming back.
const OIDCFlowTTL = 10 * time.Minute

// OIDCFlow is what a sign-in carries from its start to the callback, in a signed cookie: the state and
// nonce the provider must give back, the PKCE verifier, and the page to return to.
type OIDCFlow struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Next     string    `json:"r"`
	Expires  time.Time `json:"e"`
}

// OIDC signs users in with an OpenID Connect provider. The provider's discovery document is read at the
// first sign-in (and again after a failure), so a control plane starts while its provider is down.
type OIDC struct {
	cfg OIDCConfig
	s   *Service

	mu       sync.Mutex
	provider *oidc.Provider
}

// NewOIDC checks cfg and returns the single sign-on of s.
func (s *Service) NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	var fe []string
	if u, err := url.Parse(cfg.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		fe = append(fe, "issuer: want an http(s) URL")
	}
	if cfg.ClientID == "" {
		fe = append(fe, "clientID: required")
	}
	if u, err := url.Parse(cfg.RedirectURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		fe = append(fe, "redirectURL: want the control plane's http(s) URL of /api/v2/auth/oidc/callback")
	}
	if cfg.Role == "" {
		cfg.Role = RoleViewer
	}
	if _, err := ParseRole(string(cfg.Role)); err != nil || cfg.Role == RoleOwner {
		fe = append(fe, fmt.Sprintf("role: %q: want admin, member or viewer", cfg.Role))
	}
	if len(fe) > 0 {
		return nil, fmt.Errorf("single sign-on: %s", strings.Join(fe, "; "))
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"email", "profile"}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	for i, d := range cfg.AllowedDomains {
		cfg.AllowedDomains[i] = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
	}
	return &OIDC{cfg: cfg, s: s}, nil
}

func (o *OIDC) ctx(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, o.cfg.HTTPClient)
}

// discover returns the provider, reading its discovery document once it succeeds.
func (o *OIDC) discover(ctx context.Context) (*oidc.Provider, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.provider != nil {
		return o.provider, nil
	}
	p, err := oidc.NewProvider(o.ctx(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("single sign-on: provider %s: %w", o.cfg.Issuer, err)
	}
	o.provider = p
	return p, nil
}

func (o *OIDC) oauth(p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, RedirectURL: o.cfg.RedirectURL,
		Endpoint: p.Endpoint(), Scopes: append([]string{oidc.ScopeOpenID}, o.cfg.Scopes...)}
}

// Start begins a sign-in that returns to next (a path of this site; anything else becomes "/"): it
// returns the provider's URL to send the browser to and the flow to keep in a cookie (EncodeFlow).
func (o *OIDC) Start(ctx context.Context, next string) (string, OIDCFlow, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return "", OIDCFlow{}, err
	}
	f := OIDCFlow{State: randomString(), Nonce: randomString(), Verifier: oauth2.GenerateVerifier(), Next: safeNext(next),
		Expires: o.s.cfg.Now().Add(OIDCFlowTTL).UTC()}
	u := o.oauth(p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	return u, f, nil
}

// safeNext keeps a local path ("/x", not "//host" or "/\host") and makes anything else "/".
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || len(next) > 1024 {
		return "/"
	}
	return next
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// flowKey derives the flow cookie's HMAC key from the service's persisted secret (the CSRF secret's).
func (o *OIDC) flowKey(ctx context.Context) ([]byte, error) {
	secret, err := o.s.csrfSecret(ctx)
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("sandboxmesh oidc flow v1"))
	return m.Sum(nil), nil
}

// EncodeFlow returns the signed cookie value of f.
func (o *OIDC) EncodeFlow(ctx context.Context, f OIDCFlow) (string, error) {
	key, err := o.flowKey(ctx)
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(f)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return base64.RawURLEncoding.EncodeToString(body) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// DecodeFlow checks a flow cookie's signature and expiry.
func (o *OIDC) DecodeFlow(ctx context.Context, v string) (OIDCFlow, error) {
	b64, sig64, ok := strings.Cut(v, ".")
	body, err1 := base64.RawURLEncoding.DecodeString(b64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if !ok || err1 != nil || err2 != nil || len(v) > 4096 {
		return OIDCFlow{}, fmt.Errorf("%w: malformed sign-in cookie: start again", ErrOIDC)
	}
	key, err := o.flowKey(ctx)
	if err != nil {
		return OIDCFlow{}, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(sig, m.Sum(nil)) {
		return OIDCFlow{}, fmt.Errorf("%w: the sign-in cookie is not ours: start again", ErrOIDC)
	}
	var f OIDCFlow
	if err := json.Unmarshal(body, &f); err != nil {
		return OIDCFlow{}, fmt.Errorf("%w: malformed sign-in cookie: start again", ErrOIDC)
	}
	if !o.s.cfg.Now().Before(f.Expires) {
		return OIDCFlow{}, fmt.Errorf("%w: the sign-in took longer than %s: start again", ErrOIDC, OIDCFlowTTL)
	}
	return f, nil
}

// Claims are what a verified ID token says of the user.
type Claims struct {
	Subject       string `json:"sub"`
	Email         string `json:"email"`
	EmailVerified *bool  `json:"email_verified"`
	Name          string `json:"name"`
}

// VerifyIDToken checks an ID token: signature (the provider's keys), issuer, audience (ClientID),
// expiry and nonce; then that it carries a verified email of an allowed domain.
func (o *OIDC) VerifyIDToken(ctx context.Context, raw, nonce string) (Claims, error) {
	p, err := o.discover(ctx)
	if err != nil {
		return Claims{}, err
	}
	tok, err := p.VerifierContext(o.ctx(ctx), &oidc.Config{ClientID: o.cfg.ClientID, Now: o.s.cfg.Now}).Verify(o.ctx(ctx), raw)
	if err != nil {
		return Claims{}, fmt.Errorf("%w: ID token: %w", ErrOIDC, err)
	}
	if tok.Nonce != nonce {
		return Claims{}, fmt.Errorf("%w: ID token: nonce does not match this sign-in", ErrOIDC)
	}
	var c Claims
	if err := tok.Claims(&c); err != nil {
		return Claims{}, fmt.Errorf("%w: ID token claims: %w", ErrOIDC, err)
	}
	switch {
	case c.Email == "" || checkEmail("email", c.Email) != nil:
		return Claims{}, fmt.Errorf("%w: the provider gave no email address (ask for the email scope)", ErrOIDC)
	case c.EmailVerified == nil || !*c.EmailVerified:
		return Claims{}, fmt.Errorf("%w: the provider has not verified %s", ErrOIDC, c.Email)
	}
	if len(o.cfg.AllowedDomains) > 0 {
		_, domain, _ := strings.Cut(store.EmailKey(c.Email), "@")
		if !slices.Contains(o.cfg.AllowedDomains, domain) {
			return Claims{}, fmt.Errorf("%w: %s is not an allowed email domain", ErrOIDC, domain)
		}
	}
	return c, nil
}

// Callback finishes a sign-in: state must be f's, code is exchanged (with f's PKCE verifier) for tokens
// whose ID token VerifyIDToken accepts. The user is found by email, or created (without a password)
// and made a member of Config.Org; a session starts. client is the caller's address (rate limit).
func (o *OIDC) Callback(ctx context.Context, f OIDCFlow, state, code, client string) (store.User, NewSession, error) {
	if state == "" || !hmac.Equal([]byte(state), []byte(f.State)) {
		return store.User{}, NewSession{}, fmt.Errorf("%w: state does not match this sign-in: start again", ErrOIDC)
	}
	if code == "" {
		return store.User{}, NewSession{}, fmt.Errorf("%w: the provider sent no code", ErrOIDC)
	}
	// Limited per client (each sign-in is an "account" of its own: the provider checks the person).
	if err := o.s.limiter.Begin("oidc:"+f.State, client, o.s.cfg.Now()); err != nil {
		return store.User{}, NewSession{}, err
	}
	p, err := o.discover(ctx)
	if err != nil {
		return store.User{}, NewSession{}, err
	}
	tok, err := o.oauth(p).Exchange(o.ctx(ctx), code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		return store.User{}, NewSession{}, fmt.Errorf("%w: code exchange: %w", ErrOIDC, err)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return store.User{}, NewSession{}, fmt.Errorf("%w: the provider answered no ID token", ErrOIDC)
	}
	c, err := o.VerifyIDToken(ctx, raw, f.Nonce)
	if err != nil {
		return store.User{}, NewSession{}, err
	}
	u, err := o.s.st.GetUserByEmail(ctx, c.Email)
	if errors.Is(err, store.ErrNotFound) {
		name := c.Name
		if len(name) > 128 {
			name = name[:128]
		}
		u, err = o.s.st.CreateUser(ctx, store.User{ID: store.NewID(8), Email: strings.TrimSpace(c.Email), DisplayName: name})
		if errors.Is(err, store.ErrAlreadyExists) { // created meanwhile by another sign-in
			u, err = o.s.st.GetUserByEmail(ctx, c.Email)
		}
		if err == nil && o.cfg.Org != "" {
			if err = o.s.st.AddMember(ctx, o.cfg.Org, u.ID, string(o.cfg.Role)); errors.Is(err, store.ErrAlreadyExists) {
				err = nil
			}
			if err == nil {
				_, err = o.s.Record(ctx, Principal{UserID: u.ID}, o.cfg.Org, "oidc-first-login", "member", u.Email, "joined through single sign-on as "+string(o.cfg.Role))
			}
		}
	}
	if err != nil {
		return store.User{}, NewSession{}, err
	}
	ns, err := o.s.startSession(ctx, u.ID)
	return u, ns, err
}
