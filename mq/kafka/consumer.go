package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Defaults of Config.
const (
	DefaultSyncTimeout    = 30 * time.Second
	DefaultAdminTimeout   = 10 * time.Second
	DefaultMaxPollRecords = 10000
	DefaultDeleteGrace    = 2 * time.Second
	DefaultDrainTimeout   = 10 * time.Second
)

// Config configures a Consumer.
type Config struct {
	// Identity is who the consumer is; the zero value means mq.IdentityFromEnv().
	Identity mq.Identity
	// Routes gives the route table; nil means a routes.Client for Identity.Baseline whose URL comes from
	// the environment (mq.EnvRoutesURL), polled in the background until Close. A source with a
	// WaitSynced(context.Context) error method (routes.Client has one) is waited for before consuming.
	Routes mq.TableSource
	// Extractor gives the routing key's names and custom headers when Propagation is nil; nil means
	// routingkey.Default.
	Extractor *routingkey.Extractor
	// Propagation reads a record's routing key to decide (Propagation.Key, without building a context)
	// and the OTel context of the records passed to the handler; nil means mq.NewPropagation(Extractor)
	// (mq.DefaultPropagation for the default Extractor).
	Propagation *mq.Propagation
	// Contexts says what the handler's context carries: mq.TraceContexts (the default) the record's trace
	// context, baggage and routing key; mq.KeyContexts its baggage and routing key only. Neither allocates
	// per record (see Handler).
	Contexts mq.Contexts
	// Logger receives the consumer's logs; nil discards them.
	Logger *slog.Logger

	// Brokers are the seed brokers (host:port).
	Brokers []string
	// Topics are the topics consumed.
	Topics []string
	// Group is the application's consumer group G. The baseline consumes in G; a sandbox in
	// Identity.ScopedName(G) ("G-sandbox-<sandbox>").
	Group string
	// ClientOptions are further franz-go options for the consumer and admin clients (TLS, SASL, client id,
	// fetch sizes, ...). The consumer sets SeedBrokers, ConsumeTopics, ConsumerGroup, AutoCommitMarks,
	// BlockRebalanceOnPoll and OnPartitionsRevoked itself; do not pass those.
	ClientOptions []kgo.Opt
	// SyncTimeout bounds the wait for the first route table in NewConsumer (default 30s).
	SyncTimeout time.Duration
	// AdminTimeout bounds each admin call: creating the sandbox group's offsets, deleting it (default 10s).
	AdminTimeout time.Duration
	// MaxPollRecords bounds the records handled between two polls (default 10000).
	MaxPollRecords int
	// DeleteGrace is how long Close keeps consuming, for a sandbox whose key is no longer routed to it,
	// before it drains (default 2s): the baseline's route copy may learn that the route is gone a little
	// after this consumer's did, and skips the sandbox's records until then.
	DeleteGrace time.Duration
	// DrainTimeout bounds how long Close then keeps consuming until the group has handled every record
	// that was in the topics when the grace ended (default 10s): records the baseline skipped while the
	// route existed must not be left unconsumed in a group about to be deleted.
	DrainTimeout time.Duration
}

// Handler processes one record. ctx carries the record's trace context (unless Config.Contexts is
// mq.KeyContexts), baggage and routing key (routingkey.FromContext), so outgoing calls made with it
// propagate the key. A non-nil error stops Run:
// the record and the rest of its poll are not committed and are delivered again to the group.
//
// Under mq.TraceContexts ctx is the record itself seen as a context, and r.Context is set to the
// consumer's context with the record's baggage and routing key (shared by the records of one baggage
// value): ctx reads its span from r's traceparent and tracestate headers each time it is asked (a handler
// that changes those headers changes the span its ctx gives; one that produces r again sets r.Context to
// the context it produces with, which franz-go's hooks read). A record whose Context a hook already set
// keeps it, and gets a context of its own.
type Handler func(ctx context.Context, r *kgo.Record) error

