package store

import (
	"context"
	"database/sql"
	"errors"
)

// scanner is a *sql.Row or *sql.Rows: what a record kind's scan function reads.
type scanner interface{ Scan(dest ...any) error }

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// execer is a *sql.DB or a *sql.Tx, for writes.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// dbtx is a *sql.DB or a *sql.Tx, for reads and writes.
type dbtx interface {
	querier
	execer
}

// scanRows runs query (with ? placeholders) on q and scans every row with
// scan, in order. It is the one place the store iterates result sets; each
// record kind only supplies its column list and its scan function.
func scanRows[T any](ctx context.Context, s *Store, q querier, scan func(scanner) (T, error), query string, args ...any) ([]T, error) {
	rows, err := q.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// scanRow runs query on q and scans its one row with scan; no row is
// ErrNotFound (callers wrap it with the object's identity).
func scanRow[T any](ctx context.Context, s *Store, q querier, scan func(scanner) (T, error), query string, args ...any) (T, error) {
	v, err := scan(q.QueryRowContext(ctx, s.q(query), args...))
	if errors.Is(err, sql.ErrNoRows) {
		return v, ErrNotFound
	}
	return v, err
}
