package nats

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// BenchmarkDecide splits the per-message work of a consumer without a server, on the headers NewMsg
// writes: a message skipped (key routed away: key read and decision), one processed (the handler's context
// built too), and the extraction an OTel-instrumented plain consumer does per message, as the peer.
func BenchmarkDecide(b *testing.B) {
	w := routeapi.WorkloadRef{Namespace: "n", Kind: routeapi.KindDeployment, Name: "w"}
	tbl, err := routeapi.NewTable(1, []routeapi.Route{{Workload: w, RoutingKey: "keya", Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "n", Name: "sb-a"}, Kind: routeapi.DestinationFork, Host: "h"}}})
	if err != nil {
		b.Fatal(err)
	}
	id := mq.Identity{Baseline: w}
	k := testCore(b, id, fixedTable{tbl})
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	skipped := NewMsg(routingkey.WithKey(ctx, "keya"), "s", nil).Header
	processed := NewMsg(routingkey.WithKey(ctx, "keyz"), "s", nil).Header
	bg := context.Background()
	b.Run("skip", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, d := k.decide(bg, skipped); d != mq.SkipRoutedAway {
				b.Fatal(d)
			}
		}
	})
	b.Run("process", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, d := k.decide(bg, processed); d != mq.Process {
				b.Fatal(d)
			}
		}
	})
	b.Run("plain-otel-extract", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = mq.DefaultPropagation.Extract(bg, HeaderCarrier(processed))
		}
	})
}

// testCore is the core of a consumer of id over src, without a server.
func testCore(tb testing.TB, id mq.Identity, src mq.TableSource) *core {
	tb.Helper()
	k, err := newCore(Common{Identity: id, Routes: src}, "test")
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

type fixedTable struct{ t *routeapi.Table }

func (s fixedTable) Table() *routeapi.Table { return s.t }

// FuzzDecideMatchesExtract checks the consumer's fast path (headers the propagation does not read are not
// extracted; all-lower-case names are looked up directly) against the plain case-insensitive extraction:
// same routing key for any headers.
func FuzzDecideMatchesExtract(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("Baggage", "a=1,sm-routing-key=k1", "x-other", "1")
	f.Add("uberctx-sm-routing-key", "k2", "UBERCTX-SM-ROUTING-KEY", "k3")
	f.Add("ot-baggage-sm-routing-key", "k4", "tracestate", "sm=routingkey:k5")
	f.Add("x-sandboxmesh-routing-key", "k6", "", "")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		id := mq.Identity{Baseline: routeapi.WorkloadRef{Namespace: "n", Name: "w"}}
		k := testCore(t, id, fixedTable{})
		h := nats.Header{n1: {v1}}
		h[n2] = append(h[n2], v2)
		wctx, want := mq.DefaultPropagation.Extract(context.Background(), HeaderCarrier(h))
		gctx, got, _ := k.decide(context.Background(), h)
		if got != want {
			t.Fatalf("fast path key %q, case-insensitive extraction %q, headers %q", got, want, h)
		}
		if _, again, _ := k.decide(context.Background(), h); again != got { // from the key cache
			t.Fatalf("second decision: key %q, first %q, headers %q", again, got, h)
		}
		gk, _ := routingkey.FromContext(gctx)
		wk, _ := routingkey.FromContext(wctx)
		if gk != wk || !trace.SpanContextFromContext(gctx).Equal(trace.SpanContextFromContext(wctx)) ||
			baggage.FromContext(gctx).Len() != baggage.FromContext(wctx).Len() {
			t.Fatalf("handler context differs from the extraction's: key %q/%q, headers %q", gk, wk, h)
		}
		// mq.KeyContexts: the same key and baggage, no span
		kk, err := newCore(Common{Identity: id, Routes: fixedTable{}, Contexts: mq.KeyContexts}, "test")
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			kctx, _, _ := kk.decide(context.Background(), h)
			if k, _ := routingkey.FromContext(kctx); k != wk {
				t.Fatalf("key context key %q, extraction's %q, headers %q", k, wk, h)
			}
			if trace.SpanContextFromContext(kctx).IsValid() {
				t.Fatalf("key context has a span, headers %q", h)
			}
			if baggage.FromContext(kctx).Len() != baggage.FromContext(wctx).Len() {
				t.Fatalf("key context baggage %q, extraction's %q", baggage.FromContext(kctx), baggage.FromContext(wctx))
			}
		}
	})
}
