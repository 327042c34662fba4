package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Object is a desired sandbox or route group with its observed status.
type Object struct {
	Kind    Kind
	Org     string
	Name    string
	Cluster string
	// Spec is the JSON of the v1alpha1 spec.
	Spec json.RawMessage
	// Labels of a sandbox (for list filters).
	Labels     map[string]string
	RoutingKey string
	// Version increases with every change of the spec; used for optimistic concurrency.
	Version int64
	// Revision is the global change sequence number of the last change.
	Revision int64
	// Status is the JSON status last reported by the agent; empty when none.
	Status    json.RawMessage
	CreatedAt time.Time
	UpdatedAt time.Time
	// Deleted marks a tombstone (only returned by ClusterState).
	Deleted bool
	// Team a sandbox belongs to ("" for none): its quota counts the sandbox.
	Team string
}

// ApplyRequest is a create-or-update of a desired object.
type ApplyRequest struct {
	Kind    Kind
	Org     string
	Name    string
	Cluster string
	Spec    json.RawMessage
	Labels  map[string]string
	// IfVersion, when non-zero, makes the apply fail with ErrConflict unless the
	// object exists with exactly that version. -1 means "must not exist".
	IfVersion int64
	// NewRoutingKey makes the routing key of a new object.
	NewRoutingKey func() (string, error)
	// Team a sandbox belongs to. It must be a team of the org (ErrTeamNotFound); a sandbox joining it
	// (created in it or moved to it) must fit its concurrent-sandbox quota (ErrQuotaExceeded). "" on an
	// update keeps the sandbox's team; on a create, no team.
	Team string
}

const objectCols = `kind, org, name, cluster, spec, labels, routing_key, version, revision, status, created_at, updated_at, deleted_at, team`

func scanObject(sc scanner) (Object, error) {
	var o Object
	var kind, spec, labels, status string
	var created, updated, deleted int64
	if err := sc.Scan(&kind, &o.Org, &o.Name, &o.Cluster, &spec, &labels, &o.RoutingKey, &o.Version, &o.Revision, &status, &created, &updated, &deleted, &o.Team); err != nil {
		return Object{}, err
	}
	o.Kind = Kind(kind)
	o.Spec = json.RawMessage(spec)
	if status != "" {
		o.Status = json.RawMessage(status)
	}
	if labels != "" && labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &o.Labels); err != nil {
			return Object{}, fmt.Errorf("labels of %s %s/%s: %w", kind, o.Org, o.Name, err)
		}
	}
	o.CreatedAt, o.UpdatedAt = fromNano(created), fromNano(updated)
	o.Deleted = deleted != 0
	return o, nil
}

// nextRevision increments the global revision counter inside tx. The row lock it
// takes serialises writers until commit, so revisions become visible in order.
func (s *Store) nextRevision(ctx context.Context, tx *sql.Tx) (int64, error) {
	var rev int64
	if err := tx.QueryRowContext(ctx, `UPDATE counters SET value = value + 1 WHERE name = 'revision' RETURNING value`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("next revision: %w", err)
	}
	return rev, nil
}

// errRetry means the object changed between the optimistic read and the
// locked write; Apply starts over.
var errRetry = errors.New("object changed concurrently")

// Apply creates or updates a desired object. It returns the stored object and
// whether it was created. Applying an identical spec changes nothing (and
// writes nothing).
//
// The object is read without locks; the write then takes the revision-counter
// lock and succeeds only if the object is still as read (a conditional UPDATE or
// an INSERT that must not conflict), else Apply starts over. This keeps the time
// spent under the global lock to three statements.
func (s *Store) Apply(ctx context.Context, r ApplyRequest) (Object, bool, error) {
	id := fmt.Sprintf("%s %s/%s", r.Kind, r.Org, r.Name)
	labels := "{}"
	if len(r.Labels) > 0 {
		b, err := json.Marshal(r.Labels)
		if err != nil {
			return Object{}, false, fmt.Errorf("apply %s: labels: %w", id, err)
		}
		labels = string(b)
	}
	for attempt := 0; ; attempt++ {
		o, created, err := s.applyOnce(ctx, r, id, labels)
		if errors.Is(err, errRetry) && attempt < 50 {
			continue
		}
		return o, created, err
	}
}

