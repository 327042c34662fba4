package api

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Prefixes of generated secrets; they make leaked secrets easy to recognise.
const (
	APIKeyPrefix       = "smk_"
	ClusterTokenPrefix = "smc_"
)

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewSecret returns a random secret with prefix (160 bits of entropy).
func NewSecret(prefix string) string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return prefix + b32.EncodeToString(b)
}

// HashSecret returns the stored form of an API key or cluster token. The secrets
// are random with 160 bits of entropy, so a plain SHA-256 is enough.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Mask shows the start and end of a secret.
func Mask(secret string) string {
	if len(secret) < 12 {
		return "****"
	}
	return secret[:8] + "…" + secret[len(secret)-4:]
}

// Principal is an authenticated API caller: an API key or a user's browser
// session (identity.Principal; its role in an org comes from identity.RoleIn).
type Principal = identity.Principal

// apiKeyFrom returns the API key of a request from either header.
func apiKeyFrom(h http.Header) string {
	if k := h.Get(apitypes.HeaderAPIKey); k != "" {
		return k
	}
	return h.Get(apitypes.HeaderSignadotAPIKey)
}

// Authenticate checks an API key.
func (s *Server) Authenticate(ctx context.Context, key string) (Principal, error) {
	if key == "" {
		return Principal{}, fmt.Errorf("api key: %w", store.ErrNotFound)
	}
	k, err := s.st.LookupAPIKey(ctx, HashSecret(key))
	if err != nil {
		return Principal{}, err
	}
	if err := s.st.TouchAPIKey(ctx, k); err != nil {
		// The key is valid: a failed bookkeeping write does not refuse the request.
		s.log.WarnContext(ctx, "recording an API key's use", "err", err)
	}
	return identity.PrincipalOfKey(k), nil
}

// authUser authenticates an API request: by API key (either header) or,
// without one, by the browser session cookie. A cookie-authenticated
// unsafe request must carry the session's CSRF token in X-CSRF-Token and,
// when it has an Origin header, come from this host; API-key requests are
// exempt (a browser never sends the key header on its own).
func (s *Server) authUser(c *gin.Context) {
	key := apiKeyFrom(c.Request.Header)
	if key == "" {
		if ck, err := c.Request.Cookie(apitypes.SessionCookie); err == nil && ck.Value != "" {
			s.authSession(c, ck.Value)
			return
		}
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "missing API key: send it in the sandboxmesh-api-key (or signadot-api-key) header, or log in (POST /api/v2/auth/login)")
		return
	}
	p, err := s.Authenticate(c.Request.Context(), key)
	if err != nil {
		if strings.HasPrefix(key, ClusterTokenPrefix) || strings.HasPrefix(key, apitypes.RunnerTokenPrefix) {
			s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "a cluster or runner token cannot be used as an API key")
			return
		}
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "invalid or revoked API key")
		return
	}
	c.Set(ctxPrincipal, p)
	c.Next()
}

// authSession authenticates by session cookie, with the CSRF checks.
func (s *Server) authSession(c *gin.Context, token string) {
	ctx := c.Request.Context()
	p, err := s.ids.Session(ctx, token)
	if err != nil {
		s.failIdentity(c, "session", err)
		return
	}
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if !s.sameSite(c) {
			return
		}
		ok, err := s.ids.CheckCSRF(ctx, p.SessionHash, c.GetHeader(apitypes.HeaderCSRFToken))
		if err != nil {
			s.failErr(c, "csrf token", err)
			return
		}
		if !ok {
			s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, "missing or wrong CSRF token: send the csrfToken of GET /api/v2/auth/me in the "+apitypes.HeaderCSRFToken+" header")
			return
		}
	}
	c.Set(ctxPrincipal, p)
	c.Next()
}

