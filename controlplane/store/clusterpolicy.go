package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
)

// GetPreviewPolicy returns the JSON preview policy of a cluster (nil when it
// has none: the default policy), or ErrNotFound for an unknown cluster.
func (s *Store) GetPreviewPolicy(ctx context.Context, org, cluster string) (json.RawMessage, error) {
	var p string
	err := s.db.QueryRowContext(ctx, s.q(`SELECT preview_policy FROM clusters WHERE org = ? AND name = ?`), org, cluster).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("cluster %s/%s: %w", org, cluster, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("preview policy of cluster %s/%s: %w", org, cluster, err)
	}
	if p == "" {
		return nil, nil
	}
	return json.RawMessage(p), nil
}

// SetPreviewPolicy stores the JSON preview policy of a cluster; ErrNotFound
// for an unknown cluster.
func (s *Store) SetPreviewPolicy(ctx context.Context, org, cluster string, policy json.RawMessage) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE clusters SET preview_policy = ? WHERE org = ? AND name = ?`), string(policy), org, cluster)
	if err != nil {
		return fmt.Errorf("set preview policy of cluster %s/%s: %w", org, cluster, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("cluster %s/%s: %w", org, cluster, ErrNotFound)
	}
	return nil
}
