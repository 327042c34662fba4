// Package identity owns the rules of people and access: local accounts with
// argon2id password hashes and their policy, browser sessions (random IDs
// stored as hashes, idle and absolute expiry, revocation), login rate
// limiting, sign-up, invitations, org roles and the one role check
// (Allowed), teams, service accounts, and recording the audit trail. The
// REST API (controlplane/api) and the portal's pages call this service; it
// knows nothing of HTTP. Records live in controlplane/store.
package identity

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Sentinel errors; check them with errors.Is.
var (
	// ErrInvalidCredentials: unknown email or wrong password (never says which).
	ErrInvalidCredentials = errors.New("invalid email or password")
	// ErrNoSession: the session is unknown, revoked or expired.
	ErrNoSession = errors.New("no live session: log in again")
	// ErrSignupDisabled: sign-up is off (Config.AllowSignup).
	ErrSignupDisabled = errors.New("sign-up is disabled on this control plane; ask an org admin for an invitation")
	// ErrNoAccess: the principal has no role in the org.
	ErrNoAccess = errors.New("no access to org")
	// ErrForbidden: the principal's role does not allow the action.
	ErrForbidden = errors.New("forbidden")
	// ErrInvitation: the invitation token is unknown, used, revoked or expired.
	ErrInvitation = errors.New("invitation is invalid, used, revoked or expired")
)

// ValidationError lists the invalid fields of a request.
type ValidationError struct {
	Fields apitypes.FieldErrors
}

// Error joins the fields' errors.
func (e *ValidationError) Error() string { return "invalid request: " + e.Fields.Error() }

func invalid(path, msg string) error {
	return &ValidationError{Fields: apitypes.FieldErrors{{Path: path, Message: msg}}}
}

// Token prefixes make leaked secrets easy to recognise.
const (
	SessionPrefix    = "sms_"
	InvitationPrefix = "smi_"
)

// MinPasswordLen and MaxPasswordLen bound a password (in characters).
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

// Config configures a Service.
type Config struct {
	// Store is required.
	Store *store.Store
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Params are the argon2id parameters of new hashes (default
	// DefaultParams); hashes with other parameters are rehashed at login.
	Params Params
	// SessionIdle ends a session unused for this long (default 12h);
	// SessionMax ends any session this long after login (default 7 days).
	SessionIdle, SessionMax time.Duration
	// InvitationTTL is how long an invitation can be accepted (default 7 days).
	InvitationTTL time.Duration
	// AccountRate and ClientRate limit logins (defaults DefaultAccountRate,
	// DefaultClientRate).
	AccountRate, ClientRate Rate
	// AllowSignup lets anyone sign up, creating an org they own.
	AllowSignup bool
	// Logger receives the session sweeper's errors; nil discards.
	Logger *slog.Logger
	// MaxConcurrentHashes bounds the argon2id hashes computed at once
	// (each takes Params.Memory), so that a burst of logins from many
	// addresses cannot exhaust the server's memory (default 4).
	MaxConcurrentHashes int
}

// Service is the identity service.
type Service struct {
	cfg     Config
	st      *store.Store
	limiter *LoginLimiter
	// dummy is a hash verified for unknown emails, so that a login for an
	// unknown email costs what one for a known email does.
	dummy string

	// hashing holds a token per argon2id computation in progress.
	hashing chan struct{}

	csrfMu  sync.Mutex
	csrfKey []byte
}

// New makes a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("identity: Config.Store is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Params == (Params{}) {
		cfg.Params = DefaultParams
	}
	if cfg.SessionIdle <= 0 {
		cfg.SessionIdle = 12 * time.Hour
	}
	if cfg.SessionMax <= 0 {
		cfg.SessionMax = 7 * 24 * time.Hour
	}
	if cfg.InvitationTTL <= 0 {
		cfg.InvitationTTL = 7 * 24 * time.Hour
	}
	if cfg.AccountRate.Burst <= 0 {
		cfg.AccountRate = DefaultAccountRate
	}
	if cfg.ClientRate.Burst <= 0 {
		cfg.ClientRate = DefaultClientRate
	}
	if cfg.MaxConcurrentHashes <= 0 {
		cfg.MaxConcurrentHashes = 4
	}
	dummy, err := HashPassword("not a password of anyone", cfg.Params)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	return &Service{cfg: cfg, st: cfg.Store, limiter: NewLoginLimiter(cfg.AccountRate, cfg.ClientRate), dummy: dummy,
		hashing: make(chan struct{}, cfg.MaxConcurrentHashes)}, nil
}

