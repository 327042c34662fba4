package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// People and access (migration 00011): users, their roles in orgs, teams,
// invitations, browser sessions, service accounts and the audit trail. The
// rules (who may do what, password hashing, expiry) live in
// controlplane/identity; the store only keeps the records.

// ErrLastOwner means the operation would leave an org without an owner.
var ErrLastOwner = errors.New("it is the org's last owner")

// User is a person who logs in.
type User struct {
	ID    string
	Email string
	// DisplayName is how the portal shows the user.
	DisplayName string
	// PasswordHash is an argon2id PHC string; empty: no password login.
	PasswordHash string
	CreatedAt    time.Time
}

// EmailKey is the form of an email address that makes it unique: trimmed
// and lower-cased.
func EmailKey(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

const userCols = `id, email, display_name, password_hash, created_at`

func scanUser(sc scanner) (User, error) {
	var u User
	var created int64
	if err := sc.Scan(&u.ID, &u.Email, &u.DisplayName, &u.PasswordHash, &created); err != nil {
		return User{}, err
	}
	u.CreatedAt = fromNano(created)
	return u, nil
}

// CreateUser stores a user; ErrAlreadyExists if the email is taken (in any
// letter case).
func (s *Store) CreateUser(ctx context.Context, u User) (User, error) {
	if err := s.insertUser(ctx, s.db, &u); err != nil {
		return User{}, err
	}
	return u, nil
}

func (s *Store) insertUser(ctx context.Context, q execer, u *User) error {
	if u.CreatedAt.IsZero() {
		u.CreatedAt = s.now().UTC()
	}
	res, err := q.ExecContext(ctx, s.q(`INSERT INTO users (id, email, email_key, display_name, password_hash, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (email_key) DO NOTHING`),
		u.ID, u.Email, EmailKey(u.Email), u.DisplayName, u.PasswordHash, u.CreatedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("create user %s: %w", u.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user with this email: %w", ErrAlreadyExists)
	}
	return nil
}

// GetUser returns a user by ID or ErrNotFound.
func (s *Store) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanRow(ctx, s, s.db, scanUser, `SELECT `+userCols+` FROM users WHERE id = ?`, id)
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", id, err)
	}
	return u, nil
}

// GetUserByEmail returns a user by email (any letter case) or ErrNotFound.
func (s *Store) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanRow(ctx, s, s.db, scanUser, `SELECT `+userCols+` FROM users WHERE email_key = ?`, EmailKey(email))
	if err != nil {
		return User{}, fmt.Errorf("user by email: %w", err)
	}
	return u, nil
}

