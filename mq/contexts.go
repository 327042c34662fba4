package mq

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// maxBaggageCache bounds the baggage values a HandlerContexts keeps; when full, it starts again.
const maxBaggageCache = 1024

// HandlerContexts builds the contexts a consumer hands its handler: the same context as
// Propagation.ExtractKeyed, with the baggage parsed once per distinct baggage header value (and routing
// key) rather than once per message. Messages of one routing key carry the same baggage, so a consumer
// parses it once; the trace context, different in every message, is extracted from each. It keeps no
// reference to the strings the carrier returns for the traceparent and baggage headers (a carrier may
// return views of a message's bytes for those). Not safe for concurrent use: one per goroutine that
// calls the handler.
type HandlerContexts struct {
	p    *Propagation
	bags map[bagKey]*Keyed

	slab []handlerContext // contexts allocated ahead, handed out one per message

	parent    context.Context // the parent context asked about last (parentBaggage), and its answer
	parentBag bool
}

// Contexts says what the context a consumer hands its handler carries besides the consumer's own.
type Contexts uint8

const (
	// TraceContexts: the message's W3C trace context, its baggage and its routing key (the default).
	// Outgoing calls made with it continue the producer's trace. One small allocation per processed
	// message (a slot of a slab) on NATS and RabbitMQ; none on Kafka, whose record is the context.
	TraceContexts Contexts = iota
	// KeyContexts: the message's baggage and routing key, without its trace context. The messages of one
	// baggage value share one context, built once: no allocation per message. For handlers that pass the
	// routing key on and do not continue the producer's trace.
	KeyContexts
)

// String names the value as Config fields and flags spell it ("trace", "key").
func (m Contexts) String() string {
	switch m {
	case TraceContexts:
		return "trace"
	case KeyContexts:
		return "key"
	}
	return fmt.Sprintf("Contexts(%d)", uint8(m))
}

// Validate reports a value that is neither TraceContexts nor KeyContexts.
func (m Contexts) Validate() error {
	if m > KeyContexts {
		return fmt.Errorf("contexts: %d is neither trace (0) nor key (1)", uint8(m))
	}
	return nil
}

// slabSize is how many handler contexts one allocation holds: a message's context then costs a slot of a
// shared array instead of an allocation of its own. A context a handler keeps alive keeps its slab
// (about 10 KiB) alive.
const slabSize = 64

// Keyed is what the messages of one baggage header value (and routing key) share: the routing key, the
// baggage and key values of their handler contexts (built on first use), and the consumer's last
// decision for the key with the route table it was made on (Selector.DecideKeyed). KeyCache.Entry and
// HandlerContexts give them; the one goroutine that owns the cache uses them, and the contexts built
// from one only read what was set before they were built.
type Keyed struct {
	key string
	hdr string // the baggage header value (a copy)

	built  bool
	bag    baggage.Baggage
	keyVal any // the routing key as routingkey.FromContext reads it (nil: none or invalid, not stored)

	decided  bool
	table    *routeapi.Table
	decision Decision

	// shared is the key-only context of the messages of this entry (HandlerContexts.KeyContext) for the
	// parent context sharedParent.
	shared, sharedParent context.Context
}

// Key returns the routing key ("" when the baggage has none).
func (e *Keyed) Key() string { return e.key }

// build makes the baggage ExtractKeyed leaves in a handler's context and the key's context value, once.
func (e *Keyed) build(p *Propagation) {
	if e.built {
		return
	}
	e.bag = p.keyedBaggage(e.hdr, e.key)
	e.keyVal, _ = routingkey.ContextValue(routingkey.ContextKey, e.key)
	e.built = true
}

type bagKey struct{ header, key string }

// NewHandlerContexts returns the handler-context builder of one consumer goroutine.
func (p *Propagation) NewHandlerContexts() *HandlerContexts {
	return &HandlerContexts{p: p, bags: map[bagKey]*Keyed{}}
}

