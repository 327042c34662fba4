// Package store owns the control plane's persistent state: orgs and their quotas,
// hashed API keys, clusters and their hashed tokens, and the desired sandboxes and
// route groups with the status the in-cluster agents report for them.
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
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"strconv"
	"strings"
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
)

// Store is the control plane's database.
type Store struct {
	db      *sql.DB
	driver  string
	now     func() time.Time
	pgStyle bool
}

// Open opens (and migrates) a store. driver is DriverSQLite with a file path (or
// ":memory:"-like DSN) or DriverPostgres with a pgx DSN.
func Open(ctx context.Context, driver, dsn string) (*Store, error) {
	var (
		db      *sql.DB
		err     error
		dialect goose.Dialect
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
	return &Store{db: db, driver: driver, now: time.Now, pgStyle: driver == DriverPostgres}, nil
}

// sqliteDSN adds the settings the store relies on to a SQLite path: WAL, a busy
// timeout and write-locking transactions (so that writers queue instead of failing).
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
	return dsn + sep + "_txlock=immediate&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)"
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

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

// ---- secrets ----

// Secret returns the named server secret, creating a random one on first use.
// Replicas sharing a database share it.
func (s *Store) Secret(ctx context.Context, name string) ([]byte, error) {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`), name, NewID(32))
	if err != nil {
		return nil, fmt.Errorf("create secret %s: %w", name, err)
	}
	var v string
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT value FROM secrets WHERE name = ?`), name).Scan(&v); err != nil {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	return hex.DecodeString(v)
}

// ---- orgs ----

// Org is a tenant.
type Org struct {
	Name string
	// MaxSandboxes is the maximum number of concurrent sandboxes; 0 means unlimited.
	MaxSandboxes int64
	CreatedAt    time.Time
}

// CreateOrg creates an org; it returns ErrAlreadyExists if it exists.
func (s *Store) CreateOrg(ctx context.Context, name string, maxSandboxes int64) (Org, error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO orgs (name, max_sandboxes, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		name, maxSandboxes, s.nowNano())
	if err != nil {
		return Org{}, fmt.Errorf("create org %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Org{}, fmt.Errorf("create org %s: %w", name, ErrAlreadyExists)
	}
	return s.GetOrg(ctx, name)
}

// GetOrg returns an org or ErrNotFound.
func (s *Store) GetOrg(ctx context.Context, name string) (Org, error) {
	var o Org
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT name, max_sandboxes, created_at FROM orgs WHERE name = ?`), name).Scan(&o.Name, &o.MaxSandboxes, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Org{}, fmt.Errorf("org %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Org{}, fmt.Errorf("get org %s: %w", name, err)
	}
	o.CreatedAt = fromNano(created)
	return o, nil
}

// SetQuota sets an org's maximum number of concurrent sandboxes (0 = unlimited).
func (s *Store) SetQuota(ctx context.Context, org string, maxSandboxes int64) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE orgs SET max_sandboxes = ? WHERE name = ?`), maxSandboxes, org)
	if err != nil {
		return fmt.Errorf("set quota of org %s: %w", org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("org %s: %w", org, ErrNotFound)
	}
	return nil
}

// CountSandboxes returns the number of live sandboxes of an org.
func (s *Store) CountSandboxes(ctx context.Context, org string) (int64, error) {
	return countLive(ctx, s.db, s, org)
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func countLive(ctx context.Context, q queryer, s *Store, org string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE kind = ? AND org = ? AND deleted_at = 0`), string(KindSandbox), org).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count sandboxes of org %s: %w", org, err)
	}
	return n, nil
}

// ---- API keys ----

// APIKey is a stored API key; the key itself is only kept as a hash.
type APIKey struct {
	ID   string
	Org  string // empty for admin keys, which may act on every org
	Name string
	// Hash is the hex SHA-256 of the key.
	Hash      string
	Masked    string
	Admin     bool
	CreatedAt time.Time
	RevokedAt time.Time
}

// CreateAPIKey stores a key.
func (s *Store) CreateAPIKey(ctx context.Context, k APIKey) (APIKey, error) {
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO api_keys (id, org, name, hash, masked, admin, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`),
		k.ID, k.Org, k.Name, k.Hash, k.Masked, boolInt(k.Admin), k.CreatedAt.UnixNano())
	if err != nil {
		return APIKey{}, fmt.Errorf("create api key %s in org %s: %w", k.ID, k.Org, err)
	}
	return k, nil
}