// Stats counts the records a Consumer handled, per decision of mq.Selector.
type Stats struct {
	// Processed counts records passed to the handler that returned nil.
	Processed uint64
	// SkippedNoKey counts records without a routing key skipped by a sandbox consumer.
	SkippedNoKey uint64
	// SkippedRoutedAway counts records the baseline skipped because their key is routed to a sandbox.
	SkippedRoutedAway uint64
	// SkippedNotMine counts records a sandbox consumer skipped because their key is not routed to it.
	SkippedNotMine uint64
	// Failed counts handler errors.
	Failed uint64
}

// Skipped is the sum of the skip counters.
func (s Stats) Skipped() uint64 { return s.SkippedNoKey + s.SkippedRoutedAway + s.SkippedNotMine }

// Consumer consumes Config.Topics in the group of its identity and passes to a Handler the records the
// selective-consumption rules (package mq) give it. Skipped records are committed like processed ones.
type Consumer struct {
	cfg      Config
	id       mq.Identity
	group    string
	log      *slog.Logger
	prop     *mq.Propagation
	sel      *mq.Selector
	src      mq.TableSource
	cl       *kgo.Client
	adm      *kadm.Client
	admCl    *kgo.Client
	stopSrc  context.CancelFunc // stops an owned routes.Client, nil otherwise
	srcDone  chan struct{}
	stopRun  context.CancelFunc
	runCtx   context.Context
	running  atomic.Bool
	runDone  chan struct{}
	closed   atomic.Bool
	closeMu  sync.Mutex
	kc       keyCarrier          // used by Run's goroutine only
	interned map[string]string   // used by Run's goroutine only
	lastKey  string              // the key keyFor returned last; Run's goroutine only
	last     []*kgo.Record       // used by Run's goroutine only
	chunk    []*kgo.Record       // used by Run's goroutine only
	hc       *mq.HandlerContexts // used by Run's goroutine only
	keys     *mq.KeyCache        // used by Run's goroutine only
	fields   []string            // c.prop.KeyFields(); Run's goroutine only
	// byLen, folded and allNames are the header names scan looks for (headerNames); Run's goroutine only
	byLen    [][]headerName
	folded   []headerName
	allNames []headerName
	counts   [numDecisions]atomic.Uint64
	failed   atomic.Uint64
	closeErr error
}

// ErrClosed is returned by Run on a closed Consumer.
var ErrClosed = errors.New("kafka: consumer closed")

var topicRE = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func (cfg *Config) validate() error {
	if len(cfg.Brokers) == 0 {
		return errors.New("kafka: config: brokers: at least one seed broker required")
	}
	for i, b := range cfg.Brokers {
		if _, port, err := net.SplitHostPort(b); err != nil || port == "" {
			return fmt.Errorf("kafka: config: brokers[%d]: %q is not host:port", i, b)
		}
	}
	if len(cfg.Topics) == 0 {
		return errors.New("kafka: config: topics: at least one topic required")
	}
	for i, t := range cfg.Topics {
		if !topicRE.MatchString(t) || t == "." || t == ".." {
			return fmt.Errorf("kafka: config: topics[%d]: %q is not a Kafka topic name ([a-zA-Z0-9._-]{1,249})", i, t)
		}
	}
	if cfg.Group == "" {
		return errors.New("kafka: config: group: required")
	}
	if len(cfg.Group) > 1024 {
		return fmt.Errorf("kafka: config: group: %d bytes, at most 1024", len(cfg.Group))
	}
	if err := cfg.Contexts.Validate(); err != nil {
		return fmt.Errorf("kafka: config: %w", err)
	}
	if cfg.SyncTimeout < 0 || cfg.AdminTimeout < 0 || cfg.MaxPollRecords < 0 || cfg.DeleteGrace < 0 || cfg.DrainTimeout < 0 {
		return errors.New("kafka: config: syncTimeout, adminTimeout, maxPollRecords, deleteGrace, drainTimeout: must not be negative")
	}
	return nil
}

