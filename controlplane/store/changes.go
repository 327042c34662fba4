package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// Change is a committed write that has effects outside the database: agents'
// long polls to wake, caches to clear, tunnels to close. The store reports
// every such write to its watchers after the commit, so a caller (the API
// server) applies those effects in one place instead of after each write.
type Change struct {
	What ChangeKind
	Org  string
	// Cluster is set for cluster, cluster-token and object changes (the
	// object's cluster).
	Cluster string
	// Name is the object's name, or the ID of an API key or cluster token.
	Name string
	// Kind is the kind of a changed object (What == ChangeObject or ChangeStatus).
	Kind Kind
	// Remote is true for a change another process (replica) made, which
	// Follow read from the change feed. Watchers that only wake, clear or
	// close apply it as a local one; a watcher that acts on a change by
	// writing (smart test triggers) leaves it to the replica that made it.
	Remote bool
}

// ChangeKind says what a Change changed.
type ChangeKind int

// Kinds of changes.
const (
	// ChangeObject: a sandbox or route group was created, updated or deleted
	// (the desired state changed).
	ChangeObject ChangeKind = iota + 1
	// ChangeStatus: an agent reported the status of an object.
	ChangeStatus
	// ChangeAPIKeyRevoked: an API key was revoked.
	ChangeAPIKeyRevoked
	// ChangeClusterDeleted: a cluster (and its tokens) was deleted.
	ChangeClusterDeleted
	// ChangeClusterTokenDeleted: a cluster token was deleted.
	ChangeClusterTokenDeleted
	// ChangeJob: a job was submitted, claimed, canceled, finished or deleted
	// (Name is the job).
	ChangeJob
	// ChangeJobLogs: a job's runner sent output (Name is the job).
	ChangeJobLogs
)

// watchers holds the functions Watch registered.
type watchers struct {
	mu  sync.RWMutex
	fns []func(Change)
}

// Watch registers fn to be called, synchronously and after the commit, for
// every Change made through this Store, and, while Follow runs, for every
// Change other processes sharing the database made (Remote set), once each.
// fn must be quick and must not write to the store.
func (s *Store) Watch(fn func(Change)) {
	s.watch.mu.Lock()
	defer s.watch.mu.Unlock()
	s.watch.fns = append(s.watch.fns, fn)
}

// emit reports a committed change to the watchers.
func (s *Store) emit(c Change) {
	s.watch.mu.RLock()
	defer s.watch.mu.RUnlock()
	for _, fn := range s.watch.fns {
		fn(c)
	}
}

// notifyChannel is the PostgreSQL channel notified after commits that
// added to the change feed (it only wakes the followers: they read the table).
const notifyChannel = "sandboxmesh_changes"

// record adds c to the change feed within tx, the transaction of the write
// that makes it: the row exists if and only if the write commits. On
// PostgreSQL the row's tx is the transaction's ID; on SQLite (one writer at
// a time) tx is one more than the highest so far.
func (s *Store) record(ctx context.Context, tx *sql.Tx, c Change) error {
	query := `INSERT INTO changes (id, tx, origin, what, org, cluster, name, kind, created_at)
		SELECT ?, COALESCE(MAX(tx), 0) + 1, ?, ?, ?, ?, ?, ?, ? FROM changes`
	if s.pgStyle {
		query = `INSERT INTO changes (id, tx, origin, what, org, cluster, name, kind, created_at)
		VALUES (?, pg_current_xact_id()::text::bigint, ?, ?, ?, ?, ?, ?, ?)`
	}
	if _, err := tx.ExecContext(ctx, s.q(query), NewID(8), s.origin, int(c.What), c.Org, c.Cluster, c.Name, string(c.Kind), s.nowNano()); err != nil {
		return fmt.Errorf("record change %d of %s/%s/%s: %w", c.What, c.Org, c.Cluster, c.Name, err)
	}
	return nil
}

