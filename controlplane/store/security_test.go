package store_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// TestSQLiteFileMode: the database file and SQLite's WAL and shared-memory
// files are readable by the owner only, also when the file existed with 0644.
func TestSQLiteFileMode(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		existing bool
		dsn      func(path string) string
	}{
		{"new file", false, func(p string) string { return p }},
		{"existing 0644 file", true, func(p string) string { return p }},
		{"file: DSN with options", false, func(p string) string { return "file:" + p + "?_pragma=busy_timeout(5000)" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cp.db")
			if tc.existing {
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := store.Open(ctx, store.DriverSQLite, tc.dsn(path))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.CreateOrg(ctx, "acme", 0); err != nil { // a write: the WAL exists now
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if m := fi.Mode().Perm(); m != 0o600 {
					t.Errorf("%s has mode %v, want 0600", filepath.Base(p), m)
				}
			}
		})
	}
}
