package kafka

import (
	"context"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

type ctxKey struct{}

// TestRecordContext checks the handler context of mq.TraceContexts: the record itself, with the parent's
// deadline, cancellation and values, the record's span, baggage and key as the full extraction gives them,
// and no allocation for a handler that reads the key; a record whose Context a hook set keeps it.
func TestRecordContext(t *testing.T) {
	if spanKey == nil {
		t.Fatal("the span key of OTel's trace package was not learnt: handler contexts fall back to an allocation each")
	}
	c, rs := benchConsumer(t)
	parent, cancel := context.WithDeadline(context.WithValue(context.Background(), ctxKey{}, "v"), time.Now().Add(time.Hour))
	for i, r := range rs {
		var hctx context.Context
		if err := c.handle(parent, func(ctx context.Context, got *kgo.Record) error {
			hctx = ctx
			return nil
		}, r); err != nil {
			t.Fatal(err)
		}
		if i == 0 { // keyed "keya": routed away, skipped
			if hctx != nil || r.Context != nil {
				t.Fatalf("record %d: skipped record handled or given a context", i)
			}
			continue
		}
		if rc, ok := hctx.(*recordContext); !ok || unsafe.Pointer(rc) != unsafe.Pointer(r) || r.Context == nil {
			t.Fatalf("record %d: handler context %T is not the record, or its Context is not set", i, hctx)
		}
		want, key := Extract(parent, r)
		if g, w := trace.SpanContextFromContext(hctx), trace.SpanContextFromContext(want); !g.IsValid() || !g.Equal(w) {
			t.Fatalf("record %d: span %v, Extract %v", i, g, w)
		}
		if g, w := sortedMembers(baggage.FromContext(hctx)), sortedMembers(baggage.FromContext(want)); g != w {
			t.Fatalf("record %d: baggage %q, Extract %q", i, g, w)
		}
		if g, _ := routingkey.FromContext(hctx); g != key {
			t.Fatalf("record %d: key %q, Extract %q", i, g, key)
		}
		if hctx.Value(ctxKey{}) != "v" {
			t.Fatalf("record %d: the parent's value is lost", i)
		}
		if d, ok := hctx.Deadline(); !ok || d.IsZero() {
			t.Fatalf("record %d: the parent's deadline is lost", i)
		}
	}
	hctx := (*recordContext)(unsafe.Pointer(rs[1]))
	cancel()
	if hctx.Err() == nil || hctx.Done() == nil {
		t.Fatal("a cancelled parent does not cancel the handler context")
	}

	// a hook's context is kept; the handler gets a context of its own, as complete
	hook := &kgo.Record{Topic: "t", Headers: rs[2].Headers, Context: context.WithValue(context.Background(), ctxKey{}, "hook")}
	var got context.Context
	if err := c.handle(context.Background(), func(ctx context.Context, _ *kgo.Record) error { got = ctx; return nil }, hook); err != nil {
		t.Fatal(err)
	}
	if hook.Context.Value(ctxKey{}) != "hook" {
		t.Fatal("the hook's record context was replaced")
	}
	if _, isRecord := got.(*recordContext); isRecord || !trace.SpanContextFromContext(got).IsValid() {
		t.Fatalf("hook-enriched record: handler context %T without the record's span", got)
	}

	// a handler that reads the key: nothing allocated per record
	h := func(ctx context.Context, r *kgo.Record) error {
		if _, ok := routingkey.FromContext(ctx); !ok && r == rs[1] {
			t.Error("no key")
		}
		return nil
	}
	i := 0
	if n := testing.AllocsPerRun(1000, func() {
		r := rs[i&3]
		r.Context = nil
		if err := c.handle(context.Background(), h, r); err != nil {
			t.Fatal(err)
		}
		i++
	}); n != 0 {
		t.Fatalf("%v allocations per record", n)
	}
}
