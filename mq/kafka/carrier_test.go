package kafka_test

import (
	"context"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/kafka"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var (
	_ propagation.TextMapCarrier = kafka.HeaderCarrier{}
	_ propagation.ValuesGetter   = kafka.HeaderCarrier{}
)

func TestHeaderCarrier(t *testing.T) {
	r := &kgo.Record{Headers: []kgo.RecordHeader{
		{Key: "Baggage", Value: []byte("a=1")},
		{Key: "id", Value: []byte("7")},
		{Key: "baggage", Value: []byte("sm-routing-key=abc")},
	}}
	c := kafka.Carrier(r)
	if got := c.Get("BAGGAGE"); got != "a=1" {
		t.Errorf("Get = %q", got)
	}
	if got := c.Values("baggage"); !reflect.DeepEqual(got, []string{"a=1", "sm-routing-key=abc"}) {
		t.Errorf("Values = %q", got)
	}
	if got := c.Keys(); !reflect.DeepEqual(got, []string{"Baggage", "id", "baggage"}) {
		t.Errorf("Keys = %q", got)
	}
	if got := c.Get("missing"); got != "" {
		t.Errorf("Get(missing) = %q", got)
	}
	// The key is in the second baggage header: the baggage propagator reads every value.
	if _, key := kafka.Extract(context.Background(), r); key != "abc" {
		t.Errorf("Extract key = %q", key)
	}
	c.Set("BAGGAGE", "b=2")
	if len(r.Headers) != 2 || c.Get("baggage") != "b=2" || c.Get("id") != "7" {
		t.Errorf("after Set: %+v", r.Headers)
	}
}

func TestInjectExtract(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	m, _ := baggage.NewMemberRaw("tenant", "acme")
	bag, _ := baggage.New(m)
	ctx = routingkey.WithKey(baggage.ContextWithBaggage(ctx, bag), "abc123")
	r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: "traceparent", Value: []byte("stale")}}}
	kafka.Inject(ctx, r)
	if n := len(r.Headers); n != 2 {
		t.Fatalf("headers %+v: want traceparent (replaced) and baggage", r.Headers)
	}
	got, key := kafka.Extract(context.Background(), r)
	if key != "abc123" || trace.SpanContextFromContext(got).TraceID() != tid ||
		baggage.FromContext(got).Member("tenant").Value() != "acme" {
		t.Fatalf("Extract: key %q, span %v, baggage %v", key, trace.SpanContextFromContext(got), baggage.FromContext(got))
	}
	if k, _ := routingkey.FromContext(got); k != "abc123" {
		t.Errorf("routingkey.FromContext = %q", k)
	}

	req := httptest.NewRequest("POST", "/orders", nil)
	req.Header.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	req.Header.Set("Baggage", "sm-routing-key=k9")
	r2 := &kgo.Record{}
	kafka.InjectFromHTTP(req, r2)
	if _, key := kafka.Extract(context.Background(), r2); key != "k9" {
		t.Errorf("InjectFromHTTP: key %q, headers %+v", key, r2.Headers)
	}
	if !strings.Contains(kafka.Carrier(r2).Get("traceparent"), "0af7651916cd43dd8448eb211c80319c") {
		t.Errorf("InjectFromHTTP lost the trace: %+v", r2.Headers)
	}
	if _, key := kafka.Extract(context.Background(), &kgo.Record{}); key != "" {
		t.Errorf("no headers: key %q", key)
	}
}

// FuzzExtract feeds arbitrary headers to the extraction path a Consumer runs per record: it must not panic,
// a key it finds must be one routingkey accepts, and a key injected next to the fuzzed headers wins.
func FuzzExtract(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("BAGGAGE", "a=1,sm-routing-key=k%20x", "tracestate", "sm=abc")
	f.Add("uberctx-sm-routing-key", "k2", "ot-baggage-sm-routing-key", "k3")
	f.Add("x-sm-routing-key", "", "baggage", ";;;,,,=")
	f.Add("baggage", strings.Repeat("a=b,", 200), "", "\x00\xff")
	// ToUpper("ı") is "I", another header.
	f.Add("ı", "dotless", "I", "")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {})) // bad baggage is reported there; expected here
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: k1, Value: []byte(v1)}, {Key: k2, Value: []byte(v2)}}}
		ctx, key := kafka.Extract(context.Background(), r)
		if key != "" {
			if ctxKey, _ := routingkey.FromContext(ctx); ctxKey != key {
				t.Fatalf("key %q but context has %q", key, ctxKey)
			}
			if routingkey.WithKey(context.Background(), key) == context.Background() {
				t.Fatalf("extracted key %q is not valid", key)
			}
		}
		c := kafka.Carrier(r)
		for _, k := range c.Keys() {
			// Case-insensitive by Unicode simple folding; an upper-casing that leaves the orbit ("ı" → "I")
			// names another header.
			if up := strings.ToUpper(k); strings.EqualFold(up, k) && c.Get(up) != c.Get(k) {
				t.Fatalf("Get is case-sensitive for %q", k)
			}
		}
		mq.DefaultPropagation.Inject(routingkey.WithKey(context.Background(), "fuzzkey"), c)
		if c.Get("baggage") == "" {
			t.Fatal("Inject wrote no baggage")
		}
	})
}
