package kafka

import (
	"context"
	"strings"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"
)

// keyCarrier reads the headers of one record for mq.Propagation.Key without copying them: a value is the
// record's own bytes (unsafe.String) and Values reuses one slice, so deciding on a record allocates nothing.
// The strings it gives are valid only while the record's header bytes are not changed, which holds until
// the record is handed to the handler; the key read through it is therefore interned (keyFor) before it
// is kept. Run's goroutine only.
type keyCarrier struct {
	r   *kgo.Record
	buf []string
}

func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// sameName is strings.EqualFold(h, key) for key a lower-case header name the propagation reads, with a
// quick answer for the common mismatch: an ASCII first byte of h that is not key's in any case (only
// non-ASCII runes fold to ASCII ones, like the Kelvin sign to k, so EqualFold would say false too).
func sameName(h, key string) bool {
	if len(h) == 0 || len(key) == 0 {
		return len(h) == len(key)
	}
	if c := h[0]; c < 0x80 && c|0x20 != key[0]|0x20 {
		return false
	}
	return strings.EqualFold(h, key)
}

// Get returns the first value of the headers named key (any case), as HeaderCarrier.Get.
func (k *keyCarrier) Get(key string) string {
	for i := range k.r.Headers {
		if sameName(k.r.Headers[i].Key, key) {
			return bytesString(k.r.Headers[i].Value)
		}
	}
	return ""
}

// Values returns the values of the headers named key (any case) in record order, as HeaderCarrier.Values.
// The slice is valid until the next record.
func (k *keyCarrier) Values(key string) []string {
	start := len(k.buf)
	for i := range k.r.Headers {
		if sameName(k.r.Headers[i].Key, key) {
			k.buf = append(k.buf, bytesString(k.r.Headers[i].Value))
		}
	}
	if len(k.buf) == start {
		return nil
	}
	return k.buf[start:len(k.buf):len(k.buf)]
}

func (k *keyCarrier) Set(string, string) {} // never called: Key only reads
func (k *keyCarrier) Keys() []string     { return nil }

// maxInterned bounds the interned keys of a consumer (the live routing keys are far fewer); when full, the
// set starts again.
const maxInterned = 4096

// keyFor returns r's routing key ("" when it has none), as a string of its own (interned: the few keys in
// use cost no allocation per record). A record whose only routing-key header is one baggage header (what
// Inject writes) is looked up by that header's value in the key cache. Run's goroutine only.
func (c *Consumer) keyFor(r *kgo.Record) string {
	if len(r.Headers) == 0 {
		return ""
	}
	if c.fields == nil {
		c.fields, c.keys = c.prop.KeyFields(), c.prop.NewKeyCache()
	}
	n, bag := 0, -1
	for i := range r.Headers {
		for _, f := range c.fields {
			if sameName(r.Headers[i].Key, f) {
				n++
				if f == "baggage" {
					bag = i
				}
				break
			}
		}
	}
	switch {
	case n == 0:
		return ""
	case n == 1 && bag >= 0:
		return c.intern(c.keys.Baggage(bytesString(r.Headers[bag].Value)))
	}
	kc := &c.kc
	kc.r = r
	key := c.prop.Key(kc)
	clear(kc.buf) // keep no reference to the record
	kc.buf, kc.r = kc.buf[:0], nil
	return c.intern(key)
}

// intern returns key as a string of its own, the same string for the same key while it is in use.
func (c *Consumer) intern(key string) string {
	if key == "" {
		return ""
	}
	if key == c.lastKey { // runs of one key: no hashing
		return c.lastKey
	}
	s, ok := c.interned[key]
	if !ok {
		if len(c.interned) >= maxInterned {
			clear(c.interned)
		}
		s = strings.Clone(key)
		c.interned[s] = s
	}
	c.lastKey = s
	return s
}

// viewCarrier reads the headers of a record with at most one header of each name (any case), for
// mq.HandlerContexts: without Values (the OTel baggage propagator then parses the one header instead of
// merging lists), and giving the traceparent and baggage values as views of the record's bytes, which
// HandlerContexts does not keep; other values are copied. Get matches names as HeaderCarrier.Get does.
type viewCarrier struct{ r *kgo.Record }

func (v viewCarrier) Get(key string) string {
	for i := range v.r.Headers {
		if sameName(v.r.Headers[i].Key, key) {
			if key == "traceparent" || key == "baggage" {
				return bytesString(v.r.Headers[i].Value)
			}
			return string(v.r.Headers[i].Value)
		}
	}
	return ""
}

func (v viewCarrier) Set(string, string) {} // never called: extraction only reads
func (v viewCarrier) Keys() []string     { return Carrier(v.r).Keys() }

// extract returns ctx with the OTel context of r, whose routing key (decided on) is key. Run's goroutine
// only.
func (c *Consumer) extract(ctx context.Context, r *kgo.Record, key string) context.Context {
	if repeatsHeader(r) {
		return c.prop.ExtractKeyed(ctx, Carrier(r), key)
	}
	if c.hc == nil {
		c.hc = c.prop.NewHandlerContexts()
	}
	return c.hc.Extract(ctx, viewCarrier{r}, key)
}

func repeatsHeader(r *kgo.Record) bool {
	hs := r.Headers
	for i := 1; i < len(hs); i++ {
		for j := 0; j < i; j++ {
			if strings.EqualFold(hs[i].Key, hs[j].Key) {
				return true
			}
		}
	}
	return false
}
