package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/kafka"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var benchRun atomic.Int64

// fill creates a topic with n records, all with a traceparent header, half keyed for sb-a (baggage), half
// without a key.
func (e *env) fill(b *testing.B, ctx context.Context, n int) string {
	b.Helper()
	t := fmt.Sprintf("bench-%d", benchRun.Add(1))
	if _, err := e.adm.CreateTopic(ctx, 3, 1, nil, t); err != nil {
		b.Fatal(err)
	}
	const chunk = 5000
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx = trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	keyed := routingkey.WithKey(ctx, "keya")
	rs := make([]*kgo.Record, 0, chunk)
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: t, Value: []byte(strconv.Itoa(i))}
		if i%2 == 0 {
			kafka.Inject(keyed, r)
		} else {
			kafka.Inject(ctx, r)
		}
		rs = append(rs, r)
		if len(rs) == chunk || i == n-1 {
			if err := e.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			rs = rs[:0]
		}
	}
	b.Cleanup(func() { _, _ = e.adm.DeleteTopics(context.Background(), t) })
	return t
}

// BenchmarkConsume compares, in the same run and on the same kind of records, the plain franz-go group
// consumer (poll, handle, autocommit), the same with the W3C extraction an OTel-instrumented consumer does,
// and the selective Consumer of the baseline (read the key, decide, extract the OTel context and handle, or
// skip; mark). Half the records are keyed for sb-a, which the baseline skips. ns/op is per record.
func BenchmarkConsume(b *testing.B) {
	e := newEnv(b, 1, "warmup")
	ctx := context.Background()
	e.publish(forkRoute(worker, "keya", "sb-a"))
	src := e.routesClient()
	if err := src.WaitSynced(ctx); err != nil {
		b.Fatal(err)
	}
	plain := func(b *testing.B, handle func(*kgo.Record)) {
		t := e.fill(b, ctx, b.N)
		b.ResetTimer()
		cpu := cpuMeter(b)
		cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(t), kgo.ConsumerGroup("plain-"+t))
		if err != nil {
			b.Fatal(err)
		}
		for n := 0; n < b.N; {
			fs := cl.PollRecords(ctx, kafka.DefaultMaxPollRecords)
			for it := fs.RecordIter(); !it.Done(); {
				handle(it.Next())
				n++
			}
		}
		b.StopTimer()
		cpu()
		cl.Close()
	}
	var sink int
	b.Run("plain", func(b *testing.B) { plain(b, func(r *kgo.Record) { sink += len(r.Value) }) })
	// plain-otel: the plain client plus what an OTel-instrumented consumer does per record at least:
	// extract the W3C trace context and baggage from the headers.
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b.Run("plain-otel", func(b *testing.B) {
		plain(b, func(r *kgo.Record) {
			rctx := w3c.Extract(ctx, kafka.Carrier(r))
			sink += len(r.Value) + len(baggage.FromContext(rctx).Members())
		})
	})
	b.Run("selective", func(b *testing.B) {
		t := e.fill(b, ctx, b.N)
		b.ResetTimer()
		cpu := cpuMeter(b)
		c, err := kafka.NewConsumer(ctx, kafka.Config{Identity: baseID, Routes: src, Brokers: e.brokers,
			Topics: []string{t}, Group: "sel-" + t})
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- c.Run(rctx, func(_ context.Context, r *kgo.Record) error { sink += len(r.Value); return nil })
		}()
		for {
			s := c.Stats()
			if s.Processed+s.Skipped() >= uint64(b.N) {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		b.StopTimer()
		cpu()
		cancel()
		<-done
		_ = c.Close(ctx)
	})
}

// BenchmarkRoutePublishedToFirstRecord measures, per new sandbox, the time from its route being published
// (its fork's Consumer having been constructed just before, as the operator publishes routes once the fork
// is Ready) to its handler receiving the first record produced with its key after the publish. The metric
// baseline-sync-ns is when the baseline's route copy (a routes.Client polling every 20ms, no long-poll)
// holds the route, from which on the baseline skips the key.
func BenchmarkRoutePublishedToFirstRecord(b *testing.B) {
	e := newEnv(b, 3, topic)
	ctx := context.Background()
	src := e.routesClient()
	baseSrc := e.routesClient()
	var syncTotal time.Duration
	b.ResetTimer()
	b.StopTimer()
	for i := 0; i < b.N; i++ {
		sb, key := fmt.Sprintf("sb-%d", i), fmt.Sprintf("key%d", i)
		id := mq.Identity{Baseline: worker, Sandbox: sb, RoutingKey: key}
		c, err := kafka.NewConsumer(ctx, kafka.Config{Identity: id, Routes: src, Brokers: e.brokers,
			Topics: []string{topic}, Group: "orders-worker",
			ClientOptions: []kgo.Opt{kgo.FetchMaxWait(time.Second)}})
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan struct{}, 1)
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- c.Run(rctx, func(context.Context, *kgo.Record) error {
				select {
				case got <- struct{}{}:
				default:
				}
				return nil
			})
		}()
		b.StartTimer()
		start := time.Now()
		v := e.publish(forkRoute(worker, key, sb))
		e.produce(ctx, i, key)
		<-got
		b.StopTimer()
		if err := baseSrc.WaitVersion(ctx, v); err != nil {
			b.Fatal(err)
		}
		syncTotal += time.Since(start) // upper bound: includes the wait above once the record arrived
		cancel()
		<-done
		_ = c.Close(ctx)
	}
	b.ReportMetric(float64(syncTotal.Nanoseconds())/float64(b.N), "baseline-sync-ns")
}
