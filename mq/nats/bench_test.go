package nats_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/internal/peerbench"
	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

type staticSource struct{ t *routeapi.Table }

func (s staticSource) Table() *routeapi.Table { return s.t }

// benchCtx are the contexts messages of the benchmarks are published with, by i%4: every message carries
// a trace context (an instrumented producer); a quarter carry key "keya" (routed to sb-a, away from the
// baseline), a quarter key "keyz" (no route), half no key.
func benchCtx() [4]context.Context {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	return [4]context.Context{routingkey.WithKey(ctx, "keya"), routingkey.WithKey(ctx, "keyz"), ctx, ctx}
}

// fillStream creates stream name on subject name+".x" holding n messages of the benchCtx mix.
func fillStream(b *testing.B, js jetstream.JetStream, name string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".x"}}); err != nil {
		b.Fatal(err)
	}
	kctx := benchCtx()
	for i := range n {
		msg := natsmq.NewMsg(kctx[i%4], name+".x", []byte(strconv.Itoa(i)))
		_, err := js.PublishMsgAsync(msg)
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && ctx.Err() == nil { // a loaded machine: let the acks catch up
			select {
			case <-js.PublishAsyncComplete():
			case <-ctx.Done():
			}
			_, err = js.PublishMsgAsync(msg)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
		b.Fatal("publishing timed out")
	}
}

var benchSink atomic.Int64

// BenchmarkJetStreamConsume compares, in the same run on the same server (a process of its own, so the
// process CPU is the consumer's), the plain jetstream client consuming and acknowledging b.N messages with
// a durable pull consumer, the same client extracting the W3C trace context and baggage of each message as
// an OTel-instrumented app does ("plain+otel"), and the baseline's selective JetStreamConsumer (read the
// key, decide, ack the skipped; extract the OTel context, call the handler with it and ack the others). "selective+otel" is
// the selective consumer with a handler that reads its context's baggage, as an instrumented handler does
// (the handler context parses the trace context on that first read; "selective"'s handler never reads it);
// "selective-keyctx" the selective consumer with mq.KeyContexts (key and baggage, no trace context).
// Each round consumes a stream of its own (benchCtx's mix, deleted afterwards); the rounds alternate
// (peerbench.Run). Run it with bench/mq/run.sh, or -benchtime=20000x.
func BenchmarkJetStreamConsume(b *testing.B) {
	nc := startNATSProcess(b)
	js, _ := jetstream.New(nc)
	tbl, _ := routeapi.NewTable(1, []routeapi.Route{forkRte, otherRte})
	var seq atomic.Int64
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	plain := func(otel bool) func(b *testing.B, n int) func(*atomic.Int64) func() {
		return func(b *testing.B, n int) func(*atomic.Int64) func() {
			name := fmt.Sprintf("B%d", seq.Add(1))
			fillStream(b, js, name, n)
			ctx := context.Background()
			cons, err := js.CreateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "worker", FilterSubject: name + ".x"})
			if err != nil {
				b.Fatal(err)
			}
			return func(count *atomic.Int64) func() {
				cc, err := cons.Consume(func(m jetstream.Msg) {
					if otel {
						// what an instrumented app does per message without selective consumption
						mctx := w3c.Extract(ctx, natsmq.HeaderCarrier(m.Headers()))
						benchSink.Add(int64(baggage.FromContext(mctx).Len()))
					}
					benchSink.Add(int64(len(m.Data())))
					_ = m.Ack()
					count.Add(1)
				})
				if err != nil {
					b.Fatal(err)
				}
				return func() {
					cc.Stop()
					deleteStream(b, js, name)
				}
			}
		}
	}
	selective := func(otel bool, mode mq.Contexts, b *testing.B, n int) func(*atomic.Int64) func() {
		name := fmt.Sprintf("B%d", seq.Add(1))
		fillStream(b, js, name, n)
		ctx := context.Background()
		c, err := natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{
			Common:    natsmq.Common{Identity: mq.Identity{Baseline: worker}, Routes: staticSource{tbl}, Contexts: mode},
			JetStream: js, Stream: name, Durable: "worker",
			Consumer: jetstream.ConsumerConfig{FilterSubject: name + ".x"},
		})
		if err != nil {
			b.Fatal(err)
		}
		return func(count *atomic.Int64) func() {
			errc := make(chan error, 1)
			go func() {
				errc <- c.Run(ctx, func(hctx context.Context, m jetstream.Msg) error {
					if otel {
						// what an instrumented handler does: its first read of the context parses the trace context
						benchSink.Add(int64(baggage.FromContext(hctx).Len()))
					}
					benchSink.Add(int64(len(m.Data())))
					count.Add(1)
					return nil
				})
			}()
			// skipped messages do not reach the handler: they are counted by Stats
			stop := make(chan struct{})
			done := make(chan struct{})
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
				if err := c.Close(ctx); err != nil {
					b.Error(err)
				}
				if err := <-errc; err != nil {
					b.Error(err)
				}
				deleteStream(b, js, name)
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

func deleteStream(b *testing.B, js jetstream.JetStream, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := js.DeleteStream(ctx, name); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRouteToFirstMessage measures the time from publishing a route that sends key "gkey" (a route
// group's key, not the sandbox's own) to sandbox sb-a, to sb-a's consumer handling its first message keyed
// gkey, while a producer publishes gkey messages every millisecond. The route copy is a routes.Client
// polling a real lookup API (MinInterval 20ms).
func BenchmarkRouteToFirstMessage(b *testing.B) {
	nc := startNATS(b)
	js, _ := jetstream.New(nc)
	newStream(b, js, jetstream.LimitsPolicy)
	env := startRoutes(b)
	fc := env.client(b)
	fork := newJS(b, js, forkID, fc)
	got := make(chan struct{}, 1)
	runJS(b, fork, func(ctx context.Context, _ jetstream.Msg) error {
		if k, _ := routingkey.FromContext(ctx); k == "gkey" {
			select {
			case got <- struct{}{}:
			default:
			}
		}
		return nil
	})
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		kctx := routingkey.WithKey(context.Background(), "gkey")
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			_, _ = js.PublishMsgAsync(natsmq.NewMsg(kctx, "orders.created", []byte("0")))
		}
	}()
	groupRte := route(worker, "gkey", "sb-a")
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		env.publish(b, []routeapi.Route{forkRte}, fc)
		time.Sleep(5 * time.Millisecond)
		select { // drop a notice from the previous round
		case <-got:
		default:
		}
		b.StartTimer()
		if _, err := env.srv.Publish(context.Background(), []routeapi.Route{forkRte, groupRte}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			b.Fatal("no gkey message within 10s of publishing the route")
		}
	}
}
