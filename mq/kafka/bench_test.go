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
	"github.com/sandboxmesh/sandboxmesh/mq/internal/peerbench"
	"github.com/sandboxmesh/sandboxmesh/mq/kafka"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var benchRun atomic.Int64

// fill creates a topic of 3 partitions with n records, all with a traceparent header (an instrumented
// producer); by i%4 a quarter keyed "keya" (routed to sb-a, away from the baseline), a quarter keyed
// "keyz" (no route), half without a key.
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
	kctx := [4]context.Context{routingkey.WithKey(ctx, "keya"), routingkey.WithKey(ctx, "keyz"), ctx, ctx}
	rs := make([]*kgo.Record, 0, chunk)
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: t, Value: []byte(strconv.Itoa(i))}
		kafka.Inject(kctx[i%4], r)
		rs = append(rs, r)
		if len(rs) == chunk || i == n-1 {
			if err := e.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
				b.Fatal(err)
			}
			rs = rs[:0]
		}
	}
	return t
}

var benchSink atomic.Int64

// BenchmarkConsume compares, in the same run on the same kind of records, the plain franz-go group
// consumer (poll, handle, autocommit), the same extracting the W3C trace context and baggage as an
// OTel-instrumented consumer does ("plain+otel"), and the baseline's selective Consumer (read the key,
// decide; extract the OTel context and call the handler with it, or skip; mark for commit). "selective+otel" is
// the selective consumer with a handler that reads its context's baggage, as an instrumented handler does
// (the handler context parses the trace context on that first read; "selective"'s handler never reads it);
// "selective-keyctx" the selective consumer with mq.KeyContexts (the record's key and baggage in a context
// shared per key, no trace context: what a handler that passes the key on and does not trace needs). kfake runs in a
// process of its own, so cpu-ns/op is the consumer's CPU per record. Each round consumes a topic of its
// own (fill's mix); the rounds alternate (peerbench.Run). Run it with bench/mq/run.sh, or
// -benchtime=50000x.
func BenchmarkConsume(b *testing.B) {
	e := newEnvAt(b, startKfakeProcess(b))
	ctx := context.Background()
	e.publish(forkRoute(worker, "keya", "sb-a"))
	src := e.routesClient()
	if err := src.WaitSynced(ctx); err != nil {
		b.Fatal(err)
	}
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	plain := func(otel bool) func(b *testing.B, n int) func(*atomic.Int64) func() {
		return func(b *testing.B, n int) func(*atomic.Int64) func() {
			t := e.fill(b, ctx, n)
			cl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ConsumeTopics(t), kgo.ConsumerGroup("plain-"+t))
			if err != nil {
				b.Fatal(err)
			}
			return func(count *atomic.Int64) func() {
				pctx, cancel := context.WithCancel(ctx)
				done := make(chan struct{})
				go func() {
					defer close(done)
					for pctx.Err() == nil {
						fs := cl.PollRecords(pctx, kafka.DefaultMaxPollRecords)
						for it := fs.RecordIter(); !it.Done(); {
							r := it.Next()
							if otel {
								// what an instrumented consumer does per record without selective consumption
								rctx := w3c.Extract(ctx, kafka.Carrier(r))
								benchSink.Add(int64(baggage.FromContext(rctx).Len()))
							}
							benchSink.Add(int64(len(r.Value)))
							count.Add(1)
						}
					}
				}()
				return func() {
					cancel()
					<-done
					cl.Close()
					e.deleteTopic(t)
				}
			}
		}
	}
	selective := func(otel bool, mode mq.Contexts, b *testing.B, n int) func(*atomic.Int64) func() {
		t := e.fill(b, ctx, n)
		c, err := kafka.NewConsumer(ctx, kafka.Config{Identity: baseID, Routes: src, Brokers: e.brokers,
			Topics: []string{t}, Group: "sel-" + t, Contexts: mode})
		if err != nil {
			b.Fatal(err)
		}
		return func(count *atomic.Int64) func() {
			rctx, cancel := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() {
				errc <- c.Run(rctx, func(hctx context.Context, r *kgo.Record) error {
					if otel {
						// what an instrumented handler does: its first read of the context parses the trace context
						benchSink.Add(int64(baggage.FromContext(hctx).Len()))
					}
					benchSink.Add(int64(len(r.Value)))
					count.Add(1)
					return nil
				})
			}()
			// skipped records do not reach the handler: they are counted by Stats
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				var last uint64
				for {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Microsecond):
					}
					if s := c.Stats().Skipped(); s > last {
						count.Add(int64(s - last))
						last = s
					}
				}
			}()
			return func() {
				close(stop)
				<-done
				cancel()
				if err := <-errc; err != nil {
					b.Error(err)
				}
				if err := c.Close(ctx); err != nil {
					b.Error(err)
				}
				e.deleteTopic(t)
			}
		}
	}
	peerbench.Run(b,
		peerbench.Peer{Name: "plain", Prepare: plain(false)},
		peerbench.Peer{Name: "plain+otel", Prepare: plain(true)},
		peerbench.Peer{Name: "selective", Prepare: func(b *testing.B, n int) func(*atomic.Int64) func() {
			return selective(false, mq.TraceContexts, b, n)
		}},
		peerbench.Peer{Name: "selective+otel", Prepare: func(b *testing.B, n int) func(*atomic.Int64) func() {
			return selective(true, mq.TraceContexts, b, n)
		}},
		peerbench.Peer{Name: "selective-keyctx", Prepare: func(b *testing.B, n int) func(*atomic.Int64) func() {
			return selective(false, mq.KeyContexts, b, n)
		}},
	)
}

func (e *env) deleteTopic(t string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.adm.DeleteTopics(ctx, t); err != nil {
		e.t.Error(err)
	}
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
