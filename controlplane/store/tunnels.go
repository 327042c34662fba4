package store

import (
	"context"
	"fmt"
	"time"
)

// TunnelOwner is the replica holding a cluster's agent tunnel.
type TunnelOwner struct {
	ReplicaID string
	// URL reaches that replica from the other replicas.
	URL       string
	ExpiresAt time.Time
}

// ClaimTunnel records (or renews) that replica holds the tunnel of
// org/cluster until now+ttl; the newest claim wins (an agent reconnecting to
// another replica moves the tunnel there).
func (s *Store) ClaimTunnel(ctx context.Context, org, cluster, replicaID, url string, ttl time.Duration) error {
	exp := s.now().Add(ttl).UTC().UnixNano()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tunnel_owners (org, cluster, replica_id, url, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (org, cluster) DO UPDATE SET replica_id = excluded.replica_id, url = excluded.url, expires_at = excluded.expires_at`), org, cluster, replicaID, url, exp)
	if err != nil {
		return fmt.Errorf("claim tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}

// RenewTunnel extends replica's claim on the tunnel of org/cluster to
// now+ttl, or takes it when nobody holds it (no claim, or an expired one); a
// live claim of another replica is left alone (that replica got a newer
// connection of the agent, e.g. while this one still holds a half-dead
// tunnel). It reports whether replica holds the claim afterwards.
func (s *Store) RenewTunnel(ctx context.Context, org, cluster, replicaID, url string, ttl time.Duration) (bool, error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tunnel_owners (org, cluster, replica_id, url, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (org, cluster) DO UPDATE SET replica_id = excluded.replica_id, url = excluded.url, expires_at = excluded.expires_at
WHERE tunnel_owners.replica_id = excluded.replica_id OR tunnel_owners.expires_at <= ?`), org, cluster, replicaID, url, now.Add(ttl).UTC().UnixNano(), now.UTC().UnixNano())
	if err != nil {
		return false, fmt.Errorf("renew tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	return n > 0, nil
}

// ReleaseTunnel drops replica's claim on the tunnel of org/cluster (a newer
// claim of another replica stays).
func (s *Store) ReleaseTunnel(ctx context.Context, org, cluster, replicaID string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM tunnel_owners WHERE org = ? AND cluster = ? AND replica_id = ?`), org, cluster, replicaID); err != nil {
		return fmt.Errorf("release tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}

func scanTunnelOwner(sc scanner) (TunnelOwner, error) {
	var o TunnelOwner
	var exp int64
	if err := sc.Scan(&o.ReplicaID, &o.URL, &exp); err != nil {
		return TunnelOwner{}, err
	}
	o.ExpiresAt = fromNano(exp)
	return o, nil
}

// GetTunnelOwner returns the replica holding the tunnel of org/cluster, or
// ErrNotFound when no unexpired claim exists.
func (s *Store) GetTunnelOwner(ctx context.Context, org, cluster string) (TunnelOwner, error) {
	o, err := scanRow(ctx, s, s.db, scanTunnelOwner, `SELECT replica_id, url, expires_at FROM tunnel_owners WHERE org = ? AND cluster = ? AND expires_at > ?`, org, cluster, s.nowNano())
	if err != nil {
		return TunnelOwner{}, fmt.Errorf("tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	return o, nil
}