// NewConsumer validates cfg, waits (at most SyncTimeout) for the first route table and, for a sandbox whose
// group Identity.ScopedName(Group) has no committed offsets, commits the current end offsets of every
// partition of Topics for it: the sandbox starts exactly where the topics end now, so nothing produced
// after NewConsumer returns is missed and nothing older is replayed. It does not consume before Run.
func NewConsumer(ctx context.Context, cfg Config) (*Consumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	id := cfg.Identity
	if id == (mq.Identity{}) {
		var err error
		if id, err = mq.IdentityFromEnv(); err != nil {
			return nil, fmt.Errorf("kafka: config: identity: %w", err)
		}
	} else if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("kafka: config: %w", err)
	}
	if id.Baseline.Kind == "" {
		id.Baseline.Kind = routeapi.KindDeployment
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.AdminTimeout == 0 {
		cfg.AdminTimeout = DefaultAdminTimeout
	}
	if cfg.MaxPollRecords == 0 {
		cfg.MaxPollRecords = DefaultMaxPollRecords
	}
	if cfg.DeleteGrace == 0 {
		cfg.DeleteGrace = DefaultDeleteGrace
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = DefaultDrainTimeout
	}
	c := &Consumer{
		cfg:     cfg,
		id:      id,
		group:   id.ScopedName(cfg.Group),
		log:     cfg.Logger,
		prop:    cfg.Propagation,
		src:     cfg.Routes,
		runDone: make(chan struct{}),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("group", c.group, "identity", id.String())
	if c.prop == nil {
		c.prop = mq.DefaultPropagation
		if cfg.Extractor != nil {
			c.prop = mq.NewPropagation(cfg.Extractor)
		}
	}
	c.interned = map[string]string{}
	c.runCtx, c.stopRun = context.WithCancel(context.Background())
	ok := false
	defer func() {
		if !ok {
			c.release()
		}
	}()
	if c.src == nil {
		rc, err := routes.New(routes.Config{Workload: id.Baseline, Logger: c.log})
		if err != nil {
			return nil, fmt.Errorf("kafka: consumer %s: %w", id, err)
		}
		var sctx context.Context
		sctx, c.stopSrc = context.WithCancel(context.Background())
		c.srcDone = make(chan struct{})
		go func() {
			defer close(c.srcDone)
			_ = rc.Run(sctx)
		}()
		c.src = rc
	}
	c.sel = mq.NewSelector(id, c.src)
	if w, isWaiter := c.src.(interface{ WaitSynced(context.Context) error }); isWaiter {
		wctx, cancel := context.WithTimeoutCause(ctx, cfg.SyncTimeout,
			fmt.Errorf("no route table within syncTimeout %s", cfg.SyncTimeout))
		err := w.WaitSynced(wctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("kafka: consumer %s: %w", id, err)
		}
	}

	var err error
	c.admCl, err = kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer %s: admin client: %w", id, err)
	}
	c.adm = kadm.NewClient(c.admCl)
	if id.IsSandbox() {
		if err := c.initSandboxGroup(ctx); err != nil {
			return nil, err
		}
	}
	opts := append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.ConsumerGroup(c.group),
		kgo.AutoCommitMarks(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := cl.CommitMarkedOffsets(ctx); err != nil {
				c.log.Warn("committing before a rebalance failed; records may be delivered again", "error", err)
			}
		}),
	)
	if id.IsSandbox() {
		// Partitions without a commit (created after NewConsumer) are read from their start: all they
		// hold is newer than the sandbox.
		opts = append(opts, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	}
	c.cl, err = kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer %s: client: %w", id, err)
	}
	ok = true
	c.log.Info("kafka consumer ready", "topics", cfg.Topics)
	return c, nil
}