// hash is HashPassword with the service's parameters, at most
// MaxConcurrentHashes at once.
func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-s.hashing }()
	return HashPassword(password, s.cfg.Params)
}

// verify is VerifyPassword, at most MaxConcurrentHashes at once.
func (s *Service) verify(ctx context.Context, hash, password string) (ok, rehash bool, err error) {
	if err := s.acquire(ctx); err != nil {
		return false, false, err
	}
	defer func() { <-s.hashing }()
	return VerifyPassword(hash, password, s.cfg.Params)
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting to hash a password: %w", ctx.Err())
	}
}

// AllowSignup reports whether sign-up is on.
func (s *Service) AllowSignup() bool { return s.cfg.AllowSignup }

var b32 = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newToken returns prefix and 32 random bytes, and the token's stored hash.
func newToken(prefix string) (token, hash string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	token = prefix + b32.EncodeToString(b)
	return token, HashToken(token)
}

// HashToken is the stored form of a session ID or invitation token: they
// have 256 random bits, so a plain SHA-256 is enough.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// ---- principals and roles ----

// Principal is an authenticated caller: an API key (admin, legacy org key,
// a user's key or a service account's key) or a user's browser session.
type Principal struct {
	// KeyID is the API key's ID; empty for a session.
	KeyID string
	// Org is the API key's org; empty for admin keys and sessions.
	Org string
	// Admin marks admin keys: owners of every org.
	Admin bool
	// UserID is the user of a session or of a user's key.
	UserID string
	// ServiceAccount owns the key, if a service account does.
	ServiceAccount string
	// SessionHash is the hash of the session's ID (sessions only).
	SessionHash string
}

// CanAccess reports whether the principal's credential is bound to org
// (or to every org). Users' sessions are bound to no org: RoleIn decides.
func (p Principal) CanAccess(org string) bool {
	return p.Admin || p.Org == org || (p.KeyID == "" && p.UserID != "")
}

// Session reports whether the principal is a browser session.
func (p Principal) Session() bool { return p.SessionHash != "" }

// Actor names the principal in the audit trail.
func (p Principal) Actor() string {
	switch {
	case p.ServiceAccount != "":
		return "serviceaccount:" + p.ServiceAccount + " (key " + p.KeyID + ")"
	case p.UserID != "" && p.KeyID != "":
		return "user:" + p.UserID + " (key " + p.KeyID + ")"
	case p.UserID != "":
		return "user:" + p.UserID
	case p.Admin:
		return "adminkey:" + p.KeyID
	default:
		return "apikey:" + p.KeyID
	}
}

// PrincipalOfKey is the principal of a stored, unrevoked API key.
func PrincipalOfKey(k store.APIKey) Principal {
	return Principal{KeyID: k.ID, Org: k.Org, Admin: k.Admin, UserID: k.OwnerUser, ServiceAccount: k.ServiceAccount}
}

