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
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

type staticSource struct{ t *routeapi.Table }

func (s staticSource) Table() *routeapi.Table { return s.t }

// fillStream creates stream name on subject name+".x" holding n messages: half without a key, a quarter
// keyed for sb-a (routed away from the baseline), a quarter with a key that has no route.
func fillStream(b *testing.B, js jetstream.JetStream, name string, n int) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{name + ".x"}}); err != nil {
		b.Fatal(err)
	}
	kctx := [4]context.Context{context.Background(), routingkey.WithKey(context.Background(), "keya"), context.Background(), routingkey.WithKey(context.Background(), "keyz")}
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

// BenchmarkJetStreamConsume compares, in the same run on the same server, the plain jetstream client
// consuming and acknowledging b.N messages with a durable pull consumer, and the baseline's selective
// JetStreamConsumer doing the same (extracting each message's headers, deciding, acknowledging), with
// "plain+otel" (the plain client extracting the OTel context of each message, as an instrumented app does)
// for reference. They alternate three times (plain, plain+otel, selective, plain#01, ...) so that a noisy neighbour hurts both alike; each
// round consumes a stream of its own, deleted afterwards. The server runs as a process of its own.
func BenchmarkJetStreamConsume(b *testing.B) {
	nc := startNATSProcess(b)
	js, _ := jetstream.New(nc)
	tbl, _ := routeapi.NewTable(1, []routeapi.Route{forkRte, otherRte})
	var seq atomic.Int64
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	for range 3 {
		b.Run("plain", func(b *testing.B) {
			benchConsume(b, js, fmt.Sprintf("B%d", seq.Add(1)), func(ctx context.Context, name string, n *atomic.Int64) (func(), error) {
				cons, err := js.CreateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "worker", FilterSubject: name + ".x"})
				if err != nil {
					return nil, err
				}
				cc, err := cons.Consume(func(m jetstream.Msg) {
					_ = m.Ack()
					n.Add(1)
				})
				if err != nil {
					return nil, err
				}
				return cc.Stop, nil
			})
		})
		b.Run("plain+otel", func(b *testing.B) {
			benchConsume(b, js, fmt.Sprintf("B%d", seq.Add(1)), func(ctx context.Context, name string, n *atomic.Int64) (func(), error) {
				cons, err := js.CreateConsumer(ctx, name, jetstream.ConsumerConfig{Durable: "worker", FilterSubject: name + ".x"})
				if err != nil {
					return nil, err
				}
				cc, err := cons.Consume(func(m jetstream.Msg) {
					// what an instrumented app does per message without selective consumption: the W3C
					// trace context and baggage
					_ = w3c.Extract(ctx, natsmq.HeaderCarrier(m.Headers()))
					_ = m.Ack()
					n.Add(1)
				})
				if err != nil {
					return nil, err
				}
				return cc.Stop, nil
			})
		})
		b.Run("selective", func(b *testing.B) {
			benchConsume(b, js, fmt.Sprintf("B%d", seq.Add(1)), func(ctx context.Context, name string, n *atomic.Int64) (func(), error) {
				c, err := natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{
					Common:    natsmq.Common{Identity: mq.Identity{Baseline: worker}, Routes: staticSource{tbl}},
					JetStream: js, Stream: name, Durable: "worker",
					Consumer: jetstream.ConsumerConfig{FilterSubject: name + ".x"},
				})
				if err != nil {
					return nil, err
				}
				errc := make(chan error, 1)
				go func() {
					errc <- c.Run(ctx, func(context.Context, jetstream.Msg) error { n.Add(1); return nil })
				}()
				// skipped messages do not reach the handler: count them from Stats
				stop := make(chan struct{})
				go func() {
					for {
						select {
						case <-stop:
							return
						case <-time.After(time.Millisecond):
						}
						if s := c.Stats(); s.Processed+s.Skipped() >= uint64(b.N) {
							n.Store(int64(b.N))
						}
					}
				}()
				return func() {
					close(stop)
					if err := c.Close(ctx); err != nil {
						b.Error(err)
					}
					if err := <-errc; err != nil {
						b.Error(err)
					}
				}, nil
			})
		})
	}
}

// benchConsume fills stream name with b.N messages, then times start until the counter reaches b.N.
func benchConsume(b *testing.B, js jetstream.JetStream, name string, start func(ctx context.Context, name string, n *atomic.Int64) (stop func(), err error)) {
	fillStream(b, js, name, b.N)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var n atomic.Int64
	b.ResetTimer()
	cpu := cpuMeter(b)
	stop, err := start(ctx, name, &n)
	if err != nil {
		b.Fatal(err)
	}
	for n.Load() < int64(b.N) {
		if ctx.Err() != nil {
			b.Fatal("timed out")
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	cpu()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	stop()
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