const apiKeyCols = `id, org, name, hash, masked, admin, created_at, revoked_at`

func scanAPIKey(sc interface{ Scan(...any) error }) (APIKey, error) {
	var k APIKey
	var admin, created, revoked int64
	if err := sc.Scan(&k.ID, &k.Org, &k.Name, &k.Hash, &k.Masked, &admin, &created, &revoked); err != nil {
		return APIKey{}, err
	}
	k.Admin = admin != 0
	k.CreatedAt, k.RevokedAt = fromNano(created), fromNano(revoked)
	return k, nil
}

// LookupAPIKey finds an unrevoked key by its hash; ErrNotFound otherwise.
func (s *Store) LookupAPIKey(ctx context.Context, hash string) (APIKey, error) {
	k, err := scanAPIKey(s.db.QueryRowContext(ctx, s.q(`SELECT `+apiKeyCols+` FROM api_keys WHERE hash = ? AND revoked_at = 0`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("api key: %w", ErrNotFound)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("lookup api key: %w", err)
	}
	return k, nil
}

// ListAPIKeys lists an org's keys (revoked ones included).
func (s *Store) ListAPIKeys(ctx context.Context, org string) ([]APIKey, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+apiKeyCols+` FROM api_keys WHERE org = ? ORDER BY created_at, id`), org)
	if err != nil {
		return nil, fmt.Errorf("list api keys of org %s: %w", org, err)
	}
	defer rows.Close()
	out := []APIKey{}
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys of org %s: %w", org, err)
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

// RevokeAPIKey revokes a key of an org.
func (s *Store) RevokeAPIKey(ctx context.Context, org, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE api_keys SET revoked_at = ? WHERE org = ? AND id = ? AND revoked_at = 0`), s.nowNano(), org, id)
	if err != nil {
		return fmt.Errorf("revoke api key %s of org %s: %w", id, org, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("api key %s of org %s: %w", id, org, ErrNotFound)
	}
	return nil
}

// HasAdminKey reports whether any unrevoked admin key exists.
func (s *Store) HasAdminKey(ctx context.Context) (bool, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM api_keys WHERE admin = 1 AND revoked_at = 0`).Scan(&n); err != nil {
		return false, fmt.Errorf("count admin keys: %w", err)
	}
	return n > 0, nil
}

// ---- clusters ----

// Cluster is a registered Kubernetes cluster.
type Cluster struct {
	Org             string
	Name            string
	CreatedAt       time.Time
	OperatorVersion string
	LastSeenAt      time.Time
}