// SetPasswordHash replaces a user's password hash (a rehash with new
// parameters, or a new password).
func (s *Store) SetPasswordHash(ctx context.Context, userID, hash string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE users SET password_hash = ? WHERE id = ?`), hash, userID)
	if err != nil {
		return fmt.Errorf("set password of user %s: %w", userID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("user %s: %w", userID, ErrNotFound)
	}
	return nil
}

// ---- org membership ----

// Member is a user's role in an org, with the user's identity.
type Member struct {
	Org         string
	UserID      string
	Email       string
	DisplayName string
	Role        string
	CreatedAt   time.Time
}

const memberCols = `m.org, m.user_id, u.email, u.display_name, m.role, m.created_at`

func scanMember(sc scanner) (Member, error) {
	var m Member
	var created int64
	if err := sc.Scan(&m.Org, &m.UserID, &m.Email, &m.DisplayName, &m.Role, &created); err != nil {
		return Member{}, err
	}
	m.CreatedAt = fromNano(created)
	return m, nil
}

// SignUp creates a user, an org (quota maxSandboxes, 0: the default) and
// makes the user its owner, in one transaction. It fails with
// ErrAlreadyExists when the email or the org is taken.
func (s *Store) SignUp(ctx context.Context, u User, org string, maxSandboxes int64) (User, error) {
	if maxSandboxes == 0 {
		maxSandboxes = DefaultMaxSandboxes
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return User{}, fmt.Errorf("sign up: %w", err)
	}
	defer tx.Rollback()
	if err := s.insertUser(ctx, tx, &u); err != nil {
		return User{}, err
	}
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO orgs (name, max_sandboxes, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`), org, maxSandboxes, s.nowNano())
	if err != nil {
		return User{}, fmt.Errorf("sign up: create org %s: %w", org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return User{}, fmt.Errorf("org %s: %w", org, ErrAlreadyExists)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO org_members (org, user_id, role, created_at) VALUES (?, ?, ?, ?)`), org, u.ID, "owner", s.nowNano()); err != nil {
		return User{}, fmt.Errorf("sign up: membership: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return User{}, fmt.Errorf("sign up: %w", err)
	}
	return u, nil
}

// AddMember gives a user a role in an org; ErrAlreadyExists if the user is
// a member already, ErrNotFound for an unknown org or user.
func (s *Store) AddMember(ctx context.Context, org, userID, role string) error {
	return s.addMember(ctx, s.db, org, userID, role)
}

func (s *Store) addMember(ctx context.Context, q dbtx, org, userID, role string) error {
	res, err := q.ExecContext(ctx, s.q(`INSERT INTO org_members (org, user_id, role, created_at)
		SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM orgs WHERE name = ?) AND EXISTS (SELECT 1 FROM users WHERE id = ?)
		ON CONFLICT (org, user_id) DO NOTHING`), org, userID, role, s.nowNano(), org, userID)
	if err != nil {
		return fmt.Errorf("add member %s to org %s: %w", userID, org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var one int
		if err := q.QueryRowContext(ctx, s.q(`SELECT 1 FROM org_members WHERE org = ? AND user_id = ?`), org, userID).Scan(&one); err == nil {
			return fmt.Errorf("member %s of org %s: %w", userID, org, ErrAlreadyExists)
		}
		return fmt.Errorf("org %s or user %s: %w", org, userID, ErrNotFound)
	}
	return nil
}

// GetMember returns a user's membership in an org or ErrNotFound.
func (s *Store) GetMember(ctx context.Context, org, userID string) (Member, error) {
	m, err := scanRow(ctx, s, s.db, scanMember, `SELECT `+memberCols+` FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org = ? AND m.user_id = ?`, org, userID)
	if err != nil {
		return Member{}, fmt.Errorf("member %s of org %s: %w", userID, org, err)
	}
	return m, nil
}

// ListMembers returns a page of an org's members, by user ID.
func (s *Store) ListMembers(ctx context.Context, org string, p PageRequest) (Page[Member], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("members", org), false, "m.user_id", scanMember,
		func(m Member) (int64, string) { return 0, m.UserID }, nil,
		`SELECT `+memberCols+` FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.org = ?`, org)
	if err != nil {
		return Page[Member]{}, fmt.Errorf("list members of org %s: %w", org, err)
	}
	return pg, nil
}

// ListMemberships returns every org membership of a user, by org.
func (s *Store) ListMemberships(ctx context.Context, userID string) ([]Member, error) {
	ms, err := scanRows(ctx, s, s.db, scanMember, `SELECT `+memberCols+` FROM org_members m JOIN users u ON u.id = m.user_id WHERE m.user_id = ? ORDER BY m.org`, userID)
	if err != nil {
		return nil, fmt.Errorf("memberships of user %s: %w", userID, err)
	}
	return ms, nil
}

// lockOwners returns the owners of org inside tx, locking their rows on
// PostgreSQL (SQLite transactions take the write lock at BEGIN), so that
// two concurrent demotions cannot both pass the last-owner check.
func (s *Store) lockOwners(ctx context.Context, tx *sql.Tx, org string) (map[string]bool, error) {
	q := `SELECT user_id FROM org_members WHERE org = ? AND role = 'owner'`
	if s.pgStyle {
		q += ` FOR UPDATE`
	}
	ids, err := scanRows(ctx, s, tx, func(sc scanner) (string, error) {
		var id string
		return id, sc.Scan(&id)
	}, q, org)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, id := range ids {
		out[id] = true
	}
	return out, nil
}

// SetMemberRole changes a member's role. Demoting the last owner fails
// with ErrLastOwner.
func (s *Store) SetMemberRole(ctx context.Context, org, userID, role string) error {
	return s.changeMember(ctx, org, userID, role)
}

// RemoveMember removes a user from an org, with their team memberships, and
// revokes the API keys they own in it. Removing the last owner fails with
// ErrLastOwner.
func (s *Store) RemoveMember(ctx context.Context, org, userID string) error {
	return s.changeMember(ctx, org, userID, "")
}

// changeMember sets a member's role, or removes the member when role is "".
func (s *Store) changeMember(ctx context.Context, org, userID, role string) error {
	what := "change role of"
	if role == "" {
		what = "remove"
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%s member %s of org %s: %w", what, userID, org, err)
	}
	defer tx.Rollback()
	owners, err := s.lockOwners(ctx, tx, org)
	if err != nil {
		return fmt.Errorf("%s member %s of org %s: %w", what, userID, org, err)
	}
	if owners[userID] && len(owners) == 1 && role != "owner" {
		return fmt.Errorf("%s member %s of org %s: %w", what, userID, org, ErrLastOwner)
	}
	var res sql.Result
	var revoked []string
	if role != "" {
		res, err = tx.ExecContext(ctx, s.q(`UPDATE org_members SET role = ? WHERE org = ? AND user_id = ?`), role, org, userID)
	} else {
		res, err = tx.ExecContext(ctx, s.q(`DELETE FROM org_members WHERE org = ? AND user_id = ?`), org, userID)
		if err == nil {
			_, err = tx.ExecContext(ctx, s.q(`DELETE FROM team_members WHERE org = ? AND user_id = ?`), org, userID)
		}
		if err == nil {
			revoked, err = scanRows(ctx, s, tx, func(sc scanner) (string, error) {
				var id string
				return id, sc.Scan(&id)
			}, `SELECT id FROM api_keys WHERE org = ? AND owner_user = ? AND revoked_at = 0`, org, userID)
		}
		if err == nil {
			_, err = tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE org = ? AND owner_user = ? AND revoked_at = 0`), s.nowNano(), org, userID)
		}
	}
	if err != nil {
		return fmt.Errorf("%s member %s of org %s: %w", what, userID, org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("member %s of org %s: %w", userID, org, ErrNotFound)
	}
	if err := s.commit(ctx, tx, revokedKeys(org, revoked)...); err != nil {
		return fmt.Errorf("%s member %s of org %s: %w", what, userID, org, err)
	}
	return nil
}

