package api_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// TestAdminKeyLifecycle: admin keys are listed, created, revoked and rotated
// under /api/v2/admin/apikeys by admin keys only; the last one cannot be revoked.
func TestAdminKeyLifecycle(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		works := func(key string) bool {
			_, err := e.client(key).GetOrg(ctx, "acme")
			return err == nil
		}
		list, err := e.admin.ListAdminKeys(ctx)
		if err != nil || len(list) != 1 || list[0].Name != "bootstrap-admin" || list[0].MaskedValue == "" || list[0].Key != "" {
			t.Fatalf("list: %+v %v", list, err)
		}
		bootID := list[0].ID

		t.Run("org keys are refused", func(t *testing.T) {
			if _, err := e.acme.ListAdminKeys(ctx); apiErr(t, err).Status != http.StatusForbidden {
				t.Fatal(err)
			}
			if _, err := e.acme.CreateAdminKey(ctx, "x"); apiErr(t, err).Status != http.StatusForbidden {
				t.Fatal(err)
			}
			if err := e.acme.RevokeAdminKey(ctx, bootID); apiErr(t, err).Status != http.StatusForbidden {
				t.Fatal(err)
			}
			if _, err := e.acme.RotateAdminKey(ctx, bootID); apiErr(t, err).Status != http.StatusForbidden {
				t.Fatal(err)
			}
			// An admin key is not an org key: the org routes do not reach it.
			if err := e.acme.RevokeAPIKey(ctx, "acme", bootID); !errors.Is(err, client.ErrNotFound) {
				t.Fatal(err)
			}
		})

		second, err := e.admin.CreateAdminKey(ctx, "ci-admin")
		if err != nil || second.Key == "" || !works(second.Key) {
			t.Fatalf("create: %+v %v", second, err)
		}
		if _, err := e.admin.CreateAdminKey(ctx, "bad\x1b[2Jname"); !errors.Is(err, client.ErrInvalid) || apiErr(t, err).Fields[0].Path != "name" {
			t.Fatalf("control characters in the name: %v", err)
		}

		t.Run("rotate", func(t *testing.T) {
			c2 := e.client(second.Key)
			next, err := c2.RotateAdminKey(ctx, second.ID)
			if err != nil || next.Name != "ci-admin" || next.ID == second.ID || next.Key == "" {
				t.Fatalf("rotate: %+v %v", next, err)
			}
			if works(second.Key) || !works(next.Key) {
				t.Fatal("after rotation the old key must fail and the new one work")
			}
			if _, err := e.admin.RotateAdminKey(ctx, second.ID); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("rotating a revoked key: %v", err)
			}
			second = next
		})

		t.Run("revoke", func(t *testing.T) {
			if err := e.client(second.Key).RevokeAdminKey(ctx, bootID); err != nil {
				t.Fatal(err)
			}
			if works(e.adminSecret) {
				t.Fatal("the revoked bootstrap key still works")
			}
			if err := e.client(second.Key).RevokeAdminKey(ctx, bootID); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("revoke twice: %v", err)
			}
			err := e.client(second.Key).RevokeAdminKey(ctx, second.ID)
			if !errors.Is(err, client.ErrConflict) || !strings.Contains(err.Error(), "last admin key") {
				t.Fatalf("revoking the last admin key: %v", err)
			}
			list, _ := e.client(second.Key).ListAdminKeys(ctx)
			var live int
			for _, k := range list {
				if k.RevokedAt == "" {
					live++
				}
			}
			if len(list) != 3 || live != 1 {
				t.Fatalf("list after revocations: %+v", list)
			}
		})
	})
}

func TestCheckKeyStrength(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"changeme", false},
		{"smk_short", false},
		{"smk_fromtheenvironment0000000000", false},
		{"passwordpasswordpasswordpassword", false},
		{strings.Repeat("a", 64), false},
		{"smk_ab cdefghijklmnopqrstuvwxyz234567", false},
		{"smk_abcdefghijklmnopqrstuvwxyz2345é7", false},
		{api.NewSecret(api.APIKeyPrefix), true},
		{"smk_demo_0f3a9c1b7e2d4a6f8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e", true},
		{"3c2f7e9a1b4d6c8e0f2a4b6c8d0e1f3a", true}, // openssl rand -hex 16
	} {
		err := api.CheckKeyStrength(tc.key)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, api.ErrWeakKey)) {
			t.Errorf("%q: %v, want ok=%v", tc.key, err, tc.ok)
		}
	}
}

// TestBootstrapKeyOnce: SANDBOXMESH_BOOTSTRAP_KEY takes effect once.
func TestBootstrapKeyOnce(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			k1, k2 := api.NewSecret(api.APIKeyPrefix), api.NewSecret(api.APIKeyPrefix)
			admins := func(e *env) int {
				l, err := e.st.ListAdminKeys(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return len(l)
			}
			t.Run("weak key refused", func(t *testing.T) {
				st := storetest.Open(t, d)
				if _, _, err := api.Bootstrap(ctx, st, "default", "changeme"); !errors.Is(err, api.ErrWeakKey) {
					t.Fatalf("changeme: %v", err)
				}
				if has, _ := st.HasAdminKey(ctx); has {
					t.Fatal("a weak key was stored")
				}
			})
			t.Run("first start with the key, then restarts", func(t *testing.T) {
				st := storetest.Open(t, d)
				key, created, err := api.Bootstrap(ctx, st, "acme", k1)
				if err != nil || !created || key != k1 {
					t.Fatalf("first start: %v %v", created, err)
				}
				if _, created, err := api.Bootstrap(ctx, st, "acme", k1); err != nil || created {
					t.Fatalf("restart with the same key: %v %v", created, err)
				}
				if _, _, err := api.Bootstrap(ctx, st, "acme", k2); !errors.Is(err, api.ErrBootstrapIgnored) {
					t.Fatalf("a changed key: %v", err)
				}
				if l, _ := st.ListAdminKeys(ctx); len(l) != 1 {
					t.Fatalf("admin keys: %+v", l)
				}
				// Revoked through the API, it stays revoked across restarts.
				other, _ := st.ListAdminKeys(ctx)
				if _, err := st.RotateAdminKey(ctx, other[0].ID, storeKey(k2)); err != nil {
					t.Fatal(err)
				}
				if _, created, err := api.Bootstrap(ctx, st, "acme", k1); err != nil || created {
					t.Fatalf("restart after revocation: %v %v", created, err)
				}
				if _, err := st.LookupAPIKey(ctx, api.HashSecret(k1)); err == nil {
					t.Fatal("the revoked bootstrap key came back")
				}
			})
			t.Run("key given after a first start without one", func(t *testing.T) {
				e := newEnv(t, d)
				if _, _, err := api.Bootstrap(ctx, e.st, "", k1); !errors.Is(err, api.ErrBootstrapIgnored) {
					t.Fatalf("late key: %v", err)
				}
				if n := admins(e); n != 1 {
					t.Fatalf("%d admin keys, want the generated one only", n)
				}
				if _, err := e.client(k1).GetOrg(ctx, "acme"); err == nil {
					t.Fatal("the late key works")
				}
			})
		})
	}
}

func storeKey(secret string) store.APIKey {
	return store.APIKey{ID: store.NewID(6), Name: "rotated", Hash: api.HashSecret(secret), Masked: api.Mask(secret)}
}