func (s *Store) applyOnce(ctx context.Context, r ApplyRequest, id, labels string) (Object, bool, error) {
	cur, err := scanRow(ctx, s, s.db, scanObject, `SELECT `+objectCols+` FROM objects WHERE kind = ? AND org = ? AND name = ?`, string(r.Kind), r.Org, r.Name)
	exists := err == nil
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
	}
	live := exists && !cur.Deleted
	if live && r.Team == "" {
		r.Team = cur.Team // a client that does not know teams (Signadot's) keeps the sandbox in its team
	}
	switch {
	case r.IfVersion == -1 && live:
		return Object{}, false, fmt.Errorf("apply %s: exists with version %d: %w", id, cur.Version, ErrConflict)
	case r.IfVersion > 0 && (!live || cur.Version != r.IfVersion):
		return Object{}, false, fmt.Errorf("apply %s: expected version %d, have %d: %w", id, r.IfVersion, cur.Version, ErrConflict)
	}
	if live {
		if cur.Cluster != r.Cluster {
			return Object{}, false, fmt.Errorf("apply %s: cluster %q cannot change to %q: %w", id, cur.Cluster, r.Cluster, ErrImmutable)
		}
		if jsonEqual(cur.Spec, r.Spec) && maps.Equal(cur.Labels, r.Labels) && cur.Team == r.Team {
			return cur, false, nil
		}
	}
	var key string
	if !live {
		if key, err = r.NewRoutingKey(); err != nil {
			return Object{}, false, fmt.Errorf("apply %s: routing key: %w", id, err)
		}
	}

	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
	}
	defer tx.Rollback()
	rev, err := s.nextRevision(ctx, tx)
	if err != nil {
		return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
	}
	now := s.nowNano()
	out := Object{Kind: r.Kind, Org: r.Org, Name: r.Name, Cluster: r.Cluster, Spec: r.Spec, Labels: r.Labels, Revision: rev, UpdatedAt: fromNano(now), Team: r.Team}
	if !live {
		if err := s.checkNameFree(ctx, tx, r.Kind, r.Org, r.Name); err != nil {
			return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
		}
	}
	if r.Team != "" && (!live || cur.Team != r.Team) {
		if err := s.checkTeamQuota(ctx, tx, r.Org, r.Team); err != nil {
			return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
		}
	}
	var res sql.Result
	if live {
		res, err = tx.ExecContext(ctx, s.q(`UPDATE objects SET spec = ?, labels = ?, team = ?, version = version + 1, revision = ?, updated_at = ?, status = '' WHERE kind = ? AND org = ? AND name = ? AND version = ? AND deleted_at = 0`),
			string(r.Spec), labels, r.Team, rev, now, string(r.Kind), r.Org, r.Name, cur.Version)
		out.RoutingKey, out.Version, out.CreatedAt = cur.RoutingKey, cur.Version+1, cur.CreatedAt
	} else {
		// Creates check the org, the cluster and the quota under the lock, so
		// concurrent creates cannot overshoot the quota.
		org, err := s.getOrg(ctx, tx, r.Org)
		if err != nil {
			return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
		}
		if r.Kind != KindResourcePlugin { // org-wide: cluster ''
			if err := s.clusterExistsInTx(ctx, tx, r.Org, r.Cluster); err != nil {
				return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
			}
		}
		if r.Kind == KindSandbox && org.MaxSandboxes > 0 {
			n, err := countLive(ctx, tx, s, r.Org)
			if err != nil {
				return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
			}
			if n >= org.MaxSandboxes {
				return Object{}, false, fmt.Errorf("apply %s: org %s has %d of %d sandboxes: %w", id, r.Org, n, org.MaxSandboxes, ErrQuotaExceeded)
			}
		}
		out.RoutingKey, out.CreatedAt = key, fromNano(now)
		if exists { // revive a tombstone, if it is still the one we read
			out.Version = cur.Version + 1
			res, err = tx.ExecContext(ctx, s.q(`UPDATE objects SET cluster = ?, spec = ?, labels = ?, team = ?, routing_key = ?, version = ?, revision = ?, status = '', created_at = ?, updated_at = ?, deleted_at = 0 WHERE kind = ? AND org = ? AND name = ? AND version = ? AND deleted_at > 0`),
				r.Cluster, string(r.Spec), labels, r.Team, key, out.Version, rev, now, now, string(r.Kind), r.Org, r.Name, cur.Version)
		} else {
			out.Version = 1
			res, err = tx.ExecContext(ctx, s.q(`INSERT INTO objects (`+objectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, 0, ?) ON CONFLICT (kind, org, name) DO NOTHING`),
				string(r.Kind), r.Org, r.Name, r.Cluster, string(r.Spec), labels, key, 1, rev, now, now, r.Team)
		}
	}
	if err != nil {
		return Object{}, false, fmt.Errorf("apply %s: write: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Object{}, false, errRetry
	}
	if r.Kind == KindSandbox && (!live || cur.Team != r.Team) { // usage: a new life, or a move to another team
		if live {
			if err := s.closeUsage(ctx, tx, r.Org, r.Name, now); err != nil {
				return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
			}
		}
		if err := s.openUsage(ctx, tx, out, rev, now); err != nil {
			return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
		}
	}
	if err := s.commit(ctx, tx, Change{What: ChangeObject, Org: r.Org, Cluster: r.Cluster, Name: r.Name, Kind: r.Kind}); err != nil {
		return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
	}
	return out, !live, nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(ax) == string(by)
}

// Get returns a live object or ErrNotFound.
func (s *Store) Get(ctx context.Context, kind Kind, org, name string) (Object, error) {
	o, err := scanRow(ctx, s, s.db, scanObject, `SELECT `+objectCols+` FROM objects WHERE kind = ? AND org = ? AND name = ? AND deleted_at = 0`, string(kind), org, name)
	if err != nil {
		return Object{}, fmt.Errorf("%s %s/%s: %w", kind, org, name, err)
	}
	return o, nil
}

// ObjectSelector narrows a list of objects: every pair of Labels must be on
// the object, and a non-empty Team must be its team.
type ObjectSelector struct {
	Labels map[string]string
	Team   string
}

// ListObjects returns a page of an org's live objects of a kind, by name,
// that sel selects.
func (s *Store) ListObjects(ctx context.Context, kind Kind, org string, sel ObjectSelector, p PageRequest) (Page[Object], error) {
	query, args := `SELECT `+objectCols+` FROM objects WHERE kind = ? AND org = ? AND deleted_at = 0`, []any{string(kind), org}
	if sel.Team != "" {
		query, args = query+` AND team = ?`, append(args, sel.Team)
	}
	// Labels are matched in SQL (exactly: labels are a JSON object of
	// strings), so a page reads only rows it returns.
	for _, k := range slices.Sorted(maps.Keys(sel.Labels)) {
		cond, cargs := s.labelIs(k, sel.Labels[k])
		query, args = query+` AND `+cond, append(args, cargs...)
	}
	pg, err := scanPage(ctx, s, p, scopeOf("objects", string(kind), org, selectorParam(sel.Labels), sel.Team), false, "name", scanObject,
		func(o Object) (int64, string) { return 0, o.Name }, nil, query, args...)
	if err != nil {
		return Page[Object]{}, fmt.Errorf("list %s of org %s: %w", kind, org, err)
	}
	return pg, nil
}

// List returns all of an org's live objects of a kind, by name, whose labels
// contain every pair of selector (ListObjects page after page).
func (s *Store) List(ctx context.Context, kind Kind, org string, selector map[string]string) ([]Object, error) {
	out := []Object{}
	p := PageRequest{Limit: MaxPageSize}
	for {
		pg, err := s.ListObjects(ctx, kind, org, ObjectSelector{Labels: selector}, p)
		if err != nil {
			return nil, err
		}
		out = append(out, pg.Items...)
		if pg.Continue == "" {
			return out, nil
		}
		p.Continue = pg.Continue
	}
}

// checkNameFree refuses (ErrInUse) a new sandbox named like a live route
// group of the org, and the other way round: preview URLs and preview login
// links name the object without its kind, so the two share one namespace.
// It runs in the apply's transaction, under the revision lock.
func (s *Store) checkNameFree(ctx context.Context, tx *sql.Tx, kind Kind, org, name string) error {
	other := map[Kind]Kind{KindSandbox: KindRouteGroup, KindRouteGroup: KindSandbox}[kind]
	if other == "" {
		return nil
	}
	var n int
	err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE kind = ? AND org = ? AND name = ? AND deleted_at = 0`), string(other), org, name).Scan(&n)
	if err != nil {
		return fmt.Errorf("check name: %w", err)
	}
	if n > 0 {
		return fmt.Errorf("the name %s is taken by %s %s of the org (sandboxes and route groups share preview URLs, so their names must differ): %w", name, other.Noun(), name, ErrInUse)
	}
	return nil
}