// ---- teams ----

// Team is a group of an org's members with a concurrent-sandbox quota
// inside the org's.
type Team struct {
	Org  string
	Name string
	// MaxSandboxes is the team's quota; 0: only the org's quota applies.
	MaxSandboxes int64
	CreatedAt    time.Time
}

const teamCols = `org, name, max_sandboxes, created_at`

func scanTeam(sc scanner) (Team, error) {
	var t Team
	var created int64
	if err := sc.Scan(&t.Org, &t.Name, &t.MaxSandboxes, &created); err != nil {
		return Team{}, err
	}
	t.CreatedAt = fromNano(created)
	return t, nil
}

// PutTeam creates a team or sets its quota; created tells which.
func (s *Store) PutTeam(ctx context.Context, t Team) (Team, bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO teams (org, name, max_sandboxes, created_at)
		SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM orgs WHERE name = ?) ON CONFLICT (org, name) DO NOTHING`),
		t.Org, t.Name, t.MaxSandboxes, s.nowNano(), t.Org)
	if err != nil {
		return Team{}, false, fmt.Errorf("put team %s/%s: %w", t.Org, t.Name, err)
	}
	created := false
	if n, _ := res.RowsAffected(); n > 0 {
		created = true
	} else if _, err := s.db.ExecContext(ctx, s.q(`UPDATE teams SET max_sandboxes = ? WHERE org = ? AND name = ?`), t.MaxSandboxes, t.Org, t.Name); err != nil {
		return Team{}, false, fmt.Errorf("put team %s/%s: %w", t.Org, t.Name, err)
	}
	got, err := s.GetTeam(ctx, t.Org, t.Name)
	return got, created, err
}

// GetTeam returns a team or ErrNotFound.
func (s *Store) GetTeam(ctx context.Context, org, name string) (Team, error) {
	t, err := scanRow(ctx, s, s.db, scanTeam, `SELECT `+teamCols+` FROM teams WHERE org = ? AND name = ?`, org, name)
	if err != nil {
		return Team{}, fmt.Errorf("team %s/%s: %w", org, name, err)
	}
	return t, nil
}

// ListTeams returns a page of an org's teams, by name.
func (s *Store) ListTeams(ctx context.Context, org string, p PageRequest) (Page[Team], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("teams", org), false, "name", scanTeam,
		func(t Team) (int64, string) { return 0, t.Name }, nil,
		`SELECT `+teamCols+` FROM teams WHERE org = ?`, org)
	if err != nil {
		return Page[Team]{}, fmt.Errorf("list teams of org %s: %w", org, err)
	}
	return pg, nil
}

// DeleteTeam deletes a team and its memberships.
func (s *Store) DeleteTeam(ctx context.Context, org, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete team %s/%s: %w", org, name, err)
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE kind = ? AND org = ? AND team = ? AND deleted_at = 0`), string(KindSandbox), org, name).Scan(&n); err != nil {
		return fmt.Errorf("delete team %s/%s: %w", org, name, err)
	}
	if n > 0 {
		return fmt.Errorf("team %s/%s has %d sandboxes: move or delete them first: %w", org, name, n, ErrInUse)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM team_members WHERE org = ? AND team = ?`), org, name); err != nil {
		return fmt.Errorf("delete team %s/%s: %w", org, name, err)
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM teams WHERE org = ? AND name = ?`), org, name)
	if err != nil {
		return fmt.Errorf("delete team %s/%s: %w", org, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("team %s/%s: %w", org, name, ErrNotFound)
	}
	return tx.Commit()
}

