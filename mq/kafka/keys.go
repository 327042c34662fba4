package kafka

import (
	"context"
	"strings"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sandboxmesh/sandboxmesh/mq"
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

// recordHeaders is what one pass over a record's header names finds: where the headers the propagation
// reads are (index of the first of each name, -1 when absent) and how many routing-key headers there are.
type recordHeaders struct {
	bag, tp, ts int32
	keyHeaders  uint16 // headers the routing key is read from (KeyFields), at most 2 counted
	repeated    bool   // a header the propagation reads appears more than once
	relevant    bool   // a header the propagation reads at all
}

// Roles of the header names scan looks for.
const (
	roleOther uint8 = iota // a routing-key header other than these
	roleBaggage
	roleTraceparent
	roleTracestate
)

// maxNameLen bounds the name lengths headerNames indexes by length; a longer name, or one that is not
// lower-case ASCII, is compared to every header with strings.EqualFold.
const maxNameLen = 64

// headerName is a header name scan looks for.
type headerName struct {
	name  string
	index int   // among the names: a bit of scan's seen mask
	isKey bool  // one of KeyFields
	role  uint8 // roleBaggage, roleTraceparent, roleTracestate or roleOther
}

// headerNames prepares the names scan looks for: the propagation's KeyFields (which include baggage and
// tracestate) and traceparent, by length. Run's goroutine only.
func (c *Consumer) headerNames() {
	c.fields, c.keys = c.prop.KeyFields(), c.prop.NewKeyCache()
	c.byLen = make([][]headerName, maxNameLen+1)
	c.folded = nil
	for i, n := range append(append([]string(nil), c.fields...), "traceparent") {
		hn := headerName{name: n, index: i, isKey: i < len(c.fields)}
		switch n {
		case "baggage":
			hn.role = roleBaggage
		case "traceparent":
			hn.role = roleTraceparent
		case "tracestate":
			hn.role = roleTracestate
		}
		if len(n) <= maxNameLen && lowerASCII(n) {
			c.byLen[len(n)] = append(c.byLen[len(n)], hn)
		} else {
			c.folded = append(c.folded, hn)
		}
		c.allNames = append(c.allNames, hn)
	}
}

// scan looks at every header name of r once and writes what it finds to hs. A name matches as
// strings.EqualFold says (as the carriers read headers): an ASCII name only matches a name of its own
// length, so most headers cost a length lookup; a name with other bytes is compared to every name. hs is
// written in place, field by field, and read the same way: a small struct returned by value is copied
// with a wide load of narrow stores just made, which stalls (store forwarding fails). Run's goroutine
// only.
func (c *Consumer) scan(r *kgo.Record, hs *recordHeaders) {
	if c.byLen == nil {
		c.headerNames()
	}
	*hs = recordHeaders{bag: -1, tp: -1, ts: -1}
	var seen uint64
	for i := range r.Headers {
		name := r.Headers[i].Key
		var hn *headerName
		if len(name) <= maxNameLen {
			for j := range c.byLen[len(name)] {
				if nameIs(name, c.byLen[len(name)][j].name) {
					hn = &c.byLen[len(name)][j]
					break
				}
			}
		}
		if hn == nil {
			names := c.folded
			if !isASCII(name) {
				names = c.allNames // Unicode folding: the Kelvin sign is k, a long s is s
			}
			for j := range names {
				if strings.EqualFold(name, names[j].name) {
					hn = &names[j]
					break
				}
			}
			if hn == nil {
				continue
			}
		}
		hs.relevant = true
		if hn.index >= 64 || seen&(1<<hn.index) != 0 {
			hs.repeated = true
		}
		seen |= 1 << (hn.index & 63)
		if hn.isKey && hs.keyHeaders < 2 {
			hs.keyHeaders++
		}
		switch hn.role {
		case roleBaggage:
			if hs.bag < 0 {
				hs.bag = int32(i)
			}
		case roleTraceparent:
			if hs.tp < 0 {
				hs.tp = int32(i)
			}
		case roleTracestate:
			if hs.ts < 0 {
				hs.ts = int32(i)
			}
		}
	}
}

// nameIs is strings.EqualFold(h, f) for an ASCII h and a lower-case ASCII f.
func nameIs(h, f string) bool {
	if h == f { // names are mostly written in lower case
		return true
	}
	if len(h) != len(f) {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != f[i] {
			return false
		}
	}
	return true
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func lowerASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return true
}

// keyOf returns the routing key of r, whose headers scan found to be hs ("" when it has none), as a string
// of its own (interned: the few keys in use cost no allocation per record). A record whose only
// routing-key header is one baggage header (what Inject writes) is looked up by that header's value in
// the key cache, whose entry it also returns (nil otherwise). Run's goroutine only.
func (c *Consumer) keyOf(r *kgo.Record, hs *recordHeaders) (string, *mq.Keyed) {
	switch {
	case hs.keyHeaders == 0:
		return "", nil
	case hs.keyHeaders == 1 && hs.bag >= 0:
		e := c.keys.Entry(bytesString(r.Headers[hs.bag].Value))
		return e.Key(), e
	}
	kc := &c.kc
	kc.r = r
	key := c.prop.Key(kc)
	clear(kc.buf) // keep no reference to the record
	kc.buf, kc.r = kc.buf[:0], nil
	return c.intern(key), nil
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

// extract returns ctx with the OTel context of r, whose headers scan found to be hs and whose routing key
// (decided on) is key, with e the key cache's entry of its baggage (nil: none). The W3C headers are passed
// to mq.HandlerContexts as views of the record's bytes, which it does not keep. Run's goroutine only.
func (c *Consumer) extract(ctx context.Context, r *kgo.Record, hs *recordHeaders, key string, e *mq.Keyed) context.Context {
	if hs.repeated {
		return c.prop.ExtractKeyed(ctx, Carrier(r), key)
	}
	if c.hc == nil {
		c.hc = c.prop.NewHandlerContexts()
	}
	if e != nil {
		return c.hc.ExtractKeyed(ctx, e, c.view(r, hs.tp), c.view(r, hs.ts))
	}
	return c.hc.ExtractHeaders(ctx, mq.Headers{
		Baggage:     c.view(r, hs.bag),
		Traceparent: c.view(r, hs.tp),
		Tracestate:  c.view(r, hs.ts),
	}, key)
}

// keyContext is extract for mq.KeyContexts: the context shared by the records of r's baggage and key.
func (c *Consumer) keyContext(ctx context.Context, r *kgo.Record, rd *readRecord) context.Context {
	if rd.hs.repeated {
		return c.prop.ExtractKey(ctx, Carrier(r), rd.key) // rare: built for this record
	}
	if c.hc == nil {
		c.hc = c.prop.NewHandlerContexts()
	}
	e := rd.e
	if e == nil {
		bag := c.view(r, rd.hs.bag)
		if bag == "" && rd.key == "" {
			return ctx
		}
		e = c.hc.Entry(bag, rd.key)
	}
	return c.hc.KeyContext(ctx, e)
}

// view returns the value of r's i-th header as a view of its bytes ("" for i < 0).
func (c *Consumer) view(r *kgo.Record, i int32) string {
	if i < 0 {
		return ""
	}
	return bytesString(r.Headers[i].Value)
}