// CreateCluster registers a cluster; registering an existing one returns it unchanged.
func (s *Store) CreateCluster(ctx context.Context, org, name string) (Cluster, error) {
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO clusters (org, name, created_at) VALUES (?, ?, ?) ON CONFLICT (org, name) DO NOTHING`), org, name, s.nowNano())
	if err != nil {
		return Cluster{}, fmt.Errorf("register cluster %s/%s: %w", org, name, err)
	}
	return s.GetCluster(ctx, org, name)
}

const clusterCols = `org, name, created_at, operator_version, last_seen_at`

func scanCluster(sc interface{ Scan(...any) error }) (Cluster, error) {
	var c Cluster
	var created, seen int64
	if err := sc.Scan(&c.Org, &c.Name, &created, &c.OperatorVersion, &seen); err != nil {
		return Cluster{}, err
	}
	c.CreatedAt, c.LastSeenAt = fromNano(created), fromNano(seen)
	return c, nil
}

// GetCluster returns a cluster or ErrNotFound.
func (s *Store) GetCluster(ctx context.Context, org, name string) (Cluster, error) {
	c, err := scanCluster(s.db.QueryRowContext(ctx, s.q(`SELECT `+clusterCols+` FROM clusters WHERE org = ? AND name = ?`), org, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Cluster{}, fmt.Errorf("cluster %s/%s: %w", org, name, ErrNotFound)
	}
	if err != nil {
		return Cluster{}, fmt.Errorf("get cluster %s/%s: %w", org, name, err)
	}
	return c, nil
}

// ListClusters lists an org's clusters by name.
func (s *Store) ListClusters(ctx context.Context, org string) ([]Cluster, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+clusterCols+` FROM clusters WHERE org = ? ORDER BY name`), org)
	if err != nil {
		return nil, fmt.Errorf("list clusters of org %s: %w", org, err)
	}
	defer rows.Close()
	out := []Cluster{}
	for rows.Next() {
		c, err := scanCluster(rows)
		if err != nil {
			return nil, fmt.Errorf("list clusters of org %s: %w", org, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteCluster removes a cluster and its tokens. It fails with ErrInUse while
// live sandboxes or route groups refer to it.
func (s *Store) DeleteCluster(ctx context.Context, org, name string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	defer tx.Rollback()
	var n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM objects WHERE org = ? AND cluster = ? AND deleted_at = 0`), org, name).Scan(&n); err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	if n > 0 {
		return fmt.Errorf("delete cluster %s/%s: %d sandboxes or route groups use it: %w", org, name, n, ErrInUse)
	}
	res, err := tx.ExecContext(ctx, s.q(`DELETE FROM clusters WHERE org = ? AND name = ?`), org, name)
	if err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("cluster %s/%s: %w", org, name, ErrNotFound)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM cluster_tokens WHERE org = ? AND cluster = ?`), org, name); err != nil {
		return fmt.Errorf("delete tokens of cluster %s/%s: %w", org, name, err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM cluster_workloads WHERE org = ? AND cluster = ?`), org, name); err != nil {
		return fmt.Errorf("delete workloads of cluster %s/%s: %w", org, name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete cluster %s/%s: %w", org, name, err)
	}
	return nil
}

// TunnelOwner is the replica holding a cluster's agent tunnel.
type TunnelOwner struct {
	ReplicaID string
	// URL reaches that replica from the other replicas.
	URL       string
	ExpiresAt time.Time
}

// ClaimTunnel records (or renews) that replica holds the tunnel of
// org/cluster until now+ttl; the newest claim wins (an agent reconnecting to
// another replica moves the tunnel there).
func (s *Store) ClaimTunnel(ctx context.Context, org, cluster, replicaID, url string, ttl time.Duration) error {
	exp := s.now().Add(ttl).UTC().UnixNano()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tunnel_owners (org, cluster, replica_id, url, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (org, cluster) DO UPDATE SET replica_id = excluded.replica_id, url = excluded.url, expires_at = excluded.expires_at`), org, cluster, replicaID, url, exp)
	if err != nil {
		return fmt.Errorf("claim tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}

// RenewTunnel extends replica's claim on the tunnel of org/cluster to
// now+ttl, or takes it when nobody holds it (no claim, or an expired one); a
// live claim of another replica is left alone (that replica got a newer
// connection of the agent, e.g. while this one still holds a half-dead
// tunnel). It reports whether replica holds the claim afterwards.
func (s *Store) RenewTunnel(ctx context.Context, org, cluster, replicaID, url string, ttl time.Duration) (bool, error) {
	now := s.now()
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO tunnel_owners (org, cluster, replica_id, url, expires_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (org, cluster) DO UPDATE SET replica_id = excluded.replica_id, url = excluded.url, expires_at = excluded.expires_at
WHERE tunnel_owners.replica_id = excluded.replica_id OR tunnel_owners.expires_at <= ?`), org, cluster, replicaID, url, now.Add(ttl).UTC().UnixNano(), now.UTC().UnixNano())
	if err != nil {
		return false, fmt.Errorf("renew tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("renew tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	return n > 0, nil
}

// ReleaseTunnel drops replica's claim on the tunnel of org/cluster (a newer
// claim of another replica stays).
func (s *Store) ReleaseTunnel(ctx context.Context, org, cluster, replicaID string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM tunnel_owners WHERE org = ? AND cluster = ? AND replica_id = ?`), org, cluster, replicaID); err != nil {
		return fmt.Errorf("release tunnel of cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}

// GetTunnelOwner returns the replica holding the tunnel of org/cluster, or
// ErrNotFound when no unexpired claim exists.
func (s *Store) GetTunnelOwner(ctx context.Context, org, cluster string) (TunnelOwner, error) {
	var o TunnelOwner
	var exp int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT replica_id, url, expires_at FROM tunnel_owners WHERE org = ? AND cluster = ? AND expires_at > ?`), org, cluster, s.nowNano()).Scan(&o.ReplicaID, &o.URL, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return TunnelOwner{}, fmt.Errorf("tunnel of cluster %s/%s: %w", org, cluster, ErrNotFound)
	}
	if err != nil {
		return TunnelOwner{}, fmt.Errorf("tunnel owner of cluster %s/%s: %w", org, cluster, err)
	}
	o.ExpiresAt = fromNano(exp)
	return o, nil
}

