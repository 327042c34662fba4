package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// TestWatch checks that every write with effects outside the database is
// reported once, after it succeeded, and that failed or no-op writes are not.
func TestWatch(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1", "c2")
		if _, err := s.CreateAPIKey(ctx, store.APIKey{ID: "k1", Org: "acme", Name: "ci", Hash: "h1", Masked: "m"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateClusterToken(ctx, store.ClusterToken{ID: "t1", Org: "acme", Cluster: "c2", Hash: "th", Masked: "m"}); err != nil {
			t.Fatal(err)
		}
		var (
			mu  sync.Mutex
			got []store.Change
		)
		s.Watch(func(c store.Change) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, c)
		})
		sb := func(what store.ChangeKind) store.Change {
			return store.Change{What: what, Org: "acme", Cluster: "c1", Name: "sb", Kind: store.KindSandbox}
		}
		for _, tc := range []struct {
			name  string
			write func() error
			want  []store.Change
		}{
			{"create", func() error { _, _, err := apply(s, "acme", "sb", "c1", `{"cluster":"c1"}`); return err }, []store.Change{sb(store.ChangeObject)}},
			{"identical apply writes nothing", func() error { _, _, err := apply(s, "acme", "sb", "c1", `{"cluster":"c1"}`); return err }, nil},
			{"update", func() error { _, _, err := apply(s, "acme", "sb", "c1", `{"cluster":"c1","x":1}`); return err }, []store.Change{sb(store.ChangeObject)}},
			{"failed apply", func() error {
				_, _, err := apply(s, "acme", "sb", "c2", `{"cluster":"c2"}`)
				return ignore(err, store.ErrImmutable)
			}, nil},
			{"status", func() error {
				return s.SetStatus(ctx, store.KindSandbox, "acme", "c1", "sb", 2, json.RawMessage(`{"ready":true}`))
			}, []store.Change{sb(store.ChangeStatus)}},
			{"stale status", func() error {
				return ignore(s.SetStatus(ctx, store.KindSandbox, "acme", "c1", "sb", 1, json.RawMessage(`{}`)), store.ErrConflict)
			}, nil},
			{"delete", func() error { return s.Delete(ctx, store.KindSandbox, "acme", "sb") }, []store.Change{sb(store.ChangeObject)}},
			{"delete missing", func() error { return ignore(s.Delete(ctx, store.KindSandbox, "acme", "sb"), store.ErrNotFound) }, nil},
			{"revoke key", func() error { return s.RevokeAPIKey(ctx, "acme", "k1") }, []store.Change{{What: store.ChangeAPIKeyRevoked, Org: "acme", Name: "k1"}}},
			{"revoke again", func() error { return ignore(s.RevokeAPIKey(ctx, "acme", "k1"), store.ErrNotFound) }, nil},
			{"delete token", func() error { return s.DeleteClusterToken(ctx, "acme", "c2", "t1") }, []store.Change{{What: store.ChangeClusterTokenDeleted, Org: "acme", Cluster: "c2", Name: "t1"}}},
			{"delete cluster", func() error { return s.DeleteCluster(ctx, "acme", "c2") }, []store.Change{{What: store.ChangeClusterDeleted, Org: "acme", Cluster: "c2"}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				mu.Lock()
				got = nil
				mu.Unlock()
				if err := tc.write(); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				defer mu.Unlock()
				if !slices.Equal(got, tc.want) {
					t.Fatalf("changes = %+v, want %+v", got, tc.want)
				}
			})
		}
	})
}

// ignore returns nil when err is want, and an error otherwise (also when err is nil).
func ignore(err, want error) error {
	if err == nil {
		return fmt.Errorf("write succeeded, want %w", want)
	}
	if errors.Is(err, want) {
		return nil
	}
	return err
}
