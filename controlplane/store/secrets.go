package store

import (
	"context"
	"encoding/hex"
	"fmt"
)

// ---- secrets ----

// Secret returns the named server secret, creating a random one on first use.
// Replicas sharing a database share it.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), name, NewID(32))
	if err != nil {
		return nil, fmt.Errorf("create secret %s: %w", name, err)
	}
	var v string
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT value FROM secrets WHERE name = ?`), name).Scan(&v); err != nil {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	return hex.DecodeString(v)
}
