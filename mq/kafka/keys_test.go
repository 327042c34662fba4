package kafka

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// FuzzKeyReader checks that the key a Consumer decides on (mq.Propagation.Key over the zero-copy
// keyCarrier, no context built) is the key the full OTel extraction finds, for arbitrary headers, and that
// the handler's context carries it.
func FuzzKeyReader(f *testing.F) {
	f.Add("baggage", "sm-routing-key=abc", "Baggage", "a=1")
	f.Add("BAGGAGE", "a=1,sm-routing-key=k%20x", "tracestate", "sm=abc")
	f.Add("uberctx-sm-routing-key", "k2", "ot-baggage-sm-routing-key", "k3")
	f.Add("tracestate", "sm-routing-key=zz", "traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("baggage", "sm-routing-key=a;p=1", "baggage", "sm-routing-key=b")
	f.Add("baggage", strings.Repeat("a=b,", 300)+"sm-routing-key=late", "", "")
	f.Add("ot-baggage-\u017fm-routing-\u212aey", "folded", "TRACEPARENT", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "TraceParent", "x")
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) {}))
	c := &Consumer{prop: mq.DefaultPropagation, interned: map[string]string{}}
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		r := &kgo.Record{Headers: []kgo.RecordHeader{{Key: k1, Value: []byte(v1)}, {Key: k2, Value: []byte(v2)}}}
		fast := c.keyFor(r)
		_, full := Extract(context.Background(), r)
		if fast != full {
			t.Fatalf("keyFor %q, Extract %q", fast, full)
		}
		if g := mq.DefaultPropagation.Key(Carrier(r)); g != full {
			t.Fatalf("Key(Carrier) %q, Extract %q", g, full)
		}
		for i := range r.Headers { // the key is the consumer's own string, not the record's bytes
			clear(r.Headers[i].Value)
		}
		if fast != full {
			t.Fatalf("key %q changed with the record's bytes (was %q)", fast, full)
		}
		r.Headers = []kgo.RecordHeader{{Key: k1, Value: []byte(v1)}, {Key: k2, Value: []byte(v2)}}
		// mq.KeyContexts: ExtractKey's baggage and key, no span
		var rd readRecord
		c.readKey(r, &rd)
		kctx := context.Background()
		if rd.hs.relevant {
			kctx = c.keyContext(kctx, r, &rd)
		}
		wk := mq.DefaultPropagation.ExtractKey(context.Background(), Carrier(r), fast)
		if g, w := sortedMembers(baggage.FromContext(kctx)), sortedMembers(baggage.FromContext(wk)); g != w {
			t.Fatalf("key context baggage %q, ExtractKey %q", g, w)
		}
		if got, _ := routingkey.FromContext(kctx); got != fast {
			t.Fatalf("key context key %q, decided %q", got, fast)
		}
		if trace.SpanContextFromContext(kctx).IsValid() {
			t.Fatal("key context has a span")
		}
		hctx := c.extractRecord(context.Background(), r, fast)
		if got, _ := routingkey.FromContext(hctx); got != fast {
			t.Fatalf("handler ctx key %q, decided %q", got, fast)
		}
		// the handler context carries what the full extraction finds; its baggage and key are its own
		// (read after the record's bytes changed), its span is read from the record when asked
		wctx, _ := Extract(context.Background(), r)
		if g, w := trace.SpanContextFromContext(hctx), trace.SpanContextFromContext(wctx); !g.Equal(w) {
			t.Fatalf("handler ctx span %v, Extract %v", g, w)
		}
		for i := range r.Headers {
			clear(r.Headers[i].Value)
		}
		if g, w := sortedMembers(baggage.FromContext(hctx)), sortedMembers(baggage.FromContext(wctx)); g != w {
			t.Fatalf("handler ctx baggage %q, Extract %q", g, w)
		}
		if got, _ := routingkey.FromContext(hctx); got != fast {
			t.Fatalf("handler ctx key %q after the record's bytes changed, decided %q", got, fast)
		}
	})
}

// keyFor is what Consumer.handle reads of r to decide: its routing key.
func (c *Consumer) keyFor(r *kgo.Record) string {
	var hs recordHeaders
	c.scan(r, &hs)
	key, _ := c.keyOf(r, &hs)
	return key
}

// extractRecord is the handler context Consumer.handle builds for r, whose key is key.
func (c *Consumer) extractRecord(ctx context.Context, r *kgo.Record, key string) context.Context {
	var hs recordHeaders
	c.scan(r, &hs)
	k, e := c.keyOf(r, &hs)
	if k != key {
		e = nil
	}
	return c.recordContext(ctx, r, &readRecord{hs: hs, key: key, e: e})
}

// sortedMembers is b's members in a stable order (Baggage.String's order is a map's).
func sortedMembers(b baggage.Baggage) string {
	var ms []string
	for _, m := range b.Members() {
		ms = append(ms, m.String())
	}
	slices.Sort(ms)
	return strings.Join(ms, ",")
}
