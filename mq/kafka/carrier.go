package kafka

import (
	"context"
	"net/http"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sandboxmesh/sandboxmesh/mq"
)

// HeaderCarrier adapts the headers of a Kafka record to the OTel propagation.TextMapCarrier (and
// propagation.ValuesGetter, Kafka allowing a header key to repeat). Keys match case-insensitively on read;
// Set replaces every header of the key, whatever its case.
type HeaderCarrier struct{ r *kgo.Record }

// Carrier returns the carrier of r's headers. r must not be nil.
func Carrier(r *kgo.Record) HeaderCarrier { return HeaderCarrier{r: r} }

// Get returns the value of the first header named key (any case), or "".
func (c HeaderCarrier) Get(key string) string {
	for i := range c.r.Headers {
		if strings.EqualFold(c.r.Headers[i].Key, key) {
			return string(c.r.Headers[i].Value)
		}
	}
	return ""
}

// Values returns the values of every header named key (any case), in record order.
func (c HeaderCarrier) Values(key string) []string {
	var vs []string
	for i := range c.r.Headers {
		if strings.EqualFold(c.r.Headers[i].Key, key) {
			vs = append(vs, string(c.r.Headers[i].Value))
		}
	}
	return vs
}

// Set replaces the headers named key (any case) with one header key=value.
func (c HeaderCarrier) Set(key, value string) {
	hs := c.r.Headers[:0]
	for _, h := range c.r.Headers {
		if !strings.EqualFold(h.Key, key) {
			hs = append(hs, h)
		}
	}
	c.r.Headers = append(hs, kgo.RecordHeader{Key: key, Value: []byte(value)})
}

// Keys returns the distinct header keys of the record, as written, in record order.
func (c HeaderCarrier) Keys() []string {
	ks := make([]string, 0, len(c.r.Headers))
next:
	for _, h := range c.r.Headers {
		for _, k := range ks {
			if k == h.Key {
				continue next
			}
		}
		ks = append(ks, h.Key)
	}
	return ks
}

// Inject writes the trace context and baggage of ctx, with the routing key of ctx as a baggage member, into
// r's headers (mq.DefaultPropagation). Use p.Inject(ctx, Carrier(r)) for another mq.Propagation.
func Inject(ctx context.Context, r *kgo.Record) { mq.DefaultPropagation.Inject(ctx, Carrier(r)) }

// InjectFromHTTP writes the trace context, baggage and routing key of an incoming HTTP request into r's
// headers, for a handler that publishes a record while serving req.
func InjectFromHTTP(req *http.Request, r *kgo.Record) {
	mq.DefaultPropagation.Inject(mq.DefaultPropagation.FromHTTP(req), Carrier(r))
}

// Extract returns ctx with the remote span context, baggage and routing key of r's headers
// (mq.DefaultPropagation), and the key ("" when r has none).
func Extract(ctx context.Context, r *kgo.Record) (context.Context, string) {
	return mq.DefaultPropagation.Extract(ctx, Carrier(r))
}
