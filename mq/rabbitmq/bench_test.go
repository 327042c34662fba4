package rabbitmq_test

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var benchRun atomic.Int64

// fill publishes n messages to the env's exchange (half with a routing key that is not routed, half
// without) and waits until queue holds them all.
func (e *env) fill(b *testing.B, queue string, n int) {
	keyed := rabbitmq.Inject(routingkey.WithKey(context.Background(), "notrouted1"), nil)
	for i := 0; i < n; i++ {
		p := amqp.Publishing{MessageId: fmt.Sprint(i), Body: []byte(`{"order":42,"sku":"abc"}`)}
		if i%2 == 0 {
			p.Headers = keyed
		}
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

// BenchmarkConsume compares, in the same run on the same broker, a baseline Consumer (header extraction,
// selector decision against a table of 100 routes, ack per message) with the plain amqp091-go consumer
// (ack per message, same prefetch) draining a queue of b.N messages, and with that plain consumer doing the
// W3C extraction an OTel-instrumented app does (plain-otel). Report the ratios of the ns/op.
func BenchmarkConsume(b *testing.B) {
	var table []routeapi.Route
	for i := 0; i < 100; i++ {
		table = append(table, forkRoute(fmt.Sprintf("key%d", i), fmt.Sprintf("sb-%d", i)))
	}
	plain := func(b *testing.B, handle func(*amqp.Delivery)) {
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
		e.fill(b, e.queue, b.N)
		b.ResetTimer()
		cpu := cpuMeter(b)
		ds, err := ch.Consume(e.queue, "", false, false, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i++ {
			d := <-ds
			handle(&d)
			if err := d.Ack(false); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		cpu()
		ch.Close()
	}
	b.Run("plain", func(b *testing.B) { plain(b, func(*amqp.Delivery) {}) })
	// plain-otel: the plain client plus what an OTel-instrumented consumer does per message at least:
	// extract the W3C trace context and baggage from the headers.
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	var sink int
	b.Run("plain-otel", func(b *testing.B) {
		plain(b, func(d *amqp.Delivery) {
			sink += baggage.FromContext(w3c.Extract(context.Background(), rabbitmq.HeaderCarrier(d.Headers))).Len()
		})
	})
	b.Run("selective", func(b *testing.B) {
		e := newEnv(b, fmt.Sprintf("bench-selective-%d", benchRun.Add(1)))
		tbl, err := routeapi.NewTable(1, table)
		if err != nil {
			b.Fatal(err)
		}
		c, err := rabbitmq.NewConsumer(e.ctx, e.config(baseline(), staticSource{tbl}))
		if err != nil {
			b.Fatal(err)
		}
		e.fill(b, e.queue, b.N)
		done := make(chan struct{})
		var n atomic.Int64
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.ResetTimer()
		cpu := cpuMeter(b)
		go func() {
			_ = c.Run(ctx, func(context.Context, *amqp.Delivery) error {
				if n.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			})
		}()
		<-done
		b.StopTimer()
		cpu()
		if err := c.Close(context.Background()); err != nil {
			b.Fatal(err)
		}
	})
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