// Workloads is the last workload report of a cluster's agent: Data is the
// JSON list as the agent sent it, Hash its digest.
type Workloads struct {
	Hash       string
	Data       json.RawMessage
	ReportedAt time.Time
}

// SetWorkloads stores a cluster's workload report, replacing the previous one.
// It fails with ErrNotFound when the cluster is not registered.
func (s *Store) SetWorkloads(ctx context.Context, org, cluster, hash string, data json.RawMessage) error {
	if _, err := s.GetCluster(ctx, org, cluster); err != nil {
		return err
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO cluster_workloads (org, cluster, hash, data, reported_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (org, cluster) DO UPDATE SET hash = excluded.hash, data = excluded.data, reported_at = excluded.reported_at`), org, cluster, hash, string(data), s.nowNano())
	if err != nil {
		return fmt.Errorf("store workloads of cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}

// GetWorkloads returns a cluster's last workload report, or ErrNotFound when
// its agent has not reported yet.
func (s *Store) GetWorkloads(ctx context.Context, org, cluster string) (Workloads, error) {
	var w Workloads
	var data string
	var at int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT hash, data, reported_at FROM cluster_workloads WHERE org = ? AND cluster = ?`), org, cluster).Scan(&w.Hash, &data, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return Workloads{}, fmt.Errorf("workloads of cluster %s/%s: %w", org, cluster, ErrNotFound)
	}
	if err != nil {
		return Workloads{}, fmt.Errorf("get workloads of cluster %s/%s: %w", org, cluster, err)
	}
	w.Data, w.ReportedAt = json.RawMessage(data), fromNano(at)
	return w, nil
}

// ClusterToken is a stored cluster token; the token itself is only kept as a hash.
type ClusterToken struct {
	ID              string
	Org             string
	Cluster         string
	Hash            string
	Masked          string
	CreatedAt       time.Time
	LastConnectedAt time.Time
	LastConnectedIP string
}

