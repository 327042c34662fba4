package routingkey

import (
	"context"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
)

// Propagator returns an OpenTelemetry TextMapPropagator for the routing key.
//
// Extract reads the key from the carrier (all forms, same precedence as
// [Extractor.Extract]), stores it with [WithKey] and also sets it as a member
// under every configured key name in the OpenTelemetry baggage of the context,
// so that the W3C baggage propagator forwards it too. Inject writes the key of
// [Extractor.KeyFromContext] in every form, merging into baggage and
// tracestate values already in the carrier. In a composite propagator put it
// after propagation.TraceContext and propagation.Baggage, which overwrite the
// tracestate and baggage headers.
func (e *Extractor) Propagator() propagation.TextMapPropagator {
	return propagator{e}
}

type propagator struct{ e *Extractor }

var _ propagation.TextMapPropagator = propagator{}

func values(c propagation.TextMapCarrier, k string) []string {
	if vg, ok := c.(propagation.ValuesGetter); ok {
		return vg.Values(k)
	}
	if v := c.Get(k); v != "" {
		return []string{v}
	}
	return nil
}

func (p propagator) Inject(ctx context.Context, c propagation.TextMapCarrier) {
	key, ok := p.e.KeyFromContext(ctx)
	if !ok {
		return
	}
	for _, s := range p.e.sources {
		switch s.kind {
		case kindSingle:
			c.Set(s.lower, key)
		case kindBaggage:
			c.Set(s.lower, p.e.mergeBaggage(values(c, s.lower), key))
		case kindTracestate:
			c.Set(s.lower, p.e.mergeTracestate(values(c, s.lower), key))
		}
	}
}

func (p propagator) Extract(ctx context.Context, c propagation.TextMapCarrier) context.Context {
	md := make(map[string][]string, len(p.e.sources))
	for _, s := range p.e.sources {
		if vs := values(c, s.lower); len(vs) > 0 {
			md[s.lower] = vs
		}
	}
	key, ok := p.e.ExtractMetadata(md)
	if !ok {
		return ctx
	}
	ctx = WithKey(ctx, key)
	bag := baggage.FromContext(ctx)
	changed := false
	for _, n := range p.e.names {
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

func (p propagator) Fields() []string { return p.e.HeaderNames() }
