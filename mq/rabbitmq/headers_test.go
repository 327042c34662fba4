package rabbitmq_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

func TestHeaderCarrier(t *testing.T) {
	c := rabbitmq.HeaderCarrier{
		"Traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"BAGGAGE":     []byte("a=1"),
		"baggage":     []any{"b=2", []byte("c=3"), int32(7)},
		"count":       int32(3),
	}
	if got := c.Get("traceparent"); got != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" {
		t.Errorf("Get(traceparent) = %q", got)
	}
	if got := c.Get("count"); got != "" {
		t.Errorf("Get of a number = %q, want empty", got)
	}
	if got := c.Get("missing"); got != "" {
		t.Errorf("Get(missing) = %q", got)
	}
	vals := c.Values("Baggage")
	slices.Sort(vals)
	if !slices.Equal(vals, []string{"a=1", "b=2", "c=3"}) {
		t.Errorf("Values(Baggage) = %q", vals)
	}
	c.Set("TraceParent", "x")
	if _, ok := c["Traceparent"]; ok || c["traceparent"] != "x" {
		t.Errorf("Set did not replace the other spelling: %v", c)
	}
	if len(c.Keys()) != 4 {
		t.Errorf("Keys = %v", c.Keys())
	}
	var nilc rabbitmq.HeaderCarrier
	if nilc.Get("a") != "" || nilc.Values("a") != nil || len(nilc.Keys()) != 0 {
		t.Error("a nil carrier does not read as empty")
	}
}

// TestInjectExtract: the routing key and trace context of a context, or of an incoming HTTP request, go
// into the headers and come back out.
func TestInjectExtract(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: 1}))
	ctx = routingkey.WithKey(ctx, "abc123")
	h := rabbitmq.Inject(ctx, amqp.Table{"app": "x"})
	if h["app"] != "x" || h["traceparent"] == nil || !strings.Contains(h["baggage"].(string), "abc123") {
		t.Fatalf("Inject headers = %v", h)
	}
	if err := h.Validate(); err != nil {
		t.Fatalf("injected headers are not a valid AMQP table: %v", err)
	}
	got, key := rabbitmq.Extract(context.Background(), h)
	if key != "abc123" || trace.SpanContextFromContext(got).TraceID() != tid {
		t.Errorf("Extract: key %q, trace %s", key, trace.SpanContextFromContext(got).TraceID())
	}

	r := httptest.NewRequest("POST", "/orders", nil)
	r.Header.Set("Baggage", "other=1,sm-routing-key=fromhttp")
	h = rabbitmq.InjectRequest(r, nil)
	if _, key := rabbitmq.Extract(context.Background(), h); key != "fromhttp" {
		t.Errorf("InjectRequest: key %q in %v", key, h)
	}
	if b, _ := baggage.Parse(h["baggage"].(string)); b.Member("other").Value() != "1" {
		t.Errorf("InjectRequest dropped the request's baggage: %v", h)
	}
	// Producers of other stacks: upper-case names, []byte values.
	if _, key := rabbitmq.Extract(context.Background(), amqp.Table{"BAGGAGE": []byte("sm-routing-key=otherstack")}); key != "otherstack" {
		t.Errorf("Extract of an upper-case []byte baggage header = %q", key)
	}
}

// FuzzExtract feeds arbitrary header names and values to the carrier and the extraction: no panic, Get
// finds a single header in any case, and a valid key injected next to the fuzzed header comes back when the
// fuzzed header does not itself carry a key.
func FuzzExtract(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "abc123", false)
	f.Add("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "k", true)
	f.Add("x-routing-key", "zzz", "a-b", false)
	f.Add("BAGGAGE", "sm-routing-key=%zz,a=;;", "", true)
	f.Add("tracestate", strings.Repeat("a=b,", 40), "key", false)
	f.Add("uberctx-sm-routing-key", "\xff\x00", "k1", true)
	f.Fuzz(func(t *testing.T, name, value, key string, asBytes bool) {
		var v any = value
		if asBytes {
			v = []byte(value)
		}
		h := amqp.Table{name: v}
		c := rabbitmq.HeaderCarrier(h)
		// Names match case-insensitively by Unicode simple folding (strings.EqualFold); an upper-casing
		// that leaves that orbit ("ı" → "I") names another header.
		if up := strings.ToUpper(name); strings.EqualFold(up, name) && c.Get(up) != value {
			t.Fatalf("Get(%q) = %q, want %q", up, c.Get(up), value)
		}
		_, _ = rabbitmq.Extract(context.Background(), h)
		_ = c.Values(name)
		if routingkey.Validate(key) != nil {
			return
		}
		h2 := rabbitmq.Inject(routingkey.WithKey(context.Background(), key), nil)
		if _, got := rabbitmq.Extract(context.Background(), h2); got != key {
			t.Fatalf("round trip of key %q gave %q (headers %v)", key, got, h2)
		}
	})
}

// FuzzKeyReader checks the consumer's fast path: the key it decides on (lower-case names looked up
// directly, others through HeaderCarrier) is the key the full extraction finds, for arbitrary headers.
func FuzzKeyReader(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", false)
	f.Add("Baggage", "a=1,sm-routing-key=k%20x;p=1", "baggage", "sm-routing-key=zz", true)
	f.Add("uberctx-sm-routing-key", "k2", "UBERCTX-SM-ROUTING-KEY", "k3", false)
	f.Add("ot-baggage-sm-routing-key", "k4", "tracestate", "sm-routing-key=k5", true)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	key := rabbitmq.NewKeyReader()
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string, asBytes bool) {
		h := amqp.Table{n1: v1}
		if asBytes {
			h[n2] = []any{[]byte(v2), v1}
		} else {
			h[n2] = v2
		}
		_, want := mq.DefaultPropagation.Extract(context.Background(), rabbitmq.HeaderCarrier(h))
		if got := key(mq.DefaultPropagation, h); got != want {
			t.Fatalf("key reader %q, extraction %q, headers %v", got, want, h)
		}
		if got := mq.DefaultPropagation.Key(rabbitmq.HeaderCarrier(h)); got != want {
			t.Fatalf("Key %q, extraction %q, headers %v", got, want, h)
		}
	})
}
