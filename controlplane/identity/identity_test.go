package identity_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// fast are cheap argon2id parameters for tests.
var fast = identity.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}

func TestHashVerify(t *testing.T) {
	h, err := identity.HashPassword("correct horse battery", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("PHC string: %s", h)
	}
	h2, _ := identity.HashPassword("correct horse battery", fast)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	ok, rehash, err := identity.VerifyPassword(h, "correct horse battery", fast)
	if err != nil || !ok || rehash {
		t.Fatalf("right password: %v %v %v", ok, rehash, err)
	}
	if ok, _, err := identity.VerifyPassword(h, "correct horse batterx", fast); err != nil || ok {
		t.Fatalf("wrong password accepted: %v %v", ok, err)
	}
	// New parameters: the right password asks for a rehash, the wrong one not.
	stronger := fast
	stronger.Time = 2
	if ok, rehash, _ := identity.VerifyPassword(h, "correct horse battery", stronger); !ok || !rehash {
		t.Fatalf("rehash: %v %v", ok, rehash)
	}
	if ok, rehash, _ := identity.VerifyPassword(h, "nope nope nope", stronger); ok || rehash {
		t.Fatalf("wrong password and rehash: %v %v", ok, rehash)
	}
	for _, bad := range []string{"", "$2y$10$abc", "$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=16$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=99999999,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=64,t=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=64,t=1,p=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		if _, _, err := identity.VerifyPassword(bad, "x", fast); !errors.Is(err, identity.ErrBadHash) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if _, err := identity.HashPassword("x", identity.Params{}); err == nil {
		t.Fatal("zero parameters accepted")
	}
}

func TestPasswordPolicy(t *testing.T) {
	for _, c := range []struct {
		pw, email string
		ok        bool
	}{
		{"short", "", false},
		{"elevenchars", "", false},
		{"twelve chars", "", true},
		{"ann@example.com", "Ann@Example.com", false},
		{"äöüäöüäöüäöü", "", true},
		{strings.Repeat("x", identity.MaxPasswordLen+1), "", false},
		{"\xff\xfe invalid utf8", "", false},
	} {
		err := identity.CheckPassword("password", c.pw, c.email)
		var ve *identity.ValidationError
		if c.ok != (err == nil) || (err != nil && (!errors.As(err, &ve) || ve.Fields[0].Path != "password")) {
			t.Errorf("CheckPassword(%q, %q) = %v", c.pw, c.email, err)
		}
	}
}

func TestLoginLimiter(t *testing.T) {
	l := identity.NewLoginLimiter(identity.Rate{Burst: 2, Every: time.Minute}, identity.Rate{Burst: 3, Every: 10 * time.Second})
	now := time.Unix(1000, 0)
	// Successful attempts do not use up the account.
	for range 3 {
		if err := l.Begin("ann", "1.1.1.1", now); err != nil {
			t.Fatal(err)
		}
	}
	var rl *identity.RateLimitedError
	if err := l.Begin("ann", "1.1.1.1", now); !errors.As(err, &rl) || rl.Scope != "client" || rl.RetrySeconds() != 10 {
		t.Fatalf("fourth from one client: %v", err)
	}
	// Failures use up the account, from any client.
	l.Failed("ann", now)
	l.Failed("ann", now)
	if err := l.Begin("ann", "2.2.2.2", now); !errors.As(err, &rl) || rl.Scope != "account" || rl.RetrySeconds() != 60 {
		t.Fatalf("after two failures: %v", err)
	}
	if err := l.Begin("bob", "2.2.2.2", now); err != nil {
		t.Fatalf("another account: %v", err)
	}
	if err := l.Begin("ann", "3.3.3.3", now.Add(time.Minute)); err != nil {
		t.Fatalf("after a refill: %v", err)
	}
}

