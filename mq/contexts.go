package mq

import (
	"context"
	"strings"
	"sync"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

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
	bags map[bagKey]bagEntry
}

// bagEntry is what messages of one baggage header value and routing key share: the baggage, and the key
// as the context value routingkey.FromContext reads (boxed once, not per message).
type bagEntry struct {
	bag    baggage.Baggage
	keyVal any
}

type bagKey struct{ header, key string }

// NewHandlerContexts returns the handler-context builder of one consumer goroutine.
func (p *Propagation) NewHandlerContexts() *HandlerContexts {
	return &HandlerContexts{p: p, bags: map[bagKey]bagEntry{}}
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
	if _, multi := c.(propagation.ValuesGetter); multi || h.parentBaggage(ctx) {
		return h.p.ExtractKeyed(ctx, c, key)
	}
	hdr := c.Get("baggage")
	tp := c.Get("traceparent")
	if hdr == "" && key == "" && tp == "" {
		return ctx // nothing to add: TraceContext's Extract needs a traceparent
	}
	hc := &handlerContext{Context: ctx}
	if hdr != "" || key != "" {
		e, ok := h.bags[bagKey{hdr, key}]
		if !ok {
			hdr, key = strings.Clone(hdr), strings.Clone(key) // Parse keeps parts of hdr
			e.bag = h.p.keyedBaggage(hdr, key)
			e.keyVal, _ = routingkey.ContextValue(routingkey.ContextKey, key)
			if len(h.bags) >= maxBaggageCache {
				clear(h.bags)
			}
			h.bags[bagKey{hdr, key}] = e
		}
		hc.bag, hc.keyVal = e.bag, e.keyVal
	}
	if tp != "" {
		if len(tp) <= len(hc.tp) {
			hc.tpLen = uint8(copy(hc.tp[:], tp))
		} else {
			hc.more = &traceHeaders{traceparent: strings.Clone(tp)} // a later version's longer traceparent
		}
		if ts := c.Get("tracestate"); ts != "" {
			if hc.more == nil {
				hc.more = &traceHeaders{}
			}
			hc.more.tracestate = strings.Clone(ts)
		}
	}
	return hc
}

// traceparentLen is the length of a version-00 W3C traceparent header value.
const traceparentLen = 55

// handlerContext is the context HandlerContexts.Extract returns: the consumer's context, a message's
// routing key answered directly, and the message's trace context and baggage made into values on first
// use. One allocation per message; the trace context's headers are copies (a carrier may give views of
// the message's bytes).
type handlerContext struct {
	context.Context     // the consumer's: Deadline, Done, Err and its values
	keyVal          any // the routing key as routingkey.FromContext reads it (nil: none or invalid, not stored)
	bag             baggage.Baggage
	tp              [traceparentLen]byte
	tpLen           uint8
	more            *traceHeaders // the rare ones: a tracestate, a traceparent longer than version 00's

	once sync.Once
	full context.Context // ctx with the values, built by once
}

// Value answers the routing key (the message's, else the consumer context's) and, for any other key,
// builds the trace context and baggage values once and asks them.
func (c *handlerContext) Value(k any) any {
	if k == routingkey.ContextKey {
		if c.keyVal != nil {
			return c.keyVal
		}
		return c.Context.Value(k)
	}
	c.once.Do(c.build)
	return c.full.Value(k)
}

// build makes the context ExtractKeyed would have returned, but for the routing key, which Value answers.
func (c *handlerContext) build() {
	ctx := c.Context
	if c.tpLen > 0 || c.more != nil {
		ctx = propagation.TraceContext{}.Extract(ctx, traceCarrier{c})
	}
	if c.bag.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, c.bag)
	}
	c.full = ctx
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
// to: not cached).
func (h *HandlerContexts) parentBaggage(ctx context.Context) bool {
	return baggage.FromContext(ctx).Len() > 0
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
// map lookup instead of a scan of the baggage. Not safe for concurrent use: one per consumer goroutine.
type KeyCache struct {
	p *Propagation
	m map[string]string
}

// NewKeyCache returns a KeyCache for one consumer goroutine.
func (p *Propagation) NewKeyCache() *KeyCache { return &KeyCache{p: p, m: map[string]string{}} }

// Baggage returns p.Key(c) for a carrier c whose only routing-key header is one baggage header of value
// v. It keeps no reference to v (which may be a view of a message's bytes) and returns a string of its
// own.
func (k *KeyCache) Baggage(v string) string {
	if key, ok := k.m[v]; ok {
		return key
	}
	key := strings.Clone(k.p.KeyMetadata(map[string][]string{"baggage": {v}}))
	if len(k.m) >= maxKeyCache {
		clear(k.m)
	}
	k.m[strings.Clone(v)] = key
	return key
}
