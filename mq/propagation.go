package mq

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Propagation writes the OpenTelemetry context into message headers and reads it back, following the OTel
// messaging conventions: W3C `traceparent`, `tracestate` and `baggage`, the routing key being a baggage
// member (default name routingkey.DefaultKeyName). Reading also accepts every other header form the
// routingkey package knows (custom headers, ot-baggage-, uberctx-, baggage-), so producers of other stacks
// interoperate. It is immutable and safe for concurrent use.
type Propagation struct {
	ext     *routingkey.Extractor
	name    string
	names   []string // ext's key names
	fields  []string // ext.HeaderNames(): the routing-key headers, lower case, in precedence order
	inject  propagation.TextMapPropagator
	extract propagation.TextMapPropagator
}

// NewPropagation returns the propagation for the key names and custom headers of ext (routingkey.Default
// when nil).
func NewPropagation(ext *routingkey.Extractor) *Propagation {
	if ext == nil {
		ext = routingkey.Default
	}
	name := routingkey.DefaultKeyName
	if ns := ext.Config().KeyNames; len(ns) > 0 {
		name = ns[0]
	}
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	return &Propagation{
		ext:     ext,
		name:    name,
		names:   ext.Config().KeyNames,
		fields:  ext.HeaderNames(),
		inject:  w3c,
		extract: propagation.NewCompositeTextMapPropagator(w3c, ext.Propagator()),
	}
}

// DefaultPropagation is NewPropagation(nil).
var DefaultPropagation = NewPropagation(nil)

// Inject writes the trace context and baggage of ctx into c. A routing key in ctx (routingkey.WithKey, or a
// baggage member under one of the key names) is written as the baggage member of the first key name.
func (p *Propagation) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	if key, ok := p.ext.KeyFromContext(ctx); ok {
		bag := baggage.FromContext(ctx)
		if bag.Member(p.name).Value() != key {
			if m, err := baggage.NewMemberRaw(p.name, key); err == nil {
				if b, err := bag.SetMember(m); err == nil {
					ctx = baggage.ContextWithBaggage(ctx, b)
				}
			}
		}
	}
	p.inject.Inject(ctx, c)
}

// Extract returns ctx carrying the remote span context, the baggage and the routing key found in c, and
// the key ("" when the message has none).
func (p *Propagation) Extract(ctx context.Context, c propagation.TextMapCarrier) (context.Context, string) {
	ctx = p.extract.Extract(ctx, c)
	key, _ := routingkey.FromContext(ctx)
	return ctx, key
}

// Key returns the routing key c carries ("" when none): the key Extract finds in c (Extract also returns a
// key the parent context carries when c has none; Key does not), read from the routing-key
// headers only (baggage, tracestate and the single-value forms of the Extractor; KeyFields), without parsing
// the trace context or building a context. It reads them as Extract does: Values when c is a
// propagation.ValuesGetter, Get otherwise. It allocates nothing for a message without any of these headers,
// nor, when c's Values does not allocate, for one whose key is not percent-encoded. Consumers decide with
// Key, then build the handler's context with ExtractKeyed for the messages they process.
func (p *Propagation) Key(c propagation.TextMapCarrier) string {
	vg, _ := c.(propagation.ValuesGetter)
	i, n := 0, len(p.fields)
	var first []string
	for ; i < n && len(first) == 0; i++ {
		first = values(c, vg, p.fields[i])
	}
	if len(first) == 0 {
		return ""
	}
	md := make(map[string][]string, 8) // outside the loop and of constant size: on the stack
	md[p.fields[i-1]] = first
	for ; i < n; i++ {
		if vs := values(c, vg, p.fields[i]); len(vs) > 0 {
			md[p.fields[i]] = vs
		}
	}
	key, _ := p.ext.ExtractMetadata(md)
	return key
}

// values reads header f as the routing-key propagator does: Values when the carrier has it, Get otherwise.
func values(c propagation.TextMapCarrier, vg propagation.ValuesGetter, f string) []string {
	if vg != nil {
		return vg.Values(f)
	}
	if v := c.Get(f); v != "" {
		return []string{v}
	}
	return nil
}

// KeyMetadata is Key for headers held in a map whose names are all lower case (gRPC metadata; NATS headers
// as Inject writes them): it reads the map directly, without a carrier. Names in another case are not
// seen; use Key with a case-insensitive carrier for those.
func (p *Propagation) KeyMetadata(md map[string][]string) string {
	key, _ := p.ext.ExtractMetadata(md)
	return key
}

// KeyFields are the header names Key reads (lower case, in precedence order); carriers match them
// case-insensitively. A message without any of them has no routing key.
func (p *Propagation) KeyFields() []string { return append([]string(nil), p.fields...) }

// ExtractKeyed is Extract for a carrier whose key the caller already has from Key(c): it returns the same
// context without reading the routing-key headers again. key must be Key(c).
func (p *Propagation) ExtractKeyed(ctx context.Context, c propagation.TextMapCarrier, key string) context.Context {
	ctx = p.inject.Extract(ctx, c) // W3C trace context and baggage
	if key == "" {
		return ctx
	}
	// What the routing-key propagator does once it found key: store it, and make it a baggage member under
	// every key name.
	ctx = routingkey.WithKey(ctx, key)
	bag := baggage.FromContext(ctx)
	changed := false
	for _, n := range p.names {
		if bag.Member(n).Value() == key {
			continue
		}
		m, err := baggage.NewMemberRaw(n, key)
		if err != nil {
			continue
		}
		if b, err := bag.SetMember(m); err == nil {
			bag, changed = b, true
		}
	}
	if changed {
		ctx = baggage.ContextWithBaggage(ctx, bag)
	}
	return ctx
}

// FromHTTP returns the context of an incoming HTTP request with the trace context, baggage and routing key
// of its headers, ready to be passed to Inject when the handler publishes a message.
func (p *Propagation) FromHTTP(r *http.Request) context.Context {
	ctx, _ := p.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	return ctx
}

// Fields are the header names Inject writes.
func (p *Propagation) Fields() []string { return p.inject.Fields() }

// HeaderFields are the header names Extract may read (lower case); carriers match them case-insensitively.
func (p *Propagation) HeaderFields() []string { return p.extract.Fields() }

// ExtractKey is ExtractKeyed without the trace context: ctx with the baggage of c and the routing key key
// (which must be Key(c)), what KeyContexts gives a handler for a message whose headers a consumer does not
// read itself.
func (p *Propagation) ExtractKey(ctx context.Context, c propagation.TextMapCarrier, key string) context.Context {
	return p.ExtractKeyed(ctx, noTrace{c}, key)
}

// noTrace hides the trace headers of a carrier.
type noTrace struct{ propagation.TextMapCarrier }

func (n noTrace) Get(k string) string {
	if k == "traceparent" || k == "tracestate" {
		return ""
	}
	return n.TextMapCarrier.Get(k)
}

// Values reads repeated headers when the carrier can (the baggage propagator merges them), else Get's one.
func (n noTrace) Values(k string) []string {
	if k == "traceparent" || k == "tracestate" {
		return nil
	}
	if vg, ok := n.TextMapCarrier.(propagation.ValuesGetter); ok {
		return vg.Values(k)
	}
	if v := n.TextMapCarrier.Get(k); v != "" {
		return []string{v}
	}
	return nil
}