// RoleIn returns the principal's role in org: owner for admin keys, admin
// for org keys without an owner (made before users existed), the service
// account's role for its keys, and the user's membership role for
// sessions and users' keys. ErrNoAccess when it has none.
func (s *Service) RoleIn(ctx context.Context, p Principal, org string) (Role, error) {
	switch {
	case p.Admin:
		return RoleOwner, nil
	case !p.CanAccess(org):
		return "", fmt.Errorf("org %s: %w", org, ErrNoAccess)
	case p.ServiceAccount != "":
		a, err := s.st.GetServiceAccount(ctx, org, p.ServiceAccount)
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("org %s: %w", org, ErrNoAccess)
		}
		if err != nil {
			return "", err
		}
		return Role(a.Role), nil
	case p.UserID != "":
		m, err := s.st.GetMember(ctx, org, p.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("org %s: %w", org, ErrNoAccess)
		}
		if err != nil {
			return "", err
		}
		return Role(m.Role), nil
	case p.KeyID != "":
		return RoleAdmin, nil // an org key without an owner: what every org key was before users
	}
	return "", fmt.Errorf("org %s: %w", org, ErrNoAccess)
}

// Authorize returns the principal's role in org and whether it may do action:
// ErrNoAccess without a role (callers show the org as not found),
// ErrForbidden when the role does not allow the action.
func (s *Service) Authorize(ctx context.Context, p Principal, org string, action Action) (Role, error) {
	role, err := s.RoleIn(ctx, p, org)
	if err != nil {
		return "", err
	}
	if !Allowed(role, action) {
		return role, fmt.Errorf("role %s may not %s in org %s: %w", role, action, org, ErrForbidden)
	}
	return role, nil
}

// ---- passwords ----

// CheckPassword applies the password policy: at least MinPasswordLen
// characters, at most MaxPasswordLen, valid UTF-8, and not the email.
// path is the field's path in errors.
func CheckPassword(path, password, email string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case !utf8.ValidString(password):
		return invalid(path, "must be valid UTF-8")
	case n < MinPasswordLen:
		return invalid(path, fmt.Sprintf("must have at least %d characters (has %d)", MinPasswordLen, n))
	case n > MaxPasswordLen:
		return invalid(path, fmt.Sprintf("must have at most %d characters", MaxPasswordLen))
	case email != "" && strings.EqualFold(strings.TrimSpace(password), strings.TrimSpace(email)):
		return invalid(path, "must not be the email address")
	}
	return nil
}

// checkEmail validates an email address (a bare addr-spec).
func checkEmail(path, email string) error {
	if len(email) > 254 {
		return invalid(path, "at most 254 characters")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != strings.TrimSpace(email) || a.Name != "" {
		return invalid(path, "not an email address (want name@example.com)")
	}
	return nil
}

// ---- sessions ----

// sweepEvery is how often Run deletes dead sessions; they are kept for
// sweepAfter after they end (so that a revoked cookie stays refused as
// revoked, and for forensics).
const (
	sweepEvery = time.Hour
	sweepAfter = 24 * time.Hour
)

// Run deletes sessions that ended more than a day ago, every hour, until
// ctx ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.st.DeleteDeadSessions(ctx, s.cfg.Now().Add(-sweepAfter)); err != nil && ctx.Err() == nil {
				s.cfg.Logger.ErrorContext(ctx, "delete dead sessions", "err", err)
			}
		}
	}
}

// NewSession is a session just started: Token goes into the cookie and is
// never stored.
type NewSession struct {
	Token     string
	Hash      string
	ExpiresAt time.Time
}

// startSession creates a session of user.
func (s *Service) startSession(ctx context.Context, userID string) (NewSession, error) {
	tok, h := newToken(SessionPrefix)
	now := s.cfg.Now().UTC()
	x := store.Session{IDHash: h, UserID: userID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(s.cfg.SessionMax)}
	if err := s.st.CreateSession(ctx, x); err != nil {
		return NewSession{}, err
	}
	return NewSession{Token: tok, Hash: h, ExpiresAt: x.ExpiresAt}, nil
}

// touchEvery is how stale last_seen_at may get before a request updates it
// (so that not every request writes).
const touchEvery = time.Minute