// AddTeamMember adds an org member to a team (idempotent). ErrNotFound when
// the team does not exist or the user is no member of the org.
func (s *Store) AddTeamMember(ctx context.Context, org, team, userID string) error {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO team_members (org, team, user_id, created_at)
		SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM teams WHERE org = ? AND name = ?) AND EXISTS (SELECT 1 FROM org_members WHERE org = ? AND user_id = ?)
		ON CONFLICT (org, team, user_id) DO NOTHING`), org, team, userID, s.nowNano(), org, team, org, userID)
	if err != nil {
		return fmt.Errorf("add %s to team %s/%s: %w", userID, org, team, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.GetTeam(ctx, org, team); err != nil {
			return err
		}
		if _, err := s.GetMember(ctx, org, userID); err != nil {
			return err
		}
	}
	return nil
}

// RemoveTeamMember removes a user from a team; ErrNotFound if not in it.
func (s *Store) RemoveTeamMember(ctx context.Context, org, team, userID string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM team_members WHERE org = ? AND team = ? AND user_id = ?`), org, team, userID)
	if err != nil {
		return fmt.Errorf("remove %s from team %s/%s: %w", userID, org, team, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("member %s of team %s/%s: %w", userID, org, team, ErrNotFound)
	}
	return nil
}

// ListTeamMembers returns a page of a team's members (with their org role), by user ID.
func (s *Store) ListTeamMembers(ctx context.Context, org, team string, p PageRequest) (Page[Member], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("team-members", org, team), false, "m.user_id", scanMember,
		func(m Member) (int64, string) { return 0, m.UserID }, nil,
		`SELECT `+memberCols+` FROM org_members m JOIN users u ON u.id = m.user_id JOIN team_members t ON t.org = m.org AND t.user_id = m.user_id WHERE m.org = ? AND t.team = ?`, org, team)
	if err != nil {
		return Page[Member]{}, fmt.Errorf("list members of team %s/%s: %w", org, team, err)
	}
	return pg, nil
}

