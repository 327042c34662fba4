package rabbitmq_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/internal/peerbench"
	"github.com/sandboxmesh/sandboxmesh/mq/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var benchRun atomic.Int64

// fill publishes n messages to the env's exchange and waits until queue holds them all. Every message
// carries a trace context (an instrumented producer); by i%4 a quarter carry key "key7" (routed to sb-7,
// away from the baseline), a quarter key "notrouted1" (no route), half no key.
func (e *env) fill(b *testing.B, queue string, n int) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	hs := [4]amqp.Table{
		rabbitmq.Inject(routingkey.WithKey(ctx, "key7"), nil),
		rabbitmq.Inject(routingkey.WithKey(ctx, "notrouted1"), nil),
		rabbitmq.Inject(ctx, nil),
		rabbitmq.Inject(ctx, nil),
	}
	for i := 0; i < n; i++ {
		p := amqp.Publishing{MessageId: strconv.Itoa(i), Body: []byte(`{"order":42,"sku":"abc"}`), Headers: hs[i%4]}
		if err := e.pub.PublishWithContext(e.ctx, e.exchange, "orders.created", false, false, p); err != nil {
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ch, err := e.conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		ch.Close()
		if err != nil {
			b.Fatal(err)
		}
		if q.Messages >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("queue %s has %d of %d messages", queue, q.Messages, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var benchSink atomic.Int64

// BenchmarkConsume compares, in the same run on the same broker, the plain amqp091-go consumer (ack per
// message, the same prefetch), the same extracting the W3C trace context and baggage as an
// OTel-instrumented app does ("plain+otel"), and the baseline's selective Consumer (read the key, decide
// against a table of 100 routes; extract the OTel context and call the handler with it, or skip; ack per
// message) "selective+otel" is
// the selective consumer with a handler that reads its context's baggage, as an instrumented handler does
// (the handler context parses the trace context on that first read; "selective"'s handler never reads it);
// "selective-keyctx" the selective consumer with mq.KeyContexts (key and baggage, no trace context)., each draining a queue of b.N messages (fill's mix). The broker is a process of its own, so
// cpu-ns/op is the consumer's CPU per message. The rounds alternate (peerbench.Run). Run it with
// bench/mq/run.sh, or -benchtime=20000x.
func BenchmarkConsume(b *testing.B) {
	var table []routeapi.Route
	for i := 0; i < 100; i++ {
		table = append(table, forkRoute(fmt.Sprintf("key%d", i), fmt.Sprintf("sb-%d", i)))
	}
	tbl, err := routeapi.NewTable(1, table)
	if err != nil {
		b.Fatal(err)
	}
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	plain := func(otel bool) func(b *testing.B, n int) func(*atomic.Int64) func() {
		return func(b *testing.B, n int) func(*atomic.Int64) func() {
			e := newEnv(b, fmt.Sprintf("bench-plain-%d", benchRun.Add(1)))
			ch, err := e.conn.Channel()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ch.QueueDeclare(e.queue, false, false, false, false, nil); err != nil {
				b.Fatal(err)
			}
			if err := ch.QueueBind(e.queue, "orders.#", e.exchange, false, nil); err != nil {
				b.Fatal(err)
			}
			if err := ch.Qos(rabbitmq.DefaultPrefetch, 0, false); err != nil {
				b.Fatal(err)
			}
			e.fill(b, e.queue, n)
			return func(count *atomic.Int64) func() {
				ds, err := ch.Consume(e.queue, "", false, false, false, false, nil)
				if err != nil {
					b.Fatal(err)
				}
				done := make(chan struct{})
				go func() {
					defer close(done)
					for d := range ds {
						if otel {
							// what an instrumented consumer does per message without selective consumption
							mctx := w3c.Extract(context.Background(), rabbitmq.HeaderCarrier(d.Headers))
							benchSink.Add(int64(baggage.FromContext(mctx).Len()))
						}
						benchSink.Add(int64(len(d.Body)))
						if err := d.Ack(false); err != nil {
							b.Error(err)
							return
						}
						count.Add(1)
					}
				}()
				return func() {
					ch.Close()
					<-done
					e.deleteQueue(e.queue)
				}
			}
		}
	}
	selective := func(otel bool, mode mq.Contexts, b *testing.B, n int) func(*atomic.Int64) func() {
		e := newEnv(b, fmt.Sprintf("bench-selective-%d", benchRun.Add(1)))
		cfg := e.config(baseline(), staticSource{tbl})
		cfg.Contexts = mode
		c, err := rabbitmq.NewConsumer(e.ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		e.fill(b, e.queue, n)
		return func(count *atomic.Int64) func() {
			errc := make(chan error, 1)
			go func() {
				errc <- c.Run(context.Background(), func(hctx context.Context, d *amqp.Delivery) error {
					if otel {
						// what an instrumented handler does: its first read of the context parses the trace context
						benchSink.Add(int64(baggage.FromContext(hctx).Len()))
					}
					benchSink.Add(int64(len(d.Body)))
					count.Add(1)
					return nil
				})
			}()
			// skipped messages do not reach the handler: they are counted by Stats
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
				if err := c.Close(context.Background()); err != nil {
					b.Error(err)
				}
				if err := <-errc; err != nil {
					b.Error(err)
				}
				e.deleteQueue(e.queue)
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

func (e *env) deleteQueue(q string) {
	ch, err := e.conn.Channel()
	if err != nil {
		e.t.Error(err)
		return
	}
	defer ch.Close()
	if _, err := ch.QueueDelete(q, false, false, false); err != nil {
		e.t.Error(err)
	}
}

// BenchmarkRouteToFirstMessage measures the time from a route being published on the route server to a
// fork's consumer processing the first message of that key (a route-group key: the fork's own key needs no
// route). A producer sends a message with the key every millisecond; the fork's route copy polls the lookup
// API with MinInterval 20ms, so the result is bounded by that poll interval (a long-polling server answers
// at once).
func BenchmarkRouteToFirstMessage(b *testing.B) {
	e := newEnv(b, fmt.Sprintf("bench-route-%d", benchRun.Add(1)))
	src := e.routes()
	c, err := rabbitmq.NewConsumer(e.ctx, e.config(sandbox("sb-b", "keyb"), src))
	if err != nil {
		b.Fatal(err)
	}
	var want atomic.Pointer[string]
	got := make(chan struct{}, 1)
	closeIt := run(b, c, func(ctx context.Context, d *amqp.Delivery) error {
		if k, _ := routingkey.FromContext(ctx); want.Load() != nil && k == *want.Load() {
			select {
			case got <- struct{}{}:
			default:
			}
		}
		return nil
	})
	defer closeIt()
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		key := fmt.Sprintf("grp%d", i)
		want.Store(&key)
		stop := make(chan struct{})
		prodDone := make(chan struct{})
		go func() {
			defer close(prodDone)
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					e.publish("r", key)
				}
			}
		}()
		time.Sleep(30 * time.Millisecond) // messages of the key are flowing and skipped
		select {
		case <-got:
		default:
		}
		b.StartTimer()
		t0 := time.Now()
		if _, err := e.srv.Publish(e.ctx, []routeapi.Route{forkRoute("keyb", "sb-b"), forkRoute(key, "sb-b")}); err != nil {
			b.Fatal(err)
		}
		select {
		case <-got:
		case <-time.After(10 * time.Second):
			b.Fatal("no message of the new route's key within 10s")
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		close(stop)
		<-prodDone
		if _, err := e.srv.Publish(e.ctx, []routeapi.Route{forkRoute("keyb", "sb-b")}); err != nil {
			b.Fatal(err)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkExtractDecide is the Consumer's own work per delivery, without the broker: reading the routing
// key from AMQP headers (traceparent + baggage) and deciding against a table of 100 routes.
func BenchmarkExtractDecide(b *testing.B) {
	var table []routeapi.Route
	for i := 0; i < 100; i++ {
		table = append(table, forkRoute(fmt.Sprintf("key%d", i), fmt.Sprintf("sb-%d", i)))
	}
	tbl, err := routeapi.NewTable(1, table)
	if err != nil {
		b.Fatal(err)
	}
	sel := mq.NewSelector(baseline(), staticSource{tbl})
	h := rabbitmq.Inject(routingkey.WithKey(context.Background(), "key42"), amqp.Table{
		"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	b.Run("extract", func(b *testing.B) { // what the consumer did before it decided on the key alone
		b.ReportAllocs()
		for b.Loop() {
			_, key := rabbitmq.Extract(context.Background(), h)
			if sel.Decide(key) != mq.SkipRoutedAway {
				b.Fatal("wrong decision")
			}
		}
	})
	b.Run("key-carrier", func(b *testing.B) { // Key through the public carrier
		b.ReportAllocs()
		for b.Loop() {
			if sel.Decide(mq.DefaultPropagation.Key(rabbitmq.HeaderCarrier(h))) != mq.SkipRoutedAway {
				b.Fatal("wrong decision")
			}
		}
	})
	key := rabbitmq.NewKeyReader()
	b.Run("key", func(b *testing.B) { // what a skipped message costs now
		b.ReportAllocs()
		for b.Loop() {
			if sel.Decide(key(mq.DefaultPropagation, h)) != mq.SkipRoutedAway {
				b.Fatal("wrong decision")
			}
		}
	})
}
