package kafka

import (
	"context"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// recordContext is the handler context of a record under mq.TraceContexts: the record itself, seen as a
// context. The record's Context field holds the consumer's context with the record's baggage and routing
// key (the key context, shared by the records of one baggage value); the span is read from the record's
// traceparent and tracestate headers each time something asks the context for it. A record's handler
// context therefore costs no allocation: a handler that never reads its span pays nothing for it, one that
// does pays what the W3C extraction costs, per read.
//
// Its only field is the record, so a *kgo.Record converts to a *recordContext (same address, same layout);
// a struct of its own because kgo.Record has a field named Value.
type recordContext struct{ r kgo.Record }

// Deadline, Done and Err are those of the consumer's context.
func (c *recordContext) Deadline() (time.Time, bool) { return c.r.Context.Deadline() }
func (c *recordContext) Done() <-chan struct{}       { return c.r.Context.Done() }
func (c *recordContext) Err() error                  { return c.r.Context.Err() }

// Value answers the span key with the remote span of the record's trace headers (when they hold a valid
// one) and every other key as the key context does.
func (c *recordContext) Value(k any) any {
	if k == spanKey {
		if s := (propagation.TraceContext{}).Extract(context.Background(), Carrier(&c.r)).Value(spanKey); s != nil {
			return s
		}
	}
	return c.r.Context.Value(k)
}

// String names the context as the context package's own types do.
func (c *recordContext) String() string { return "kafka.RecordContext" }

// spanKey is the key OTel's trace package stores a context's span under (trace.ContextWithSpan), learnt by
// asking a context that notes the key it is asked for, and checked; nil when that did not work, and then
// handler contexts are built as mq.HandlerContexts builds them.
var spanKey = learnSpanKey()

// keyProbe is a context that notes the first key it is asked for.
type keyProbe struct {
	context.Context
	key any
}

func (p *keyProbe) Value(k any) any {
	if p.key == nil {
		p.key = k
	}
	return nil
}

func learnSpanKey() any {
	p := &keyProbe{Context: context.Background()}
	trace.SpanFromContext(p)
	if p.key == nil {
		return nil
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, Remote: true})
	s, ok := trace.ContextWithRemoteSpanContext(context.Background(), sc).Value(p.key).(trace.Span)
	if !ok || !s.SpanContext().Equal(sc) {
		return nil
	}
	return p.key
}

// recordContext returns the handler context of r under mq.TraceContexts, whose headers readKey read as rd:
// r as a recordContext, its Context field set to the key context (keyContext). A record whose Context a
// hook set, or with a W3C header given twice, gets a context of its own (extract), its Context left as is.
func (c *Consumer) recordContext(ctx context.Context, r *kgo.Record, rd *readRecord) context.Context {
	if r.Context != nil || rd.hs.repeated || spanKey == nil {
		return c.extract(ctx, r, &rd.hs, rd.key, rd.e)
	}
	kctx := c.keyContext(ctx, r, rd)
	if rd.hs.tp < 0 {
		return kctx // no traceparent: no span to read
	}
	r.Context = kctx
	return (*recordContext)(unsafe.Pointer(r))
}
