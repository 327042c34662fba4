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
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
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

// Principal is an authenticated API caller.
type Principal struct {
	KeyID string
	// Org is the key's org; empty for admin keys.
	Org   string
	Admin bool
}

// CanAccess reports whether the principal may act on org.
func (p Principal) CanAccess(org string) bool { return p.Admin || p.Org == org }

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
	return Principal{KeyID: k.ID, Org: k.Org, Admin: k.Admin}, nil
}

func (s *Server) authUser(c *gin.Context) {
	key := apiKeyFrom(c.Request.Header)
	if key == "" {
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "missing API key: send it in the sandboxmesh-api-key (or signadot-api-key) header")
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

func principal(c *gin.Context) Principal {
	p, _ := c.Get(ctxPrincipal)
	pp, _ := p.(Principal)
	return pp
}

// orgAccess checks the org path parameter against the caller. An org the caller
// cannot access looks exactly like one that does not exist.
func (s *Server) orgAccess(c *gin.Context) {
	org := c.Param("org")
	p := principal(c)
	if !p.CanAccess(org) {
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, fmt.Sprintf("org %q not found", org))
		return
	}
	if !p.Admin { // an org key's org exists: keys are only created in existing orgs
		c.Next()
		return
	}
	if _, err := s.st.GetOrg(c.Request.Context(), org); err != nil {
		s.failErr(c, fmt.Sprintf("org %q", org), err)
		return
	}
	c.Next()
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