func TestAllowed(t *testing.T) {
	want := map[identity.Role][]identity.Action{
		identity.RoleViewer: {identity.ActionOrgRead, identity.ActionSandboxRead, identity.ActionClusterRead, identity.ActionMemberRead, identity.ActionAPIKeyOwn},
		identity.RoleMember: {identity.ActionOrgRead, identity.ActionSandboxRead, identity.ActionClusterRead, identity.ActionMemberRead,
			identity.ActionSandboxWrite, identity.ActionSandboxDelete, identity.ActionAPIKeyOwn, identity.ActionUsageRead},
		identity.RoleAdmin: {identity.ActionOrgRead, identity.ActionSandboxRead, identity.ActionClusterRead, identity.ActionMemberRead,
			identity.ActionSandboxWrite, identity.ActionSandboxDelete, identity.ActionAPIKeyOwn, identity.ActionUsageRead,
			identity.ActionClusterWrite, identity.ActionMemberManage, identity.ActionAPIKeyManage, identity.ActionAuditRead},
	}
	want[identity.RoleOwner] = append(append([]identity.Action{}, want[identity.RoleAdmin]...), identity.ActionOwnerManage)
	for _, r := range identity.Roles {
		for _, a := range identity.Actions() {
			exp := false
			for _, w := range want[r] {
				exp = exp || w == a
			}
			if got := identity.Allowed(r, a); got != exp {
				t.Errorf("Allowed(%s, %s) = %v, want %v", r, a, got, exp)
			}
		}
	}
	if identity.Allowed("root", identity.ActionOrgRead) || identity.Allowed(identity.RoleOwner, "launch.missiles") {
		t.Fatal("unknown role or action allowed")
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newService(t *testing.T, driver string) (*identity.Service, *store.Store, *clock) {
	t.Helper()
	st := storetest.Open(t, driver)
	clk := &clock{t: time.Now().UTC()}
	svc, err := identity.New(identity.Config{Store: st, Now: clk.now, Params: fast, SessionIdle: time.Hour, SessionMax: 3 * time.Hour, AllowSignup: true})
	if err != nil {
		t.Fatal(err)
	}
	return svc, st, clk
}

func TestSessions(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			svc, st, clk := newService(t, d)
			u, ns, err := svc.SignUp(ctx, identity.SignUpRequest{Email: "ann@example.com", Password: "a long passphrase", Org: "acme"}, "1.1.1.1")
			if err != nil {
				t.Fatal(err)
			}
			p, err := svc.Session(ctx, ns.Token)
			if err != nil || p.UserID != u.ID || !p.Session() {
				t.Fatalf("session: %+v %v", p, err)
			}
			if r, err := svc.RoleIn(ctx, p, "acme"); err != nil || r != identity.RoleOwner {
				t.Fatalf("role: %v %v", r, err)
			}
			if _, err := svc.RoleIn(ctx, p, "other"); !errors.Is(err, identity.ErrNoAccess) {
				t.Fatalf("other org: %v", err)
			}
			// Idle expiry: used within the hour it lives on, unused for an hour it ends.
			clk.add(50 * time.Minute)
			if _, err := svc.Session(ctx, ns.Token); err != nil {
				t.Fatalf("used after 50m: %v", err)
			}
			clk.add(50 * time.Minute)
			if _, err := svc.Session(ctx, ns.Token); err != nil {
				t.Fatalf("used 50m after the last use: %v", err)
			}
			clk.add(61 * time.Minute)
			if _, err := svc.Session(ctx, ns.Token); !errors.Is(err, identity.ErrNoSession) {
				t.Fatalf("idle: %v", err)
			}
			// Absolute expiry, however busy.
			_, ns2, err := svc.Login(ctx, "ANN@example.com", "a long passphrase", "1.1.1.1")
			if err != nil {
				t.Fatal(err)
			}
			for range 4 {
				clk.add(45 * time.Minute)
				_, err = svc.Session(ctx, ns2.Token)
			}
			if !errors.Is(err, identity.ErrNoSession) {
				t.Fatalf("3h after login: %v", err)
			}
			// Logout revokes one; LogoutAll every one.
			_, a, _ := svc.Login(ctx, "ann@example.com", "a long passphrase", "1.1.1.1")
			_, b, _ := svc.Login(ctx, "ann@example.com", "a long passphrase", "1.1.1.1")
			_, c, _ := svc.Login(ctx, "ann@example.com", "a long passphrase", "1.1.1.1")
			if err := svc.Logout(ctx, a.Hash); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.Session(ctx, a.Token); !errors.Is(err, identity.ErrNoSession) {
				t.Fatalf("after logout: %v", err)
			}
			if _, err := svc.Session(ctx, b.Token); err != nil {
				t.Fatalf("other session after logout: %v", err)
			}
			if n, err := svc.LogoutAll(ctx, u.ID); err != nil || n != 2 {
				t.Fatalf("logout all: %d %v", n, err)
			}
			for _, x := range []identity.NewSession{b, c} {
				if _, err := svc.Session(ctx, x.Token); !errors.Is(err, identity.ErrNoSession) {
					t.Fatalf("after logout-all: %v", err)
				}
			}
			if _, err := svc.Session(ctx, "sms_forged"); !errors.Is(err, identity.ErrNoSession) {
				t.Fatalf("forged: %v", err)
			}
			// Only hashes are stored.
			if _, err := st.GetSession(ctx, b.Token); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("the token itself is a key of the store: %v", err)
			}
			// CSRF tokens are per session and stable.
			t1, _ := svc.CSRFToken(ctx, a.Hash)
			t2, _ := svc.CSRFToken(ctx, b.Hash)
			if ok, _ := svc.CheckCSRF(ctx, a.Hash, t1); !ok || t1 == t2 {
				t.Fatal("csrf tokens")
			}
			if ok, _ := svc.CheckCSRF(ctx, a.Hash, t2); ok {
				t.Fatal("another session's csrf token accepted")
			}
		})
	}
}

