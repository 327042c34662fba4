package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

func TestUsersAndMembers(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		u, err := s.SignUp(ctx, store.User{ID: "u1", Email: "Ann@Example.com", DisplayName: "Ann", PasswordHash: "h"}, "acme", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, store.User{ID: "u9", Email: " ann@EXAMPLE.com"}); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("email differing in case only: %v", err)
		}
		if _, err := s.SignUp(ctx, store.User{ID: "u8", Email: "x@example.com"}, "acme", 0); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("sign up into a taken org: %v", err)
		}
		if _, err := s.GetUserByEmail(ctx, "x@example.com"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("failed sign up left its user: %v", err)
		}
		got, err := s.GetUserByEmail(ctx, "ANN@example.COM")
		if err != nil || got.ID != u.ID || got.Email != "Ann@Example.com" || got.PasswordHash != "h" {
			t.Fatalf("by email: %+v %v", got, err)
		}
		if o, err := s.GetOrg(ctx, "acme"); err != nil || o.MaxSandboxes != store.DefaultMaxSandboxes {
			t.Fatalf("org: %+v %v", o, err)
		}
		if m, err := s.GetMember(ctx, "acme", "u1"); err != nil || m.Role != "owner" || m.Email != "Ann@Example.com" {
			t.Fatalf("owner: %+v %v", m, err)
		}
		if err := s.SetPasswordHash(ctx, "u1", "h2"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetUser(ctx, "u1"); got.PasswordHash != "h2" {
			t.Fatalf("rehash not stored: %+v", got)
		}
		if _, err := s.CreateUser(ctx, store.User{ID: "u2", Email: "bob@example.com"}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(ctx, "acme", "u2", "viewer"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddMember(ctx, "acme", "u2", "viewer"); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("twice: %v", err)
		}
		if err := s.AddMember(ctx, "nope", "u2", "viewer"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown org: %v", err)
		}
		if err := s.SetMemberRole(ctx, "acme", "u1", "admin"); !errors.Is(err, store.ErrLastOwner) {
			t.Fatalf("demote last owner: %v", err)
		}
		if err := s.RemoveMember(ctx, "acme", "u1"); !errors.Is(err, store.ErrLastOwner) {
			t.Fatalf("remove last owner: %v", err)
		}
		if err := s.SetMemberRole(ctx, "acme", "u2", "owner"); err != nil {
			t.Fatal(err)
		}
		if err := s.SetMemberRole(ctx, "acme", "u1", "member"); err != nil {
			t.Fatalf("demote one of two owners: %v", err)
		}
		pg, err := s.ListMembers(ctx, "acme", store.PageRequest{Limit: 1})
		if err != nil || len(pg.Items) != 1 || pg.Items[0].UserID != "u1" || pg.Continue == "" {
			t.Fatalf("members page 1: %+v %v", pg, err)
		}
		pg, err = s.ListMembers(ctx, "acme", store.PageRequest{Limit: 1, Continue: pg.Continue})
		if err != nil || len(pg.Items) != 1 || pg.Items[0].UserID != "u2" || pg.Items[0].Role != "owner" {
			t.Fatalf("members page 2: %+v %v", pg, err)
		}
		ms, err := s.ListMemberships(ctx, "u2")
		if err != nil || len(ms) != 1 || ms[0].Org != "acme" {
			t.Fatalf("memberships: %+v %v", ms, err)
		}
		// A removed member's keys are revoked with the membership.
		if _, err := s.CreateAPIKey(ctx, store.APIKey{ID: "k1", Org: "acme", Name: "mine", Hash: "hk1", Masked: "m", OwnerUser: "u1"}); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveMember(ctx, "acme", "u1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupAPIKey(ctx, "hk1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key of a removed member still valid: %v", err)
		}
		if _, err := s.GetMember(ctx, "acme", "u1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("removed: %v", err)
		}
	})
}