// ---- invitations ----

// Invitation invites an email address into an org with a role.
type Invitation struct {
	ID        string
	Org       string
	Email     string
	Role      string
	TokenHash string
	InvitedBy string
	CreatedAt time.Time
	ExpiresAt time.Time
	// AcceptedAt and AcceptedBy (a user ID) are set once it is accepted.
	AcceptedAt time.Time
	AcceptedBy string
	RevokedAt  time.Time
}

const invitationCols = `id, org, email, role, token_hash, invited_by, created_at, expires_at, accepted_at, accepted_by, revoked_at`

func scanInvitation(sc scanner) (Invitation, error) {
	var i Invitation
	var created, expires, accepted, revoked int64
	if err := sc.Scan(&i.ID, &i.Org, &i.Email, &i.Role, &i.TokenHash, &i.InvitedBy, &created, &expires, &accepted, &i.AcceptedBy, &revoked); err != nil {
		return Invitation{}, err
	}
	i.CreatedAt, i.ExpiresAt, i.AcceptedAt, i.RevokedAt = fromNano(created), fromNano(expires), fromNano(accepted), fromNano(revoked)
	return i, nil
}

// CreateInvitation stores an invitation.
func (s *Store) CreateInvitation(ctx context.Context, i Invitation) (Invitation, error) {
	if i.CreatedAt.IsZero() {
		i.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO invitations (id, org, email, email_key, role, token_hash, invited_by, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		i.ID, i.Org, i.Email, EmailKey(i.Email), i.Role, i.TokenHash, i.InvitedBy, i.CreatedAt.UnixNano(), i.ExpiresAt.UnixNano())
	if err != nil {
		return Invitation{}, fmt.Errorf("create invitation %s to org %s: %w", i.ID, i.Org, err)
	}
	return i, nil
}

// LookupInvitation finds an invitation by its token's hash (in any state);
// ErrNotFound otherwise.
func (s *Store) LookupInvitation(ctx context.Context, tokenHash string) (Invitation, error) {
	i, err := scanRow(ctx, s, s.db, scanInvitation, `SELECT `+invitationCols+` FROM invitations WHERE token_hash = ?`, tokenHash)
	if err != nil {
		return Invitation{}, fmt.Errorf("invitation: %w", err)
	}
	return i, nil
}

// ListInvitations returns a page of an org's invitations, oldest first.
func (s *Store) ListInvitations(ctx context.Context, org string, p PageRequest) (Page[Invitation], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("invitations", org), true, "id", scanInvitation,
		func(i Invitation) (int64, string) { return i.CreatedAt.UnixNano(), i.ID }, nil,
		`SELECT `+invitationCols+` FROM invitations WHERE org = ?`, org)
	if err != nil {
		return Page[Invitation]{}, fmt.Errorf("list invitations of org %s: %w", org, err)
	}
	return pg, nil
}

