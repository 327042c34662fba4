package diff

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
)

var bodies = map[bool][]byte{}

// body1MB returns a JSON array of objects of about 1 MB; with changed,
// every 100th object has a changed, an added and a removed field.
func body1MB(changed bool) []byte {
	if b, ok := bodies[changed]; ok {
		return b
	}
	var items []any
	for i := 0; ; i++ {
		it := map[string]any{
			"id":       fmt.Sprintf("%08x-1b2c-4d3e-8f90-a1b2c3d4e5f6", i),
			"customer": map[string]any{"id": i % 97, "name": fmt.Sprintf("customer %d", i%97), "vip": i%7 == 0},
			"eta":      map[string]any{"minutes": i % 60, "distance": float64(i%1000) / 10},
			"route":    []any{i, i + 1, i + 2, "depot"},
			"note":     "a note of some length that makes the document look like a real one",
		}
		if changed && i%100 == 0 {
			it["eta"].(map[string]any)["minutes"] = i%60 + 1
			it["extra"] = true
			delete(it, "note")
		}
		items = append(items, it)
		if i%64 == 0 {
			if b, _ := json.Marshal(items); len(b) >= 1<<20 {
				bodies[changed] = b
				return b
			}
		}
	}
}

func decodeNumber(b []byte) any {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		panic(err)
	}
	return v
}

// BenchmarkDiff1MB diffs two 1 MB JSON bodies, side by side with its peer:
// decoding both the same way and comparing with reflect.DeepEqual. The
// "decoded" cases leave decoding out of both.
func BenchmarkDiff1MB(b *testing.B) {
	base := body1MB(false)
	for _, tc := range []struct {
		name   string
		target []byte
	}{{"equal", bytes.Clone(base)}, {"changed", body1MB(true)}} {
		a := capt("a", route, "x", 200, string(base))
		t := capt("t", route, "x", 200, string(tc.target))
		b.Run(tc.name+"/diff", func(b *testing.B) {
			b.SetBytes(int64(len(base)))
			b.ReportAllocs()
			for b.Loop() {
				DiffCaptures(a, t, Options{})
			}
		})
		b.Run(tc.name+"/peer-decode+DeepEqual", func(b *testing.B) {
			b.SetBytes(int64(len(base)))
			b.ReportAllocs()
			for b.Loop() {
				reflect.DeepEqual(decodeNumber(base), decodeNumber(tc.target))
			}
		})
		na, _ := decodeJSON(base)
		nt, _ := decodeJSON(tc.target)
		b.Run(tc.name+"/decoded/diff", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w := &walker{}
				w.value(na, nt, false)
			}
		})
		va, vt := decodeNumber(base), decodeNumber(tc.target)
		b.Run(tc.name+"/decoded/peer-DeepEqual", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				reflect.DeepEqual(va, vt)
			}
		})
	}
	// Compare: target vs A and A vs B, three 1 MB bodies.
	tg := capt("t", route, "x", 200, string(body1MB(true)))
	a := capt("a", route, "x", 200, string(base))
	bb := capt("b", route, "x", 200, string(body1MB(true)))
	b.Run("compare-3-bodies", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			Compare(one(tg), one(a), one(bb), Options{})
		}
	})
}

// BenchmarkDecode1MB decodes a 1 MB body with the package's parser beside
// encoding/json with UseNumber, the values both give being the same.
func BenchmarkDecode1MB(b *testing.B) {
	body := body1MB(false)
	b.Run("parser", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := decodeJSON(body); !ok {
				b.Fatal("not decoded")
			}
		}
	})
	b.Run("peer-encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			decodeNumber(body)
		}
	})
}
