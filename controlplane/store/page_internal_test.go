package store

import (
	"errors"
	"testing"
)

// FuzzDecodeCursor: decoding never panics, rejects with ErrBadCursor, and what
// it accepts encodes back to an equivalent token.
func FuzzDecodeCursor(f *testing.F) {
	scope := scopeOf("objects", "sandbox", "acme", "")
	for _, seed := range []string{"", encodeCursor(cursor{Scope: scope, Name: "sb01"}), encodeCursor(cursor{Scope: scope, Name: "t1", At: 42}),
		"eyJ2IjoxfQ", "%%%", "eyJ2IjoxLCJzIjoiIiwibiI6ImEiLCJ4IjoxfQ"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := decodeCursor(tok, scope)
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v is not ErrBadCursor", err)
			}
			return
		}
		if tok == "" {
			return
		}
		again, err := decodeCursor(encodeCursor(c), scope)
		if err != nil || again != c {
			t.Fatalf("round trip of %q: %+v, %v", tok, again, err)
		}
	})
}
