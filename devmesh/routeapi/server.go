package routeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ServerConfig configures a Server. Zero values pick the defaults.
type ServerConfig struct {
	// Logger receives the server's logs; nil discards them.
	Logger *slog.Logger
	// SubscriberBuffer is how many deltas may queue for one subscriber before it is switched to a fresh
	// snapshot instead (default 64).
	SubscriberBuffer int
	// History is how many recent deltas are kept to resume a reconnecting client without a snapshot
	// (default 256).
	History int
	// Heartbeat is the interval of heartbeat messages on idle streams (default 10s).
	Heartbeat time.Duration
	// MaxWaiters bounds the HTTP long-polls (?wait=) blocked at once; one more is answered 503 with
	// Retry-After (default 4096). A waiter costs its request goroutine and a timer, nothing per publish
	// beyond one channel close.
	MaxWaiters int
}

// Server is the route server: it holds the current table, turns each Publish into a delta and fans it
// out to every Watch subscriber. Register it on a grpc.Server and mount LookupHandler on an HTTP mux.
type Server struct {
	log       *slog.Logger
	epoch     string
	bufSize   int
	histSize  int
	heartbeat time.Duration
	maxWait   int64

	cur atomic.Pointer[Table]
	// changed is closed (and replaced) by every commit that bumps the version: the broadcast the HTTP
	// long-polls block on. Load it before the table, so a commit in between is never missed.
	changed   atomic.Pointer[chan struct{}]
	waiters   atomic.Int64
	closing   chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex // serializes publishes and subscriber registration
	history []histEntry
	subs    map[*subscriber]struct{}
	nsubs   atomic.Int64
}

type histEntry struct {
	prev, version uint64
	changes       []Change
}

type subscriber struct {
	filter map[WorkloadRef]bool
	ch     chan *WatchResponse
	resync atomic.Bool
	wake   chan struct{}
}