// sameSite refuses (403) a request a browser sent from another site: an
// Origin header naming another host, or Sec-Fetch-Site: cross-site. It
// guards cookie-authenticated writes and the routes that start sessions
// (so that no other site can log a visitor in to its own account).
func (s *Server) sameSite(c *gin.Context) bool {
	if o := c.GetHeader("Origin"); o != "" && !sameOrigin(o, c.Request) {
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, "cross-origin request refused: Origin "+o+" is not this host")
		return false
	}
	if c.GetHeader("Sec-Fetch-Site") == "cross-site" {
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, "cross-site request refused")
		return false
	}
	return true
}

// sameSiteOnly is sameSite as middleware.
func (s *Server) sameSiteOnly(c *gin.Context) {
	if s.sameSite(c) {
		c.Next()
	}
}

// sameOrigin reports whether an Origin header names the host the request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func principal(c *gin.Context) Principal {
	p, _ := c.Get(ctxPrincipal)
	pp, _ := p.(Principal)
	return pp
}

// orgAccess authorises a request on an org route: the caller's role in the
// org (identity.RoleIn) must allow the route's action (identity.Allowed,
// the table routeAction fills in at registration). An org the caller has no
// role in looks exactly like one that does not exist (404); a role that may
// not do the action gets 403. After a successful write it records the
// audit event: the one place the API writes the audit trail.
func (s *Server) orgAccess(c *gin.Context) {
	org := c.Param("org")
	ctx := c.Request.Context()
	p := principal(c)
	action, ok := s.actions[c.Request.Method+" "+c.FullPath()]
	if !ok { // every org route gets an action in handle; this is a bug
		s.fail(c, http.StatusInternalServerError, apitypes.ReasonInternal, "route has no action")
		return
	}
	_, err := s.ids.Authorize(ctx, p, org, action)
	if errors.Is(err, identity.ErrNoAccess) {
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, fmt.Sprintf("org %q not found", org))
		return
	}
	if p.Admin { // admin keys are bound to no org: it must exist (members' orgs do)
		if _, gerr := s.st.GetOrg(ctx, org); gerr != nil {
			s.failErr(c, fmt.Sprintf("org %q", org), gerr)
			return
		}
	}
	if err != nil {
		s.failIdentity(c, "org "+org, err)
		return
	}
	c.Next()
	switch c.Request.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return
	}
	if c.Writer.Status() >= 400 {
		return
	}
	kind, name := auditObject(c)
	if _, err := s.ids.Record(context.WithoutCancel(ctx), p, org, s.opIDs[c.Request.Method+" "+c.FullPath()], kind, name, c.Request.Method+" "+c.Request.URL.Path); err != nil {
		s.log.ErrorContext(ctx, "audit event not recorded", "err", err, "requestId", c.GetString(ctxRequestID))
	}
}

// auditObject names the object of an org route: the collection after the
// org and the first path parameter after it.
func auditObject(c *gin.Context) (kind, name string) {
	rest := strings.TrimPrefix(c.FullPath(), orgPath)
	kind, _, _ = strings.Cut(strings.TrimPrefix(rest, "/"), "/")
	if kind == "" {
		kind = "org"
	}
	for _, p := range c.Params {
		if p.Key != "org" {
			return kind, p.Value
		}
	}
	return kind, c.Param("org")
}

// AgentIdentity is an authenticated agent: one cluster of one org.
type AgentIdentity struct {
	TokenID string
	Org     string
	Cluster string
}

func (s *Server) authAgent(c *gin.Context) {
	tok := c.GetHeader(apitypes.HeaderClusterToken)
	if tok == "" {
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "missing cluster token: send it in the sandboxmesh-cluster-token header")
		return
	}
	t, err := s.st.LookupClusterToken(c.Request.Context(), HashSecret(tok))
	if err != nil {
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "invalid or deleted cluster token")
		return
	}
	c.Set(ctxAgent, AgentIdentity{TokenID: t.ID, Org: t.Org, Cluster: t.Cluster})
	c.Next()
}

func agentIdentity(c *gin.Context) AgentIdentity {
	a, _ := c.Get(ctxAgent)
	aa, _ := a.(AgentIdentity)
	return aa
}