// RevokeInvitation revokes an open invitation; ErrNotFound if there is
// none with that ID, or it was accepted or revoked.
func (s *Store) RevokeInvitation(ctx context.Context, org, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE invitations SET revoked_at = ? WHERE org = ? AND id = ? AND revoked_at = 0 AND accepted_at = 0`), s.nowNano(), org, id)
	if err != nil {
		return fmt.Errorf("revoke invitation %s of org %s: %w", id, org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("open invitation %s of org %s: %w", id, org, ErrNotFound)
	}
	return nil
}

// AcceptInvitation marks the open invitation id (unexpired at now)
// accepted by the user userID and gives that user the invitation's role,
// in one transaction. When newUser is not nil it is created in the same
// transaction and accepts instead (sign-up through an invitation). An
// invitation accepted, revoked or expired meanwhile gives ErrNotFound; a
// user who is a member already gives ErrAlreadyExists.
func (s *Store) AcceptInvitation(ctx context.Context, id, userID string, newUser *User, now time.Time) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("accept invitation %s: %w", id, err)
	}
	defer tx.Rollback()
	if newUser != nil {
		if err := s.insertUser(ctx, tx, newUser); err != nil {
			return err
		}
		userID = newUser.ID
	}
	inv, err := scanRow(ctx, s, tx, scanInvitation, `SELECT `+invitationCols+` FROM invitations WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("invitation %s: %w", id, err)
	}
	res, err := tx.ExecContext(ctx, s.q(`UPDATE invitations SET accepted_at = ?, accepted_by = ? WHERE id = ? AND accepted_at = 0 AND revoked_at = 0 AND expires_at > ?`),
		now.UnixNano(), userID, id, now.UnixNano())
	if err != nil {
		return fmt.Errorf("accept invitation %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("open invitation %s: %w", id, ErrNotFound)
	}
	if err := s.addMember(ctx, tx, inv.Org, userID, inv.Role); err != nil {
		return err
	}
	return tx.Commit()
}

// ---- sessions ----

// Session is a browser session; only the hash of its ID is stored.
type Session struct {
	IDHash     string
	UserID     string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	RevokedAt  time.Time
}

const sessionCols = `id_hash, user_id, created_at, last_seen_at, expires_at, revoked_at`

func scanSession(sc scanner) (Session, error) {
	var x Session
	var created, seen, expires, revoked int64
	if err := sc.Scan(&x.IDHash, &x.UserID, &created, &seen, &expires, &revoked); err != nil {
		return Session{}, err
	}
	x.CreatedAt, x.LastSeenAt, x.ExpiresAt, x.RevokedAt = fromNano(created), fromNano(seen), fromNano(expires), fromNano(revoked)
	return x, nil
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, x Session) error {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`),
		x.IDHash, x.UserID, x.CreatedAt.UnixNano(), x.LastSeenAt.UnixNano(), x.ExpiresAt.UnixNano())
	if err != nil {
		return fmt.Errorf("create session of user %s: %w", x.UserID, err)
	}
	return nil
}

// GetSession returns a session by its ID's hash, in any state; ErrNotFound otherwise.
func (s *Store) GetSession(ctx context.Context, idHash string) (Session, error) {
	x, err := scanRow(ctx, s, s.db, scanSession, `SELECT `+sessionCols+` FROM sessions WHERE id_hash = ?`, idHash)
	if err != nil {
		return Session{}, fmt.Errorf("session: %w", err)
	}
	return x, nil
}

// TouchSession records that a live session was used at.
func (s *Store) TouchSession(ctx context.Context, idHash string, at time.Time) error {
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE sessions SET last_seen_at = ? WHERE id_hash = ? AND revoked_at = 0`), at.UnixNano(), idHash); err != nil {
		return fmt.Errorf("touch session: %w", err)
	}
	return nil
}

