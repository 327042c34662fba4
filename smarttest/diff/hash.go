package diff

import (
	"encoding/json"
	"hash/maphash"
	"slices"
	"strings"
)

var hashSeed = maphash.MakeSeed()

func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// hashValue hashes a decoded value so that values equal under the diff's
// rules (numbers by value, objects regardless of member order) hash
// alike. It only groups candidates: equality is confirmed by encoding, so
// the random seed does not make results vary.
func hashValue(v any) uint64 {
	switch x := v.(type) {
	case nil:
		return 0x9e3779b97f4a7c15
	case bool:
		if x {
			return 0x2545f4914f6cdd1d
		}
		return 0x5851f42d4c957f2d
	case string:
		return mix(maphash.String(hashSeed, x) ^ 0x1)
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			neg := strings.HasPrefix(s, "-")
			s = strings.TrimPrefix(s, "-")
			t := strings.TrimRight(s, "0")
			if t == "" {
				return mix(0x3) // zero, either sign
			}
			h := maphash.String(hashSeed, t) + uint64(len(s)-len(t))*0x100000001b3
			if neg {
				h = ^h
			}
			return mix(h ^ 0x3)
		}
		n := normalizeNumber(s)
		if n == "0" {
			return mix(0x3)
		}
		if i := strings.LastIndexByte(n, 'e'); i >= 0 {
			// Same form as the fast path: digits hash plus exponent.
			neg := strings.HasPrefix(n, "-")
			d := strings.TrimPrefix(n[:i], "-")
			exp := 0
			for _, c := range n[i+1:] {
				if c == '-' {
					exp = -1 << 62
					break
				}
				exp = exp*10 + int(c-'0')
			}
			h := maphash.String(hashSeed, d) + uint64(exp)*0x100000001b3
			if neg {
				h = ^h
			}
			return mix(h ^ 0x3)
		}
		return mix(maphash.String(hashSeed, n) ^ 0x3)
	case []any:
		h := uint64(0x4)
		for _, e := range x {
			h = mix(h*0x100000001b3 + hashValue(e))
		}
		return h
	case map[string]any:
		var sum uint64
		for k, e := range x {
			sum += mix(maphash.String(hashSeed, k) ^ hashValue(e)*0x9e3779b97f4a7c15)
		}
		return mix(sum ^ 0x5)
	}
	return 0
}

// sameMultiset reports whether o and n hold the same elements, counted
// with multiplicity: hashes first, then canonical encodings to confirm.
func sameMultiset(o, n []any) bool {
	ho := make([]uint64, len(o))
	hn := make([]uint64, len(n))
	for i := range o {
		ho[i] = hashValue(o[i])
	}
	for i := range n {
		hn[i] = hashValue(n[i])
	}
	slices.Sort(ho)
	slices.Sort(hn)
	if !slices.Equal(ho, hn) {
		return false
	}
	counts := make(map[string]int, len(o))
	var buf []byte
	for _, v := range o {
		buf = appendValue(buf[:0], v, true, 0)
		counts[string(buf)]++
	}
	for _, v := range n {
		buf = appendValue(buf[:0], v, true, 0)
		c := counts[string(buf)]
		if c == 0 {
			return false
		}
		counts[string(buf)] = c - 1
	}
	return true
}
