package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// Workloads is the last workload report of a cluster's agent: Data is the
// JSON list as the agent sent it, Hash its digest.
type Workloads struct {
	Hash       string
	Data       json.RawMessage
	ReportedAt time.Time
}

// SetWorkloads stores a cluster's workload report, replacing the previous one.
// It fails with ErrNotFound when the cluster is not registered.
func (s *Store) SetWorkloads(ctx context.Context, org, cluster, hash string, data json.RawMessage) error {
	if _, err := s.GetCluster(ctx, org, cluster); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO cluster_workloads (org, cluster, hash, data, reported_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (org, cluster) DO UPDATE SET hash = excluded.hash, data = excluded.data, reported_at = excluded.reported_at`), org, cluster, hash, string(data), s.nowNano())
	if err != nil {
		return fmt.Errorf("store workloads of cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}

func scanWorkloads(sc scanner) (Workloads, error) {
	var w Workloads
	var data string
	var at int64
	if err := sc.Scan(&w.Hash, &data, &at); err != nil {
		return Workloads{}, err
	}
	w.Data, w.ReportedAt = json.RawMessage(data), fromNano(at)
	return w, nil
}

// GetWorkloads returns a cluster's last workload report, or ErrNotFound when
// its agent has not reported yet.
func (s *Store) GetWorkloads(ctx context.Context, org, cluster string) (Workloads, error) {
	w, err := scanRow(ctx, s, s.db, scanWorkloads, `SELECT hash, data, reported_at FROM cluster_workloads WHERE org = ? AND cluster = ?`, org, cluster)
	if err != nil {
		return Workloads{}, fmt.Errorf("workloads of cluster %s/%s: %w", org, cluster, err)
	}
	return w, nil
}
