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
