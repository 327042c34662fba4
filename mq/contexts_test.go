package mq_test

import (
	"context"
	"sync"
	"testing"
	"unsafe"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// singleMap is a carrier without Values (one value per header), like the consumers' fast carriers.
type singleMap map[string]string

func (m singleMap) Get(k string) string { return m[k] }
func (m singleMap) Set(k, v string)     { m[k] = v }
func (m singleMap) Keys() []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func sameBaggage(a, b baggage.Baggage) bool {
	if a.Len() != b.Len() {
		return false
	}
	for _, m := range a.Members() {
		if b.Member(m.Key()).String() != m.String() {
			return false
		}
	}
	return true
}

// FuzzHandlerContexts checks that HandlerContexts.Extract builds the context ExtractKeyed builds (trace
// context, baggage, routing key), from its cache too, that KeyContext builds ExtractKey's (baggage and
// key, no trace context) once per entry, and that KeyCache.Baggage gives Key's key for
// messages whose only routing-key header is baggage.
func FuzzHandlerContexts(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "sm-routing-key=keya,a=1", "", "", false)
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "", "", "k2", false)
	f.Add("", "a=1", "sm=routingkey:k5", "", true)
	f.Add("bad", "sm-routing-key=k%41,;;x", "", "", false)
	f.Add("", "", "", "", true)
	p := mq.DefaultPropagation
	f.Fuzz(func(t *testing.T, tp, bag, ts, custom string, parentBag bool) {
		c := singleMap{}
		for k, v := range map[string]string{"traceparent": tp, "baggage": bag, "tracestate": ts, "uberctx-sm-routing-key": custom} {
			if v != "" {
				c[k] = v
			}
		}
		parent := context.Background()
		if parentBag {
			m, _ := baggage.NewMemberRaw("p", "1")
			b, _ := baggage.New(m)
			parent = baggage.ContextWithBaggage(parent, b)
		}
		key := p.Key(c)
		want := p.ExtractKeyed(parent, c, key)
		hc := p.NewHandlerContexts()
		for i := range 3 { // the second and third from the cache; the third reads the span first
			got := hc.Extract(parent, c, key)
			if i == 2 && !trace.SpanContextFromContext(got).Equal(trace.SpanContextFromContext(want)) {
				t.Fatalf("round %d: span context differs", i)
			}
			gk, gok := routingkey.FromContext(got)
			wk, wok := routingkey.FromContext(want)
			if gk != wk || gok != wok {
				t.Fatalf("round %d: key %q/%v, ExtractKeyed's %q/%v", i, gk, gok, wk, wok)
			}
			if !trace.SpanContextFromContext(got).Equal(trace.SpanContextFromContext(want)) {
				t.Fatalf("round %d: span context differs", i)
			}
			if gb, wb := baggage.FromContext(got), baggage.FromContext(want); !sameBaggage(gb, wb) {
				t.Fatalf("round %d: baggage %q, ExtractKeyed's %q", i, gb.String(), wb.String())
			}
		}
		// KeyContexts: the same baggage and key, no trace context, one context per entry
		wantKey := p.ExtractKey(parent, c, key)
		if trace.SpanContextFromContext(wantKey).IsValid() {
			t.Fatal("ExtractKey kept the span context")
		}
		if gb, wb := baggage.FromContext(wantKey), baggage.FromContext(want); !sameBaggage(gb, wb) {
			t.Fatalf("ExtractKey baggage %q, ExtractKeyed's %q", gb.String(), wb.String())
		}
		var first context.Context
		for i := range 2 {
			var e *mq.Keyed
			if c["baggage"] != "" || key != "" {
				e = hc.Entry(c["baggage"], key)
			}
			got := hc.KeyContext(parent, e)
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatal("KeyContext built a second context for the same entry and parent")
			}
			gk, gok := routingkey.FromContext(got)
			wk, wok := routingkey.FromContext(wantKey)
			if gk != wk || gok != wok {
				t.Fatalf("KeyContext key %q/%v, ExtractKey's %q/%v", gk, gok, wk, wok)
			}
			if trace.SpanContextFromContext(got).IsValid() {
				t.Fatal("KeyContext has a span context")
			}
			if gb, wb := baggage.FromContext(got), baggage.FromContext(wantKey); !sameBaggage(gb, wb) {
				t.Fatalf("KeyContext baggage %q, ExtractKey's %q", gb.String(), wb.String())
			}
		}
		if _, ok := c["baggage"]; ok && len(c) == 1 || len(c) == 2 && c["traceparent"] != "" && c["baggage"] != "" {
			kc := p.NewKeyCache()
			for range 2 {
				if got := kc.Baggage(c["baggage"]); got != key {
					t.Fatalf("KeyCache.Baggage(%q) = %q, Key %q", c["baggage"], got, key)
				}
			}
		}
	})
}

// TestHandlerContextLazy: a handler context costs one allocation while nothing reads it beyond the routing
// key; it keeps no reference to the carrier's strings (a Kafka carrier gives views of a record's bytes,
// reused after the handler returns); concurrent first reads agree (run with -race).
func TestHandlerContextLazy(t *testing.T) {
	p := mq.DefaultPropagation
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	buf := []byte(tp)
	c := singleMap{"traceparent": string(buf), "baggage": "sm-routing-key=keya", "tracestate": "v=1"}
	key := p.Key(c)
	hc := p.NewHandlerContexts()
	hc.Extract(context.Background(), c, key) // fill the baggage cache
	noState := singleMap{"traceparent": tp, "baggage": "sm-routing-key=keya"}
	allocs := testing.AllocsPerRun(100, func() {
		ctx := hc.Extract(context.Background(), noState, key)
		if k, _ := routingkey.FromContext(ctx); k != "keya" {
			t.Fatalf("key %q", k)
		}
	})
	if allocs > 1 {
		t.Errorf("%v allocations per unread handler context, want 1", allocs)
	}

	view := unsafe.String(&buf[0], len(buf))
	ctx := hc.Extract(context.Background(), singleMap{"traceparent": view, "baggage": "sm-routing-key=keya"}, key)
	copy(buf, "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-00") // the record's bytes, reused
	if got := trace.SpanContextFromContext(ctx).TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("trace ID %s after the carrier's bytes changed", got)
	}

	ctx = hc.Extract(context.Background(), c, key)
	var wg sync.WaitGroup
	ids := make([]string, 8)
	for i := range ids {
		wg.Go(func() { ids[i] = trace.SpanContextFromContext(ctx).SpanID().String() })
	}
	wg.Wait()
	for _, id := range ids {
		if id != "b7ad6b7169203331" {
			t.Fatalf("span IDs %v", ids)
		}
	}
	if got := baggage.FromContext(ctx).Member("sm-routing-key").Value(); got != "keya" {
		t.Errorf("baggage member %q", got)
	}
	if ts := trace.SpanContextFromContext(ctx).TraceState().Get("v"); ts != "1" {
		t.Errorf("tracestate v=%q", ts)
	}
}

var _ propagation.TextMapCarrier = singleMap{}