// Session checks a session's token: it must be known, unrevoked, used
// within SessionIdle and younger than SessionMax. It returns the session's
// principal; ErrNoSession otherwise.
func (s *Service) Session(ctx context.Context, token string) (Principal, error) {
	if !strings.HasPrefix(token, SessionPrefix) || len(token) > 128 {
		return Principal{}, ErrNoSession
	}
	h := HashToken(token)
	x, err := s.st.GetSession(ctx, h)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrNoSession
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.cfg.Now().UTC()
	if !x.RevokedAt.IsZero() || !now.Before(x.ExpiresAt) || now.Sub(x.LastSeenAt) >= s.cfg.SessionIdle {
		return Principal{}, ErrNoSession
	}
	if now.Sub(x.LastSeenAt) >= touchEvery {
		if err := s.st.TouchSession(ctx, h, now); err != nil {
			return Principal{}, err
		}
	}
	return Principal{UserID: x.UserID, SessionHash: h}, nil
}

// Logout revokes one session (by its hash).
func (s *Service) Logout(ctx context.Context, sessionHash string) error {
	if err := s.st.RevokeSession(ctx, sessionHash); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

// LogoutAll revokes every session of a user ("sign out everywhere") and
// returns how many were live.
func (s *Service) LogoutAll(ctx context.Context, userID string) (int64, error) {
	return s.st.RevokeUserSessions(ctx, userID, s.cfg.Now().UTC(), "")
}

// ChangePassword sets a user's new password after checking the current
// one (rate-limited as a login; ErrInvalidCredentials when wrong) and the
// policy, and revokes the user's other sessions. p is a session or a
// user's key.
func (s *Service) ChangePassword(ctx context.Context, p Principal, current, next, client string) error {
	if p.UserID == "" {
		return invalid("currentPassword", "this credential belongs to no user")
	}
	u, err := s.st.GetUser(ctx, p.UserID)
	if err != nil {
		return err
	}
	if _, err := s.checkPassword(ctx, u.Email, current, client); err != nil {
		return err
	}
	if err := CheckPassword("newPassword", next, u.Email); err != nil {
		return err
	}
	h, err := s.hash(ctx, next)
	if err != nil {
		return err
	}
	if err := s.st.SetPasswordHash(ctx, u.ID, h); err != nil {
		return err
	}
	_, err = s.st.RevokeUserSessions(ctx, u.ID, s.cfg.Now().UTC(), p.SessionHash)
	return err
}

// CSRFToken is the anti-CSRF token of a session: an HMAC of the session's
// hash with a server secret, so it cannot be forged without the secret
// nor planted by a sibling subdomain that can set cookies.
func (s *Service) CSRFToken(ctx context.Context, sessionHash string) (string, error) {
	key, err := s.csrfSecret(ctx)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sessionHash))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

// csrfSecret reads the server secret of CSRF tokens once (a failed read is
// retried by the next call).
func (s *Service) csrfSecret(ctx context.Context) ([]byte, error) {
	s.csrfMu.Lock()
	defer s.csrfMu.Unlock()
	if s.csrfKey == nil {
		k, err := s.st.Secret(ctx, "csrf")
		if err != nil {
			return nil, fmt.Errorf("csrf secret: %w", err)
		}
		s.csrfKey = k
	}
	return s.csrfKey, nil
}

// CheckCSRF compares a request's token with the session's in constant time.
func (s *Service) CheckCSRF(ctx context.Context, sessionHash, token string) (bool, error) {
	want, err := s.CSRFToken(ctx, sessionHash)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1, nil
}

// ---- login and sign-up ----

// Login checks an email and password, limited per account and per client
// (a *RateLimitedError when over), rehashes the password when the
// parameters changed, and starts a session.
func (s *Service) Login(ctx context.Context, email, password, client string) (store.User, NewSession, error) {
	u, err := s.checkPassword(ctx, email, password, client)
	if err != nil {
		return store.User{}, NewSession{}, err
	}
	ns, err := s.startSession(ctx, u.ID)
	return u, ns, err
}

