package rabbitmq

import (
	"context"
	"net/http"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.opentelemetry.io/otel/propagation"

	"github.com/sandboxmesh/sandboxmesh/mq"
)

// HeaderCarrier adapts the headers of an AMQP message (amqp.Publishing.Headers, amqp.Delivery.Headers) to
// propagation.TextMapCarrier. Get and Values match names case-insensitively (AMQP header names are
// case-sensitive, and producers of other stacks write Traceparent or BAGGAGE); they read string and
// []byte values, and the string or []byte elements of an array value. Set replaces every header whose name
// matches case-insensitively by one lower-case entry. A nil HeaderCarrier reads as empty; Set needs a
// non-nil one.
type HeaderCarrier amqp.Table

var (
	_ propagation.TextMapCarrier = HeaderCarrier(nil)
	_ propagation.ValuesGetter   = HeaderCarrier(nil)
)

// Get returns the first value of the header named key in any case ("" when there is none).
func (c HeaderCarrier) Get(key string) string {
	if v, ok := c[key]; ok {
		if s, ok := first(v); ok {
			return s
		}
	}
	for k, v := range c {
		if k != key && strings.EqualFold(k, key) {
			if s, ok := first(v); ok {
				return s
			}
		}
	}
	return ""
}

// Values returns every value of the headers named key in any case: one per string value, one per element
// of an array value (W3C baggage may come as several headers, which AMQP can only carry as an array or
// under names that differ in case).
func (c HeaderCarrier) Values(key string) []string {
	var out []string
	if v, ok := c[key]; ok {
		out = appendValues(out, v)
	}
	for k, v := range c {
		if k != key && strings.EqualFold(k, key) {
			out = appendValues(out, v)
		}
	}
	return out
}

// Set sets the header key (lower-cased, as the W3C propagators name them) to value, removing the other
// spellings of the name.
func (c HeaderCarrier) Set(key, value string) {
	lk := strings.ToLower(key)
	for k := range c {
		if k != lk && strings.EqualFold(k, key) {
			delete(c, k)
		}
	}
	c[lk] = value
}

// Keys returns the header names.
func (c HeaderCarrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// keyTable reads the headers of one delivery for mq.Propagation.Key when every header name is free of
// upper-case and non-ASCII letters (what Inject writes): a name then matches the propagation's lower-case
// names exactly or not at all, so Get and Values are single lookups, as HeaderCarrier's would find, and
// Values reuses one slice. Run's goroutine only.
type keyTable struct {
	t         amqp.Table
	buf       []string
	cache     *mq.KeyCache // nil: no cache
	keyFields []string
}

func (k *keyTable) Get(key string) string {
	if s, ok := first(k.t[key]); ok {
		return s
	}
	return ""
}

// Values returns the values of header key; the slice is valid until reset.
func (k *keyTable) Values(key string) []string {
	v, ok := k.t[key]
	if !ok {
		return nil
	}
	start := len(k.buf)
	k.buf = appendValues(k.buf, v)
	if len(k.buf) == start {
		return nil
	}
	return k.buf[start:len(k.buf):len(k.buf)]
}

func (k *keyTable) Set(string, string) {} // never called: Key only reads
func (k *keyTable) Keys() []string     { return nil }

func (k *keyTable) reset() {
	clear(k.buf)
	k.buf, k.t = k.buf[:0], nil
}

// lowerNames reports whether no header name has an upper-case or non-ASCII letter.
func lowerNames(t amqp.Table) bool {
	for name := range t {
		for i := 0; i < len(name); i++ {
			if c := name[i]; c >= 'A' && c <= 'Z' || c >= 0x80 {
				return false
			}
		}
	}
	return true
}

// key returns the routing key of headers t with p, as p.Key(HeaderCarrier(t)) does, and whether every
// header name is lower case with a single (non-array) value: then single gives the carrier for
// mq.HandlerContexts.
func (k *keyTable) key(p *mq.Propagation, t amqp.Table) (key string, single bool) {
	if len(t) == 0 {
		return "", true
	}
	if !lowerNames(t) {
		return p.Key(HeaderCarrier(t)), false
	}
	single = true
	for _, v := range t {
		if _, ok := v.([]any); ok {
			single = false
			break
		}
	}
	if single && k.cache != nil {
		// a message whose only key header is baggage (what Inject writes): its key by the baggage value
		n, bag := 0, ""
		for _, f := range k.fields(p) {
			if v, ok := t[f]; ok {
				n++
				if f == "baggage" {
					bag, _ = first(v)
				}
			}
		}
		switch {
		case n == 0:
			return "", true
		case n == 1 && bag != "":
			return k.cache.Baggage(bag), true
		}
	}
	k.t = t
	key = p.Key(k)
	k.reset()
	return key, single
}

// fields returns p.KeyFields(), computed once.
func (k *keyTable) fields(p *mq.Propagation) []string {
	if k.keyFields == nil {
		k.keyFields = p.KeyFields()
	}
	return k.keyFields
}

// singleTable is a carrier over headers whose names are all lower case and whose values are not arrays
// (keyTable.key said single): Get is one lookup; no Values, so the OTel baggage propagator parses the one
// header.
type singleTable amqp.Table

func (c singleTable) Get(key string) string {
	if s, ok := first(c[key]); ok {
		return s
	}
	return ""
}

func (c singleTable) Set(string, string) {} // never called: extraction only reads
func (c singleTable) Keys() []string     { return HeaderCarrier(c).Keys() }

func first(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case []byte:
		return string(v), true
	case []any:
		for _, e := range v {
			if s, ok := first(e); ok {
				return s, true
			}
		}
	}
	return "", false
}

func appendValues(out []string, v any) []string {
	switch v := v.(type) {
	case string:
		return append(out, v)
	case []byte:
		return append(out, string(v))
	case []any:
		for _, e := range v {
			switch e := e.(type) {
			case string:
				out = append(out, e)
			case []byte:
				out = append(out, string(e))
			}
		}
	}
	return out
}

// Inject writes the trace context, baggage and routing key of ctx into headers with mq.DefaultPropagation
// and returns them (a new table when headers is nil): pub.Headers = rabbitmq.Inject(ctx, pub.Headers).
func Inject(ctx context.Context, headers amqp.Table) amqp.Table {
	return InjectWith(ctx, mq.DefaultPropagation, headers)
}

// InjectWith is Inject with the propagation p (mq.DefaultPropagation when nil).
func InjectWith(ctx context.Context, p *mq.Propagation, headers amqp.Table) amqp.Table {
	if p == nil {
		p = mq.DefaultPropagation
	}
	if headers == nil {
		headers = amqp.Table{}
	}
	p.Inject(ctx, HeaderCarrier(headers))
	return headers
}

// InjectRequest writes the trace context, baggage and routing key of the incoming HTTP request r into
// headers (mq.DefaultPropagation reads r's headers), for a handler that publishes a message.
func InjectRequest(r *http.Request, headers amqp.Table) amqp.Table {
	return Inject(mq.DefaultPropagation.FromHTTP(r), headers)
}

// Extract returns ctx carrying the trace context, baggage and routing key of headers (mq.DefaultPropagation),
// and the key ("" when the message has none).
func Extract(ctx context.Context, headers amqp.Table) (context.Context, string) {
	return mq.DefaultPropagation.Extract(ctx, HeaderCarrier(headers))
}
