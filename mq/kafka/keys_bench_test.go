package kafka

import (
	"context"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
)

type oneTable struct{ t *routeapi.Table }

func (s oneTable) Table() *routeapi.Table { return s.t }

// BenchmarkPerRecord splits the per-record work of a Consumer without a broker: deciding (key read and
// Selector.Decide, what a skipped record costs), building the handler's context (what a processed record
// costs on top), and the plain W3C extraction an OTel-instrumented consumer does, as the peer.
func BenchmarkPerRecord(b *testing.B) {
	w := routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}
	tbl, err := routeapi.NewTable(1, []routeapi.Route{{Workload: w, RoutingKey: "keya", Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: "sb-a"}, Kind: routeapi.DestinationFork, Host: "h"}}})
	if err != nil {
		b.Fatal(err)
	}
	sel := mq.NewSelector(mq.Identity{Baseline: w}, oneTable{tbl})
	r := &kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "traceparent", Value: []byte("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")},
		{Key: "baggage", Value: []byte("sm-routing-key=keya")},
	}}
	c := &Consumer{prop: mq.DefaultPropagation, interned: map[string]string{}}
	ctx := context.Background()
	b.Run("decide", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if sel.Decide(c.keyFor(r)) != mq.SkipRoutedAway {
				b.Fatal("wrong decision")
			}
		}
	})
	// decide-carrier: the same through the public HeaderCarrier (copies every value it reads), the
	// reference for the consumer's zero-copy keyCarrier.
	b.Run("decide-carrier", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if sel.Decide(c.prop.Key(Carrier(r))) != mq.SkipRoutedAway {
				b.Fatal("wrong decision")
			}
		}
	})
	b.Run("handler-context", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = c.extractRecord(ctx, r, "keya")
		}
	})
	w3c := propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
	b.Run("plain-w3c-extract", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = w3c.Extract(ctx, Carrier(r))
		}
	})
}