// RevokeSession revokes one session; ErrNotFound if it is not live.
func (s *Store) RevokeSession(ctx context.Context, idHash string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE sessions SET revoked_at = ? WHERE id_hash = ? AND revoked_at = 0`), s.nowNano(), idHash)
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("session: %w", ErrNotFound)
	}
	return nil
}

// RevokeUserSessions revokes every session of a user unexpired at now
// ("sign out everywhere"), except the one whose hash is keep (if any), and
// returns how many.
func (s *Store) RevokeUserSessions(ctx context.Context, userID string, now time.Time, keep string) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at = 0 AND expires_at > ? AND id_hash <> ?`), s.nowNano(), userID, now.UnixNano(), keep)
	if err != nil {
		return 0, fmt.Errorf("revoke sessions of user %s: %w", userID, err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// DeleteDeadSessions deletes sessions revoked or expired before cutoff.
func (s *Store) DeleteDeadSessions(ctx context.Context, cutoff time.Time) (int64, error) {
	c := cutoff.UnixNano()
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM sessions WHERE (revoked_at > 0 AND revoked_at < ?) OR expires_at < ?`), c, c)
	if err != nil {
		return 0, fmt.Errorf("delete dead sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// ---- service accounts ----

// ServiceAccount owns API keys that belong to no person (CI, bots).
type ServiceAccount struct {
	Org         string
	Name        string
	Description string
	// Role is the account's role in the org.
	Role      string
	CreatedAt time.Time
}

const serviceAccountCols = `org, name, description, role, created_at`

func scanServiceAccount(sc scanner) (ServiceAccount, error) {
	var a ServiceAccount
	var created int64
	if err := sc.Scan(&a.Org, &a.Name, &a.Description, &a.Role, &created); err != nil {
		return ServiceAccount{}, err
	}
	a.CreatedAt = fromNano(created)
	return a, nil
}

// CreateServiceAccount stores a service account; ErrAlreadyExists if the
// name is taken in the org.
func (s *Store) CreateServiceAccount(ctx context.Context, a ServiceAccount) (ServiceAccount, error) {
	if a.CreatedAt.IsZero() {
		a.CreatedAt = s.now().UTC()
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO service_accounts (org, name, description, role, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (org, name) DO NOTHING`),
		a.Org, a.Name, a.Description, a.Role, a.CreatedAt.UnixNano())
	if err != nil {
		return ServiceAccount{}, fmt.Errorf("create service account %s/%s: %w", a.Org, a.Name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ServiceAccount{}, fmt.Errorf("service account %s/%s: %w", a.Org, a.Name, ErrAlreadyExists)
	}
	return a, nil
}

// GetServiceAccount returns a service account or ErrNotFound.
func (s *Store) GetServiceAccount(ctx context.Context, org, name string) (ServiceAccount, error) {
	a, err := scanRow(ctx, s, s.db, scanServiceAccount, `SELECT `+serviceAccountCols+` FROM service_accounts WHERE org = ? AND name = ?`, org, name)
	if err != nil {
		return ServiceAccount{}, fmt.Errorf("service account %s/%s: %w", org, name, err)
	}
	return a, nil
}

// ListServiceAccounts returns a page of an org's service accounts, by name.
func (s *Store) ListServiceAccounts(ctx context.Context, org string, p PageRequest) (Page[ServiceAccount], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("service-accounts", org), false, "name", scanServiceAccount,
		func(a ServiceAccount) (int64, string) { return 0, a.Name }, nil,
		`SELECT `+serviceAccountCols+` FROM service_accounts WHERE org = ?`, org)
	if err != nil {
		return Page[ServiceAccount]{}, fmt.Errorf("list service accounts of org %s: %w", org, err)
	}
	return pg, nil
}