// commit adds cs to the change feed within tx, commits tx and reports cs to
// the watchers: the one way a write with effects ends.
func (s *Store) commit(ctx context.Context, tx *sql.Tx, cs ...Change) error {
	for _, c := range cs {
		if err := s.record(ctx, tx, c); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if len(cs) > 0 && s.kick != nil {
		select { // notifyLoop wakes the other replicas' followers
		case s.kick <- struct{}{}:
		default: // a notification is pending already
		}
	}
	for _, c := range cs {
		s.emit(c)
	}
	return nil
}

// notifyLoop notifies notifyChannel after commits that added to the change
// feed (commit kicks it), until the Store is closed. It notifies after the
// commit, outside the write's transaction, and once for all the commits of
// a burst: a NOTIFY inside the write's transaction would take PostgreSQL's
// global notification queue lock in every writer's commit, while applies
// hold the revision counter's lock (on the loaded 2-core development machine
// the two were within noise, this one ahead). A lost notification costs a
// follower's read interval, no change: the rows are committed before it is
// sent.
func (s *Store) notifyLoop() {
	for {
		select {
		case <-s.closed:
			return
		case <-s.kick:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = s.db.ExecContext(ctx, `SELECT pg_notify($1, '')`, notifyChannel)
		cancel()
	}
}

// errNoRow is what a write's fn returns when its statement matched no row
// (nothing to commit), for the caller to tell why.
var errNoRow = errors.New("no row matched")

// write runs fn in a transaction and commits it with the changes fn returns
// (see commit); an error of fn rolls back and is returned as is.
func (s *Store) write(ctx context.Context, fn func(tx *sql.Tx) ([]Change, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	cs, err := fn(tx)
	if err != nil {
		return err
	}
	return s.commit(ctx, tx, cs...)
}

// ErrFollowing is returned by Follow when the Store is already followed.
var ErrFollowing = errors.New("change feed already followed")

// FollowConfig configures Follow.
type FollowConfig struct {
	// Logger receives the follower's errors; nil discards.
	Logger *slog.Logger
	// Interval is how often the feed is read when nothing wakes the follower
	// (default 1s; on PostgreSQL a notification wakes it at each commit).
	Interval time.Duration
	// MinGap is the least time between two reads (default 20ms): under a
	// stream of writes the notifications would otherwise have the follower
	// read without pause, taking CPU from the writes (measured on 2 cores:
	// about half the applies per second); it batches them instead.
	MinGap time.Duration
	// Retention is how long rows stay in the feed (default 5m); every
	// follower deletes older rows every PruneInterval (default 1m).
	Retention, PruneInterval time.Duration
	// OnChange, if set, is called for each change of another process the
	// follower reports, with its lag (from the write to its report here,
	// across the two processes' clocks).
	OnChange func(lag time.Duration)
	// OnError, if set, is called for each failed read or prune.
	OnError func(error)
}

// Follow reads the change feed until ctx ends or the Store is closed, and
// reports every change another process made (Remote set) to this Store's
// watchers, once, in the order of the feed. Changes made before Follow
// started are not reported.
// A failing read is retried with backoff (from 100ms to 30s) from where the
// follower was, so nothing committed meanwhile is lost unless the outage
// outlasts the retention. It returns ErrFollowing if another Follow runs on
// this Store, else nil when ctx ends.
//
// Ordering: on SQLite writers take turns, so tx is the commit order and the
// follower reads past the last tx it saw. On PostgreSQL transaction IDs are
// taken at the first write, not at commit: a transaction with a lower ID may
// commit after one with a higher ID. The follower therefore keeps a horizon,
// the oldest transaction still running when it last read
// (pg_snapshot_xmin): every transaction below it has ended, so its rows were
// read. Each read takes the new horizon first, then reads every row at or
// above the old one, and skips the rows it already reported (by id). The
// window re-read is the rows of the transactions that were running at the
// last read and of later ones; no timeout decides that a gap is final.
func (s *Store) Follow(ctx context.Context, cfg FollowConfig) error {
	s.followMu.Lock()
	if s.following {
		s.followMu.Unlock()
		return ErrFollowing
	}
	s.following = true
	s.followMu.Unlock()
	defer func() {
		s.followMu.Lock()
		s.following = false
		s.followMu.Unlock()
	}()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 5 * time.Minute
	}
	if cfg.MinGap <= 0 {
		cfg.MinGap = 20 * time.Millisecond
	}
	if cfg.PruneInterval <= 0 {
		cfg.PruneInterval = time.Minute
	}
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	if s.pgStyle {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.listen(ctx, cfg, wake)
		}()
	}
	defer wg.Wait()
	f := &follower{s: s, seen: map[string]int64{}}
	fail := func(what string, err error) {
		if ctx.Err() != nil || s.isClosed() {
			return
		}
		cfg.Logger.WarnContext(ctx, "change feed: "+what+" failed; retrying", "err", err)
		if cfg.OnError != nil {
			cfg.OnError(err)
		}
	}
	var backoff time.Duration
	nextPrune := time.Now()
	for {
		var err error
		if !f.started {
			err = f.start(ctx)
		} else {
			err = f.step(ctx, cfg.OnChange)
		}
		wait := cfg.Interval
		if err != nil {
			fail("read", err)
			backoff = min(max(2*backoff, 100*time.Millisecond), 30*time.Second)
			wait = backoff
		} else {
			backoff = 0
		}
		if err == nil && !time.Now().Before(nextPrune) {
			if err := s.pruneChanges(ctx, cfg.Retention); err != nil {
				fail("prune", err)
			}
			nextPrune = time.Now().Add(cfg.PruneInterval)
		}
		if err == nil {
			wait -= cfg.MinGap
			if sleep(ctx, cfg.MinGap) != nil {
				return nil
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
			if err != nil { // keep the backoff: a notification does not fix the database
				select {
				case <-ctx.Done():
				case <-t.C:
				}
			}
		case <-t.C:
		}
		t.Stop()
	}
}

// sleep waits for d or until ctx ends (its error).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// isClosed reports whether Close was called.
func (s *Store) isClosed() bool {
	select {
	case <-s.closed:
		return true
	default:
		return false
	}
}

// follower is Follow's position in the feed.
type follower struct {
	s       *Store
	started bool
	// low: every row with tx < low has been read (see Follow).
	low int64
	// seen holds the id and tx of the rows at or above low already read.
	seen map[string]int64
}

// start takes the position of the feed's end without reporting anything.
func (f *follower) start(ctx context.Context) error {
	h, err := f.horizon(ctx)
	if err != nil {
		return err
	}
	f.low = h
	rows, err := f.read(ctx)
	if err != nil {
		return err
	}
	for _, r := range rows {
		f.seen[r.id] = r.tx
		if !f.s.pgStyle {
			f.low = max(f.low, r.tx+1)
		}
	}
	f.started = true
	return nil
}

// step reports the changes of other processes committed since the last step.
func (f *follower) step(ctx context.Context, onChange func(time.Duration)) error {
	h, err := f.horizon(ctx)
	if err != nil {
		return err
	}
	rows, err := f.read(ctx)
	if err != nil {
		return err
	}
	now := f.s.now()
	for _, r := range rows {
		if _, ok := f.seen[r.id]; ok {
			continue
		}
		f.seen[r.id] = r.tx
		if !f.s.pgStyle {
			h = max(h, r.tx+1)
		}
		if r.origin == f.s.origin {
			continue // reported at its commit
		}
		f.s.emit(r.c)
		if onChange != nil {
			onChange(now.Sub(fromNano(r.created)))
		}
	}
	f.low = max(f.low, h)
	for id, tx := range f.seen {
		if tx < f.low {
			delete(f.seen, id)
		}
	}
	return nil
}

// horizon returns the lowest tx a row not yet committed can have: on
// PostgreSQL the oldest running transaction; on SQLite the follower's low
// (the rows read then move it).
func (f *follower) horizon(ctx context.Context) (int64, error) {
	if !f.s.pgStyle {
		if f.started {
			return f.low, nil
		}
		var h int64
		if err := f.s.db.QueryRowContext(ctx, `SELECT COALESCE(MAX(tx), 0) + 1 FROM changes`).Scan(&h); err != nil {
			return 0, fmt.Errorf("change feed horizon: %w", err)
		}
		return h, nil
	}
	var h int64
	if err := f.s.db.QueryRowContext(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint`).Scan(&h); err != nil {
		return 0, fmt.Errorf("change feed horizon: %w", err)
	}
	return h, nil
}

// feedRow is a row of the changes table.
type feedRow struct {
	id, origin string
	tx         int64
	created    int64
	c          Change
}

// read returns the rows at or above the follower's low, in tx order.
func (f *follower) read(ctx context.Context) ([]feedRow, error) {
	rows, err := scanRows(ctx, f.s, f.s.db, func(sc scanner) (feedRow, error) {
		var r feedRow
		var what int
		var kind string
		err := sc.Scan(&r.id, &r.tx, &r.origin, &what, &r.c.Org, &r.c.Cluster, &r.c.Name, &kind, &r.created)
		r.c.What, r.c.Kind, r.c.Remote = ChangeKind(what), Kind(kind), true
		return r, err
	}, `SELECT id, tx, origin, what, org, cluster, name, kind, created_at FROM changes WHERE tx >= ? ORDER BY tx, created_at, id`, f.low)
	if err != nil {
		return nil, fmt.Errorf("read change feed from %d: %w", f.low, err)
	}
	return rows, nil
}

// pruneChanges deletes the feed's rows older than retention. On SQLite the
// newest row stays: its tx is the base of the next one.
func (s *Store) pruneChanges(ctx context.Context, retention time.Duration) error {
	query := `DELETE FROM changes WHERE created_at < ?`
	if !s.pgStyle {
		query += ` AND tx < (SELECT MAX(tx) FROM changes)`
	}
	if _, err := s.db.ExecContext(ctx, s.q(query), s.now().Add(-retention).UnixNano()); err != nil {
		return fmt.Errorf("prune change feed: %w", err)
	}
	return nil
}

// listen wakes the follower at each PostgreSQL notification of the feed,
// on a connection of its own, until ctx ends; it reconnects with backoff.
func (s *Store) listen(ctx context.Context, cfg FollowConfig, wake chan<- struct{}) {
	var backoff time.Duration
	for ctx.Err() == nil {
		err := s.listenOnce(ctx, wake)
		if ctx.Err() != nil || s.isClosed() {
			return
		}
		backoff = min(max(2*backoff, 100*time.Millisecond), 30*time.Second)
		cfg.Logger.WarnContext(ctx, "change feed: listening for notifications failed; reading every interval meanwhile", "err", err, "retry", backoff)
		if cfg.OnError != nil {
			cfg.OnError(err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

func (s *Store) listenOnce(ctx context.Context, wake chan<- struct{}) error {
	conn, err := pgx.Connect(ctx, s.dsn)
	if err != nil {
		return fmt.Errorf("listen %s: connect: %w", notifyChannel, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChannel); err != nil {
		return fmt.Errorf("listen %s: %w", notifyChannel, err)
	}
	select { // a read after LISTEN: nothing committed before it is missed
	case wake <- struct{}{}:
	default:
	}
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("listen %s: %w", notifyChannel, err)
		}
		select {
		case wake <- struct{}{}:
		default:
		}
	}
}
