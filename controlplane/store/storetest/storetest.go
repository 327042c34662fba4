// Package storetest opens fresh stores on every supported database for tests:
// SQLite in a temporary directory, and PostgreSQL in a new schema of the database
// named by SANDBOXMESH_TEST_POSTGRES_DSN (hack/postgres-test.sh prints one).
// Without that variable PostgreSQL is skipped with a message, unless CI=true,
// where its absence fails the test.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // pgx driver for schema set-up

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// EnvPostgresDSN names the variable holding the PostgreSQL DSN for tests.
const EnvPostgresDSN = "SANDBOXMESH_TEST_POSTGRES_DSN"

// Drivers lists the drivers the store suite runs on.
var Drivers = []string{store.DriverSQLite, store.DriverPostgres}

// Open returns a new, empty, migrated store on driver, closed at the end of the test.
// It skips (or fails on CI) when PostgreSQL is not configured.
func Open(tb testing.TB, driver string) *store.Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	driver, dsn := DSN(tb, driver)
	s, err := store.Open(ctx, driver, dsn)
	if err != nil {
		tb.Fatalf("open %s store: %v", driver, err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// DSN returns a DSN for a fresh database on driver (a new SQLite file or a new
// PostgreSQL schema), skipping or failing as Open does.
func DSN(tb testing.TB, driver string) (string, string) {
	tb.Helper()
	switch driver {
	case store.DriverSQLite:
		return driver, filepath.Join(tb.TempDir(), "store.db")
	case store.DriverPostgres:
		base := os.Getenv(EnvPostgresDSN)
		if base == "" {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("%s is not set; on CI run: export %s=\"$(hack/postgres-test.sh)\"", EnvPostgresDSN, EnvPostgresDSN)
			}
			tb.Skipf("PostgreSQL tests skipped: set %s (e.g. export %s=\"$(hack/postgres-test.sh)\")", EnvPostgresDSN, EnvPostgresDSN)
		}
		schema := "t_" + store.NewID(8)
		db, err := sql.Open("pgx", base)
		if err != nil {
			tb.Fatalf("postgres: %v", err)
		}
		defer db.Close()
		if _, err := db.Exec("CREATE SCHEMA " + schema); err != nil {
			tb.Fatalf("postgres: create schema: %v", err)
		}
		tb.Cleanup(func() {
			db, err := sql.Open("pgx", base)
			if err != nil {
				return
			}
			defer db.Close()
			_, _ = db.Exec("DROP SCHEMA " + schema + " CASCADE")
		})
		return driver, withSearchPath(tb, base, schema)
	}
	tb.Fatalf("unknown driver %q", driver)
	return "", ""
}

func withSearchPath(tb testing.TB, dsn, schema string) string {
	if strings.Contains(dsn, "://") {
		u, err := url.Parse(dsn)
		if err != nil {
			tb.Fatalf("parse %s: %v", EnvPostgresDSN, err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return fmt.Sprintf("%s search_path=%s", dsn, schema)
}
