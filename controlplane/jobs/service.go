package jobs

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Defaults of Config.
const (
	DefaultMaxArtifactBytes = 100 << 20
	DefaultLostAfter        = 10 * time.Second
	DefaultCancelGrace      = 10 * time.Second
	DefaultSweepInterval    = time.Second
	DefaultClaimPoll        = time.Second
	DefaultLogPoll          = 250 * time.Millisecond
	DefaultMaxClaimWait     = 30 * time.Second
	DefaultMaxLogBytes      = 64 << 20
)

// Config configures a Service.
type Config struct {
	// Store is required.
	Store *store.Store
	// Artifacts keeps artifact bytes under the keys of artifacts.Key (no
	// artifact path reaches it); nil refuses artifact uploads (and
	// stdout/stderr are then not kept as system artifacts; the logs are).
	Artifacts artifacts.Store
	// Logger; nil discards.
	Logger *slog.Logger
	// MaxArtifactBytes bounds one artifact (default 100 MiB).
	MaxArtifactBytes int64
	// LostAfter: a running attempt without an event for this long fails
	// (default 10s).
	LostAfter time.Duration
	// CancelGrace: a running attempt asked to cancel (by a user or its
	// timeout) that its runner does not finish within this is canceled
	// without it (default 10s).
	CancelGrace time.Duration
	// SweepInterval: how often Run sweeps (default 1s).
	SweepInterval time.Duration
	// ClaimPoll: how often a waiting claim re-reads the queue, for jobs
	// submitted through other replicas should the change feed (store.Follow)
	// miss them (default 1s); LogPoll the same for log streams (default 250ms).
	ClaimPoll, LogPoll time.Duration
	// MaxClaimWait bounds a claim's wait (default 30s).
	MaxClaimWait time.Duration
	// MaxLogBytes caps the output kept per attempt (default 64 MiB); more
	// is dropped with a marker line on stderr.
	MaxLogBytes int64
}

// Service is the jobs service.
type Service struct {
	cfg Config
	st  *store.Store
	log *slog.Logger

	secretMu sync.Mutex
	secret   []byte

	queue *broadcaster      // wakes claims: a job was submitted
	logs  *keyedBroadcaster // wakes log streams of one job
}

// New returns a Service; call Run for its sweeper.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil {
		return nil, errors.New("jobs: Config.Store is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if cfg.MaxArtifactBytes <= 0 {
		cfg.MaxArtifactBytes = DefaultMaxArtifactBytes
	}
	if cfg.MaxLogBytes <= 0 {
		cfg.MaxLogBytes = DefaultMaxLogBytes
	}
	def(&cfg.LostAfter, DefaultLostAfter)
	def(&cfg.CancelGrace, DefaultCancelGrace)
	def(&cfg.SweepInterval, DefaultSweepInterval)
	def(&cfg.ClaimPoll, DefaultClaimPoll)
	def(&cfg.LogPoll, DefaultLogPoll)
	def(&cfg.MaxClaimWait, DefaultMaxClaimWait)
	s := &Service{cfg: cfg, st: cfg.Store, log: cfg.Logger, queue: newBroadcaster(), logs: newKeyedBroadcaster()}
	cfg.Store.Watch(s.changed)
	return s, nil
}

// MaxArtifactBytes returns the configured artifact size limit.
func (s *Service) MaxArtifactBytes() int64 { return s.cfg.MaxArtifactBytes }

// changed wakes the waiters a store change concerns.
func (s *Service) changed(c store.Change) {
	switch c.What {
	case store.ChangeJob:
		s.queue.broadcast()
		s.logs.broadcast(c.Org + "/" + c.Name)
	case store.ChangeJobLogs:
		s.logs.broadcast(c.Org + "/" + c.Name)
	}
}

// Run sweeps every SweepInterval until ctx ends: attempts whose runner
// stopped reporting fail, attempts past their runner group's jobTimeout are
// asked to cancel and canceled after CancelGrace.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.Sweep(ctx)
	}
}

// Sweep runs one sweep (Run calls it; tests may too).
func (s *Service) Sweep(ctx context.Context) {
	ended, err := s.st.SweepJobs(ctx, s.cfg.LostAfter, s.cfg.CancelGrace)
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "jobs sweeper", "err", err)
		}
		return
	}
	for _, j := range ended {
		s.log.InfoContext(ctx, "job attempt ended by the sweeper", "org", j.Org, "job", j.Name, "attempt", j.Attempt, "phase", j.Phase, "message", j.Message)
		s.keepOutput(ctx, j)
	}
}

// ---- notifications ----

type broadcaster struct {
	mu sync.Mutex
	ch chan struct{}
}

func newBroadcaster() *broadcaster { return &broadcaster{ch: make(chan struct{})} }

func (b *broadcaster) wait() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

func (b *broadcaster) broadcast() {
	b.mu.Lock()
	close(b.ch)
	b.ch = make(chan struct{})
	b.mu.Unlock()
}

// keyedBroadcaster wakes the waiters of one key; channels exist only while
// someone waits.
type keyedBroadcaster struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newKeyedBroadcaster() *keyedBroadcaster { return &keyedBroadcaster{m: map[string]chan struct{}{}} }

func (k *keyedBroadcaster) wait(key string) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	ch, ok := k.m[key]
	if !ok {
		ch = make(chan struct{})
		k.m[key] = ch
	}
	return ch
}

func (k *keyedBroadcaster) broadcast(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if ch, ok := k.m[key]; ok {
		close(ch)
		delete(k.m, key)
	}
}

// ---- errors ----

// ValidationError is a request the service refused: HTTP 400 with field paths.
type ValidationError struct {
	Msg    string
	Fields apitypes.FieldErrors
}

// Error formats the error.
func (e *ValidationError) Error() string {
	if len(e.Fields) > 0 {
		return e.Msg + ": " + e.Fields.Error()
	}
	return e.Msg
}

func invalid(msg string, fields ...apitypes.FieldError) error {
	return &ValidationError{Msg: msg, Fields: fields}
}

// Sentinel errors of the service (besides the store's).
var (
	// ErrUnauthorized: a runner token is missing, malformed or not the
	// token of the named live runner group.
	ErrUnauthorized = errors.New("invalid runner token")
	// ErrForbidden: a runner asked about a job of another runner group.
	ErrForbidden = errors.New("not a job of this runner group")
	// ErrTooLarge: an artifact is larger than MaxArtifactBytes.
	ErrTooLarge = artifacts.ErrTooLarge
	// ErrNoArtifactStore: the control plane has no artifact store.
	ErrNoArtifactStore = errors.New("artifact storage is not configured")
)

const nameChars = "abcdefghijklmnopqrstuvwxyz0123456789"

// randomSuffix returns n random characters of [a-z0-9], uniformly (bytes
// of 252 and above are redrawn).
func randomSuffix(n int) string {
	out := make([]byte, 0, n)
	b := make([]byte, 2*n)
	for len(out) < n {
		_, _ = rand.Read(b)
		for _, c := range b {
			if int(c) < 252 && len(out) < n {
				out = append(out, nameChars[int(c)%len(nameChars)])
			}
		}
	}
	return string(out)
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func wrap(what string, err error) error { return fmt.Errorf("%s: %w", what, err) }
