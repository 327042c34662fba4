// Package routes owns the consumer side of the operator's route lookup API (docs/routes-api.md): a Client
// that keeps a copy of the route table fresh by long-polling GET /v1/routes with If-None-Match, so that
// queue consumers decide per message with an in-memory lookup. It depends on nothing heavier than the
// route data model of devmesh/routeapi and net/http.
package routes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// EnvURL is the environment variable with the lookup API's base URL (set on forks and injected pods).
const EnvURL = "SANDBOXMESH_ROUTES_URL"

// MaxBodyBytes bounds a /v1/routes answer the Client accepts.
const MaxBodyBytes = 64 << 20

// Config configures a Client.
type Config struct {
	// URL is the base URL of the lookup API, e.g. http://sandboxmesh-operator.sandboxmesh-system.svc:15011.
	// Empty means the value of EnvURL.
	URL string
	// Workload limits the copy to the routes of one baseline workload (recommended: a consumer needs no
	// other). The zero value copies the whole table.
	Workload routeapi.WorkloadRef
	// Wait is how long the server holds a poll open when nothing changed (default 30s, max 60s).
	Wait time.Duration
	// MinInterval is the least time between two polls that returned the same table (default 1s); it keeps a
	// server that does not long-poll from being asked in a busy loop.
	MinInterval time.Duration
	// MaxBackoff caps the delay between retries after errors (default 5s).
	MaxBackoff time.Duration
	// HTTPClient sends the polls (default: a client with a timeout of Wait + 15s).
	HTTPClient *http.Client
	// Logger receives errors and table changes (default: discard).
	Logger *slog.Logger
}

// Client keeps a copy of the route table. Table is safe for concurrent use and never blocks.
type Client struct {
	cfg      Config
	endpoint string
	table    atomic.Pointer[routeapi.Table]
	etag     string
	epoch    string
	synced   chan struct{}
	once     sync.Once
	changed  chan struct{} // closed and replaced on each new table
	mu       sync.Mutex
	lastErr  atomic.Pointer[error]
}

// ErrNoURL is returned by New when neither Config.URL nor EnvURL gives the API's address.
var ErrNoURL = errors.New("routes: no lookup API URL (set " + EnvURL + ")")

// New validates cfg and returns a Client; call Run to start polling.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" {
		cfg.URL = os.Getenv(EnvURL)
	}
	if cfg.URL == "" {
		return nil, ErrNoURL
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("routes: url %q: want http(s)://host[:port]", cfg.URL)
	}
	if (cfg.Workload.Namespace == "") != (cfg.Workload.Name == "") {
		return nil, fmt.Errorf("routes: workload %s: namespace and name go together", cfg.Workload)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 30 * time.Second
	}
	cfg.Wait = min(cfg.Wait, 60*time.Second)
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: cfg.Wait + 15*time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	q := url.Values{}
	if cfg.Workload.Name != "" {
		q.Set("namespace", cfg.Workload.Namespace)
		q.Set("workload", cfg.Workload.Name)
		if cfg.Workload.Kind != "" {
			q.Set("kind", cfg.Workload.Kind)
		}
	}
	q.Set("wait", cfg.Wait.String())
	c := &Client{
		cfg:      cfg,
		endpoint: strings.TrimRight(u.String(), "/") + "/v1/routes?" + q.Encode(),
		synced:   make(chan struct{}),
		changed:  make(chan struct{}),
	}
	return c, nil
}

// Table returns the latest copy of the route table (nil, an empty table, before the first sync).
func (c *Client) Table() *routeapi.Table { return c.table.Load() }

// Version returns the version of the latest copy (0 before the first sync).
func (c *Client) Version() uint64 { return c.table.Load().Version() }

// Synced reports whether the Client has received a table at least once.
func (c *Client) Synced() bool {
	select {
	case <-c.synced:
		return true
	default:
		return false
	}
}

// Err returns the error of the last failed poll, or nil when the last poll succeeded.
func (c *Client) Err() error {
	if p := c.lastErr.Load(); p != nil {
		return *p
	}
	return nil
}

// WaitSynced blocks until the first table arrived or ctx ends.
func (c *Client) WaitSynced(ctx context.Context) error {
	select {
	case <-c.synced:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("routes: waiting for the first table from %s: %w", c.endpoint, context.Cause(ctx))
	}
}

// WaitVersion blocks until the copy's version is at least v or ctx ends (tests and tools use it to know a
// published change has reached this consumer).
func (c *Client) WaitVersion(ctx context.Context, v uint64) error {
	for {
		c.mu.Lock()
		ch := c.changed
		c.mu.Unlock()
		if c.Version() >= v {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("routes: waiting for version %d (have %d): %w", v, c.Version(), context.Cause(ctx))
		}
	}
}

// Run polls until ctx ends and returns nil then. Errors are retried with backoff and reported by Err.
func (c *Client) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		changed, err := c.Poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.lastErr.Store(&err)
			c.cfg.Logger.Warn("route lookup poll failed", "url", c.endpoint, "error", err, "retryIn", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, c.cfg.MaxBackoff)
			continue
		}
		c.lastErr.Store(nil)
		backoff = 100 * time.Millisecond
		if !changed {
			// A long-poll that ended with nothing new took about Wait; a server that answers at once with
			// the same table is not long-polling: don't ask it in a busy loop.
			if d := c.cfg.MinInterval - time.Since(start); d > 0 && !sleep(ctx, d) {
				return nil
			}
		}
	}
	return nil
}

// Poll asks the server once (holding the poll open up to Wait when nothing changed) and reports whether the
// copy changed.
func (c *Client) Poll(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint, nil)
	if err != nil {
		return false, fmt.Errorf("routes: %w", err)
	}
	if c.etag != "" {
		req.Header.Set("If-None-Match", c.etag)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("routes: GET %s: %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotModified:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return false, nil
	case http.StatusOK:
	default:
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return false, fmt.Errorf("routes: GET %s: %s: %s", c.endpoint, resp.Status, strings.TrimSpace(string(b)))
	}
	var body struct {
		Version uint64           `json:"version"`
		Epoch   string           `json:"epoch"`
		Routes  []routeapi.Route `json:"routes"`
	}
	dec := json.NewDecoder(io.LimitReader(resp.Body, MaxBodyBytes))
	if err := dec.Decode(&body); err != nil {
		return false, fmt.Errorf("routes: GET %s: decode: %w", c.endpoint, err)
	}
	etag := resp.Header.Get("ETag")
	old := c.table.Load()
	if c.Synced() && body.Epoch == c.epoch && body.Version == old.Version() {
		c.etag = etag
		return false, nil
	}
	t, err := routeapi.NewTable(body.Version, body.Routes)
	if err != nil {
		return false, fmt.Errorf("routes: GET %s: %w", c.endpoint, err)
	}
	c.etag, c.epoch = etag, body.Epoch
	c.table.Store(t)
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
	c.once.Do(func() { close(c.synced) })
	c.cfg.Logger.Debug("route table updated", "version", t.Version(), "routes", t.Len())
	return true, nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
