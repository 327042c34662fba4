package kafka

import (
	"context"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel"

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
		if got, _ := routingkey.FromContext(c.extract(context.Background(), r, fast)); got != fast {
			t.Fatalf("handler ctx key %q, decided %q", got, fast)
		}
	})
}
