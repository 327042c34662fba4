package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// APIKey is a stored API key; the key itself is only kept as a hash.
type APIKey struct {
	ID   string
	Org  string // empty for admin keys, which may act on every org
	Name string
	// Hash is the hex SHA-256 of the key.
	Hash   string
	Masked string
	Admin  bool
	// OwnerUser is the user who owns the key (it acts with the user's role
	// in Org); ServiceAccount the service account that owns it. Both are
	// empty for admin keys and for org keys made before users existed, which
	// act as org admins.
	OwnerUser      string
	ServiceAccount string
	CreatedAt      time.Time
	RevokedAt      time.Time
	// LastUsedAt is when the key last authenticated a request, to within
	// APIKeyUseResolution (zero: never).
	LastUsedAt time.Time
}

// APIKeyUseResolution is how fresh LastUsedAt is kept: a key's use is
// written at most once per this period, so a busy key costs one write a
// minute, not one per request.
const APIKeyUseResolution = time.Minute

// CreateAPIKey stores a key.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now().UTC()
	}
	if k.ServiceAccount != "" {
		if _, err := s.GetServiceAccount(ctx, k.Org, k.ServiceAccount); err != nil {
			return APIKey{}, fmt.Errorf("create api key %s: %w", k.ID, err)
		}
	}
	if err := s.insertAPIKey(ctx, s.db, k); err != nil {
		return APIKey{}, fmt.Errorf("create api key %s in org %s: %w", k.ID, k.Org, err)
	}
	return k, nil
}

const apiKeyCols = `id, org, name, hash, masked, admin, owner_user, service_account, created_at, revoked_at, last_used_at`

func scanAPIKey(sc scanner) (APIKey, error) {
	var k APIKey
	var admin, created, revoked, used int64
	if err := sc.Scan(&k.ID, &k.Org, &k.Name, &k.Hash, &k.Masked, &admin, &k.OwnerUser, &k.ServiceAccount, &created, &revoked, &used); err != nil {
		return APIKey{}, err
	}
	k.Admin = admin != 0
	k.CreatedAt, k.RevokedAt, k.LastUsedAt = fromNano(created), fromNano(revoked), fromNano(used)
	return k, nil
}

// LookupAPIKey finds an unrevoked key by its hash; ErrNotFound otherwise.
func (s *Store) LookupAPIKey(ctx context.Context, hash string) (APIKey, error) {
	k, err := scanRow(ctx, s, s.db, scanAPIKey, `SELECT `+apiKeyCols+` FROM api_keys WHERE hash = ? AND revoked_at = 0`, hash)
	if err != nil {
		return APIKey{}, fmt.Errorf("lookup api key: %w", err)
	}
	return k, nil
}

// TouchAPIKey records that key k (as looked up) authenticated a request now,
// unless its recorded use is younger than APIKeyUseResolution (then it writes
// nothing).
func (s *Store) TouchAPIKey(ctx context.Context, k APIKey) error {
	now := s.now().UTC()
	if now.Sub(k.LastUsedAt) < APIKeyUseResolution {
		return nil
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE api_keys SET last_used_at = ? WHERE id = ? AND last_used_at < ?`),
		now.UnixNano(), k.ID, now.Add(-APIKeyUseResolution).UnixNano()); err != nil {
		return fmt.Errorf("record use of api key %s: %w", k.ID, err)
	}
	return nil
}

// ListAPIKeys returns a page of an org's keys (revoked ones included), oldest first.
func (s *Store) ListAPIKeys(ctx context.Context, org string, p PageRequest) (Page[APIKey], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("apikeys", org), true, "id", scanAPIKey,
		func(k APIKey) (int64, string) { return k.CreatedAt.UnixNano(), k.ID }, nil,
		`SELECT `+apiKeyCols+` FROM api_keys WHERE org = ?`, org)
	if err != nil {
		return Page[APIKey]{}, fmt.Errorf("list api keys of org %s: %w", org, err)
	}
	return pg, nil
}

// APIKeyOwner selects the keys of one owner: a user (User) or a service
// account (ServiceAccount); exactly one is set.
type APIKeyOwner struct {
	User           string
	ServiceAccount string
}

// ListAPIKeysOf returns a page of the keys of one owner in org (revoked ones
// included), oldest first.
func (s *Store) ListAPIKeysOf(ctx context.Context, org string, owner APIKeyOwner) func(PageRequest) (Page[APIKey], error) {
	return func(p PageRequest) (Page[APIKey], error) {
		col, val := "owner_user", owner.User
		if owner.ServiceAccount != "" {
			col, val = "service_account", owner.ServiceAccount
		}
		if val == "" {
			return Page[APIKey]{}, fmt.Errorf("list api keys of org %s: no owner given", org)
		}
		pg, err := scanPage(ctx, s, p, scopeOf("apikeys-of", org, col, val), true, "id", scanAPIKey,
			func(k APIKey) (int64, string) { return k.CreatedAt.UnixNano(), k.ID }, nil,
			`SELECT `+apiKeyCols+` FROM api_keys WHERE org = ? AND `+col+` = ?`, org, val)
		if err != nil {
			return Page[APIKey]{}, fmt.Errorf("list api keys of %s %s in org %s: %w", col, val, org, err)
		}
		return pg, nil
	}
}

// GetAPIKey returns a key of an org (revoked or not); ErrNotFound otherwise.
func (s *Store) GetAPIKey(ctx context.Context, org, id string) (APIKey, error) {
	k, err := scanRow(ctx, s, s.db, scanAPIKey, `SELECT `+apiKeyCols+` FROM api_keys WHERE org = ? AND id = ? AND admin = 0`, org, id)
	if err != nil {
		return APIKey{}, fmt.Errorf("api key %s of org %s: %w", id, org, err)
	}
	return k, nil
}

// RevokeAPIKey revokes a key of an org.
func (s *Store) RevokeAPIKey(ctx context.Context, org, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE org = ? AND id = ? AND revoked_at = 0`), s.nowNano(), org, id)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, ErrNotFound
		}
		return []Change{{What: ChangeAPIKeyRevoked, Org: org, Name: id}}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("api key %s of org %s: %w", id, org, err)
	}
	if err != nil {
		return fmt.Errorf("revoke api key %s of org %s: %w", id, org, err)
	}
	return nil
}

// HasAdminKey reports whether any unrevoked admin key exists.
func (s *Store) HasAdminKey(ctx context.Context) (bool, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys WHERE admin = 1 AND revoked_at = 0`).Scan(&n); err != nil {
		return false, fmt.Errorf("count admin keys: %w", err)
	}
	return n > 0, nil
}
