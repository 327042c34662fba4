package nats

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
)

// Common configures what every consumer of this package shares.
type Common struct {
	// Identity is who consumes; the zero value means mq.IdentityFromEnv().
	Identity mq.Identity
	// Routes gives the route table. Nil means a routes.Client for Identity.Baseline, with the URL of
	// mq.EnvRoutesURL, run in the background until Close.
	Routes mq.TableSource
	// Propagation reads the trace context and routing key from headers; nil means mq.DefaultPropagation.
	Propagation *mq.Propagation
	// Contexts says what the handler's context carries: mq.TraceContexts (the default) the message's trace
	// context, baggage and routing key; mq.KeyContexts its baggage and routing key only, shared by the
	// messages of one baggage value (no allocation per message).
	Contexts mq.Contexts
	// Logger receives decisions worth logging and errors (default: discard). It never receives message
	// bodies or header values other than the routing key.
	Logger *slog.Logger
	// SyncTimeout bounds the constructor's wait for the first route table (default 30s). Routes that have
	// a WaitSynced(context.Context) error method (routes.Client) are waited for; others are taken as synced.
	SyncTimeout time.Duration
}

// Stats counts what a consumer did with the messages it received, per decision.
type Stats struct {
	// Processed is the number of messages the handler returned nil for.
	Processed uint64
	// Failed is the number of messages the handler returned an error for (JetStream redelivers them).
	Failed uint64
	// SkippedNoKey counts messages without a routing key skipped by a sandbox consumer.
	SkippedNoKey uint64
	// SkippedRoutedAway counts messages the baseline skipped because their key is routed to a sandbox.
	SkippedRoutedAway uint64
	// SkippedNotMine counts messages a sandbox skipped because their key is not routed to it.
	SkippedNotMine uint64
}

// Skipped is the sum of the skip counters.
func (s Stats) Skipped() uint64 { return s.SkippedNoKey + s.SkippedRoutedAway + s.SkippedNotMine }

type syncer interface {
	WaitSynced(ctx context.Context) error
}

// core is the selective part shared by the JetStream and the queue consumer.
type core struct {
	id        mq.Identity
	sel       *mq.Selector
	routes    mq.TableSource
	prop      *mq.Propagation
	mode      mq.Contexts
	fields    []string // lower-case header names prop reads
	keyFields []string // lower-case header names prop reads the routing key from

	// cacheMu guards keys and contexts (the client calls a consumer's callback from one goroutine: the
	// lock is never waited for; a call that finds it taken goes without the caches).
	cacheMu  sync.Mutex
	keys     *mq.KeyCache
	contexts *mq.HandlerContexts
	log      *slog.Logger

	stopRoutes context.CancelFunc
	routesDone chan struct{}

	processed, failed atomic.Uint64
	skipped           [4]atomic.Uint64 // by mq.Decision

	seenMu     sync.Mutex
	seenRouted atomic.Bool // a sandbox's key was routed to it at some point
	seenTable  atomic.Pointer[routeapi.Table]
}