// checkPassword is the rate-limited password check of Login (and of
// accepting an invitation as an existing user).
func (s *Service) checkPassword(ctx context.Context, email, password, client string) (store.User, error) {
	account := store.EmailKey(email)
	if err := s.limiter.Begin(account, client, s.cfg.Now()); err != nil {
		return store.User{}, err
	}
	if len(password) > 4*MaxPasswordLen {
		s.limiter.Failed(account, s.cfg.Now())
		return store.User{}, ErrInvalidCredentials
	}
	u, err := s.st.GetUserByEmail(ctx, email)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.User{}, err
	}
	hash := u.PasswordHash
	if hash == "" {
		hash = s.dummy // same cost for unknown emails and password-less users
	}
	ok, rehash, verr := s.verify(ctx, hash, password)
	if ctx.Err() != nil {
		return store.User{}, ctx.Err()
	}
	if err != nil || u.PasswordHash == "" || verr != nil || !ok {
		s.limiter.Failed(account, s.cfg.Now())
		return store.User{}, ErrInvalidCredentials
	}
	if rehash {
		if h, err := s.hash(ctx, password); err == nil {
			if err := s.st.SetPasswordHash(ctx, u.ID, h); err != nil {
				return store.User{}, err
			}
		}
	}
	return u, nil
}

// SignUpRequest creates a user and the org they own.
type SignUpRequest struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName,omitempty"`
	// Org is the name of the new org.
	Org string `json:"org"`
}

// SignUp creates a user and an org they own (when Config.AllowSignup) and
// starts a session. Sign-ups count as login attempts of the client.
func (s *Service) SignUp(ctx context.Context, r SignUpRequest, client string) (store.User, NewSession, error) {
	if !s.cfg.AllowSignup {
		return store.User{}, NewSession{}, ErrSignupDisabled
	}
	if err := s.limiter.Begin("signup:"+store.EmailKey(r.Email), client, s.cfg.Now()); err != nil {
		return store.User{}, NewSession{}, err
	}
	var fe apitypes.FieldErrors
	add := func(err error) {
		var ve *ValidationError
		if errors.As(err, &ve) {
			fe = append(fe, ve.Fields...)
		}
	}
	add(checkEmail("email", r.Email))
	add(CheckPassword("password", r.Password, r.Email))
	if e := apitypes.ValidateDNSName("org", r.Org); e != nil {
		fe = append(fe, *e)
	}
	if e := apitypes.ValidateText("displayName", r.DisplayName, 128, false); e != nil {
		fe = append(fe, *e)
	}
	if len(fe) > 0 {
		return store.User{}, NewSession{}, &ValidationError{Fields: fe}
	}
	h, err := s.hash(ctx, r.Password)
	if err != nil {
		return store.User{}, NewSession{}, err
	}
	u, err := s.st.SignUp(ctx, store.User{ID: store.NewID(8), Email: strings.TrimSpace(r.Email), DisplayName: r.DisplayName, PasswordHash: h}, r.Org, 0)
	if err != nil {
		return store.User{}, NewSession{}, err
	}
	if _, err := s.Record(ctx, Principal{UserID: u.ID}, r.Org, "signup", "org", r.Org, "signed up and created the org"); err != nil {
		return store.User{}, NewSession{}, err
	}
	ns, err := s.startSession(ctx, u.ID)
	return u, ns, err
}

// ---- invitations ----

