package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/pressly/goose/v3"
)

// MigrateTo migrates the database at dsn up to version only (for tests of
// a migration: data written at the version before it must survive it).
func MigrateTo(ctx context.Context, driver, dsn string, version int64) (*sql.DB, error) {
	name, dialect := "sqlite", goose.DialectSQLite3
	if driver == DriverPostgres {
		name, dialect = "pgx", goose.DialectPostgres
	} else {
		dsn = sqliteDSN(dsn)
	}
	db, err := sql.Open(name, dsn)
	if err != nil {
		return nil, err
	}
	sub, err := fsSub()
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(dialect, db, sub)
	if err != nil {
		return nil, err
	}
	if _, err := p.UpTo(ctx, version); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate to %d: %w", version, err)
	}
	return db, nil
}

// SetNow replaces the store's clock (for tests of time-based records: usage).
func (s *Store) SetNow(now func() time.Time) { s.now = now }

// FeedRows returns how many rows the change feed holds.
func (s *Store) FeedRows(ctx context.Context) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM changes`).Scan(&n)
	return n, err
}

// Exec runs a statement on the store's database (tests that break it).
func (s *Store) Exec(ctx context.Context, query string) error {
	_, err := s.db.ExecContext(ctx, query)
	return err
}

// Checkpoints is how many checkpoints checkpointLoop has made.
func (s *Store) Checkpoints() int64 { return s.checkpoints.Load() }

// DB is the store's database handle.
func (s *Store) DB() *sql.DB { return s.db }