// Extract is p.ExtractKeyed(ctx, c, key): ctx with the trace context and baggage of c, and the routing key
// key (which must be p.Key(c)) stored and made a baggage member under every key name. A carrier that is a
// propagation.ValuesGetter (repeated baggage headers to merge) is extracted by ExtractKeyed, without the
// cache.
//
// The context it returns answers routingkey.FromContext at once and builds the rest (the W3C trace
// context parsed from the traceparent and tracestate headers, copied here, and the baggage value) the
// first time anything asks it for another value: a handler that never reads its trace
// context does not pay for parsing it, one that does pays what ExtractKeyed costs. Deadline, Done and Err
// are ctx's.
func (h *HandlerContexts) Extract(ctx context.Context, c propagation.TextMapCarrier, key string) context.Context {
	if _, multi := c.(propagation.ValuesGetter); multi {
		return h.p.ExtractKeyed(ctx, c, key)
	}
	return h.ExtractHeaders(ctx, Headers{Baggage: c.Get("baggage"), Traceparent: c.Get("traceparent"),
		Tracestate: c.Get("tracestate")}, key)
}

// Headers are the W3C headers of one message (a single value each; "" for a header the message does
// not have), as a broker package read them in its own pass over the message's headers. They may be
// views of the message's bytes: HandlerContexts keeps none of them.
type Headers struct {
	Baggage, Traceparent, Tracestate string
}

// ExtractHeaders is Extract for a message whose W3C headers are hs and whose routing key is key (which
// must be the propagation's Key of the message).
func (h *HandlerContexts) ExtractHeaders(ctx context.Context, hs Headers, key string) context.Context {
	if h.parentBaggage(ctx) { // the message's baggage replaces the parent's, or its key is added to it: not cached
		hs = Headers{strings.Clone(hs.Baggage), strings.Clone(hs.Traceparent), strings.Clone(hs.Tracestate)}
		return h.p.ExtractKeyed(ctx, hs, key)
	}
	var e *Keyed
	if hs.Baggage != "" || key != "" {
		e = h.Entry(hs.Baggage, key)
	}
	return h.extract(ctx, e, hs.Traceparent, hs.Tracestate)
}

// ExtractKeyed is ExtractHeaders for a message whose baggage header is the one KeyCache.Entry gave e for
// (its only routing-key header), with traceparent tp and tracestate ts (views allowed, not kept): the
// baggage is not looked up again.
func (h *HandlerContexts) ExtractKeyed(ctx context.Context, e *Keyed, tp, ts string) context.Context {
	if h.parentBaggage(ctx) {
		return h.p.ExtractKeyed(ctx, Headers{e.hdr, strings.Clone(tp), strings.Clone(ts)}, e.key)
	}
	return h.extract(ctx, e, tp, ts)
}

// Entry returns the entry of the messages whose baggage header is bag ("" for none) and whose routing key
// is key (the propagation's Key of such a message), creating it on first use: for KeyContext, when the key
// did not come from KeyCache.Entry. bag may be a view of a message's bytes (not kept).
func (h *HandlerContexts) Entry(bag, key string) *Keyed {
	e, ok := h.bags[bagKey{bag, key}]
	if !ok {
		e = &Keyed{key: strings.Clone(key), hdr: strings.Clone(bag)} // Parse keeps parts of hdr
		if len(h.bags) >= maxBaggageCache {
			clear(h.bags)
		}
		h.bags[bagKey{e.hdr, e.key}] = e
	}
	return e
}

// KeyContext is the handler context of KeyContexts for the messages of entry e (from KeyCache.Entry or
// Entry; nil: a message without baggage and key, whose context is ctx): ctx with their baggage and
// routing key, as ExtractKeyed would give for a message without trace headers. It is built once per entry
// and ctx and then shared: a handler must not expect a context of its own per message.
func (h *HandlerContexts) KeyContext(ctx context.Context, e *Keyed) context.Context {
	if e == nil {
		return ctx
	}
	if e.shared != nil && sameContext(e.sharedParent, ctx) {
		return e.shared
	}
	var kc context.Context
	if h.parentBaggage(ctx) {
		kc = h.p.ExtractKeyed(ctx, Headers{Baggage: e.hdr}, e.key)
	} else {
		e.build(h.p)
		kc = &handlerContext{Context: ctx, kv: e}
	}
	e.shared, e.sharedParent = kc, ctx
	return kc
}

