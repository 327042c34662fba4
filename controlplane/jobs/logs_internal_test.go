package jobs

import (
	"errors"
	"strings"
	"testing"
)

func TestLogCursor(t *testing.T) {
	good := encodeLogCursor("scope1", 42)
	for _, tc := range []struct {
		name, tok string
		seq       int64
		ok        bool
	}{
		{"empty is the start", "", 0, true},
		{"round trip", good, 42, true},
		{"other stream", encodeLogCursor("scope2", 1), 0, false},
		{"not base64", "!!!", 0, false},
		{"not json", "bm90IGpzb24", 0, false},
		{"unknown field", "eyJ2IjoxLCJrIjoic2NvcGUxIiwicyI6MSwieCI6MX0", 0, false},
		{"version", "eyJ2IjoyLCJrIjoic2NvcGUxIiwicyI6MX0", 0, false},
		{"negative", "eyJ2IjoxLCJrIjoic2NvcGUxIiwicyI6LTF9", 0, false},
		{"trailing data", good + "e30", 0, false},
		{"too long", strings.Repeat("a", maxLogCursorLen+1), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq, err := decodeLogCursor(tc.tok, "scope1")
			if (err == nil) != tc.ok || (tc.ok && seq != tc.seq) {
				t.Fatalf("decode(%q) = %d, %v; want seq %d ok=%v", tc.tok, seq, err, tc.seq, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v is not ErrBadCursor", err)
			}
		})
	}
}

func TestNthLastNewline(t *testing.T) {
	for _, tc := range []struct {
		s    string
		n, i int
	}{{"a\nb\nc", 1, 3}, {"a\nb\nc", 2, 1}, {"a\nb\nc", 3, -1}, {"", 1, -1}} {
		if got := nthLastNewline(tc.s, tc.n); got != tc.i {
			t.Errorf("nthLastNewline(%q, %d) = %d, want %d", tc.s, tc.n, got, tc.i)
		}
	}
}

// FuzzDecodeLogCursor: decoding never panics; a cursor it accepts has a
// position >= 0 and re-encodes to a cursor that decodes to the same position.
func FuzzDecodeLogCursor(f *testing.F) {
	for _, s := range []string{"", encodeLogCursor("k", 1), encodeLogCursor("other", 9), "e30", "!!", strings.Repeat("A", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		seq, err := decodeLogCursor(tok, "k")
		if err != nil {
			if !errors.Is(err, ErrBadCursor) {
				t.Fatalf("error %v is not ErrBadCursor", err)
			}
			return
		}
		if seq < 0 {
			t.Fatalf("accepted negative position %d", seq)
		}
		if again, err := decodeLogCursor(encodeLogCursor("k", seq), "k"); err != nil || again != seq {
			t.Fatalf("re-encoded cursor: %d %v", again, err)
		}
	})
}