// DeleteServiceAccount deletes a service account and revokes its keys.
func (s *Store) DeleteServiceAccount(ctx context.Context, org, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete service account %s/%s: %w", org, name, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM service_accounts WHERE org = ? AND name = ?`), org, name)
	if err != nil {
		return fmt.Errorf("delete service account %s/%s: %w", org, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("service account %s/%s: %w", org, name, ErrNotFound)
	}
	ids, err := scanRows(ctx, s, tx, func(sc scanner) (string, error) {
		var id string
		return id, sc.Scan(&id)
	}, `SELECT id FROM api_keys WHERE org = ? AND service_account = ? AND revoked_at = 0`, org, name)
	if err != nil {
		return fmt.Errorf("delete service account %s/%s: %w", org, name, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE org = ? AND service_account = ? AND revoked_at = 0`), s.nowNano(), org, name); err != nil {
		return fmt.Errorf("delete service account %s/%s: %w", org, name, err)
	}
	if err := s.commit(ctx, tx, revokedKeys(org, ids)...); err != nil {
		return fmt.Errorf("delete service account %s/%s: %w", org, name, err)
	}
	return nil
}

// revokedKeys returns the changes of revoking the API keys ids of org.
func revokedKeys(org string, ids []string) []Change {
	cs := make([]Change, len(ids))
	for i, id := range ids {
		cs[i] = Change{What: ChangeAPIKeyRevoked, Org: org, Name: id}
	}
	return cs
}

// ---- audit events ----

// AuditEvent records who did what to which object of an org.
type AuditEvent struct {
	Org string
	ID  string
	// Actor names who acted: "user:<id>", "apikey:<id>", "serviceaccount:<name>".
	Actor      string
	Action     string
	ObjectKind string
	ObjectName string
	// Details is free text (never secrets).
	Details   string
	CreatedAt time.Time
}

const auditCols = `org, id, actor, action, object_kind, object_name, details, created_at`

func scanAudit(sc scanner) (AuditEvent, error) {
	var e AuditEvent
	var created int64
	if err := sc.Scan(&e.Org, &e.ID, &e.Actor, &e.Action, &e.ObjectKind, &e.ObjectName, &e.Details, &created); err != nil {
		return AuditEvent{}, err
	}
	e.CreatedAt = fromNano(created)
	return e, nil
}

// RecordAudit stores an audit event (ID and time are filled in when empty).
func (s *Store) RecordAudit(ctx context.Context, e AuditEvent) (AuditEvent, error) {
	if e.ID == "" {
		e.ID = NewID(8)
	}
	if e.CreatedAt.IsZero() {
		e.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO audit_events (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		e.Org, e.ID, e.Actor, e.Action, e.ObjectKind, e.ObjectName, e.Details, e.CreatedAt.UnixNano())
	if err != nil {
		return AuditEvent{}, fmt.Errorf("record audit event %s in org %s: %w", e.Action, e.Org, err)
	}
	return e, nil
}

// ListAuditEvents returns a page of an org's audit events, oldest first.
func (s *Store) ListAuditEvents(ctx context.Context, org string, p PageRequest) (Page[AuditEvent], error) {
	return s.FindAuditEvents(ctx, org, AuditFilter{}, p)
}

// AuditFilter selects and orders audit events; its zero value is all of
// them, oldest first.
type AuditFilter struct {
	// Action and Actor, when set, keep the events with exactly this action
	// (e.g. delete-sandbox) or actor (e.g. user:<id>).
	Action, Actor string
	// NewestFirst reverses the order.
	NewestFirst bool
}

// FindAuditEvents returns a page of an org's audit events that f selects,
// in f's order. A continue token belongs to one filter and order.
func (s *Store) FindAuditEvents(ctx context.Context, org string, f AuditFilter, p PageRequest) (Page[AuditEvent], error) {
	scope := scopeOf("audit", org)
	if f != (AuditFilter{}) {
		scope = scopeOf("audit", org, f.Action, f.Actor, strconv.FormatBool(f.NewestFirst))
	}
	q, args := `SELECT `+auditCols+` FROM audit_events WHERE org = ?`, []any{org}
	if f.Action != "" {
		q, args = q+` AND action = ?`, append(args, f.Action)
	}
	if f.Actor != "" {
		q, args = q+` AND actor = ?`, append(args, f.Actor)
	}
	pg, err := scanPageOrder(ctx, s, p, scope, true, f.NewestFirst, "id", scanAudit,
		func(e AuditEvent) (int64, string) { return e.CreatedAt.UnixNano(), e.ID }, nil, q, args...)
	if err != nil {
		return Page[AuditEvent]{}, fmt.Errorf("list audit events of org %s: %w", org, err)
	}
	return pg, nil
}
