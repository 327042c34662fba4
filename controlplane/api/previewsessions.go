package api

import (
	"context"
	"fmt"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/preview"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Preview login links and sessions live in the store (by hash): a link is
// used once, at the endpoint it was made for, within loginLinkTTL; the
// session it opens (the preview cookie) lasts sessionTTL. Both end when the
// API key that made the link is revoked, and both are bound to the
// sandbox's incarnation (its routing key): a sandbox deleted and created
// again under the same name does not accept them.

const (
	loginLinkTTL = 5 * time.Minute
	sessionTTL   = 12 * time.Hour
)

// RedeemLogin implements preview.Resolver.
func (s *Server) RedeemLogin(ctx context.Context, token, name, endpoint string) (string, time.Time, error) {
	rec, err := s.st.ConsumePreviewLogin(ctx, HashSecret(token), name, endpoint)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("login link for %s of %s: %w (%w)", endpoint, name, preview.ErrBadToken, err)
	}
	if err := s.sameIncarnation(ctx, rec); err != nil {
		return "", time.Time{}, err
	}
	sess := NewSecret(preview.TokenPrefix)
	exp := time.Now().Add(sessionTTL)
	rec.Hash, rec.Kind, rec.ExpiresAt, rec.CreatedAt, rec.UsedAt = HashSecret(sess), store.PreviewSession, exp, time.Time{}, time.Time{}
	if err := s.st.CreatePreviewSession(ctx, rec); err != nil {
		return "", time.Time{}, err
	}
	return sess, exp, nil
}

// Session implements preview.Resolver.
func (s *Server) Session(ctx context.Context, token, name, endpoint string) (string, error) {
	now := time.Now()
	h := HashSecret(token)
	rec, ok := s.sessionCache.get(h, now)
	if !ok {
		var err error
		if rec, err = s.st.GetPreviewSession(ctx, h); err != nil {
			return "", fmt.Errorf("preview session: %w (%w)", preview.ErrBadToken, err)
		}
		if err := s.sameIncarnation(ctx, rec); err != nil {
			return "", err
		}
		s.sessionCache.put(h, rec, now)
	}
	if rec.Name != name || rec.Endpoint != endpoint {
		return "", fmt.Errorf("preview session of %s of %s used for %s of %s: %w", rec.Endpoint, rec.Name, endpoint, name, preview.ErrBadToken)
	}
	return rec.Org, nil
}

// sameIncarnation checks that the object a link or session was made for still
// exists as that incarnation (same routing key).
func (s *Server) sameIncarnation(ctx context.Context, rec store.PreviewSessionRecord) error {
	o, err := s.st.Get(ctx, rec.ObjectKind, rec.Org, rec.Name)
	if err != nil {
		return fmt.Errorf("preview of %s %s/%s: %w (%w)", rec.ObjectKind, rec.Org, rec.Name, preview.ErrBadToken, err)
	}
	if o.RoutingKey != rec.RoutingKey {
		return fmt.Errorf("preview of %s %s/%s: deleted and created again since the link was made: %w", rec.ObjectKind, rec.Org, rec.Name, preview.ErrBadToken)
	}
	return nil
}

// credentialsChanged drops cached key checks and preview sessions (after a
// revocation, made through any replica: see followChanges).
func (s *Server) credentialsChanged() {
	s.keyCache.clear()
	s.sessionCache.clear()
}
