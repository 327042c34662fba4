package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ClusterToken is a stored cluster token; the token itself is only kept as a hash.
type ClusterToken struct {
	ID              string
	Org             string
	Cluster         string
	Hash            string
	Masked          string
	CreatedAt       time.Time
	LastConnectedAt time.Time
	LastConnectedIP string
}

// CreateClusterToken stores a token of an existing cluster.
func (s *Store) CreateClusterToken(ctx context.Context, t ClusterToken) (ClusterToken, error) {
	if _, err := s.GetCluster(ctx, t.Org, t.Cluster); err != nil {
		return ClusterToken{}, err
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO cluster_tokens (id, org, cluster, hash, masked, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		t.ID, t.Org, t.Cluster, t.Hash, t.Masked, t.CreatedAt.UnixNano())
	if err != nil {
		return ClusterToken{}, fmt.Errorf("create token for cluster %s/%s: %w", t.Org, t.Cluster, err)
	}
	return t, nil
}

const tokenCols = `id, org, cluster, hash, masked, created_at, last_connected_at, last_connected_ip`

func scanToken(sc scanner) (ClusterToken, error) {
	var t ClusterToken
	var created, last int64
	if err := sc.Scan(&t.ID, &t.Org, &t.Cluster, &t.Hash, &t.Masked, &created, &last, &t.LastConnectedIP); err != nil {
		return ClusterToken{}, err
	}
	t.CreatedAt, t.LastConnectedAt = fromNano(created), fromNano(last)
	return t, nil
}

// LookupClusterToken finds a token by hash; ErrNotFound otherwise.
func (s *Store) LookupClusterToken(ctx context.Context, hash string) (ClusterToken, error) {
	t, err := scanRow(ctx, s, s.db, scanToken, `SELECT `+tokenCols+` FROM cluster_tokens WHERE hash = ?`, hash)
	if err != nil {
		return ClusterToken{}, fmt.Errorf("lookup cluster token: %w", err)
	}
	return t, nil
}

// ListClusterTokens returns a page of a cluster's tokens, oldest first.
func (s *Store) ListClusterTokens(ctx context.Context, org, cluster string, p PageRequest) (Page[ClusterToken], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("clustertokens", org, cluster), true, "id", scanToken,
		func(t ClusterToken) (int64, string) { return t.CreatedAt.UnixNano(), t.ID }, nil,
		`SELECT `+tokenCols+` FROM cluster_tokens WHERE org = ? AND cluster = ?`, org, cluster)
	if err != nil {
		return Page[ClusterToken]{}, fmt.Errorf("list tokens of cluster %s/%s: %w", org, cluster, err)
	}
	return pg, nil
}

// GetClusterToken returns one token of a cluster.
func (s *Store) GetClusterToken(ctx context.Context, org, cluster, id string) (ClusterToken, error) {
	t, err := scanRow(ctx, s, s.db, scanToken, `SELECT `+tokenCols+` FROM cluster_tokens WHERE org = ? AND cluster = ? AND id = ?`, org, cluster, id)
	if err != nil {
		return ClusterToken{}, fmt.Errorf("token %s of cluster %s/%s: %w", id, org, cluster, err)
	}
	return t, nil
}

// DeleteClusterToken deletes a token of a cluster.
func (s *Store) DeleteClusterToken(ctx context.Context, org, cluster, id string) error {
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM cluster_tokens WHERE org = ? AND cluster = ? AND id = ?`), org, cluster, id)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, ErrNotFound
		}
		return []Change{{What: ChangeClusterTokenDeleted, Org: org, Cluster: cluster, Name: id}}, nil
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("token %s of cluster %s/%s: %w", id, org, cluster, err)
	}
	if err != nil {
		return fmt.Errorf("delete token %s of cluster %s/%s: %w", id, org, cluster, err)
	}
	return nil
}

// TouchClusterToken records an agent connection.
func (s *Store) TouchClusterToken(ctx context.Context, id, ip, operatorVersion string) error {
	now := s.nowNano()
	var org, cluster string
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT org, cluster FROM cluster_tokens WHERE id = ?`), id).Scan(&org, &cluster); err != nil {
		return fmt.Errorf("touch cluster token %s: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE cluster_tokens SET last_connected_at = ?, last_connected_ip = ? WHERE id = ?`), now, ip, id); err != nil {
		return fmt.Errorf("touch cluster token %s: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE clusters SET last_seen_at = ?, operator_version = CASE WHEN ? = '' THEN operator_version ELSE ? END WHERE org = ? AND name = ?`),
		now, operatorVersion, operatorVersion, org, cluster); err != nil {
		return fmt.Errorf("touch cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}
