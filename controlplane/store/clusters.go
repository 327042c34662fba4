package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"
)

// Cluster is a registered Kubernetes cluster.
type Cluster struct {
	Org             string
	Name            string
	CreatedAt       time.Time
	OperatorVersion string
	LastSeenAt      time.Time
	// PreviewPolicy is the JSON of its preview policy (empty: the default).
	PreviewPolicy json.RawMessage
}

// CreateCluster registers a cluster; registering an existing one returns it unchanged.
func (s *Store) CreateCluster(ctx context.Context, org, name string) (Cluster, error) {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO clusters (org, name, created_at) VALUES (?, ?, ?) ON CONFLICT (org, name) DO NOTHING`), org, name, s.nowNano())
	if err != nil {
		return Cluster{}, fmt.Errorf("register cluster %s/%s: %w", org, name, err)
	}
	return s.GetCluster(ctx, org, name)
}

const clusterCols = `org, name, created_at, operator_version, last_seen_at, preview_policy`

func scanCluster(sc scanner) (Cluster, error) {
	var c Cluster
	var created, seen int64
	var policy string
	if err := sc.Scan(&c.Org, &c.Name, &created, &c.OperatorVersion, &seen, &policy); err != nil {
		return Cluster{}, err
	}
	c.CreatedAt, c.LastSeenAt = fromNano(created), fromNano(seen)
	if policy != "" {
		c.PreviewPolicy = json.RawMessage(policy)
	}
	return c, nil
}

// GetCluster returns a cluster or ErrNotFound.
func (s *Store) GetCluster(ctx context.Context, org, name string) (Cluster, error) {
	c, err := scanRow(ctx, s, s.db, scanCluster, `SELECT `+clusterCols+` FROM clusters WHERE org = ? AND name = ?`, org, name)
	if err != nil {
		return Cluster{}, fmt.Errorf("cluster %s/%s: %w", org, name, err)
	}
	return c, nil
}

// ListClusters returns a page of an org's clusters, by name.
func (s *Store) ListClusters(ctx context.Context, org string, p PageRequest) (Page[Cluster], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("clusters", org), false, "name", scanCluster,
		func(c Cluster) (int64, string) { return 0, c.Name }, nil,
		`SELECT `+clusterCols+` FROM clusters WHERE org = ?`, org)
	if err != nil {
		return Page[Cluster]{}, fmt.Errorf("list clusters of org %s: %w", org, err)
	}
	return pg, nil
}

// DeleteCluster removes a cluster and its tokens. It fails with ErrInUse while
// live sandboxes or route groups refer to it.
func (s *Store) DeleteCluster(ctx context.Context, org, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE org = ? AND cluster = ? AND deleted_at = 0`), org, name).Scan(&n); err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	if n > 0 {
		return fmt.Errorf("delete cluster %s/%s: %d sandboxes or route groups use it: %w", org, name, n, ErrInUse)
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM clusters WHERE org = ? AND name = ?`), org, name)
	if err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("cluster %s/%s: %w", org, name, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM cluster_tokens WHERE org = ? AND cluster = ?`), org, name); err != nil {
		return fmt.Errorf("delete tokens of cluster %s/%s: %w", org, name, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM cluster_workloads WHERE org = ? AND cluster = ?`), org, name); err != nil {
		return fmt.Errorf("delete workloads of cluster %s/%s: %w", org, name, err)
	}
	if err := s.commit(ctx, tx, Change{What: ChangeClusterDeleted, Org: org, Cluster: name}); err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	return nil
}

func (s *Store) clusterExistsInTx(ctx context.Context, tx *sql.Tx, org, cluster string) error {
	var n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM clusters WHERE org = ? AND name = ?`), org, cluster).Scan(&n); err != nil {
		return fmt.Errorf("cluster %s/%s: %w", org, cluster, err)
	}
	if n == 0 {
		return fmt.Errorf("cluster %q of org %s: %w", cluster, org, ErrClusterNotFound)
	}
	return nil
}
