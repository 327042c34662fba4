package diff

import (
	"hash/maphash"
	"slices"
	"strconv"
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
// rules (numbers by value) hash alike. It only groups candidates: equality
// is confirmed by encoding, so the random seed does not make results vary.
func hashValue(v *node) uint64 {
	switch v.kind {
	case kNull:
		return 0x9e3779b97f4a7c15
	case kBool:
		if v.s == "true" {
			return 0x2545f4914f6cdd1d
		}
		return 0x5851f42d4c957f2d
	case kString:
		return mix(maphash.String(hashSeed, v.s) ^ 0x1)
	case kNumber:
		return hashNumber(v.s)
	case kArray:
		h := uint64(0x4)
		for i := range v.kids {
			h = mix(h*0x100000001b3 + hashValue(&v.kids[i]))
		}
		return h
	}
	h := uint64(0x5) // object: members are sorted by key
	for i := range v.kids {
		h = mix(h*0x100000001b3 + maphash.String(hashSeed, v.kids[i].key))
		h = mix(h*0x100000001b3 + hashValue(&v.kids[i]))
	}
	return h
}

// hashNumber hashes the significant digits and the exponent of a number
// literal, without allocating for integers.
func hashNumber(s string) uint64 {
	exp := 0
	if strings.ContainsAny(s, ".eE") {
		n := normalizeNumber(s)
		i := strings.LastIndexByte(n, 'e')
		if n == "0" || i < 0 {
			return mix(maphash.String(hashSeed, n) ^ 0x3)
		}
		e, err := strconv.Atoi(n[i+1:])
		if err != nil {
			return mix(maphash.String(hashSeed, n) ^ 0x3)
		}
		s, exp = n[:i], e
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	t := strings.TrimRight(s, "0")
	if t == "" {
		return mix(maphash.String(hashSeed, "0") ^ 0x3) // zero, either sign
	}
	h := maphash.String(hashSeed, t) + uint64(exp+len(s)-len(t))*0x100000001b3
	if neg {
		h = ^h
	}
	return mix(h ^ 0x3)
}

// sameMultiset reports whether the elements of o and n at the indices idx
// are the same, counted with multiplicity: hashes first, then canonical
// encodings to confirm.
func sameMultiset(o, n []node, idx []int) bool {
	ho := make([]uint64, len(idx))
	hn := make([]uint64, len(idx))
	for i, j := range idx {
		ho[i], hn[i] = hashValue(&o[j]), hashValue(&n[j])
	}
	slices.Sort(ho)
	slices.Sort(hn)
	if !slices.Equal(ho, hn) {
		return false
	}
	counts := make(map[string]int, len(idx))
	var buf []byte
	for _, j := range idx {
		buf = appendValue(buf[:0], &o[j], true, 0)
		counts[string(buf)]++
	}
	for _, j := range idx {
		buf = appendValue(buf[:0], &n[j], true, 0)
		c := counts[string(buf)]
		if c == 0 {
			return false
		}
		counts[string(buf)] = c - 1
	}
	return true
}