func newCore(c Common, kind string) (*core, error) {
	if c.Identity == (mq.Identity{}) {
		id, err := mq.IdentityFromEnv()
		if err != nil {
			return nil, fmt.Errorf("nats: %s: identity: %w", kind, err)
		}
		c.Identity = id
	}
	if err := c.Identity.Validate(); err != nil {
		return nil, fmt.Errorf("nats: %s: %w", kind, err)
	}
	if err := c.Contexts.Validate(); err != nil {
		return nil, fmt.Errorf("nats: %s: %w", kind, err)
	}
	if c.Propagation == nil {
		c.Propagation = mq.DefaultPropagation
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	k := &core{id: c.Identity, prop: c.Propagation, mode: c.Contexts, fields: c.Propagation.HeaderFields(), keyFields: c.Propagation.KeyFields(),
		keys: c.Propagation.NewKeyCache(), contexts: c.Propagation.NewHandlerContexts(), log: c.Logger.With("consumer", c.Identity.String())}
	if c.Routes == nil {
		rc, err := routes.New(routes.Config{Workload: c.Identity.Baseline, Logger: c.Logger})
		if err != nil {
			return nil, fmt.Errorf("nats: %s: routes: %w", kind, err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		k.stopRoutes, k.routesDone = cancel, make(chan struct{})
		go func() {
			defer close(k.routesDone)
			_ = rc.Run(ctx)
		}()
		c.Routes = rc
	}
	k.routes = c.Routes
	k.sel = mq.NewSelector(c.Identity, c.Routes)
	return k, nil
}

// waitSynced waits for the first route table, bounded by timeout.
func (k *core) waitSynced(ctx context.Context, timeout time.Duration) error {
	s, ok := k.routes.(syncer)
	if !ok {
		return nil
	}
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := s.WaitSynced(ctx); err != nil {
		return fmt.Errorf("nats: consumer %s: no route table within %s, not consuming: %w", k.id, timeout, err)
	}
	k.noteRouted()
	return nil
}

// routedToMe reports whether the sandbox's key is routed to this sandbox for its baseline.
func (k *core) routedToMe(t *routeapi.Table) bool {
	return t.RoutesTo(k.id.Baseline, k.id.RoutingKey, k.id.Sandbox)
}

// noteRouted records whether the current table routes the sandbox's key to it. It costs an atomic load
// when the table did not change, so it runs for every message.
func (k *core) noteRouted() {
	if !k.id.IsSandbox() || k.seenRouted.Load() {
		return
	}
	t := k.routes.Table()
	if k.seenTable.Load() == t {
		return
	}
	k.seenMu.Lock()
	defer k.seenMu.Unlock()
	k.seenTable.Store(t)
	if k.routedToMe(t) {
		k.seenRouted.Store(true)
	}
}

// goneAway reports whether the sandbox's key was routed to it and is no longer: the sandbox is being
// deleted.
func (k *core) goneAway() bool {
	if !k.id.IsSandbox() {
		return false
	}
	k.noteRouted()
	return k.seenRouted.Load() && !k.routedToMe(k.routes.Table())
}

// decide reads the routing key of a message and decides; skip counters are updated here. Only for a message
// it processes does it build the context (trace context, baggage, key) for the handler. The common message
// (lower-case header names, no header repeated, what Inject writes) is read from what scan found, with the
// caches; others, or a call that finds the caches taken, take the general extraction.
func (k *core) decide(ctx context.Context, h nats.Header) (context.Context, string, mq.Decision) {
	k.noteRouted()
	sc := k.scan(h)
	if sc.lower && !sc.repeated && k.cacheMu.TryLock() {
		defer k.cacheMu.Unlock()
		return k.decideCached(ctx, h, &sc)
	}
	var key string
	switch {
	case sc.keyHeaders == 0:
	case sc.lower:
		key = k.prop.KeyMetadata(h) // a map lookup per key header, no carrier
	default:
		key = k.prop.Key(HeaderCarrier(h))
	}
	d := k.sel.Decide(key)
	switch {
	case d != mq.Process:
		k.skip(d)
	case !sc.relevant:
	case k.mode == mq.KeyContexts:
		ctx = k.prop.ExtractKey(ctx, carrier(h, sc.lower), key)
	default:
		ctx = k.prop.ExtractKeyed(ctx, carrier(h, sc.lower), key)
	}
	return ctx, key, d
}

// decideCached is decide for a message whose header names are lower case and not repeated, with
// k.cacheMu held: a message of a baggage value seen before costs a lookup, and the decision for its key is
// remembered while the route table does not change.
func (k *core) decideCached(ctx context.Context, h nats.Header, sc *headerScan) (context.Context, string, mq.Decision) {
	var key string
	var e *mq.Keyed
	switch {
	case sc.keyHeaders == 0:
	case sc.keyHeaders == 1 && sc.bag != "":
		e = k.keys.Entry(sc.bag)
		key = e.Key()
	default:
		key = k.prop.KeyMetadata(h)
	}
	var d mq.Decision
	if e != nil {
		d = k.sel.DecideKeyed(e)
	} else {
		d = k.sel.Decide(key)
	}
	switch {
	case d != mq.Process:
		k.skip(d)
	case !sc.relevant:
	case k.mode == mq.KeyContexts:
		if e == nil && (sc.bag != "" || key != "") {
			e = k.contexts.Entry(sc.bag, key)
		}
		ctx = k.contexts.KeyContext(ctx, e)
	case e != nil:
		ctx = k.contexts.ExtractKeyed(ctx, e, sc.tp, sc.ts)
	default:
		ctx = k.contexts.ExtractHeaders(ctx, mq.Headers{Baggage: sc.bag, Traceparent: sc.tp, Tracestate: sc.ts}, key)
	}
	return ctx, key, d
}

// skip counts a skip decision.
func (k *core) skip(d mq.Decision) {
	if int(d) < len(k.skipped) {
		k.skipped[d].Add(1)
	}
}

// headerScan is what one pass over a message's header names finds.
type headerScan struct {
	lower bool // no name has an upper-case or non-ASCII letter (lowerNames)
	// relevant: a header the propagation reads (most messages of an app without tracing have none: their
	// extraction is skipped)
	relevant   bool
	repeated   bool // a header with more than one value
	keyHeaders int  // headers the routing key is read from (KeyFields)
	// the first values of the headers named baggage, traceparent and tracestate, exactly (what decideCached
	// reads when lower)
	bag, tp, ts string
}

// scan looks at every header name once.
func (k *core) scan(h nats.Header) headerScan {
	sc := headerScan{lower: true}
	for name, vs := range h {
		if len(vs) > 1 {
			sc.repeated = true
		}
		ascii := true
		for i := 0; i < len(name); i++ {
			if c := name[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
				sc.lower = false
				if c >= 0x80 {
					ascii = false
					break
				}
			}
		}
		if len(vs) > 0 {
			switch name {
			case "baggage":
				sc.bag = vs[0]
			case "traceparent":
				sc.tp = vs[0]
			case "tracestate":
				sc.ts = vs[0]
			}
		}
		// an ASCII name only folds to a name of its own length (the lower-case fields are ASCII); others
		// may fold to a shorter one (the Kelvin sign is k)
		for _, f := range k.fields {
			if (!ascii || len(name) == len(f)) && strings.EqualFold(name, f) {
				sc.relevant = true
				break
			}
		}
		for _, f := range k.keyFields {
			if (!ascii || len(name) == len(f)) && strings.EqualFold(name, f) {
				sc.keyHeaders++
				break
			}
		}
	}
	return sc
}

// lowerNames reports whether every header name is free of upper-case and non-ASCII letters (what Inject
// writes): such names match the propagation's lower-case ones exactly or not at all.
func lowerNames(h nats.Header) bool {
	for name := range h {
		for i := 0; i < len(name); i++ {
			if c := name[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
				return false
			}
		}
	}
	return true
}

// carrierFor returns a carrier for h: a plain lookup when every name is lower case (what Inject writes),
// the case-insensitive HeaderCarrier otherwise.
func carrierFor(h nats.Header) propagation.TextMapCarrier { return carrier(h, lowerNames(h)) }

// carrier is carrierFor when lowerNames(h) is known. When no header is repeated, the carrier offers no
// Values (the OTel baggage propagator then parses the one header instead of merging lists), which reads
// the same.
func carrier(h nats.Header, lower bool) propagation.TextMapCarrier {
	if !lower {
		return HeaderCarrier(h)
	}
	for _, vs := range h {
		if len(vs) > 1 {
			return lowerCarrier(h)
		}
	}
	return singleCarrier{lowerCarrier(h)}
}

// singleCarrier is a lowerCarrier without Values, for headers that are not repeated.
type singleCarrier struct{ c lowerCarrier }

func (s singleCarrier) Get(key string) string { return s.c.Get(key) }
func (s singleCarrier) Set(key, value string) { s.c.Set(key, value) }
func (s singleCarrier) Keys() []string        { return s.c.Keys() }

// lowerCarrier is a carrier over headers whose names are all lower case.
type lowerCarrier nats.Header

func (c lowerCarrier) Get(key string) string {
	if vs := c.Values(key); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (c lowerCarrier) Values(key string) []string {
	if vs, ok := c[key]; ok {
		return vs
	}
	return c[strings.ToLower(key)]
}

func (c lowerCarrier) Set(key, value string) { c[strings.ToLower(key)] = []string{value} }

func (c lowerCarrier) Keys() []string { return HeaderCarrier(c).Keys() }

func (k *core) stats() Stats {
	return Stats{
		Processed:         k.processed.Load(),
		Failed:            k.failed.Load(),
		SkippedNoKey:      k.skipped[mq.SkipNoKey].Load(),
		SkippedRoutedAway: k.skipped[mq.SkipRoutedAway].Load(),
		SkippedNotMine:    k.skipped[mq.SkipNotMine].Load(),
	}
}

type versionWaiter interface {
	Version() uint64
	WaitVersion(ctx context.Context, v uint64) error
}

// watchRoutes notes the sandbox's routes until stop is closed (so Close knows the key was routed to it even
// when no message came meanwhile): at each new table of a routes.Client, every 50ms for other sources.
func (k *core) watchRoutes(stop <-chan struct{}) {
	if !k.id.IsSandbox() {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-stop
		cancel()
	}()
	if vw, ok := k.routes.(versionWaiter); ok {
		for !k.seenRouted.Load() {
			v := vw.Version() // before the table: a table newer than v is noted now or ends the wait at once
			k.noteRouted()
			if err := vw.WaitVersion(ctx, v+1); err != nil {
				return
			}
		}
		return
	}
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !k.seenRouted.Load() {
		k.noteRouted()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (k *core) close() {
	if k.stopRoutes != nil {
		k.stopRoutes()
		<-k.routesDone
	}
}
