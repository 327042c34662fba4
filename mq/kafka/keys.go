package kafka

import (
	"context"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// keyReader reads the routing key of a record without building a context: Decide needs only the key, and
// the OTel context is built for the records passed to the handler. It reuses its map; one goroutine only.
type keyReader struct {
	ext   *routingkey.Extractor
	names []string // lowercase header names the extractor reads
	md    map[string][]string
	used  []string // names set in md by the current call
}

func newKeyReader(ext *routingkey.Extractor) *keyReader {
	return &keyReader{ext: ext, names: ext.HeaderNames(), md: map[string][]string{}}
}

// key returns the record's routing key, "" when it has none.
func (k *keyReader) key(r *kgo.Record) string {
	for i := range r.Headers {
		name := k.name(r.Headers[i].Key)
		if name == "" {
			continue
		}
		vs := k.md[name]
		if len(vs) == 0 {
			k.used = append(k.used, name)
		}
		k.md[name] = append(vs, string(r.Headers[i].Value))
	}
	if len(k.used) == 0 {
		return ""
	}
	key, _ := k.ext.ExtractMetadata(k.md)
	for _, n := range k.used {
		vs := k.md[n]
		clear(vs)
		k.md[n] = vs[:0]
	}
	clear(k.used)
	k.used = k.used[:0]
	return key
}

// name returns the lowercase name the extractor reads that h is (any case), or "".
func (k *keyReader) name(h string) string {
	for _, n := range k.names {
		if len(n) == len(h) && strings.EqualFold(n, h) {
			return n
		}
	}
	return ""
}

// singleCarrier is a HeaderCarrier without Values, for records with at most one header of each name: the
// OTel baggage propagator then parses the one header instead of merging lists.
type singleCarrier struct{ c HeaderCarrier }

func (s singleCarrier) Get(key string) string { return s.c.Get(key) }
func (s singleCarrier) Set(key, value string) { s.c.Set(key, value) }
func (s singleCarrier) Keys() []string        { return s.c.Keys() }

// extract returns ctx with the OTel context of r and the routing key decided on.
func (c *Consumer) extract(ctx context.Context, r *kgo.Record, key string) context.Context {
	var xctx context.Context
	if repeatsHeader(r) {
		xctx, _ = c.prop.Extract(ctx, Carrier(r))
	} else {
		xctx, _ = c.prop.Extract(ctx, singleCarrier{Carrier(r)})
	}
	if key != "" {
		if got, _ := routingkey.FromContext(xctx); got != key {
			xctx = routingkey.WithKey(xctx, key)
		}
	}
	return xctx
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