// initSandboxGroup commits the end offsets of every partition of the topics that has no commit in the
// sandbox group.
func (c *Consumer) initSandboxGroup(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.AdminTimeout)
	defer cancel()
	missing := func() (kadm.Offsets, error) {
		committed, err := c.adm.FetchOffsets(ctx, c.group)
		if errors.Is(err, kerr.GroupIDNotFound) { // some brokers (kfake) answer so for a group never seen
			committed, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("kafka: sandbox group %s: fetch offsets: %w", c.group, err)
		}
		ends, err := c.adm.ListEndOffsets(ctx, c.cfg.Topics...)
		if err != nil {
			return nil, fmt.Errorf("kafka: sandbox group %s: list end offsets: %w", c.group, err)
		}
		out := kadm.Offsets{}
		var lerr error
		ends.Each(func(o kadm.ListedOffset) {
			if o.Err != nil {
				lerr = errors.Join(lerr, fmt.Errorf("kafka: sandbox group %s: end offset of topic %s partition %d: %w", c.group, o.Topic, o.Partition, o.Err))
				return
			}
			if r, ok := committed.Lookup(o.Topic, o.Partition); ok && r.Err == nil && r.At >= 0 {
				return
			}
			out.Add(kadm.Offset{Topic: o.Topic, Partition: o.Partition, At: o.Offset, LeaderEpoch: -1})
		})
		return out, lerr
	}
	todo, err := missing()
	if err != nil {
		return err
	}
	if len(todo) == 0 {
		c.log.Info("sandbox group exists, resuming from its commits")
		return nil
	}
	resp, err := c.adm.CommitOffsets(ctx, c.group, todo)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		// Another replica of the fork may have created the group meanwhile (a group with members refuses
		// these commits): fine when every partition now has a commit.
		if again, aerr := missing(); aerr != nil || len(again) > 0 {
			return fmt.Errorf("kafka: sandbox group %s: commit start offsets: %w", c.group, err)
		}
	}
	c.log.Info("sandbox group created at the end of its topics", "partitions", countOffsets(todo))
	return nil
}

func countOffsets(o kadm.Offsets) int {
	n := 0
	for _, ps := range o {
		n += len(ps)
	}
	return n
}

// Group returns the consumer group the Consumer consumes in: Config.Group for the baseline,
// Identity.ScopedName(Config.Group) for a sandbox.
func (c *Consumer) Group() string { return c.group }

// Identity returns the consumer's identity.
func (c *Consumer) Identity() mq.Identity { return c.id }

// Routes returns the route source the Consumer decides with (Config.Routes or the routes.Client it runs).
func (c *Consumer) Routes() mq.TableSource { return c.src }

// Client returns the franz-go client consuming the group (for metrics and hooks; do not poll it).
func (c *Consumer) Client() *kgo.Client { return c.cl }

// Stats returns the counters so far.
func (c *Consumer) Stats() Stats {
	return Stats{
		Processed:         c.counts[mq.Process].Load(),
		SkippedNoKey:      c.counts[mq.SkipNoKey].Load(),
		SkippedRoutedAway: c.counts[mq.SkipRoutedAway].Load(),
		SkippedNotMine:    c.counts[mq.SkipNotMine].Load(),
		Failed:            c.failed.Load(),
	}
}

// Run consumes until ctx ends or Close is called (then it returns nil, after the handler call in flight,
// whose context derives from ctx, returned), or h returns an error (then it returns it, wrapped). Records are handled one at a time in partition order; each handled or skipped record
// is marked and its offset committed in the background (every AutoCommitInterval, 5s by default), before a
// rebalance and by Close. Run may be called once.
func (c *Consumer) Run(ctx context.Context, h Handler) error {
	if h == nil {
		return errors.New("kafka: Run: handler is nil")
	}
	if c.closed.Load() {
		return ErrClosed
	}
	if !c.running.CompareAndSwap(false, true) {
		return errors.New("kafka: Run: already called")
	}
	defer close(c.runDone)
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.runCtx, cancel)
	defer stop()
	for {
		fs := c.cl.PollRecords(pctx, c.cfg.MaxPollRecords)
		if fs.IsClientClosed() || pctx.Err() != nil {
			c.cl.AllowRebalance()
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				c.log.Warn("fetch error", "topic", topic, "partition", p, "error", err)
			}
		})
		err := c.handleAll(ctx, pctx, h, fs)
		c.cl.MarkCommitRecords(c.last...)
		clear(c.last)
		c.last = c.last[:0]
		c.cl.AllowRebalance()
		if err != nil {
			return err
		}
	}
}

// numDecisions is the number of mq.Decision values (the counters' size).
const numDecisions = 4

// readRecord is what handleAll reads of a record to decide on it.
type readRecord struct {
	hs  recordHeaders
	key string
	e   *mq.Keyed
}

