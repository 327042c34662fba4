package kafka

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
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
	c, rs := benchConsumer(b)
	ctx := context.Background()
	var sink int
	h := func(ctx context.Context, r *kgo.Record) error {
		// what a handler does with its context at least: its next call propagates the key and trace
		k, _ := routingkey.FromContext(ctx)
		sink += len(r.Value) + len(k)
		if trace.SpanContextFromContext(ctx).IsValid() {
			sink++
		}
		r.Context = nil // the benchmark hands the record out again, as polled
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
		r.Context = nil // the benchmark hands the record out again, as polled
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

// BenchmarkHandleCold is BenchmarkHandle over polls of records the way a poll returns them: 10,000
// records decoded as the client decodes them (header names allocated, values views of a batch buffer),
// from a rotation of polls far larger than the CPU's caches, so their bytes are not in the cache when
// they are handled, as after a real poll. "plain" is the plain consumer's loop (count the record, look at
// nothing), "selective" Consumer.handleAll with a handler that reads the key from its context. The
// metric ns/record is the consumer goroutine's time per record.
func BenchmarkHandleCold(b *testing.B) {
	const perPoll, polls = 10000, 16
	c, proto := benchConsumer(b)
	var fetches [polls]kgo.Fetches
	for p := range fetches {
		rs := make([]kgo.Record, perPoll)
		ptrs := make([]*kgo.Record, perPoll)
		var buf []byte
		for i := range rs { // the batch's bytes: each record's headers and value, in wire order
			for _, h := range proto[i%4].Headers {
				buf = append(append(buf, h.Key...), h.Value...)
			}
			buf = append(buf, fmt.Sprintf("value-%08d-%s", i, strings.Repeat("x", 40))...)
		}
		off := 0
		for i := range rs { // decoded: header names copied, values views of buf
			hs := make([]kgo.RecordHeader, len(proto[i%4].Headers))
			for j, h := range proto[i%4].Headers {
				off += len(h.Key)
				hs[j] = kgo.RecordHeader{Key: string(buf[off-len(h.Key) : off]), Value: buf[off : off+len(h.Value) : off+len(h.Value)]}
				off += len(h.Value)
			}
			rs[i] = kgo.Record{Topic: "t", Partition: int32(i % 3), Offset: int64(i), Headers: hs, Value: buf[off : off+55 : off+55]}
			off += 55
			ptrs[i] = &rs[i]
		}
		fetches[p] = kgo.Fetches{{Topics: []kgo.FetchTopic{{Topic: "t", Partitions: []kgo.FetchPartition{{Records: ptrs}}}}}}
	}
	var count atomic.Int64
	var sink atomic.Int64
	run := func(b *testing.B, poll func(kgo.Fetches)) {
		i := 0
		for b.Loop() {
			poll(fetches[i%polls])
			i++
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*perPoll), "ns/record")
	}
	b.Run("plain", func(b *testing.B) {
		run(b, func(fs kgo.Fetches) {
			for it := fs.RecordIter(); !it.Done(); {
				r := it.Next()
				sink.Add(int64(len(r.Value)))
				count.Add(1)
			}
		})
	})
	ctx := context.Background()
	h := func(ctx context.Context, r *kgo.Record) error {
		k, _ := routingkey.FromContext(ctx)
		sink.Add(int64(len(r.Value) + len(k)))
		count.Add(1)
		r.Context = nil // the benchmark hands the record out again, as polled
		return nil
	}
	b.Run("selective-keyctx", func(b *testing.B) {
		c.cfg.Contexts = mq.KeyContexts
		defer func() { c.cfg.Contexts = mq.TraceContexts }()
		run(b, func(fs kgo.Fetches) {
			if err := c.handleAll(ctx, ctx, h, fs); err != nil {
				b.Fatal(err)
			}
			clear(c.last)
			c.last = c.last[:0]
		})
	})
	b.Run("selective", func(b *testing.B) {
		run(b, func(fs kgo.Fetches) {
			if err := c.handleAll(ctx, ctx, h, fs); err != nil {
				b.Fatal(err)
			}
			clear(c.last)
			c.last = c.last[:0]
		})
	})
}

// benchConsumer returns a baseline Consumer of shop/worker without a broker, whose table routes "keya" to
// sb-a, and the four records of the benchmarks' mix (all with a traceparent; keyed "keya", keyed "keyz",
// two without a key).
func benchConsumer(b testing.TB) (*Consumer, [4]*kgo.Record) {
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
	return &Consumer{id: id, prop: mq.DefaultPropagation, sel: mq.NewSelector(id, oneTable{tbl}), interned: map[string]string{}}, rs
}
