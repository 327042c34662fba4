package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// BenchmarkHandle is the consumer's own work per record with the broker taken out: recorded records (the
// mix of BenchmarkConsume: all with a traceparent, a quarter keyed away from the baseline, a quarter keyed
// without a route, half without a key) go through the path Run takes for each (Consumer.handle: key,
// decision, OTel context, handler call, counters), against an OTel-instrumented plain consumer's W3C
// extraction. ns/op and allocs/op are per record; deterministic, so they show what the hot path costs
// when the end-to-end ratios are noisy.
func BenchmarkHandle(b *testing.B) {
	w := routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}
	tbl, err := routeapi.NewTable(1, []routeapi.Route{{Workload: w, RoutingKey: "keya", Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: "sb-a"}, Kind: routeapi.DestinationFork, Host: "h"}}})
	if err != nil {
		b.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	var rs [4]*kgo.Record
	for i, ctx := range [4]context.Context{routingkey.WithKey(sctx, "keya"), routingkey.WithKey(sctx, "keyz"), sctx, sctx} {
		rs[i] = &kgo.Record{Topic: "t", Value: []byte("0123")}
		Inject(ctx, rs[i])
	}
	id := mq.Identity{Baseline: w}
	c := &Consumer{id: id, prop: mq.DefaultPropagation, sel: mq.NewSelector(id, oneTable{tbl}), interned: map[string]string{}}
	ctx := context.Background()
	var sink int
	h := func(ctx context.Context, r *kgo.Record) error {
		// what a handler does with its context at least: its next call propagates the key and trace
		k, _ := routingkey.FromContext(ctx)
		sink += len(r.Value) + len(k)
		if trace.SpanContextFromContext(ctx).IsValid() {
			sink++
		}
		return nil
	}
	b.Run("selective", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := c.handle(ctx, h, rs[i&3]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	// a handler that passes the key on (routingkey.Transport, or the package's Inject) and does no tracing
	// of its own: the trace context is never parsed
	hk := func(ctx context.Context, r *kgo.Record) error {
		k, _ := routingkey.FromContext(ctx)
		sink += len(r.Value) + len(k)
		return nil
	}
	b.Run("selective, key only", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := c.handle(ctx, hk, rs[i&3]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b.Run("plain+otel", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r := rs[i&3]
			rctx := w3c.Extract(ctx, Carrier(r))
			sink += len(r.Value) + baggage.FromContext(rctx).Len()
			if trace.SpanContextFromContext(rctx).IsValid() {
				sink++
			}
			i++
		}
	})
}
