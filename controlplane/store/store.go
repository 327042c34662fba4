// Package store owns the control plane's persistent state: orgs and their quotas,
// hashed API keys, clusters and their hashed tokens, the desired sandboxes, route
// groups and job runner groups with the status the in-cluster agents report for
// them, and jobs with their log chunks and artifact metadata (jobs.go), and people and
// access: users, org memberships, teams, invitations, sessions, service
// accounts and the audit trail (identity.go), and sandbox usage: intervals of each sandbox's life in a
// team, written with the sandbox's writes and summed per calendar month (usage.go).
//
// One implementation on database/sql serves two drivers: embedded SQLite
// (modernc.org/sqlite, pure Go, the default) and PostgreSQL (pgx). The schema is
// managed with goose migrations embedded in the binary.
//
// Every write of a sandbox or route group takes the next value of a global
// revision counter inside its transaction. The counter row is locked by the
// write, so revisions become visible in order: an agent that has seen
// revision R and asks for changes after R can never miss one (see ClusterState).
// Deletes leave tombstones so that agents learn about them.
//
// Writes with effects outside the database (caches, long polls, tunnels) are
// reported to watchers as Changes and kept for a few minutes in a change
// feed written in the same transaction, which every process sharing the
// database follows (changes.go), so every replica sees every change.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver
)

//go:embed migrations/*.sql
var migrations embed.FS

// Sentinel errors; check them with errors.Is.
var (
	// ErrNotFound means the object does not exist (or was deleted).
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists means a unique object already exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict means a precondition (an expected version) did not hold.
	ErrConflict = errors.New("version conflict")
	// ErrQuotaExceeded means the org reached its maximum number of sandboxes.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrImmutable means an update tried to change an immutable field.
	ErrImmutable = errors.New("immutable field changed")
	// ErrClusterNotFound means a sandbox or route group names an unregistered cluster.
	ErrClusterNotFound = errors.New("cluster not registered")
	// ErrTeamNotFound means a sandbox names a team its org does not have.
	ErrTeamNotFound = errors.New("team not found")
	// ErrInUse means an object cannot be deleted because others refer to it.
	ErrInUse = errors.New("in use")
)

// Driver names accepted by Open.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Kind is the kind of a desired object.
type Kind string

// Kinds of desired objects.
const (
	KindSandbox    Kind = "sandbox"
	KindRouteGroup Kind = "routegroup"
	// KindRunnerGroup is a job runner group (docs/jobs.md).
	KindRunnerGroup Kind = "runnergroup"
	// KindResourcePlugin is a resource plugin (docs/design/resource-plugins.md):
	// org-wide, stored with cluster '', and part of every cluster's state.
	KindResourcePlugin Kind = "resourceplugin"
)

// Noun is the kind as people write it ("route group", "runner group",
// "resource plugin", "sandbox").
func (k Kind) Noun() string {
	switch k {
	case KindRouteGroup:
		return "route group"
	case KindRunnerGroup:
		return "runner group"
	case KindResourcePlugin:
		return "resource plugin"
	}
	return string(k)
}

// Store is the control plane's database.
type Store struct {
	db      *sql.DB
	driver  string
	now     func() time.Time
	pgStyle bool
	watch   watchers
	// origin names this Store in the change feed (changes.go): its own rows
	// are reported at their commit, not again by Follow.
	origin string
	// dsn is the PostgreSQL DSN, for Follow's listening connection.
	dsn       string
	followMu  sync.Mutex
	following bool
	// closed is closed by Close (it stops Follow and notifyLoop).
	closed chan struct{}
	// kick wakes notifyLoop (PostgreSQL only).
	kick      chan struct{}
	closeOnce sync.Once
	// checkpoints counts checkpointLoop's checkpoints (SQLite only).
	checkpoints atomic.Int64
}

// Open opens (and migrates) a store. driver is DriverSQLite with a file path (or
// ":memory:"-like DSN) or DriverPostgres with a pgx DSN.
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	var (
		db      *sql.DB
		err     error
		dialect goose.Dialect
		pgDSN   = dsn
	)
	switch driver {
	case DriverSQLite:
		if err := restrictSQLiteFile(dsn); err != nil {
			return nil, fmt.Errorf("open store %s: %w", driver, err)
		}
		dsn = sqliteDSN(dsn)
		db, err = sql.Open("sqlite", dsn)
		dialect = goose.DialectSQLite3
	case DriverPostgres:
		db, err = sql.Open("pgx", dsn)
		dialect = goose.DialectPostgres
	default:
		return nil, fmt.Errorf("open store: unknown driver %q (want %s or %s)", driver, DriverSQLite, DriverPostgres)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", driver, err)
	}
	if driver == DriverPostgres {
		db.SetMaxOpenConns(50)
		db.SetMaxIdleConns(50)
	} else {
		db.SetMaxOpenConns(16)
		db.SetMaxIdleConns(16)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", driver, err)
	}
	sub, err := fsSub()
	if err != nil {
		db.Close()
		return nil, err
	}
	p, err := goose.NewProvider(dialect, db, sub)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: migrations: %w", driver, err)
	}
	if _, err := p.Up(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: migrate: %w", driver, err)
	}
	st := &Store{db: db, driver: driver, now: time.Now, pgStyle: driver == DriverPostgres, origin: NewID(8), closed: make(chan struct{})}
	if st.pgStyle {
		st.dsn, st.kick = pgDSN, make(chan struct{}, 1)
		go st.notifyLoop()
	} else {
		go st.checkpointLoop()
	}
	return st, nil
}

// checkpointEvery is how often checkpointLoop copies SQLite's write-ahead log into the database.
const checkpointEvery = time.Second

// checkpointLoop checkpoints the SQLite write-ahead log in the background until Close (PASSIVE: it waits
// for no reader or writer; one that fails is tried again at the next tick). Left to SQLite, the commit
// that takes the log past 1,000 pages runs the checkpoint and its fsyncs before it returns, so every few
// hundredth write was slow: PUT p99 at 100 writes/s in an org of 10,000 went from 14–18 ms to 5–6 ms
// (p50 3 ms either way) and the 50-client PUT throughput from 790–960 to 1,130–1,140 per second
// (bench/controlplane). The connections still checkpoint on their own past 10,000 pages (sqliteDSN), a
// bound should this loop fall behind.
func (s *Store) checkpointLoop() {
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if _, err := s.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err == nil {
			s.checkpoints.Add(1)
		}
		cancel()
	}
}

// sqliteDSN adds the settings the store relies on to a SQLite path: WAL, a busy
// timeout and write-locking transactions (so that writers queue instead of failing),
// and checkpoints mostly left to checkpointLoop.
func sqliteDSN(dsn string) string {
	if strings.Contains(dsn, "_txlock") {
		return dsn
	}
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	if !strings.HasPrefix(dsn, "file:") {
		dsn = "file:" + dsn
	}
	return dsn + sep + "_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)" +
		"&_pragma=wal_autocheckpoint(10000)" // checkpointLoop checkpoints every second; this is the bound
}

// Close closes the database (and ends Follow).
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return s.db.Close()
}

// Driver returns the driver name the store was opened with.
func (s *Store) Driver() string { return s.driver }

// Ping checks the database connection.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *Store) q(query string) string {
	if !s.pgStyle {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *Store) nowNano() int64 { return s.now().UTC().UnixNano() }

func fromNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// NewID returns a random identifier of 2*n hex characters.
func NewID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func fsSub() (fs.FS, error) {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	return sub, nil
}