// handleAll handles the records of one poll in order (the order of kgo.Fetches.RecordIter: fetch, topic,
// partition) and leaves the last handled record of each partition in c.last, for Run to mark for commit.
// It stops early when pctx ends (Close) or a handler fails. The counters are added up per poll (Stats
// lags by at most a poll).
func (c *Consumer) handleAll(ctx, pctx context.Context, h Handler, fs kgo.Fetches) error {
	c.last = c.last[:0]
	var counts [numDecisions]uint64
	defer c.addCounts(&counts)
	var rd readRecord
	for i := range fs {
		for j := range fs[i].Topics {
			ft := &fs[i].Topics[j]
			for k := range ft.Partitions {
				rs := ft.Partitions[k].Records
				n, err := c.handleRun(ctx, pctx, h, rs, &rd, &counts)
				if n > 0 {
					c.markLast(rs[n-1])
				}
				if err != nil || n < len(rs) {
					return err
				}
			}
		}
	}
	return nil
}

// handleRun handles rs, records of one partition, in order, and returns how many it handled: all of them,
// or those before the one whose handler failed (err) or before pctx ended.
func (c *Consumer) handleRun(ctx, pctx context.Context, h Handler, rs []*kgo.Record, rd *readRecord, counts *[numDecisions]uint64) (int, error) {
	for i, r := range rs {
		if pctx.Err() != nil {
			return i, nil
		}
		c.readKey(r, rd)
		d, err := c.handleRead(ctx, h, r, rd)
		if err != nil {
			return i, err
		}
		counts[d]++
	}
	return len(rs), nil
}

// markLast makes r the last handled record of its partition in c.last (a partition may come in more than
// one fetch of a poll).
func (c *Consumer) markLast(r *kgo.Record) {
	for n := range c.last {
		if c.last[n].Partition == r.Partition && c.last[n].Topic == r.Topic {
			c.last[n] = r
			return
		}
	}
	c.last = append(c.last, r)
}

// addCounts adds counts to the consumer's counters and zeroes them.
func (c *Consumer) addCounts(counts *[numDecisions]uint64) {
	for d, n := range counts {
		if n > 0 {
			c.counts[d].Add(n)
		}
	}
	clear(counts[:])
}

// readKey reads r's routing key into rd (in place, as scan).
func (c *Consumer) readKey(r *kgo.Record, rd *readRecord) {
	if len(r.Headers) == 0 {
		rd.hs, rd.key, rd.e = recordHeaders{bag: -1, tp: -1, ts: -1}, "", nil
		return
	}
	c.scan(r, &rd.hs)
	rd.key, rd.e = c.keyOf(r, &rd.hs)
}

// handleRead decides on r, whose key readKey read as rd, and passes it to h if it is the consumer's, with
// its OTel context.
func (c *Consumer) handleRead(ctx context.Context, h Handler, r *kgo.Record, rd *readRecord) (mq.Decision, error) {
	var d mq.Decision
	if rd.e != nil {
		d = c.sel.DecideKeyed(rd.e)
	} else {
		d = c.sel.Decide(rd.key)
	}
	if d == mq.Process {
		switch {
		case !rd.hs.relevant:
		case c.cfg.Contexts == mq.KeyContexts:
			ctx = c.keyContext(ctx, r, rd)
		default:
			ctx = c.recordContext(ctx, r, rd)
		}
		if err := h(ctx, r); err != nil {
			c.failed.Add(1)
			return d, fmt.Errorf("kafka: group %s: handler for topic %s partition %d offset %d: %w", c.group, r.Topic, r.Partition, r.Offset, err)
		}
	}
	return d, nil
}

// handle is handleAll's work for one record.
func (c *Consumer) handle(ctx context.Context, h Handler, r *kgo.Record) error {
	var rd readRecord
	c.readKey(r, &rd)
	d, err := c.handleRead(ctx, h, r, &rd)
	if err == nil {
		c.counts[d].Add(1)
	}
	return err
}