// sameContext reports whether a and b are the same context value: the same dynamic type and the same data
// word (a pointer, for every context type of the standard library and of OTel). It never panics on a
// context type that is not comparable, unlike a == b; two copies of a context held by value compare
// unequal, which only costs a rebuild.
func sameContext(a, b context.Context) bool {
	type iface struct{ typ, data unsafe.Pointer }
	return *(*iface)(unsafe.Pointer(&a)) == *(*iface)(unsafe.Pointer(&b))
}

// extract hands out the next context of the slab: ctx with the values of e (nil: none) and the trace
// headers tp and ts, copied.
func (h *HandlerContexts) extract(ctx context.Context, e *Keyed, tp, ts string) context.Context {
	if e == nil && tp == "" {
		return ctx // nothing to add: TraceContext's Extract needs a traceparent
	}
	if e != nil {
		e.build(h.p)
	}
	if len(h.slab) == 0 {
		h.slab = make([]handlerContext, slabSize)
	}
	hc := &h.slab[0]
	h.slab = h.slab[1:]
	hc.Context, hc.kv = ctx, e
	if tp != "" {
		if len(tp) <= len(hc.tp) {
			hc.tpLen = uint8(copy(hc.tp[:], tp))
		} else {
			hc.more = &traceHeaders{traceparent: strings.Clone(tp)} // a later version's longer traceparent
		}
		if ts != "" {
			if hc.more == nil {
				hc.more = &traceHeaders{}
			}
			hc.more.tracestate = strings.Clone(ts)
		}
	}
	return hc
}

// Get makes Headers a propagation.TextMapCarrier (for the rare messages ExtractKeyed handles).
func (hs Headers) Get(k string) string {
	switch k {
	case "baggage":
		return hs.Baggage
	case "traceparent":
		return hs.Traceparent
	case "tracestate":
		return hs.Tracestate
	}
	return ""
}

// Set is never called: extraction only reads.
func (hs Headers) Set(string, string) {}

// Keys returns the names of the headers hs has.
func (hs Headers) Keys() []string {
	var ks []string
	for _, kv := range [...][2]string{{"baggage", hs.Baggage}, {"traceparent", hs.Traceparent}, {"tracestate", hs.Tracestate}} {
		if kv[1] != "" {
			ks = append(ks, kv[0])
		}
	}
	return ks
}

// traceparentLen is the length of a version-00 W3C traceparent header value.
const traceparentLen = 55

// handlerContext is the context HandlerContexts.Extract returns: the consumer's context, a message's
// routing key answered directly, and the message's trace context and baggage made into values on first
// use. A slot of a slab (slabSize contexts per allocation); the trace context's headers are copies (a
// carrier may give views of the message's bytes).
type handlerContext struct {
	context.Context        // the consumer's: Deadline, Done, Err and its values
	kv              *Keyed // the message's baggage and routing key values (nil: none)
	tp              [traceparentLen]byte
	tpLen           uint8
	more            *traceHeaders // the rare ones: a tracestate, a traceparent longer than version 00's

	full atomic.Pointer[fullContext] // ctx with the values, built on first use
}

// fullContext is what a handlerContext builds on first use.
type fullContext struct{ context.Context }

// Value answers the routing key (the message's, else the consumer context's) and, for any other key,
// builds the trace context and baggage values once and asks them. Two goroutines asking at once may both
// build them (the same values); one result is kept.
func (c *handlerContext) Value(k any) any {
	if k == routingkey.ContextKey {
		if c.kv != nil && c.kv.keyVal != nil {
			return c.kv.keyVal
		}
		return c.Context.Value(k)
	}
	f := c.full.Load()
	if f == nil {
		f = &fullContext{c.build()}
		if !c.full.CompareAndSwap(nil, f) {
			f = c.full.Load()
		}
	}
	return f.Value(k)
}

// build makes the context ExtractKeyed would have returned, but for the routing key, which Value answers.
func (c *handlerContext) build() context.Context {
	ctx := c.Context
	if c.tpLen > 0 || c.more != nil {
		ctx = propagation.TraceContext{}.Extract(ctx, traceCarrier{c})
	}
	if c.kv != nil && c.kv.bag.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, c.kv.bag)
	}
	return ctx
}

