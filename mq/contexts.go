package mq

import (
	"context"
	"strings"

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
	bags map[bagKey]baggage.Baggage
}

type bagKey struct{ header, key string }

// NewHandlerContexts returns the handler-context builder of one consumer goroutine.
func (p *Propagation) NewHandlerContexts() *HandlerContexts {
	return &HandlerContexts{p: p, bags: map[bagKey]baggage.Baggage{}}
}

// Extract is p.ExtractKeyed(ctx, c, key): ctx with the trace context and baggage of c, and the routing key
// key (which must be p.Key(c)) stored and made a baggage member under every key name. A carrier that is a
// propagation.ValuesGetter (repeated baggage headers to merge) is extracted by ExtractKeyed, without the
// cache.
func (h *HandlerContexts) Extract(ctx context.Context, c propagation.TextMapCarrier, key string) context.Context {
	if _, multi := c.(propagation.ValuesGetter); multi || h.parentBaggage(ctx) {
		return h.p.ExtractKeyed(ctx, c, key)
	}
	hdr := c.Get("baggage")
	ctx = propagation.TraceContext{}.Extract(ctx, c)
	if hdr == "" && key == "" {
		return ctx
	}
	bag, ok := h.bags[bagKey{hdr, key}]
	if !ok {
		hdr = strings.Clone(hdr) // Parse keeps parts of it
		bag = h.p.keyedBaggage(hdr, key)
		if len(h.bags) >= maxBaggageCache {
			clear(h.bags)
		}
		h.bags[bagKey{hdr, strings.Clone(key)}] = bag
	}
	if bag.Len() > 0 {
		ctx = baggage.ContextWithBaggage(ctx, bag)
	}
	if key != "" {
		ctx = routingkey.WithKey(ctx, key)
	}
	return ctx
}

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
