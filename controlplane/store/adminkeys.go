package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Admin keys act on every org (Org is empty). They have their own lifecycle:
// listed, created, revoked and rotated by admin keys only; the last
// unrevoked admin key cannot be revoked (that would lock every admin out).

// ErrLastAdminKey means the operation would leave no unrevoked admin key.
var ErrLastAdminKey = errors.New("it is the last admin key")

// ErrBootstrapIgnored means the bootstrap key from the environment was not
// applied, because the control plane was bootstrapped before (see
// BootstrapAdminKey).
var ErrBootstrapIgnored = errors.New("bootstrap key ignored")

// ListAdminKeys lists the admin keys, revoked ones included, oldest first.
func (s *Store) ListAdminKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+apiKeyCols+` FROM api_keys WHERE admin = 1 ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list admin keys: %w", err)
	}
	defer rows.Close()
	out := []APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list admin keys: %w", err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// lockAdminKeys returns the ids of the unrevoked admin keys inside tx, locking
// their rows on PostgreSQL (SQLite transactions take the write lock at BEGIN),
// so that two concurrent revocations cannot both pass the last-key check.
func (s *Store) lockAdminKeys(ctx context.Context, tx *sql.Tx) (map[string]bool, error) {
	q := `SELECT id FROM api_keys WHERE admin = 1 AND revoked_at = 0`
	if s.pgStyle {
		q += ` FOR UPDATE`
	}
	rows, err := tx.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	ids := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids[id] = true
	}
	return ids, rows.Err()
}

// RevokeAdminKey revokes an admin key. It fails with ErrNotFound for an
// unknown, revoked or non-admin key and with ErrLastAdminKey when it is the
// last unrevoked admin key.
func (s *Store) RevokeAdminKey(ctx context.Context, id string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("revoke admin key %s: %w", id, err)
	}
	defer tx.Rollback()
	live, err := s.lockAdminKeys(ctx, tx)
	if err != nil {
		return fmt.Errorf("revoke admin key %s: %w", id, err)
	}
	if !live[id] {
		return fmt.Errorf("admin key %s: %w", id, ErrNotFound)
	}
	if len(live) == 1 {
		return fmt.Errorf("revoke admin key %s: %w", id, ErrLastAdminKey)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND admin = 1`), s.nowNano(), id); err != nil {
		return fmt.Errorf("revoke admin key %s: %w", id, err)
	}
	if err := s.commit(ctx, tx, Change{What: ChangeAPIKeyRevoked, Name: id}); err != nil {
		return fmt.Errorf("revoke admin key %s: %w", id, err)
	}
	return nil
}

// RotateAdminKey stores next (an admin key) and revokes the admin key id in
// one transaction. It fails with ErrNotFound when id is not an unrevoked
// admin key.
func (s *Store) RotateAdminKey(ctx context.Context, id string, next APIKey) (APIKey, error) {
	next.Admin, next.Org = true, ""
	if next.CreatedAt.IsZero() {
		next.CreatedAt = s.now().UTC()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return APIKey{}, fmt.Errorf("rotate admin key %s: %w", id, err)
	}
	defer tx.Rollback()
	live, err := s.lockAdminKeys(ctx, tx)
	if err != nil {
		return APIKey{}, fmt.Errorf("rotate admin key %s: %w", id, err)
	}
	if !live[id] {
		return APIKey{}, fmt.Errorf("admin key %s: %w", id, ErrNotFound)
	}
	if err := s.insertAPIKey(ctx, tx, next); err != nil {
		return APIKey{}, fmt.Errorf("rotate admin key %s: %w", id, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE id = ?`), s.nowNano(), id); err != nil {
		return APIKey{}, fmt.Errorf("rotate admin key %s: %w", id, err)
	}
	if err := s.commit(ctx, tx, Change{What: ChangeAPIKeyRevoked, Name: id}); err != nil {
		return APIKey{}, fmt.Errorf("rotate admin key %s: %w", id, err)
	}
	return next, nil
}

// insertAPIKey is the one INSERT of an API key, through the database or a transaction.
func (s *Store) insertAPIKey(ctx context.Context, q execer, k APIKey) error {
	_, err := q.ExecContext(ctx, s.q(`INSERT INTO api_keys (id, org, name, hash, masked, admin, owner_user, service_account, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		k.ID, k.Org, k.Name, k.Hash, k.Masked, boolInt(k.Admin), k.OwnerUser, k.ServiceAccount, k.CreatedAt.UnixNano())
	return err
}

// BootstrapRecord says which bootstrap key from the environment was applied.
type BootstrapRecord struct {
	KeyHash   string
	KeyID     string
	AppliedAt time.Time
}

// BootstrapAdminKey applies the admin key k given in the environment, once:
//   - the same key applied before (recorded by its hash): nothing changes,
//     even when it has been revoked since; created is false;
//   - another key applied before: ErrBootstrapIgnored;
//   - nothing recorded, and k exists already (an older version applied it):
//     it is recorded; created is false;
//   - nothing recorded and unrevoked admin keys exist (the first start
//     generated one): ErrBootstrapIgnored, nothing is added;
//   - else k is stored as an admin key and recorded; created is true.
func (s *Store) BootstrapAdminKey(ctx context.Context, k APIKey) (created bool, err error) {
	k.Admin, k.Org = true, ""
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now().UTC()
	}
	for attempt := 0; ; attempt++ {
		created, err = s.bootstrapOnce(ctx, k)
		if errors.Is(err, errRetry) && attempt < 5 {
			continue
		}
		return created, err
	}
}

func (s *Store) bootstrapOnce(ctx context.Context, k APIKey) (bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	defer tx.Rollback()
	var rec BootstrapRecord
	var at int64
	err = tx.QueryRowContext(ctx, `SELECT key_hash, key_id, applied_at FROM bootstrap_record WHERE name = 'admin-key'`).Scan(&rec.KeyHash, &rec.KeyID, &at)
	switch {
	case err == nil && rec.KeyHash == k.Hash:
		return false, nil
	case err == nil:
		return false, fmt.Errorf("another bootstrap key (admin key %s) was applied at %s: %w", rec.KeyID, fromNano(at).Format(time.RFC3339), ErrBootstrapIgnored)
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	record := func(id string) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO bootstrap_record (name, key_hash, key_id, applied_at) VALUES ('admin-key', ?, ?, ?) ON CONFLICT (name) DO NOTHING`), k.Hash, id, s.nowNano())
		if err != nil {
			return fmt.Errorf("bootstrap admin key: record: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return errRetry // another replica bootstrapped meanwhile
		}
		return nil
	}
	var existing string
	err = tx.QueryRowContext(ctx, s.q(`SELECT id FROM api_keys WHERE hash = ?`), k.Hash).Scan(&existing)
	switch {
	case err == nil:
		if err := record(existing); err != nil {
			return false, err
		}
		return false, tx.Commit()
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	var n int64
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys WHERE admin = 1 AND revoked_at = 0`).Scan(&n); err != nil {
		return false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	if n > 0 {
		return false, fmt.Errorf("%d admin keys exist already (the first start made one); the variable only takes effect at the first start: %w", n, ErrBootstrapIgnored)
	}
	if err := record(k.ID); err != nil { // first: a concurrent bootstrap waits here, then retries
		return false, err
	}
	if err := s.insertAPIKey(ctx, tx, k); err != nil {
		return false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("bootstrap admin key: %w", err)
	}
	return true, nil
}