func TestTeams(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if _, err := s.SignUp(ctx, store.User{ID: "u1", Email: "a@example.com"}, "acme", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateUser(ctx, store.User{ID: "u2", Email: "b@example.com"}); err != nil {
			t.Fatal(err)
		}
		tm, created, err := s.PutTeam(ctx, store.Team{Org: "acme", Name: "web", MaxSandboxes: 5})
		if err != nil || !created || tm.MaxSandboxes != 5 {
			t.Fatalf("create: %+v %v %v", tm, created, err)
		}
		tm, created, err = s.PutTeam(ctx, store.Team{Org: "acme", Name: "web", MaxSandboxes: 7})
		if err != nil || created || tm.MaxSandboxes != 7 {
			t.Fatalf("update quota: %+v %v %v", tm, created, err)
		}
		if _, _, err := s.PutTeam(ctx, store.Team{Org: "nope", Name: "web"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("team of unknown org: %v", err)
		}
		if err := s.AddTeamMember(ctx, "acme", "web", "u2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("non-member into team: %v", err)
		}
		if err := s.AddTeamMember(ctx, "acme", "web", "u1"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddTeamMember(ctx, "acme", "web", "u1"); err != nil {
			t.Fatalf("idempotent: %v", err)
		}
		pg, err := s.ListTeamMembers(ctx, "acme", "web", store.PageRequest{})
		if err != nil || len(pg.Items) != 1 || pg.Items[0].Role != "owner" {
			t.Fatalf("team members: %+v %v", pg, err)
		}
		ts, _ := s.ListTeams(ctx, "acme", store.PageRequest{})
		if len(ts.Items) != 1 {
			t.Fatalf("teams: %+v", ts)
		}
		if err := s.RemoveTeamMember(ctx, "acme", "web", "u1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTeam(ctx, "acme", "web"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTeam(ctx, "acme", "web"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deleted: %v", err)
		}
	})
}