// Invite invites email into org with role; the token is returned only
// here (only its hash is stored). Only owners may invite owners; inviting
// a member gives store.ErrAlreadyExists.
func (s *Service) Invite(ctx context.Context, by Principal, org, email string, role Role) (store.Invitation, string, error) {
	if err := checkEmail("email", email); err != nil {
		return store.Invitation{}, "", err
	}
	if _, err := ParseRole(string(role)); err != nil {
		return store.Invitation{}, "", invalid("role", err.Error())
	}
	if err := s.mayGrant(ctx, by, org, role); err != nil {
		return store.Invitation{}, "", err
	}
	if u, err := s.st.GetUserByEmail(ctx, email); err == nil {
		if _, err := s.st.GetMember(ctx, org, u.ID); err == nil {
			return store.Invitation{}, "", fmt.Errorf("%s is a member of org %s already: %w", email, org, store.ErrAlreadyExists)
		}
	}
	tok, h := newToken(InvitationPrefix)
	now := s.cfg.Now().UTC()
	inv, err := s.st.CreateInvitation(ctx, store.Invitation{ID: store.NewID(6), Org: org, Email: strings.TrimSpace(email), Role: string(role),
		TokenHash: h, InvitedBy: by.Actor(), CreatedAt: now, ExpiresAt: now.Add(s.cfg.InvitationTTL)})
	if err != nil {
		return store.Invitation{}, "", err
	}
	return inv, tok, nil
}

// AcceptRequest accepts an invitation. A new user sets a password (and a
// display name); an existing user proves the account with its password.
type AcceptRequest struct {
	Token       string `json:"token"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName,omitempty"`
}

// AcceptInvitation accepts an invitation: it creates the invited user when
// the email has no account yet (checking the password policy), or checks
// the existing user's password (rate-limited as a login), gives the user
// the invitation's role and starts a session.
func (s *Service) AcceptInvitation(ctx context.Context, r AcceptRequest, client string) (store.User, store.Invitation, NewSession, error) {
	fail := func(err error) (store.User, store.Invitation, NewSession, error) {
		return store.User{}, store.Invitation{}, NewSession{}, err
	}
	if !strings.HasPrefix(r.Token, InvitationPrefix) || len(r.Token) > 128 {
		return fail(ErrInvitation)
	}
	inv, err := s.st.LookupInvitation(ctx, HashToken(r.Token))
	if errors.Is(err, store.ErrNotFound) {
		return fail(ErrInvitation)
	}
	if err != nil {
		return fail(err)
	}
	now := s.cfg.Now().UTC()
	if !inv.AcceptedAt.IsZero() || !inv.RevokedAt.IsZero() || !now.Before(inv.ExpiresAt) {
		return fail(ErrInvitation)
	}
	u, err := s.st.GetUserByEmail(ctx, inv.Email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if err := CheckPassword("password", r.Password, inv.Email); err != nil {
			return fail(err)
		}
		if e := apitypes.ValidateText("displayName", r.DisplayName, 128, false); e != nil {
			return fail(&ValidationError{Fields: apitypes.FieldErrors{*e}})
		}
		h, err := s.hash(ctx, r.Password)
		if err != nil {
			return fail(err)
		}
		u = store.User{ID: store.NewID(8), Email: inv.Email, DisplayName: r.DisplayName, PasswordHash: h}
		err = s.st.AcceptInvitation(ctx, inv.ID, "", &u, now)
		if err != nil {
			return fail(invitationErr(err))
		}
	case err != nil:
		return fail(err)
	default:
		if u, err = s.checkPassword(ctx, inv.Email, r.Password, client); err != nil {
			return fail(err)
		}
		if err := s.st.AcceptInvitation(ctx, inv.ID, u.ID, nil, now); err != nil {
			return fail(invitationErr(err))
		}
	}
	if _, err := s.Record(ctx, Principal{UserID: u.ID}, inv.Org, "accept-invitation", "members", u.ID, "invitation "+inv.ID+", role "+inv.Role); err != nil {
		return fail(err)
	}
	ns, err := s.startSession(ctx, u.ID)
	if err != nil {
		return fail(err)
	}
	return u, inv, ns, nil
}

func invitationErr(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrInvitation
	}
	return err
}

