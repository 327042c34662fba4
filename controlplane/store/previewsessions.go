package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Preview session kinds.
const (
	// PreviewLogin is a login link: used once, within minutes.
	PreviewLogin = "login"
	// PreviewSession is the browser session a login link opens (the cookie).
	PreviewSession = "session"
)

// PreviewSessionRecord is a stored preview login link or session; the
// secret itself is only kept as a hash.
type PreviewSessionRecord struct {
	Hash string
	// Kind is PreviewLogin or PreviewSession.
	Kind string
	Org  string
	// ObjectKind and Name are the sandbox (or route group) it opens.
	ObjectKind Kind
	Name       string
	Endpoint   string
	// RoutingKey identifies the object's incarnation: a sandbox deleted and
	// created again has a new one.
	RoutingKey string
	// KeyID is the API key that made the link; revoking it ends the session.
	KeyID     string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time
}

// CreatePreviewSession stores a login link or session.
func (s *Store) CreatePreviewSession(ctx context.Context, r PreviewSessionRecord) error {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO preview_sessions (id_hash, kind, org, object_kind, name, endpoint, routing_key, key_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		r.Hash, r.Kind, r.Org, string(r.ObjectKind), r.Name, r.Endpoint, r.RoutingKey, r.KeyID, r.CreatedAt.UnixNano(), r.ExpiresAt.UTC().UnixNano())
	if err != nil {
		return fmt.Errorf("create preview %s for %s %s/%s: %w", r.Kind, r.ObjectKind, r.Org, r.Name, err)
	}
	return nil
}

const previewCols = `id_hash, kind, org, object_kind, name, endpoint, routing_key, key_id, created_at, expires_at, used_at`

func scanPreview(sc interface{ Scan(...any) error }) (PreviewSessionRecord, error) {
	var r PreviewSessionRecord
	var kind string
	var created, expires, used int64
	if err := sc.Scan(&r.Hash, &r.Kind, &r.Org, &kind, &r.Name, &r.Endpoint, &r.RoutingKey, &r.KeyID, &created, &expires, &used); err != nil {
		return PreviewSessionRecord{}, err
	}
	r.ObjectKind = Kind(kind)
	r.CreatedAt, r.ExpiresAt, r.UsedAt = fromNano(created), fromNano(expires), fromNano(used)
	return r, nil
}

// keyLive is the condition that the record's API key is not revoked.
const keyLive = `EXISTS (SELECT 1 FROM api_keys k WHERE k.id = preview_sessions.key_id AND k.revoked_at = 0)`

// ConsumePreviewLogin uses up a login link opened at endpoint of name: it
// succeeds once (atomically, also between replicas) for an unexpired link to
// that endpoint whose API key is not revoked, and fails with ErrNotFound
// otherwise.
func (s *Store) ConsumePreviewLogin(ctx context.Context, hash, name, endpoint string) (PreviewSessionRecord, error) {
	now := s.nowNano()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE preview_sessions SET used_at = ? WHERE id_hash = ? AND kind = 'login' AND name = ? AND endpoint = ? AND used_at = 0 AND expires_at > ? AND `+keyLive), now, hash, name, endpoint, now)
	if err != nil {
		return PreviewSessionRecord{}, fmt.Errorf("use preview login link: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return PreviewSessionRecord{}, fmt.Errorf("preview login link (unknown, used, expired or its API key revoked): %w", ErrNotFound)
	}
	r, err := scanPreview(s.db.QueryRowContext(ctx, s.q(`SELECT `+previewCols+` FROM preview_sessions WHERE id_hash = ?`), hash))
	if err != nil {
		return PreviewSessionRecord{}, fmt.Errorf("read preview login link: %w", err)
	}
	return r, nil
}

// GetPreviewSession returns an unexpired session whose API key is not
// revoked, or ErrNotFound.
func (s *Store) GetPreviewSession(ctx context.Context, hash string) (PreviewSessionRecord, error) {
	r, err := scanPreview(s.db.QueryRowContext(ctx, s.q(`SELECT `+previewCols+` FROM preview_sessions WHERE id_hash = ? AND kind = 'session' AND expires_at > ? AND `+keyLive), hash, s.nowNano()))
	if errors.Is(err, sql.ErrNoRows) {
		return PreviewSessionRecord{}, fmt.Errorf("preview session (unknown, expired or its API key revoked): %w", ErrNotFound)
	}
	if err != nil {
		return PreviewSessionRecord{}, fmt.Errorf("get preview session: %w", err)
	}
	return r, nil
}

// PurgePreviewSessions deletes login links and sessions that expired before before.
func (s *Store) PurgePreviewSessions(ctx context.Context, before time.Time) (int64, error) {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM preview_sessions WHERE expires_at < ?`), before.UTC().UnixNano())
	if err != nil {
		return 0, fmt.Errorf("purge preview sessions: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