// CreateClusterToken stores a token of an existing cluster.
func (s *Store) CreateClusterToken(ctx context.Context, t ClusterToken) (ClusterToken, error) {
	if _, err := s.GetCluster(ctx, t.Org, t.Cluster); err != nil {
		return ClusterToken{}, err
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.now().UTC()
	}
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO cluster_tokens (id, org, cluster, hash, masked, created_at) VALUES (?, ?, ?, ?, ?, ?)`),
		t.ID, t.Org, t.Cluster, t.Hash, t.Masked, t.CreatedAt.UnixNano())
	if err != nil {
		return ClusterToken{}, fmt.Errorf("create token for cluster %s/%s: %w", t.Org, t.Cluster, err)
	}
	return t, nil
}

const tokenCols = `id, org, cluster, hash, masked, created_at, last_connected_at, last_connected_ip`

func scanToken(sc interface{ Scan(...any) error }) (ClusterToken, error) {
	var t ClusterToken
	var created, last int64
	if err := sc.Scan(&t.ID, &t.Org, &t.Cluster, &t.Hash, &t.Masked, &created, &last, &t.LastConnectedIP); err != nil {
		return ClusterToken{}, err
	}
	t.CreatedAt, t.LastConnectedAt = fromNano(created), fromNano(last)
	return t, nil
}

// LookupClusterToken finds a token by hash; ErrNotFound otherwise.
func (s *Store) LookupClusterToken(ctx context.Context, hash string) (ClusterToken, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM cluster_tokens WHERE hash = ?`), hash))
	if errors.Is(err, sql.ErrNoRows) {
		return ClusterToken{}, fmt.Errorf("cluster token: %w", ErrNotFound)
	}
	if err != nil {
		return ClusterToken{}, fmt.Errorf("lookup cluster token: %w", err)
	}
	return t, nil
}

// ListClusterTokens lists a cluster's tokens.
func (s *Store) ListClusterTokens(ctx context.Context, org, cluster string) ([]ClusterToken, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+tokenCols+` FROM cluster_tokens WHERE org = ? AND cluster = ? ORDER BY created_at, id`), org, cluster)
	if err != nil {
		return nil, fmt.Errorf("list tokens of cluster %s/%s: %w", org, cluster, err)
	}
	defer rows.Close()
	out := []ClusterToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens of cluster %s/%s: %w", org, cluster, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// GetClusterToken returns one token of a cluster.
func (s *Store) GetClusterToken(ctx context.Context, org, cluster, id string) (ClusterToken, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, s.q(`SELECT `+tokenCols+` FROM cluster_tokens WHERE org = ? AND cluster = ? AND id = ?`), org, cluster, id))
	if errors.Is(err, sql.ErrNoRows) {
		return ClusterToken{}, fmt.Errorf("token %s of cluster %s/%s: %w", id, org, cluster, ErrNotFound)
	}
	if err != nil {
		return ClusterToken{}, fmt.Errorf("get token %s of cluster %s/%s: %w", id, org, cluster, err)
	}
	return t, nil
}

// DeleteClusterToken deletes a token of a cluster.
func (s *Store) DeleteClusterToken(ctx context.Context, org, cluster, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM cluster_tokens WHERE org = ? AND cluster = ? AND id = ?`), org, cluster, id)
	if err != nil {
		return fmt.Errorf("delete token %s of cluster %s/%s: %w", id, org, cluster, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("token %s of cluster %s/%s: %w", id, org, cluster, ErrNotFound)
	}
	return nil
}

// TouchClusterToken records an agent connection.
func (s *Store) TouchClusterToken(ctx context.Context, id, ip, operatorVersion string) error {
	now := s.nowNano()
	var org, cluster string
	if err := s.db.QueryRowContext(ctx, s.q(`SELECT org, cluster FROM cluster_tokens WHERE id = ?`), id).Scan(&org, &cluster); err != nil {
		return fmt.Errorf("touch cluster token %s: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE cluster_tokens SET last_connected_at = ?, last_connected_ip = ? WHERE id = ?`), now, ip, id); err != nil {
		return fmt.Errorf("touch cluster token %s: %w", id, err)
	}
	if _, err := s.db.ExecContext(ctx, s.q(`UPDATE clusters SET last_seen_at = ?, operator_version = CASE WHEN ? = '' THEN operator_version ELSE ? END WHERE org = ? AND name = ?`),
		now, operatorVersion, operatorVersion, org, cluster); err != nil {
		return fmt.Errorf("touch cluster %s/%s: %w", org, cluster, err)
	}
	return nil
}

// ---- desired objects ----

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
}

const objectCols = `kind, org, name, cluster, spec, labels, routing_key, version, revision, status, created_at, updated_at, deleted_at`