// ---- members ----

// mayGrant checks that by may give (or take away) role in org: the owner
// role needs ActionOwnerManage, the others ActionMemberManage.
func (s *Service) mayGrant(ctx context.Context, by Principal, org string, role Role) error {
	a := ActionMemberManage
	if role == RoleOwner {
		a = ActionOwnerManage
	}
	_, err := s.Authorize(ctx, by, org, a)
	return err
}

// SetRole changes a member's role. Granting or taking away owner needs an
// owner; the last owner cannot be demoted (store.ErrLastOwner).
func (s *Service) SetRole(ctx context.Context, by Principal, org, userID string, role Role) error {
	if _, err := ParseRole(string(role)); err != nil {
		return invalid("role", err.Error())
	}
	m, err := s.st.GetMember(ctx, org, userID)
	if err != nil {
		return err
	}
	if err := s.mayGrant(ctx, by, org, Role(m.Role)); err != nil {
		return err
	}
	if err := s.mayGrant(ctx, by, org, role); err != nil {
		return err
	}
	return s.st.SetMemberRole(ctx, org, userID, string(role))
}

// RemoveMember removes a member (an owner needs an owner to remove it);
// their keys in the org are revoked.
func (s *Service) RemoveMember(ctx context.Context, by Principal, org, userID string) error {
	m, err := s.st.GetMember(ctx, org, userID)
	if err != nil {
		return err
	}
	if err := s.mayGrant(ctx, by, org, Role(m.Role)); err != nil {
		return err
	}
	return s.st.RemoveMember(ctx, org, userID)
}

// ---- teams and service accounts ----

// PutTeam creates a team or sets its quota (maxSandboxes ≥ 0; 0: only the
// org's quota applies; at most the org's quota when that is set).
func (s *Service) PutTeam(ctx context.Context, org, name string, maxSandboxes int64) (store.Team, bool, error) {
	if maxSandboxes < 0 {
		return store.Team{}, false, invalid("maxSandboxes", "must be >= 0 (0: only the org's quota applies)")
	}
	o, err := s.st.GetOrg(ctx, org)
	if err != nil {
		return store.Team{}, false, err
	}
	if o.MaxSandboxes > 0 && maxSandboxes > o.MaxSandboxes {
		return store.Team{}, false, invalid("maxSandboxes", fmt.Sprintf("must be at most the org's quota (%d)", o.MaxSandboxes))
	}
	return s.st.PutTeam(ctx, store.Team{Org: org, Name: name, MaxSandboxes: maxSandboxes})
}

// CreateServiceAccount creates a service account with a role below owner
// (default member); the caller must be allowed to grant that role.
func (s *Service) CreateServiceAccount(ctx context.Context, by Principal, a store.ServiceAccount) (store.ServiceAccount, error) {
	if a.Role == "" {
		a.Role = string(RoleMember)
	}
	r, err := ParseRole(a.Role)
	if err != nil || r == RoleOwner {
		return store.ServiceAccount{}, invalid("role", "must be admin, member or viewer")
	}
	if e := apitypes.ValidateText("description", a.Description, 512, false); e != nil {
		return store.ServiceAccount{}, &ValidationError{Fields: apitypes.FieldErrors{*e}}
	}
	if err := s.mayGrant(ctx, by, a.Org, r); err != nil {
		return store.ServiceAccount{}, err
	}
	return s.st.CreateServiceAccount(ctx, a)
}

// ---- audit ----

// Record stores an audit event: it is the one place events are written
// (the REST API records every successful write of an org route through it).
func (s *Service) Record(ctx context.Context, by Principal, org, action, kind, name, details string) (store.AuditEvent, error) {
	return s.st.RecordAudit(ctx, store.AuditEvent{Org: org, Actor: by.Actor(), Action: action, ObjectKind: kind, ObjectName: name, Details: details, CreatedAt: s.cfg.Now().UTC()})
}