// labelIs is the SQL condition "the labels (a JSON object) have key k with
// value v" of the store's dialect, and its arguments. On PostgreSQL a LIKE on
// the stored text ("k":"v" as json.Marshal, which wrote every labels column,
// encodes it) comes first: it rules most rows out without parsing them, and
// the jsonb test, exact, runs on the few left (a page with a 1-in-10 selector
// parsed ten times the rows it returned).
func (s *Store) labelIs(k, v string) (string, []any) {
	if s.pgStyle {
		kj, _ := json.Marshal(k) // strings always encode
		vj, _ := json.Marshal(v)
		return `(labels LIKE ? AND (labels::jsonb ->> ?) = ?)`, []any{"%" + likeEscaper.Replace(string(kj)+":"+string(vj)) + "%", k, v}
	}
	return `EXISTS (SELECT 1 FROM json_each(objects.labels) WHERE json_each.key = ? AND json_each.value = ?)`, []any{k, v}
}

// likeEscaper escapes the characters LIKE gives a meaning to (PostgreSQL's
// default escape character is the backslash).
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// Delete deletes a live object, leaving a tombstone for the agent.
func (s *Store) Delete(ctx context.Context, kind Kind, org, name string) error {
	id := fmt.Sprintf("%s %s/%s", kind, org, name)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	defer tx.Rollback()
	rev, err := s.nextRevision(ctx, tx)
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	now := s.nowNano()
	var cluster string
	err = tx.QueryRowContext(ctx, s.q(`UPDATE objects SET deleted_at = ?, revision = ?, updated_at = ?, status = '' WHERE kind = ? AND org = ? AND name = ? AND deleted_at = 0 RETURNING cluster`),
		now, rev, now, string(kind), org, name).Scan(&cluster)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if kind == KindSandbox {
		if err := s.closeUsage(ctx, tx, org, name, now); err != nil {
			return fmt.Errorf("delete %s: %w", id, err)
		}
	}
	if err := s.commit(ctx, tx, Change{What: ChangeObject, Org: org, Cluster: cluster, Name: name, Kind: kind}); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

// SetStatus stores the status an agent of cluster observed for version of an
// object. A status for another cluster's object, or for an outdated version, is
// ignored with ErrNotFound / ErrConflict.
func (s *Store) SetStatus(ctx context.Context, kind Kind, org, cluster, name string, version int64, status json.RawMessage) error {
	id := fmt.Sprintf("%s %s/%s", kind, org, name)
	err := s.write(ctx, func(tx *sql.Tx) ([]Change, error) {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE objects SET status = ? WHERE kind = ? AND org = ? AND cluster = ? AND name = ? AND version = ? AND deleted_at = 0`),
			string(status), string(kind), org, cluster, name, version)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, errNoRow // told apart below
		}
		return []Change{{What: ChangeStatus, Org: org, Cluster: cluster, Name: name, Kind: kind}}, nil
	})
	if errors.Is(err, errNoRow) {
		if _, err := s.Get(ctx, kind, org, name); err != nil {
			return fmt.Errorf("set status of %s: %w", id, err)
		}
		return fmt.Errorf("set status of %s version %d: %w", id, version, ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("set status of %s: %w", id, err)
	}
	return nil
}

// ClusterState is what an agent needs to converge.
type ClusterState struct {
	// Revision to ask for changes after, next time.
	Revision int64
	// Full is true when Objects is the complete desired state (live objects only);
	// otherwise Objects are the changes after the requested revision, tombstones included.
	Full    bool
	Objects []Object
}

// Revision returns the current global revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	if err := s.db.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'revision'`).Scan(&rev); err != nil {
		return 0, fmt.Errorf("read revision: %w", err)
	}
	return rev, nil
}

// ClusterState returns the desired objects of a cluster, with the org-wide
// resource plugins (the empty cluster name) that every cluster of the org gets: everything when since
// is 0 (or older than the purged tombstones, or from the future after a database
// reset), else the changes after since.
func (s *Store) ClusterState(ctx context.Context, org, cluster string, since int64) (ClusterState, error) {
	var rev, purged int64
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT value FROM counters WHERE name = 'revision'), (SELECT value FROM counters WHERE name = 'purged')`).Scan(&rev, &purged)
	if err != nil {
		return ClusterState{}, fmt.Errorf("state of cluster %s/%s: %w", org, cluster, err)
	}
	st := ClusterState{Revision: rev, Objects: []Object{}}
	query := `SELECT ` + objectCols + ` FROM objects WHERE org = ? AND (cluster = ? OR kind = '` + string(KindResourcePlugin) + `') AND revision > ? ORDER BY revision`
	args := []any{org, cluster, since}
	if since <= 0 || since < purged || since > rev {
		st.Full = true
		query = `SELECT ` + objectCols + ` FROM objects WHERE org = ? AND (cluster = ? OR kind = '` + string(KindResourcePlugin) + `') AND deleted_at = 0 ORDER BY revision`
		args = args[:2]
	}
	if st.Objects, err = scanRows(ctx, s, s.db, scanObject, query, args...); err != nil {
		return ClusterState{}, fmt.Errorf("state of cluster %s/%s: %w", org, cluster, err)
	}
	return st, nil
}

// PurgeTombstones removes tombstones older than before; agents that last synced
// before the newest purged revision get the full state next time.
func (s *Store) PurgeTombstones(ctx context.Context, before time.Time) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("purge tombstones: %w", err)
	}
	defer tx.Rollback()
	var maxRev sql.NullInt64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT MAX(revision) FROM objects WHERE deleted_at > 0 AND deleted_at < ?`), before.UnixNano()).Scan(&maxRev); err != nil {
		return 0, fmt.Errorf("purge tombstones: %w", err)
	}
	if !maxRev.Valid {
		return 0, nil
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM objects WHERE deleted_at > 0 AND revision <= ?`), maxRev.Int64)
	if err != nil {
		return 0, fmt.Errorf("purge tombstones: %w", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE counters SET value = ? WHERE name = 'purged' AND value < ?`), maxRev.Int64, maxRev.Int64); err != nil {
		return 0, fmt.Errorf("purge tombstones: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, tx.Commit()
}