func scanObject(sc interface{ Scan(...any) error }) (Object, error) {
	var o Object
	var kind, spec, labels, status string
	var created, updated, deleted int64
	if err := sc.Scan(&kind, &o.Org, &o.Name, &o.Cluster, &spec, &labels, &o.RoutingKey, &o.Version, &o.Revision, &status, &created, &updated, &deleted); err != nil {
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
	cur, err := scanObject(s.db.QueryRowContext(ctx, s.q(`SELECT `+objectCols+` FROM objects WHERE kind = ? AND org = ? AND name = ?`), string(r.Kind), r.Org, r.Name))
	exists := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
	}
	live := exists && !cur.Deleted
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
		if jsonEqual(cur.Spec, r.Spec) && maps.Equal(cur.Labels, r.Labels) {
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
	out := Object{Kind: r.Kind, Org: r.Org, Name: r.Name, Cluster: r.Cluster, Spec: r.Spec, Labels: r.Labels, Revision: rev, UpdatedAt: fromNano(now)}
	var res sql.Result
	if live {
		res, err = tx.ExecContext(ctx, s.q(`UPDATE objects SET spec = ?, labels = ?, version = version + 1, revision = ?, updated_at = ?, status = '' WHERE kind = ? AND org = ? AND name = ? AND version = ? AND deleted_at = 0`),
			string(r.Spec), labels, rev, now, string(r.Kind), r.Org, r.Name, cur.Version)
		out.RoutingKey, out.Version, out.CreatedAt = cur.RoutingKey, cur.Version+1, cur.CreatedAt
	} else {
		// Creates check the org, the cluster and the quota under the lock, so
		// concurrent creates cannot overshoot the quota.
		org, err := s.orgInTx(ctx, tx, r.Org)
		if err != nil {
			return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
		}
		if err := s.clusterExistsInTx(ctx, tx, r.Org, r.Cluster); err != nil {
			return Object{}, false, fmt.Errorf("apply %s: %w", id, err)
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
			res, err = tx.ExecContext(ctx, s.q(`UPDATE objects SET cluster = ?, spec = ?, labels = ?, routing_key = ?, version = ?, revision = ?, status = '', created_at = ?, updated_at = ?, deleted_at = 0 WHERE kind = ? AND org = ? AND name = ? AND version = ? AND deleted_at > 0`),
				r.Cluster, string(r.Spec), labels, key, out.Version, rev, now, now, string(r.Kind), r.Org, r.Name, cur.Version)
		} else {
			out.Version = 1
			res, err = tx.ExecContext(ctx, s.q(`INSERT INTO objects (`+objectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, ?, 0) ON CONFLICT (kind, org, name) DO NOTHING`),
				string(r.Kind), r.Org, r.Name, r.Cluster, string(r.Spec), labels, key, 1, rev, now, now)
		}
	}
	if err != nil {
		return Object{}, false, fmt.Errorf("apply %s: write: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Object{}, false, errRetry
	}
	if err := tx.Commit(); err != nil {
		return Object{}, false, fmt.Errorf("apply %s: commit: %w", id, err)
	}
	return out, !live, nil
}

func (s *Store) orgInTx(ctx context.Context, tx *sql.Tx, name string) (Org, error) {
	var o Org
	var created int64
	err := tx.QueryRowContext(ctx, s.q(`SELECT name, max_sandboxes, created_at FROM orgs WHERE name = ?`), name).Scan(&o.Name, &o.MaxSandboxes, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return Org{}, fmt.Errorf("org %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Org{}, fmt.Errorf("org %s: %w", name, err)
	}
	return o, nil
}

func (s *Store) clusterExistsInTx(ctx context.Context, tx *sql.Tx, org, cluster string) error {
	var n int64
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM clusters WHERE org = ? AND name = ?`), org, cluster).Scan(&n); err != nil {
		return fmt.Errorf("cluster %s/%s: %w", org, cluster, err)
	}
	if n == 0 {
		return fmt.Errorf("cluster %q of org %s: %w", cluster, org, ErrClusterNotFound)
	}
	return nil
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
	o, err := scanObject(s.db.QueryRowContext(ctx, s.q(`SELECT `+objectCols+` FROM objects WHERE kind = ? AND org = ? AND name = ? AND deleted_at = 0`), string(kind), org, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Object{}, fmt.Errorf("%s %s/%s: %w", kind, org, name, ErrNotFound)
	}
	if err != nil {
		return Object{}, fmt.Errorf("get %s %s/%s: %w", kind, org, name, err)
	}
	return o, nil
}

// List returns an org's live objects of a kind, by name, whose labels contain
// every pair of the selector.
func (s *Store) List(ctx context.Context, kind Kind, org string, selector map[string]string) ([]Object, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+objectCols+` FROM objects WHERE kind = ? AND org = ? AND deleted_at = 0 ORDER BY name`), string(kind), org)
	if err != nil {
		return nil, fmt.Errorf("list %s of org %s: %w", kind, org, err)
	}
	defer rows.Close()
	out := []Object{}
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, fmt.Errorf("list %s of org %s: %w", kind, org, err)
		}
		if matches(o.Labels, selector) {
			out = append(out, o)
		}
	}
	return out, rows.Err()
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

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
	res, err := tx.ExecContext(ctx, s.q(`UPDATE objects SET deleted_at = ?, revision = ?, updated_at = ?, status = '' WHERE kind = ? AND org = ? AND name = ? AND deleted_at = 0`),
		now, rev, now, string(kind), org, name)
	if err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("delete %s: commit: %w", id, err)
	}
	return nil
}