// NewServer returns a server with an empty table. Versions start at the current Unix time in
// nanoseconds so that they keep growing across operator restarts.
func NewServer(cfg ServerConfig) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SubscriberBuffer <= 0 {
		cfg.SubscriberBuffer = 64
	}
	if cfg.History <= 0 {
		cfg.History = 256
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.MaxWaiters <= 0 {
		cfg.MaxWaiters = 4096
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	s := &Server{
		log:       cfg.Logger,
		epoch:     hex.EncodeToString(b[:]),
		bufSize:   cfg.SubscriberBuffer,
		histSize:  cfg.History,
		heartbeat: cfg.Heartbeat,
		maxWait:   int64(cfg.MaxWaiters),
		subs:      make(map[*subscriber]struct{}),
		closing:   make(chan struct{}),
	}
	ch := make(chan struct{})
	s.changed.Store(&ch)
	s.cur.Store(&Table{version: uint64(time.Now().UnixNano()), byW: map[WorkloadRef]map[string]*entry{}})
	return s
}

// Register registers the Routes service on g (a *grpc.Server).
func (s *Server) Register(g grpc.ServiceRegistrar) { g.RegisterService(&serviceDesc, s) }

// Epoch returns the server instance's epoch.
func (s *Server) Epoch() string { return s.epoch }

// Table returns the current table.
func (s *Server) Table() *Table { return s.cur.Load() }

// Subscribers returns the number of open Watch streams.
func (s *Server) Subscribers() int { return int(s.nsubs.Load()) }

// Waiters returns the number of HTTP long-polls blocked waiting for a change.
func (s *Server) Waiters() int { return int(s.waiters.Load()) }

// CloseWaiters releases every blocked HTTP long-poll (they answer 304 Not Modified at once) and makes
// later ones answer without blocking. Call it when the HTTP server shuts down (http.Server's
// RegisterOnShutdown): http.Server.Shutdown waits for running handlers and does not cancel them.
func (s *Server) CloseWaiters() { s.closeOnce.Do(func() { close(s.closing) }) }

// Publish makes routes the complete desired table. It computes the delta against the current table,
// bumps the version and fans the delta out; it returns the version in force (unchanged when routes
// equal the current table). It never blocks on a slow subscriber.
func (s *Server) Publish(ctx context.Context, routes []Route) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("publish routes: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	nt, err := cur.rebuild(cur.version+1, routes)
	if err != nil {
		return cur.version, fmt.Errorf("publish routes: %w", err)
	}
	return s.commitLocked(cur, nt, Diff(cur, nt)), nil
}

// PublishWorkload makes routes the complete route set of workload w, leaving other workloads untouched
// (the meshadapters devmesh backend applies one baseline service at a time). Every route must be for w;
// an empty routes removes w's routes.
func (s *Server) PublishWorkload(ctx context.Context, w WorkloadRef, routes []Route) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("publish routes of %s: %w", w, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	nt, err := cur.withWorkload(cur.version+1, w, routes)
	if err != nil {
		return cur.version, fmt.Errorf("publish routes of %s: %w", w, err)
	}
	wn := w.normalized()
	changes := diffWorkload(nil, wn, cur.byW[wn], nt.byW[wn])
	sortChanges(changes)
	return s.commitLocked(cur, nt, changes), nil
}

// Apply applies incremental changes (add/remove/replace, in order) to the current table: O(changes)
// instead of a diff of the whole set, for callers that track their own deltas. A change that does not
// fit the current table (add of an existing route, remove of a missing one) fails the whole call with
// ErrInvalidRoute and changes nothing.
func (s *Server) Apply(ctx context.Context, changes []Change) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("apply route changes: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.cur.Load()
	if len(changes) == 0 {
		return cur.version, nil
	}
	nt, err := cur.Apply(cur.version+1, changes)
	if err != nil {
		return cur.version, fmt.Errorf("apply route changes: %w", err)
	}
	return s.commitLocked(cur, nt, slices.Clone(changes)), nil
}

func (s *Server) commitLocked(cur, nt *Table, changes []Change) uint64 {
	if len(changes) == 0 {
		return cur.version
	}
	s.cur.Store(nt)
	next := make(chan struct{})
	close(*s.changed.Swap(&next))
	s.history = append(s.history, histEntry{prev: cur.version, version: nt.version, changes: changes})
	if len(s.history) > s.histSize {
		s.history = append(s.history[:0:0], s.history[len(s.history)-s.histSize:]...)
	}
	for sub := range s.subs {
		fc := filterChanges(changes, sub.filter)
		if len(fc) == 0 {
			continue
		}
		msg := &WatchResponse{Type: MessageDelta, Epoch: s.epoch, Version: nt.version, Changes: fc}
		select {
		case sub.ch <- msg:
		default:
			sub.resync.Store(true)
			select {
			case sub.wake <- struct{}{}:
			default:
			}
		}
	}
	s.log.Debug("routes published", "version", nt.version, "changes", len(changes), "routes", nt.Len(), "subscribers", len(s.subs))
	return nt.version
}

// firstMessageLocked picks what a new subscriber gets first: a delta from its known version when the
// history covers it, else a snapshot.
func (s *Server) firstMessageLocked(req *WatchRequest, filter map[WorkloadRef]bool, t *Table) *WatchResponse {
	if req.KnownEpoch == s.epoch && req.KnownVersion != 0 {
		if req.KnownVersion == t.version {
			return &WatchResponse{Type: MessageDelta, Epoch: s.epoch, Version: t.version}
		}
		for i, h := range s.history {
			if h.prev == req.KnownVersion {
				var changes []Change
				for _, h := range s.history[i:] {
					changes = append(changes, filterChanges(h.changes, filter)...)
				}
				return &WatchResponse{Type: MessageDelta, Epoch: s.epoch, Version: t.version, Changes: changes}
			}
		}
	}
	return s.snapshot(t, req.Workloads)
}

func (s *Server) snapshot(t *Table, ws []WorkloadRef) *WatchResponse {
	return &WatchResponse{Type: MessageSnapshot, Epoch: s.epoch, Version: t.version, Routes: t.RoutesFor(ws)}
}

func (s *Server) watch(req *WatchRequest, stream grpc.ServerStream) error {
	ctx := stream.Context()
	var filter map[WorkloadRef]bool
	if len(req.Workloads) > 0 {
		filter = make(map[WorkloadRef]bool, len(req.Workloads))
		for _, w := range req.Workloads {
			if w.Namespace == "" || w.Name == "" {
				return status.Errorf(codes.InvalidArgument, "workloads: %s: namespace and name required", w)
			}
			filter[w.normalized()] = true
		}
	}
	sub := &subscriber{filter: filter, ch: make(chan *WatchResponse, s.bufSize), wake: make(chan struct{}, 1)}
	s.mu.Lock()
	t := s.cur.Load()
	first := s.firstMessageLocked(req, filter, t)
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	s.nsubs.Add(1)
	defer func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		s.nsubs.Add(-1)
	}()
	s.log.Info("route watch opened", "client", req.Client, "type", first.Type, "version", first.Version, "workloads", len(req.Workloads))
	if err := stream.SendMsg(first); err != nil {
		return fmt.Errorf("watch %s: send %s: %w", req.Client, first.Type, err)
	}
	last := t.version
	hb := time.NewTicker(s.heartbeat)
	defer hb.Stop()
	for {
		if sub.resync.Swap(false) {
			for drained := false; !drained; {
				select {
				case <-sub.ch:
				default:
					drained = true
				}
			}
			t := s.cur.Load()
			if t.version > last {
				if err := stream.SendMsg(s.snapshot(t, req.Workloads)); err != nil {
					return fmt.Errorf("watch %s: send resync snapshot: %w", req.Client, err)
				}
				last = t.version
			}
		}
		var msg *WatchResponse
		select {
		case <-ctx.Done():
			s.log.Info("route watch closed", "client", req.Client, "version", last)
			return nil
		case <-sub.wake:
			continue
		case <-hb.C:
			msg = &WatchResponse{Type: MessageHeartbeat, Epoch: s.epoch, Version: last}
		case msg = <-sub.ch:
			if sub.resync.Load() || msg.Version <= last {
				continue
			}
			last = msg.Version
		}
		if err := stream.SendMsg(msg); err != nil {
			return fmt.Errorf("watch %s: send %s: %w", req.Client, msg.Type, err)
		}
	}
}
