package rabbitmq

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// nopAck acknowledges nothing: deliveries without a broker.
type nopAck struct{}

func (nopAck) Ack(uint64, bool) error          { return nil }
func (nopAck) Nack(uint64, bool, bool) error   { return nil }
func (nopAck) Reject(tag uint64, _ bool) error { return nil }

type fixedTable struct{ t *routeapi.Table }

func (s fixedTable) Table() *routeapi.Table { return s.t }

// BenchmarkHandle is the consumer's own work per delivery with the broker taken out: recorded deliveries
// (BenchmarkConsume's mix: all with a traceparent, a quarter keyed away from the baseline, a quarter keyed
// without a route, half without a key) go through the path Run takes for each (Consumer.handle: key,
// decision against 100 routes, OTel context, handler call, ack, counters), against an OTel-instrumented
// plain consumer's W3C extraction. Deterministic, per delivery.
func BenchmarkHandle(b *testing.B) {
	w := routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}
	var routes []routeapi.Route
	for i := range 100 {
		sb := "sb-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		routes = append(routes, routeapi.Route{Workload: w, RoutingKey: "key" + string(rune('0'+i%10)) + string(rune('0'+i/10)),
			Destination: routeapi.Destination{Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: sb}, Kind: routeapi.DestinationFork, Host: "h"}})
	}
	tbl, err := routeapi.NewTable(1, routes)
	if err != nil {
		b.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	var ds [4]amqp.Delivery
	for i, ctx := range [4]context.Context{routingkey.WithKey(sctx, "key70"), routingkey.WithKey(sctx, "notrouted1"), sctx, sctx} {
		ds[i] = amqp.Delivery{Acknowledger: nopAck{}, Headers: Inject(ctx, nil), Body: []byte(`{"order":42,"sku":"abc"}`)}
	}
	cfg := Config{URL: "amqp://127.0.0.1:1", Queue: "q", Identity: mq.Identity{Baseline: w}}
	if err := cfg.setDefaults(); err != nil {
		b.Fatal(err)
	}
	c := &Consumer{cfg: cfg, id: cfg.Identity, prop: cfg.Propagation, log: cfg.Logger, sel: mq.NewSelector(cfg.Identity, fixedTable{tbl})}
	c.keys.cache, c.contexts = c.prop.NewKeyCache(), c.prop.NewHandlerContexts()
	ctx := context.Background()
	var sink int
	h := func(ctx context.Context, d *amqp.Delivery) error {
		// what a handler does with its context at least: its next call propagates the key and trace
		key, _ := routingkey.FromContext(ctx)
		sink += len(d.Body) + len(key)
		if trace.SpanContextFromContext(ctx).IsValid() {
			sink++
		}
		return nil
	}
	b.Run("selective", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := c.handle(ctx, &ds[i&3], h); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if s := c.Stats(); i >= 4 && (s.SkippedRoutedAway == 0 || s.Processed == 0) {
			b.Fatalf("stats %+v: the mix is not what it should be", s)
		}
	})
	// a handler that passes the key on (routingkey.Transport, or the package's Inject) and does no tracing
	// of its own: the trace context is never parsed
	hk := func(ctx context.Context, d *amqp.Delivery) error {
		k, _ := routingkey.FromContext(ctx)
		sink += len(d.Body) + len(k)
		return nil
	}
	b.Run("selective, key only", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := c.handle(ctx, &ds[i&3], hk); err != nil {
				b.Fatal(err)
			}
			i++
		}
		if s := c.Stats(); i >= 4 && (s.SkippedRoutedAway == 0 || s.Processed == 0) {
			b.Fatalf("stats %+v: the mix is not what it should be", s)
		}
	})
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b.Run("plain+otel", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			d := &ds[i&3]
			dctx := w3c.Extract(ctx, HeaderCarrier(d.Headers))
			sink += len(d.Body) + baggage.FromContext(dctx).Len()
			if trace.SpanContextFromContext(dctx).IsValid() {
				sink++
			}
			_ = d.Ack(false)
			i++
		}
	})
}
