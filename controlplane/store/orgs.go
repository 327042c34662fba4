package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Org is a tenant.
type Org struct {
	Name string
	// MaxSandboxes is the maximum number of concurrent sandboxes; 0 means
	// unlimited (only an admin's SetQuota makes that).
	MaxSandboxes int64
	CreatedAt    time.Time
}

// DefaultMaxSandboxes is the quota of an org created without one.
const DefaultMaxSandboxes = 100

// CreateOrg creates an org with a quota of maxSandboxes; 0 gives
// DefaultMaxSandboxes (an admin makes an org unlimited with SetQuota(org, 0)).
// It returns ErrAlreadyExists if the org exists.
func (s *Store) CreateOrg(ctx context.Context, name string, maxSandboxes int64) (Org, error) {
	if maxSandboxes == 0 {
		maxSandboxes = DefaultMaxSandboxes
	}
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO orgs (name, max_sandboxes, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		name, maxSandboxes, s.nowNano())
	if err != nil {
		return Org{}, fmt.Errorf("create org %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Org{}, fmt.Errorf("create org %s: %w", name, ErrAlreadyExists)
	}
	return s.GetOrg(ctx, name)
}

const orgCols = `name, max_sandboxes, created_at`

func scanOrg(sc scanner) (Org, error) {
	var o Org
	var created int64
	if err := sc.Scan(&o.Name, &o.MaxSandboxes, &created); err != nil {
		return Org{}, err
	}
	o.CreatedAt = fromNano(created)
	return o, nil
}

// GetOrg returns an org or ErrNotFound.
func (s *Store) GetOrg(ctx context.Context, name string) (Org, error) {
	return s.getOrg(ctx, s.db, name)
}

// getOrg reads an org through q (the database or a transaction).
func (s *Store) getOrg(ctx context.Context, q querier, name string) (Org, error) {
	o, err := scanRow(ctx, s, q, scanOrg, `SELECT `+orgCols+` FROM orgs WHERE name = ?`, name)
	if err != nil {
		return Org{}, fmt.Errorf("org %s: %w", name, err)
	}
	return o, nil
}

// SetQuota sets an org's maximum number of concurrent sandboxes (0 = unlimited).
func (s *Store) SetQuota(ctx context.Context, org string, maxSandboxes int64) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE orgs SET max_sandboxes = ? WHERE name = ?`), maxSandboxes, org)
	if err != nil {
		return fmt.Errorf("set quota of org %s: %w", org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("org %s: %w", org, ErrNotFound)
	}
	return nil
}

// CountSandboxes returns the number of live sandboxes of an org.
func (s *Store) CountSandboxes(ctx context.Context, org string) (int64, error) {
	return countLive(ctx, s.db, s, org)
}

func countLive(ctx context.Context, q querier, s *Store, org string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE kind = ? AND org = ? AND deleted_at = 0`), string(KindSandbox), org).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sandboxes of org %s: %w", org, err)
	}
	return n, nil
}

// checkTeamQuota checks, inside the apply's transaction (whose revision lock serialises writers), that team
// is a team of org and that one more sandbox fits its quota (0: only the org's applies).
func (s *Store) checkTeamQuota(ctx context.Context, q querier, org, team string) error {
	var max int64
	err := q.QueryRowContext(ctx, s.q(`SELECT max_sandboxes FROM teams WHERE org = ? AND name = ?`), org, team).Scan(&max)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("team %s of org %s: %w", team, org, ErrTeamNotFound)
	}
	if err != nil {
		return fmt.Errorf("team %s of org %s: %w", team, org, err)
	}
	if max <= 0 {
		return nil
	}
	var n int64
	if err := q.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE kind = ? AND org = ? AND team = ? AND deleted_at = 0`), string(KindSandbox), org, team).Scan(&n); err != nil {
		return fmt.Errorf("count sandboxes of team %s of org %s: %w", team, org, err)
	}
	if n >= max {
		return fmt.Errorf("team %s of org %s has %d of %d sandboxes: %w", team, org, n, max, ErrQuotaExceeded)
	}
	return nil
}

// ListOrgs returns a page of all orgs, by name (for admin keys).
func (s *Store) ListOrgs(ctx context.Context, p PageRequest) (Page[Org], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("orgs"), false, "name", scanOrg,
		func(o Org) (int64, string) { return 0, o.Name }, nil,
		`SELECT `+orgCols+` FROM orgs WHERE 1 = 1`)
	if err != nil {
		return Page[Org]{}, fmt.Errorf("list orgs: %w", err)
	}
	return pg, nil
}