// SetStatus stores the status an agent of cluster observed for version of an
// object. A status for another cluster's object, or for an outdated version, is
// ignored with ErrNotFound / ErrConflict.
func (s *Store) SetStatus(ctx context.Context, kind Kind, org, cluster, name string, version int64, status json.RawMessage) error {
	id := fmt.Sprintf("%s %s/%s", kind, org, name)
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE objects SET status = ? WHERE kind = ? AND org = ? AND cluster = ? AND name = ? AND version = ? AND deleted_at = 0`),
		string(status), string(kind), org, cluster, name, version)
	if err != nil {
		return fmt.Errorf("set status of %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, err := s.Get(ctx, kind, org, name); err != nil {
			return fmt.Errorf("set status of %s: %w", id, err)
		}
		return fmt.Errorf("set status of %s version %d: %w", id, version, ErrConflict)
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

// ClusterState returns the desired objects of a cluster: everything when since
// is 0 (or older than the purged tombstones, or from the future after a database
// reset), else the changes after since.
func (s *Store) ClusterState(ctx context.Context, org, cluster string, since int64) (ClusterState, error) {
	var rev, purged int64
	err := s.db.QueryRowContext(ctx, `SELECT (SELECT value FROM counters WHERE name = 'revision'), (SELECT value FROM counters WHERE name = 'purged')`).Scan(&rev, &purged)
	if err != nil {
		return ClusterState{}, fmt.Errorf("state of cluster %s/%s: %w", org, cluster, err)
	}
	st := ClusterState{Revision: rev, Objects: []Object{}}
	query := `SELECT ` + objectCols + ` FROM objects WHERE org = ? AND cluster = ? AND revision > ? ORDER BY revision`
	args := []any{org, cluster, since}
	if since <= 0 || since < purged || since > rev {
		st.Full = true
		query = `SELECT ` + objectCols + ` FROM objects WHERE org = ? AND cluster = ? AND deleted_at = 0 ORDER BY revision`
		args = args[:2]
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return ClusterState{}, fmt.Errorf("state of cluster %s/%s: %w", org, cluster, err)
	}
	defer rows.Close()
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return ClusterState{}, fmt.Errorf("state of cluster %s/%s: %w", org, cluster, err)
		}
		st.Objects = append(st.Objects, o)
	}
	return st, rows.Err()
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