// String names the context as the context package's own types do.
func (c *handlerContext) String() string { return "mq.HandlerContext" }

// traceHeaders are the trace headers of a message a handlerContext does not keep inline, copied.
type traceHeaders struct{ traceparent, tracestate string }

// traceCarrier gives TraceContext's Extract the copied trace headers of a handlerContext.
type traceCarrier struct{ c *handlerContext }

func (t traceCarrier) Get(k string) string {
	switch k {
	case "traceparent":
		if t.c.more != nil && t.c.more.traceparent != "" {
			return t.c.more.traceparent
		}
		return unsafe.String(&t.c.tp[0], t.c.tpLen) // tp does not change once Extract filled it
	case "tracestate":
		if t.c.more != nil {
			return t.c.more.tracestate
		}
	}
	return ""
}
func (t traceCarrier) Set(string, string) {}
func (t traceCarrier) Keys() []string     { return []string{"traceparent", "tracestate"} }

// parentBaggage reports whether ctx has baggage (which a message's baggage replaces, or its key is added
// to: not cached). The answer for the context asked last is kept: a consumer hands one parent to many
// messages, whose chain of values is then walked once.
func (h *HandlerContexts) parentBaggage(ctx context.Context) bool {
	if h.parent == nil || !sameContext(h.parent, ctx) {
		h.parent, h.parentBag = ctx, baggage.FromContext(ctx).Len() > 0
	}
	return h.parentBag
}

// keyedBaggage is the baggage ExtractKeyed leaves in the context for a message whose baggage header is
// hdr ("" for none) and whose routing key is key, the parent context having no baggage: hdr parsed as the
// W3C propagator does (the members that parse), with key as a member under every key name.
func (p *Propagation) keyedBaggage(hdr, key string) baggage.Baggage {
	bag, _ := baggage.Parse(hdr) // the propagator keeps what parses, too

	if key == "" {
		return bag
	}
	for _, n := range p.names {
		if bag.Member(n).Value() == key {
			continue
		}
		m, err := baggage.NewMemberRaw(n, key)
		if err != nil {
			continue
		}
		if b, err := bag.SetMember(m); err == nil {
			bag = b
		}
	}
	return bag
}

// maxKeyCache bounds the baggage values a KeyCache keeps; when full, it starts again.
const maxKeyCache = 4096

// KeyCache gives the routing key of messages whose only routing-key header (of KeyFields) is one baggage
// header, remembering it per distinct baggage value: deciding on a message of a key seen before is one
// map lookup instead of a scan of the baggage; the few values seen last are compared first, without
// hashing. Not safe for concurrent use: one per consumer goroutine.
type KeyCache struct {
	p      *Propagation
	m      map[string]*Keyed
	recent [numRecent]*Keyed // the entries looked up last, a ring; nil slots are empty
	next   uint8             // the slot of recent the next map hit replaces
}

// numRecent is how many entries KeyCache compares before it hashes: a consumer sees few baggage values
// at a time (one per live routing key, and the keyless messages have none).
const numRecent = 4

// NewKeyCache returns a KeyCache for one consumer goroutine.
func (p *Propagation) NewKeyCache() *KeyCache { return &KeyCache{p: p, m: map[string]*Keyed{}} }

// Baggage returns p.Key(c) for a carrier c whose only routing-key header is one baggage header of value
// v. It keeps no reference to v (which may be a view of a message's bytes) and returns a string of its
// own.
func (k *KeyCache) Baggage(v string) string { return k.Entry(v).key }

// Entry is Baggage with what else the messages of baggage value v share (HandlerContexts.ExtractKeyed,
// Selector.DecideKeyed).
func (k *KeyCache) Entry(v string) *Keyed {
	for _, e := range &k.recent {
		if e != nil && e.hdr == v {
			return e
		}
	}
	e, ok := k.m[v]
	if !ok {
		v = strings.Clone(v)
		e = &Keyed{key: strings.Clone(k.p.KeyMetadata(map[string][]string{"baggage": {v}})), hdr: v}
		if len(k.m) >= maxKeyCache {
			clear(k.m)
			clear(k.recent[:])
		}
		k.m[v] = e
	}
	k.recent[k.next%numRecent] = e
	k.next++
	return e
}
