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
	names map[string]struct{}
	md    map[string][]string
}

func newKeyReader(ext *routingkey.Extractor) *keyReader {
	k := &keyReader{ext: ext, names: map[string]struct{}{}, md: map[string][]string{}}
	for _, n := range ext.HeaderNames() {
		k.names[n] = struct{}{}
	}
	return k
}

// key returns the record's routing key, "" when it has none.
func (k *keyReader) key(r *kgo.Record) string {
	found := false
	for i := range r.Headers {
		name := r.Headers[i].Key
		if hasUpper(name) {
			name = strings.ToLower(name)
		}
		if _, ok := k.names[name]; !ok {
			continue
		}
		k.md[name] = append(k.md[name], string(r.Headers[i].Value))
		found = true
	}
	if !found {
		return ""
	}
	key, _ := k.ext.ExtractMetadata(k.md)
	for n, vs := range k.md {
		clear(vs)
		k.md[n] = vs[:0]
	}
	return key
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
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