// Close stops Run, commits the handled records, leaves the group and closes the clients. For a sandbox
// whose routing key the route table no longer routes to it (the sandbox is being deleted), it then deletes
// the sandbox group; it never deletes the baseline's group. ctx bounds the whole; Close is idempotent.
func (c *Consumer) Close(ctx context.Context) error {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if !c.closed.CompareAndSwap(false, true) {
		return c.closeErr
	}
	if c.id.IsSandbox() && c.running.Load() && !c.stillRouted() {
		c.drain(ctx)
	}
	c.stopRun()
	var errs []error
	if c.running.Load() {
		select {
		case <-c.runDone:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("waiting for Run to return: %w", context.Cause(ctx)))
		}
	}
	if err := c.cl.CommitMarkedOffsets(ctx); err != nil {
		errs = append(errs, fmt.Errorf("commit: %w", err))
	}
	c.cl.AllowRebalance()
	if err := c.cl.LeaveGroupContext(ctx); err != nil {
		errs = append(errs, fmt.Errorf("leave group: %w", err))
	}
	c.cl.Close()
	if c.id.IsSandbox() && !c.stillRouted() {
		dctx, cancel := context.WithTimeout(ctx, c.cfg.AdminTimeout)
		_, err := c.adm.DeleteGroup(dctx, c.group)
		cancel()
		switch {
		case err == nil:
			c.log.Info("sandbox group deleted: the sandbox's routing key is no longer routed to it")
		case errors.Is(err, kerr.GroupIDNotFound):
		case errors.Is(err, kerr.NonEmptyGroup):
			c.log.Info("sandbox group kept: other members still consume in it")
		default:
			errs = append(errs, fmt.Errorf("delete sandbox group: %w", err))
		}
	}
	c.release()
	if len(errs) > 0 {
		c.closeErr = fmt.Errorf("kafka: close consumer of group %s: %w", c.group, errors.Join(errs...))
	}
	return c.closeErr
}

// drain keeps Run consuming for DeleteGrace, then until the group has committed, for every partition of
// the topics, the end offset seen when the grace ended (bounded by DrainTimeout and ctx). The fork of a
// sandbox being deleted still processes its own key meanwhile, so the records of that key the baseline
// skipped before its route copy changed are handled before the group is deleted. Errors only end the
// drain early (logged): Close goes on.
func (c *Consumer) drain(ctx context.Context) {
	start := time.Now()
	select {
	case <-ctx.Done():
		return
	case <-c.runDone:
		return
	case <-time.After(c.cfg.DeleteGrace):
	}
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DrainTimeout)
	defer cancel()
	ends, err := c.adm.ListEndOffsets(dctx, c.cfg.Topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		c.log.Warn("drain: end offsets not listed; closing without drain", "error", err)
		return
	}
	for {
		if err := c.cl.CommitMarkedOffsets(dctx); err != nil && dctx.Err() == nil {
			c.log.Warn("drain: commit", "error", err)
		}
		committed, err := c.adm.FetchOffsets(dctx, c.group)
		if err == nil {
			err = committed.Error()
		}
		if err == nil && drained(ends, committed) {
			c.log.Info("sandbox group drained before deletion", "took", time.Since(start).Round(time.Millisecond))
			return
		}
		select {
		case <-dctx.Done():
			c.log.Warn("drain: not drained within the drain timeout; closing", "error", err)
			return
		case <-c.runDone:
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// drained reports whether the group's committed offsets reach ends on every partition that has records.
func drained(ends kadm.ListedOffsets, committed kadm.OffsetResponses) bool {
	ok := true
	ends.Each(func(e kadm.ListedOffset) {
		if e.Offset <= 0 {
			return
		}
		o, found := committed.Lookup(e.Topic, e.Partition)
		if !found || o.At < e.Offset {
			ok = false
		}
	})
	return ok
}

// stillRouted reports whether the sandbox's own key still leads to the sandbox for the baseline workload.
func (c *Consumer) stillRouted() bool {
	return c.src.Table().RoutesTo(c.id.Baseline, c.id.RoutingKey, c.id.Sandbox)
}

func (c *Consumer) release() {
	if c.stopRun != nil {
		c.stopRun()
	}
	if c.admCl != nil {
		c.admCl.Close()
	}
	if c.stopSrc != nil {
		c.stopSrc()
		<-c.srcDone
	}
}
