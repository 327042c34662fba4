package nats

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// benchMsg is a received JetStream message without a server: headers and data, acks that do nothing.
type benchMsg struct {
	jetstream.Msg
	h    nats.Header
	data []byte
}

func (m *benchMsg) Headers() nats.Header { return m.h }
func (m *benchMsg) Data() []byte         { return m.data }
func (m *benchMsg) Subject() string      { return "s" }
func (m *benchMsg) Ack() error           { return nil }
func (m *benchMsg) Nak() error           { return nil }

// BenchmarkHandle is the JetStream consumer's own work per message with the server taken out: recorded
// messages (BenchmarkJetStreamConsume's mix: all with a traceparent, a quarter keyed away from the
// baseline, a quarter keyed without a route, half without a key) go through the path Run takes for each
// (JetStreamConsumer.handle: key, decision, OTel context, handler timeout, handler call, ack, counters),
// against an OTel-instrumented plain consumer's W3C extraction. Deterministic, per message.
func BenchmarkHandle(b *testing.B) {
	w := routeapi.WorkloadRef{Namespace: "n", Kind: routeapi.KindDeployment, Name: "w"}
	tbl, err := routeapi.NewTable(1, []routeapi.Route{{Workload: w, RoutingKey: "keya", Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "n", Name: "sb-a"}, Kind: routeapi.DestinationFork, Host: "h"}}})
	if err != nil {
		b.Fatal(err)
	}
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	sctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	var ms [4]*benchMsg
	for i, ctx := range [4]context.Context{routingkey.WithKey(sctx, "keya"), routingkey.WithKey(sctx, "keyz"), sctx, sctx} {
		ms[i] = &benchMsg{h: NewMsg(ctx, "s", nil).Header, data: []byte("0123")}
	}
	id := mq.Identity{Baseline: w}
	k, err := newCore(Common{Identity: id, Routes: fixedTable{tbl}}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	c := &JetStreamConsumer{core: k, hTimeout: 30 * time.Second}
	ctx := context.Background()
	var sink int
	h := func(ctx context.Context, m jetstream.Msg) error {
		// what a handler does with its context at least: its next call propagates the key and trace
		key, _ := routingkey.FromContext(ctx)
		sink += len(m.Data()) + len(key)
		if trace.SpanContextFromContext(ctx).IsValid() {
			sink++
		}
		return nil
	}
	b.Run("selective", func(b *testing.B) {
		dl := newDeadlines(ctx, c.hTimeout)
		defer dl.stop()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.handle(ctx, dl, h, ms[i&3])
			i++
		}
	})
	// a handler that passes the key on (routingkey.Transport, or the package's Inject) and does no tracing
	// of its own: the trace context is never parsed
	hk := func(ctx context.Context, m jetstream.Msg) error {
		k, _ := routingkey.FromContext(ctx)
		sink += len(m.Data()) + len(k)
		return nil
	}
	b.Run("selective, key only", func(b *testing.B) {
		dl := newDeadlines(ctx, c.hTimeout)
		defer dl.stop()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			c.handle(ctx, dl, hk, ms[i&3])
			i++
		}
	})
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b.Run("plain+otel", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			m := ms[i&3]
			mctx := w3c.Extract(ctx, HeaderCarrier(m.Headers()))
			sink += len(m.Data()) + baggage.FromContext(mctx).Len()
			if trace.SpanContextFromContext(mctx).IsValid() {
				sink++
			}
			_ = m.Ack()
			i++
		}
	})
}