func TestInvitationsSessionsServiceAccountsAudit(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		now := time.Now().UTC()
		if _, err := s.SignUp(ctx, store.User{ID: "u1", Email: "a@example.com"}, "acme", 0); err != nil {
			t.Fatal(err)
		}
		inv, err := s.CreateInvitation(ctx, store.Invitation{ID: "i1", Org: "acme", Email: "New@Example.com", Role: "viewer", TokenHash: "th", InvitedBy: "u1", ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupInvitation(ctx, "th")
		if err != nil || got.ID != inv.ID || got.Email != "New@Example.com" {
			t.Fatalf("lookup: %+v %v", got, err)
		}
		if err := s.AcceptInvitation(ctx, "i1", "", &store.User{ID: "u2", Email: "new@example.com"}, now.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired: %v", err)
		}
		if _, err := s.GetUser(ctx, "u2"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a failed acceptance left its user: %v", err)
		}
		if err := s.AcceptInvitation(ctx, "i1", "", &store.User{ID: "u2", Email: "new@example.com"}, now); err != nil {
			t.Fatal(err)
		}
		if m, err := s.GetMember(ctx, "acme", "u2"); err != nil || m.Role != "viewer" {
			t.Fatalf("member: %+v %v", m, err)
		}
		if err := s.AcceptInvitation(ctx, "i1", "u1", nil, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("accepted twice: %v", err)
		}
		if err := s.RevokeInvitation(ctx, "acme", "i1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke accepted: %v", err)
		}
		invs, _ := s.ListInvitations(ctx, "acme", store.PageRequest{})
		if len(invs.Items) != 1 || invs.Items[0].AcceptedBy != "u2" {
			t.Fatalf("invitations: %+v", invs)
		}

		for _, h := range []string{"s1", "s2"} {
			if err := s.CreateSession(ctx, store.Session{IDHash: h, UserID: "u1", CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.TouchSession(ctx, "s1", now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		x, err := s.GetSession(ctx, "s1")
		if err != nil || !x.LastSeenAt.Equal(now.Add(time.Minute)) || !x.RevokedAt.IsZero() {
			t.Fatalf("session: %+v %v", x, err)
		}
		if err := s.RevokeSession(ctx, "s1"); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked twice: %v", err)
		}
		if n, err := s.RevokeUserSessions(ctx, "u1", now, ""); err != nil || n != 1 {
			t.Fatalf("revoke all: %d %v", n, err)
		}
		if x, _ := s.GetSession(ctx, "s2"); x.RevokedAt.IsZero() {
			t.Fatal("s2 live after sign-out everywhere")
		}
		if n, err := s.DeleteDeadSessions(ctx, time.Now().Add(time.Minute)); err != nil || n != 2 {
			t.Fatalf("delete dead: %d %v", n, err)
		}

		if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Org: "acme", Name: "ci", Description: "CI", Role: "member"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateServiceAccount(ctx, store.ServiceAccount{Org: "acme", Name: "ci", Role: "member"}); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("twice: %v", err)
		}
		if _, err := s.CreateAPIKey(ctx, store.APIKey{ID: "k0", Org: "acme", Name: "x", Hash: "h0", Masked: "m", ServiceAccount: "nope"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key of an unknown service account: %v", err)
		}
		if _, err := s.CreateAPIKey(ctx, store.APIKey{ID: "k1", Org: "acme", Name: "x", Hash: "h1", Masked: "m", ServiceAccount: "ci"}); err != nil {
			t.Fatal(err)
		}
		keys, err := s.ListAPIKeysOf(ctx, "acme", store.APIKeyOwner{ServiceAccount: "ci"})(store.PageRequest{})
		if err != nil || len(keys.Items) != 1 || keys.Items[0].ServiceAccount != "ci" {
			t.Fatalf("keys of ci: %+v %v", keys, err)
		}
		var changes []store.Change
		s.Watch(func(c store.Change) { changes = append(changes, c) })
		if err := s.DeleteServiceAccount(ctx, "acme", "ci"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupAPIKey(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key of a deleted service account: %v", err)
		}
		if len(changes) != 1 || changes[0].What != store.ChangeAPIKeyRevoked || changes[0].Name != "k1" {
			t.Fatalf("changes: %+v", changes)
		}

		for i, a := range []string{"sandbox.apply", "sandbox.delete", "member.update"} {
			if _, err := s.RecordAudit(ctx, store.AuditEvent{Org: "acme", Actor: "user:u1", Action: a, ObjectKind: "sandbox", ObjectName: "s", CreatedAt: now.Add(time.Duration(i) * time.Second)}); err != nil {
				t.Fatal(err)
			}
		}
		ev, err := s.ListAuditEvents(ctx, "acme", store.PageRequest{Limit: 2})
		if err != nil || len(ev.Items) != 2 || ev.Items[0].Action != "sandbox.apply" || ev.Continue == "" {
			t.Fatalf("events: %+v %v", ev, err)
		}
		if _, err := s.ListAuditEvents(ctx, "other", store.PageRequest{Continue: ev.Continue}); !errors.Is(err, store.ErrBadCursor) {
			t.Fatalf("acme's token on other's events: %v", err)
		}
		ev, err = s.ListAuditEvents(ctx, "acme", store.PageRequest{Limit: 2, Continue: ev.Continue})
		if err != nil || len(ev.Items) != 1 || ev.Items[0].Action != "member.update" || ev.Continue != "" {
			t.Fatalf("events page 2: %+v %v", ev, err)
		}
	})
}

// TestMigrationIdentityKeepsData writes orgs and API keys at schema 00009,
// migrates to the latest and reads them back: old org keys have no owner
// (they act as org admins) and still authenticate.
func TestMigrationIdentityKeepsData(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			old := atVersion(t, d, 9)
			old.exec(`INSERT INTO orgs (name, max_sandboxes, created_at) VALUES (?, ?, ?)`, "acme", 7, 1)
			old.exec(`INSERT INTO api_keys (id, org, name, hash, masked, admin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`, "k1", "acme", "ci", "hash1", "m", 0, 2)
			old.exec(`INSERT INTO api_keys (id, org, name, hash, masked, admin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`, "a1", "", "admin", "hash2", "m", 1, 3)
			s := old.open()
			if o, err := s.GetOrg(ctx, "acme"); err != nil || o.MaxSandboxes != 7 {
				t.Fatalf("org after migration: %+v %v", o, err)
			}
			k, err := s.LookupAPIKey(ctx, "hash1")
			if err != nil || k.ID != "k1" || k.Org != "acme" || k.OwnerUser != "" || k.ServiceAccount != "" {
				t.Fatalf("org key after migration: %+v %v", k, err)
			}
			if k, err := s.LookupAPIKey(ctx, "hash2"); err != nil || !k.Admin {
				t.Fatalf("admin key after migration: %+v %v", k, err)
			}
			if has, _ := s.HasAdminKey(ctx); !has {
				t.Fatal("admin key lost")
			}
			// The new tables work on the migrated database.
			if _, err := s.CreateUser(ctx, store.User{ID: "u1", Email: "a@example.com"}); err != nil {
				t.Fatal(err)
			}
			if err := s.AddMember(ctx, "acme", "u1", "admin"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// oldSchema is a database of driver d migrated up to one version only, for
// the tests of a later migration: exec writes rows in that schema (?
// placeholders on every driver), then open closes it and opens the store on
// it, which migrates it to the latest.
type oldSchema struct {
	t           *testing.T
	db          *sql.DB
	driver, dsn string
}

func atVersion(t *testing.T, d string, version int64) *oldSchema {
	t.Helper()
	driver, dsn := storetest.DSN(t, d)
	db, err := store.MigrateTo(context.Background(), driver, dsn, version)
	if err != nil {
		t.Fatal(err)
	}
	return &oldSchema{t: t, db: db, driver: driver, dsn: dsn}
}

func (o *oldSchema) exec(query string, args ...any) {
	o.t.Helper()
	if o.driver == store.DriverPostgres {
		query = pgPlaceholders(query)
	}
	if _, err := o.db.ExecContext(context.Background(), query, args...); err != nil {
		o.t.Fatal(err)
	}
}

func (o *oldSchema) open() *store.Store {
	o.t.Helper()
	o.db.Close()
	s, err := store.Open(context.Background(), o.driver, o.dsn)
	if err != nil {
		o.t.Fatal(err)
	}
	o.t.Cleanup(func() { s.Close() })
	return s
}

func pgPlaceholders(q string) string {
	out, n := []byte{}, 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			out = append(out, '$')
			out = strconv.AppendInt(out, int64(n), 10)
			continue
		}
		out = append(out, q[i])
	}
	return string(out)
}

// TestAPIKeyLastUsed: a key's use is recorded, then not rewritten within
// APIKeyUseResolution (one write a minute per busy key), also when a stale
// copy of the key (looked up before the first write) asks again.
func TestAPIKeyLastUsed(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0)
		if _, err := s.CreateAPIKey(ctx, store.APIKey{ID: "k1", Org: "acme", Name: "ci", Hash: "hk1", Masked: "m"}); err != nil {
			t.Fatal(err)
		}
		stale, err := s.LookupAPIKey(ctx, "hk1")
		if err != nil || !stale.LastUsedAt.IsZero() {
			t.Fatalf("a new key: %+v %v", stale, err)
		}
		if err := s.TouchAPIKey(ctx, stale); err != nil {
			t.Fatal(err)
		}
		first, err := s.LookupAPIKey(ctx, "hk1")
		if err != nil || first.LastUsedAt.IsZero() || time.Since(first.LastUsedAt) > time.Minute {
			t.Fatalf("after use: %+v %v", first, err)
		}
		for _, k := range []store.APIKey{stale, first} {
			if err := s.TouchAPIKey(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		again, err := s.LookupAPIKey(ctx, "hk1")
		if err != nil || !again.LastUsedAt.Equal(first.LastUsedAt) {
			t.Fatalf("rewritten within the resolution: %v → %v (%v)", first.LastUsedAt, again.LastUsedAt, err)
		}
	})
}
