package nats_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

func TestCarrierCaseInsensitive(t *testing.T) {
	h := nats.Header{"Baggage": {"sm-routing-key=k1"}, "TRACEPARENT": {"x"}}
	c := natsmq.HeaderCarrier(h)
	if c.Get("baggage") != "sm-routing-key=k1" || c.Get("traceparent") != "x" || c.Get("nope") != "" {
		t.Errorf("Get: %v", h)
	}
	h["baggage"] = []string{"a=1"}
	if got := c.Values("baggage"); !slices.Equal(got, []string{"a=1", "sm-routing-key=k1"}) {
		t.Errorf("Values = %q: exact match first, then the other case variants", got)
	}
	c.Set("Baggage", "b=2")
	if len(h) != 2 || h.Get("Baggage") != "b=2" {
		t.Errorf("Set did not replace the case variants: %v", h)
	}
	if ks := c.Keys(); len(ks) != 2 {
		t.Errorf("Keys = %v", ks)
	}
	if natsmq.HeaderCarrier(nil).Get("x") != "" {
		t.Error("nil carrier")
	}
}

func TestInjectAndExtract(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	msg := natsmq.NewMsg(routingkey.WithKey(ctx, "abc123"), "orders.created", nil)
	if msg.Header.Get("traceparent") == "" || !strings.Contains(msg.Header.Get("baggage"), "abc123") {
		t.Fatalf("headers = %v", msg.Header)
	}
	got, key := natsmq.Extract(context.Background(), nil, msg.Header)
	if key != "abc123" || trace.SpanContextFromContext(got).TraceID() != tid {
		t.Fatalf("extracted key %q, trace %v", key, trace.SpanContextFromContext(got).TraceID())
	}
	if k, _ := routingkey.FromContext(got); k != "abc123" {
		t.Errorf("routingkey.FromContext = %q", k)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Baggage", "sm-routing-key=k3")
	m := &nats.Msg{Subject: "x"}
	natsmq.InjectFromHTTP(r, m)
	if _, key := natsmq.Extract(context.Background(), nil, m.Header); key != "k3" {
		t.Errorf("InjectFromHTTP: key %q, headers %v", key, m.Header)
	}
	// Headers of other stacks, in any case.
	if _, key := natsmq.Extract(context.Background(), nil, nats.Header{"Uberctx-Sm-Routing-Key": {"k4"}}); key != "k4" {
		t.Errorf("uberctx key = %q", key)
	}
}

// FuzzExtract feeds arbitrary header names and values to the carrier and the extraction: no panic, Get
// matches case-insensitively, and an injected valid key survives whatever else is in the headers.
func FuzzExtract(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "abc")
	f.Add("Baggage", "a=1,sm-routing-key=k%20x;p=1", "k1")
	f.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "")
	f.Add("TRACESTATE", "sm=routingkey:abc", "x")
	f.Add("uberctx-sm-routing-key", "zz", "key-1")
	f.Add("x-sandboxmesh-routing-key", "\x00\xff", "")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, name, value, key string) {
		h := nats.Header{name: {value}}
		c := natsmq.HeaderCarrier(h)
		if up := strings.ToUpper(name); strings.EqualFold(up, name) && c.Get(up) != value {
			t.Fatalf("Get(%q) = %q, want %q", up, c.Get(up), value)
		}
		_, _ = natsmq.Extract(context.Background(), nil, h)
		ctx := routingkey.WithKey(context.Background(), key)
		want, ok := routingkey.FromContext(ctx)
		if !ok {
			return
		}
		m := &nats.Msg{Header: nats.Header{}}
		natsmq.Inject(ctx, m)
		for k, vs := range h {
			if !strings.EqualFold(k, "baggage") && !strings.EqualFold(k, "traceparent") && !strings.EqualFold(k, "tracestate") {
				m.Header[k] = vs
			}
		}
		if _, got := natsmq.Extract(context.Background(), nil, m.Header); got != want {
			t.Fatalf("injected key %q, extracted %q from %v", want, got, m.Header)
		}
	})
}
