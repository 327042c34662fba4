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
// use cost no allocation per record).
func (c *Consumer) keyFor(r *kgo.Record) string {
	if len(r.Headers) == 0 {
		return ""
	}
	kc := &c.kc
	kc.r = r
	key := c.prop.Key(kc)
	clear(kc.buf) // keep no reference to the record
	kc.buf, kc.r = kc.buf[:0], nil
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

// singleCarrier is a HeaderCarrier without Values, for records with at most one header of each name: the
// OTel baggage propagator then parses the one header instead of merging lists.
type singleCarrier struct{ c HeaderCarrier }

func (s singleCarrier) Get(key string) string { return s.c.Get(key) }
func (s singleCarrier) Set(key, value string) { s.c.Set(key, value) }
func (s singleCarrier) Keys() []string        { return s.c.Keys() }

// extract returns ctx with the OTel context of r, whose routing key (decided on) is key.
func (c *Consumer) extract(ctx context.Context, r *kgo.Record, key string) context.Context {
	if repeatsHeader(r) {
		return c.prop.ExtractKeyed(ctx, Carrier(r), key)
	}
	return c.prop.ExtractKeyed(ctx, singleCarrier{Carrier(r)}, key)
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