func TestLoginRehashAndLimits(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := newService(t, store.DriverSQLite)
	old, _ := identity.HashPassword("a long passphrase", identity.Params{Memory: 32, Time: 1, Threads: 1, KeyLen: 16})
	u, err := st.CreateUser(ctx, store.User{ID: "u1", Email: "bob@example.com", PasswordHash: old})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Login(ctx, "bob@example.com", "a long passphrase", "9.9.9.9"); err != nil {
		t.Fatal(err)
	}
	got, _ := st.GetUser(ctx, u.ID)
	if got.PasswordHash == old || !strings.HasPrefix(got.PasswordHash, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("not rehashed: %s", got.PasswordHash)
	}
	if _, _, err := svc.Login(ctx, "nobody@example.com", "a long passphrase", "9.9.9.9"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("unknown email: %v", err)
	}
	for range 5 {
		if _, _, err := svc.Login(ctx, "bob@example.com", "wrong passphrase", "8.8.8.8"); !errors.Is(err, identity.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
	}
	var rl *identity.RateLimitedError
	if _, _, err := svc.Login(ctx, "bob@example.com", "a long passphrase", "7.7.7.7"); !errors.As(err, &rl) || rl.Scope != "account" {
		t.Fatalf("sixth attempt: %v", err)
	}
}

func TestInvitationsAndRoles(t *testing.T) {
	ctx := context.Background()
	svc, st, clk := newService(t, store.DriverSQLite)
	owner, ns, err := svc.SignUp(ctx, identity.SignUpRequest{Email: "ann@example.com", Password: "a long passphrase", Org: "acme"}, "1.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	op := identity.Principal{UserID: owner.ID, SessionHash: ns.Hash}
	inv, tok, err := svc.Invite(ctx, op, "acme", "Vic@Example.com", identity.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if inv.TokenHash == tok || !strings.HasPrefix(tok, identity.InvitationPrefix) {
		t.Fatal("token stored in the clear")
	}
	var ve *identity.ValidationError
	if _, _, _, err := svc.AcceptInvitation(ctx, identity.AcceptRequest{Token: tok, Password: "short"}, "1.1.1.1"); !errors.As(err, &ve) {
		t.Fatalf("weak password: %v", err)
	}
	vic, _, vs, err := svc.AcceptInvitation(ctx, identity.AcceptRequest{Token: tok, Password: "vics long passphrase", DisplayName: "Vic"}, "1.1.1.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := svc.AcceptInvitation(ctx, identity.AcceptRequest{Token: tok, Password: "vics long passphrase"}, "1.1.1.1"); !errors.Is(err, identity.ErrInvitation) {
		t.Fatalf("second use: %v", err)
	}
	vp := identity.Principal{UserID: vic.ID, SessionHash: vs.Hash}
	if r, _ := svc.RoleIn(ctx, vp, "acme"); r != identity.RoleAdmin {
		t.Fatalf("role %s", r)
	}
	// An admin may not make owners nor touch one.
	if _, _, err := svc.Invite(ctx, op, "acme", "VIC@example.com", identity.RoleViewer); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("invite a member: %v", err)
	}
	if _, _, err := svc.Invite(ctx, vp, "acme", "x@example.com", identity.RoleOwner); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("admin invites an owner: %v", err)
	}
	if err := svc.SetRole(ctx, vp, "acme", owner.ID, identity.RoleViewer); !errors.Is(err, identity.ErrForbidden) {
		t.Fatalf("admin demotes the owner: %v", err)
	}
	if err := svc.SetRole(ctx, op, "acme", owner.ID, identity.RoleViewer); !errors.Is(err, store.ErrLastOwner) {
		t.Fatalf("last owner demotes itself: %v", err)
	}
	if err := svc.SetRole(ctx, op, "acme", vic.ID, "root"); !errors.As(err, &ve) || ve.Fields[0].Path != "role" {
		t.Fatalf("unknown role: %v", err)
	}
	// An existing user accepts with its password; an expired invitation fails.
	_, tok2, _ := svc.Invite(ctx, op, "acme", "bob@example.com", identity.RoleViewer)
	if _, err := st.CreateUser(ctx, store.User{ID: "bob", Email: "bob@example.com", PasswordHash: mustHash(t, "bobs long passphrase")}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := svc.AcceptInvitation(ctx, identity.AcceptRequest{Token: tok2, Password: "not bobs passphrase"}, "1.1.1.1"); !errors.Is(err, identity.ErrInvalidCredentials) {
		t.Fatalf("wrong password of an existing user: %v", err)
	}
	clk.add(8 * 24 * time.Hour)
	if _, _, _, err := svc.AcceptInvitation(ctx, identity.AcceptRequest{Token: tok2, Password: "bobs long passphrase"}, "1.1.1.1"); !errors.Is(err, identity.ErrInvitation) {
		t.Fatalf("expired: %v", err)
	}
	// Legacy org keys act as admins; admin keys as owners; user keys with the user's role.
	if r, _ := svc.RoleIn(ctx, identity.Principal{KeyID: "k", Org: "acme"}, "acme"); r != identity.RoleAdmin {
		t.Fatalf("legacy key: %s", r)
	}
	if r, _ := svc.RoleIn(ctx, identity.Principal{KeyID: "k", Admin: true}, "acme"); r != identity.RoleOwner {
		t.Fatalf("admin key: %s", r)
	}
	if _, err := svc.RoleIn(ctx, identity.Principal{KeyID: "k", Org: "acme", UserID: "bob"}, "acme"); !errors.Is(err, identity.ErrNoAccess) {
		t.Fatalf("key of a non-member: %v", err)
	}
	if _, err := svc.RoleIn(ctx, identity.Principal{KeyID: "k", Org: "other", UserID: owner.ID}, "acme"); !errors.Is(err, identity.ErrNoAccess) {
		t.Fatalf("key of another org: %v", err)
	}
}

func mustHash(t *testing.T, pw string) string {
	h, err := identity.HashPassword(pw, fast)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSignUpRules(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.DriverSQLite)
	off, _ := identity.New(identity.Config{Store: st, Params: fast})
	if _, _, err := off.SignUp(ctx, identity.SignUpRequest{Email: "a@example.com", Password: "a long passphrase", Org: "acme"}, "1.1.1.1"); !errors.Is(err, identity.ErrSignupDisabled) {
		t.Fatalf("disabled: %v", err)
	}
	on, _ := identity.New(identity.Config{Store: st, Params: fast, AllowSignup: true})
	_, _, err := on.SignUp(ctx, identity.SignUpRequest{Email: "not-an-email", Password: "not-an-email", Org: "Bad_Org"}, "1.1.1.1")
	var ve *identity.ValidationError
	if !errors.As(err, &ve) || len(ve.Fields) != 3 || ve.Fields[0].Path != "email" || ve.Fields[1].Path != "password" || ve.Fields[2].Path != "org" {
		t.Fatalf("invalid sign-up: %v", err)
	}
	if _, _, err := on.SignUp(ctx, identity.SignUpRequest{Email: "a@example.com", Password: "a long passphrase", Org: "acme"}, "1.1.1.1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := on.SignUp(ctx, identity.SignUpRequest{Email: "b@example.com", Password: "a long passphrase", Org: "acme"}, "1.1.1.1"); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("taken org: %v", err)
	}
	ev, _ := st.ListAuditEvents(ctx, "acme", store.PageRequest{})
	if len(ev.Items) != 1 || ev.Items[0].Action != "signup" {
		t.Fatalf("audit: %+v", ev.Items)
	}
}
