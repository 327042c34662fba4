package mq_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// sameContext reports how two contexts built from the same headers differ: routing key, span context,
// baggage.
func sameContext(t *testing.T, got, want context.Context) {
	t.Helper()
	gk, gok := routingkey.FromContext(got)
	wk, wok := routingkey.FromContext(want)
	if gk != wk || gok != wok {
		t.Fatalf("routing key %q %v, want %q %v", gk, gok, wk, wok)
	}
	if g, w := trace.SpanContextFromContext(got), trace.SpanContextFromContext(want); !g.Equal(w) {
		t.Fatalf("span context %v, want %v", g, w)
	}
	g, w := baggage.FromContext(got), baggage.FromContext(want)
	same := g.Len() == w.Len()
	for _, m := range g.Members() {
		same = same && w.Member(m.Key()).String() == m.String()
	}
	if !same {
		t.Fatalf("baggage %q, want %q", g, w)
	}
}

// FuzzKey checks the consumers' fast path: Key reads the key Extract finds, for arbitrary headers, through a
// carrier with Values (http.Header) and one without (a map), and ExtractKeyed with that key builds the
// context Extract builds.
func FuzzKey(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("Baggage", "a=1,sm-routing-key=k%20x;p=1", "tracestate", "sm-routing-key=zz")
	f.Add("uberctx-sm-routing-key", "k2", "UBERCTX-SM-ROUTING-KEY", "k3")
	f.Add("ot-baggage-sm-routing-key", "k4", "baggage-sm-routing-key", "k5")
	f.Add("baggage", "sm-routing-key=a;p=1", "baggage", "sm-routing-key=b")
	f.Add("baggage", strings.Repeat("a=b,", 300)+"sm-routing-key=late", "", "")
	f.Add("baggage", "other=1", "baggage", "sm-routing-key=%41bc")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	ctx := context.Background()
	p := mq.DefaultPropagation
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		h := http.Header{}
		h.Add(n1, v1)
		h.Add(n2, v2)
		m := propagation.MapCarrier{strings.ToLower(n1): v1}
		if _, dup := m[strings.ToLower(n2)]; !dup {
			m[strings.ToLower(n2)] = v2
		}
		for _, c := range []propagation.TextMapCarrier{propagation.HeaderCarrier(h), m} {
			full, want := p.Extract(ctx, c)
			key := p.Key(c)
			if key != want {
				t.Fatalf("Key %q, Extract %q, carrier %#v", key, want, c)
			}
			sameContext(t, p.ExtractKeyed(ctx, c, key), full)
		}
	})
}

// lowerValues is a carrier over lower-case names whose Values allocates nothing.
type lowerValues map[string][]string

func (c lowerValues) Get(k string) string {
	if vs := c[k]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}
func (c lowerValues) Values(k string) []string { return c[k] }
func (c lowerValues) Set(k, v string)          { c[k] = []string{v} }
func (c lowerValues) Keys() []string           { return nil }

func TestKeyAllocatesNothing(t *testing.T) {
	p := mq.DefaultPropagation
	keyed := lowerValues{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}, "baggage": {"a=1,sm-routing-key=keya"}}
	plain := lowerValues{"traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
	if n := testing.AllocsPerRun(100, func() {
		if p.Key(keyed) != "keya" || p.Key(plain) != "" {
			t.Fatal("wrong key")
		}
	}); n != 0 {
		t.Errorf("Key allocates %v times", n)
	}
	if got := p.KeyFields(); len(got) != 5 || got[0] != "baggage" || got[1] != "tracestate" {
		t.Errorf("KeyFields = %q", got)
	}
}

// TestExtractKeyedParentKey: a parent context's key stays when the message has none, as with Extract.
func TestExtractKeyedParentKey(t *testing.T) {
	p := mq.DefaultPropagation
	parent := routingkey.WithKey(context.Background(), "parent")
	c := propagation.MapCarrier{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
	full, _ := p.Extract(parent, c)
	sameContext(t, p.ExtractKeyed(parent, c, p.Key(c)), full)
	c["baggage"] = "sm-routing-key=mine"
	full, _ = p.Extract(parent, c)
	sameContext(t, p.ExtractKeyed(parent, c, p.Key(c)), full)
}