// ErrBootstrapIgnored means SANDBOXMESH_BOOTSTRAP_KEY was not applied: the
// control plane was bootstrapped before (the key takes effect at the first
// start only). Callers log it as a warning.
var ErrBootstrapIgnored = store.ErrBootstrapIgnored

// ErrWeakKey means a bootstrap key is too short or too predictable.
var ErrWeakKey = errors.New("bootstrap key too weak")

// MinBootstrapKeyLen is the shortest accepted bootstrap key.
const MinBootstrapKeyLen = 32

// CheckKeyStrength refuses keys shorter than MinBootstrapKeyLen, with
// characters other than printable ASCII, or of low entropy: fewer than 96
// bits by the key's own character frequencies, or one character making up
// more than a quarter of it (changeme, repeated words, padding with zeros).
// A key made with `openssl rand -hex 24` or NewSecret passes.
func CheckKeyStrength(key string) error {
	if len(key) < MinBootstrapKeyLen {
		return fmt.Errorf("%d characters, want at least %d (e.g. smk_$(openssl rand -hex 24)): %w", len(key), MinBootstrapKeyLen, ErrWeakKey)
	}
	counts := map[rune]int{}
	for _, r := range key {
		if r <= ' ' || r > '~' {
			return fmt.Errorf("only printable ASCII without spaces is allowed: %w", ErrWeakKey)
		}
		counts[r]++
	}
	var bits float64
	n := float64(len(key))
	for _, c := range counts {
		if 4*c > len(key) {
			return fmt.Errorf("one character makes up more than a quarter of it; use a random key (e.g. smk_$(openssl rand -hex 24)): %w", ErrWeakKey)
		}
		p := float64(c) / n
		bits -= float64(c) * math.Log2(p)
	}
	if bits < 96 {
		return fmt.Errorf("about %.0f bits of entropy, want at least 96; use a random key (e.g. smk_$(openssl rand -hex 24)): %w", bits, ErrWeakKey)
	}
	return nil
}

// Bootstrap makes sure an admin key exists and creates org (if not empty)
// when missing.
//
// Without key: if the store has no unrevoked admin key it stores a new one
// and returns it with created=true; the caller prints it once.
//
// With key (SANDBOXMESH_BOOTSTRAP_KEY): a weak key fails with ErrWeakKey.
// The key takes effect once: at the first start it becomes the admin key
// (created=true) and its hash is recorded; later starts with the same value
// change nothing (a revoked bootstrap key stays revoked); a different value,
// or a key given after a first start without one, is not applied and
// Bootstrap returns ErrBootstrapIgnored (manage admin keys through
// /api/v2/admin/apikeys instead).
func Bootstrap(ctx context.Context, st *store.Store, org, key string) (string, bool, error) {
	if key != "" {
		if err := CheckKeyStrength(key); err != nil {
			return "", false, fmt.Errorf("SANDBOXMESH_BOOTSTRAP_KEY: %w", err)
		}
	}
	if org != "" {
		if _, err := st.GetOrg(ctx, org); err != nil {
			if _, err := st.CreateOrg(ctx, org, 0); err != nil && !isExists(err) {
				return "", false, fmt.Errorf("bootstrap org %s: %w", org, err)
			}
		}
	}
	if key != "" {
		created, err := st.BootstrapAdminKey(ctx, store.APIKey{ID: store.NewID(6), Name: "bootstrap-admin", Hash: HashSecret(key), Masked: Mask(key)})
		if err != nil {
			return "", false, fmt.Errorf("SANDBOXMESH_BOOTSTRAP_KEY: %w", err)
		}
		return key, created, nil
	}
	has, err := st.HasAdminKey(ctx)
	if err != nil {
		return "", false, fmt.Errorf("bootstrap: %w", err)
	}
	if has {
		return "", false, nil
	}
	key = NewSecret(APIKeyPrefix)
	_, err = st.CreateAPIKey(ctx, store.APIKey{ID: store.NewID(6), Name: "bootstrap-admin", Hash: HashSecret(key), Masked: Mask(key), Admin: true})
	if err != nil {
		return "", false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	return key, true, nil
}
