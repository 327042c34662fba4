package diff

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxComputedOps bounds the ops computed for one pair, whatever
// Options.MaxOps says: the counters count at most this many.
const maxComputedOps = 10000

// kind is the JSON type of a node.
type kind uint8

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kObject
	kArray
)

var kindNames = [...]string{kNull: "null", kBool: "boolean", kNumber: "number", kString: "string", kObject: "object", kArray: "array"}

// node is a decoded JSON value. Objects keep their members in kids sorted
// by key, one per key (the last one wins, as in encoding/json); arrays
// keep their elements in kids. A tree of nodes costs one allocation per
// container, where map[string]any and boxed scalars cost several.
type node struct {
	kind kind
	key  string // member name, when the node is an object member
	s    string // number literal, string value, "true" or "false"
	kids []node
}

// walker computes the ops between two decoded values. Paths are kept as a
// stack of segments and joined only when an op is emitted, so equal
// subtrees cost no allocation.
type walker struct {
	segs []pathSeg
	ops  []DiffOp
}

func (w *walker) full() bool { return len(w.ops) >= maxComputedOps }

func (w *walker) push(s pathSeg) { w.segs = append(w.segs, s) }
func (w *walker) pop()           { w.segs = w.segs[:len(w.segs)-1] }

// pathSeg is an object member name or, with index >= 0, an array index.
type pathSeg struct {
	name  string
	index int
}

func seg(name string) pathSeg { return pathSeg{name: name, index: -1} }
func idx(i int) pathSeg       { return pathSeg{index: i} }

// pathOf joins segs as an RFC 6901 pointer; with wild, array indices
// become "*".
func pathOf(segs []pathSeg, wild bool) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteByte('/')
		switch {
		case s.index < 0:
			b.WriteString(escapeSeg(s.name))
		case wild:
			b.WriteByte('*')
		default:
			b.WriteString(strconv.Itoa(s.index))
		}
	}
	return b.String()
}

func escapeSeg(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func (w *walker) emit(op OpKind, old, nw *node, typeChange, fromArray, reorder bool) {
	if w.full() {
		return
	}
	w.ops = append(w.ops, DiffOp{Op: op, Path: pathOf(w.segs, false), TypeChange: typeChange, Reorder: reorder,
		old: old, val: nw, fromArray: fromArray, wild: pathOf(w.segs, true)})
}

// value diffs old (baseline) against nw (target). inArray says whether the
// current path is an array element.
func (w *walker) value(old, nw *node, inArray bool) {
	if w.full() {
		return
	}
	if old.kind != nw.kind {
		w.emit(OpReplace, old, nw, true, inArray, false)
		return
	}
	switch old.kind {
	case kObject:
		w.object(old.kids, nw.kids)
	case kArray:
		w.array(old.kids, nw.kids)
	case kNumber:
		if !numbersEqual(old.s, nw.s) {
			w.emit(OpReplace, old, nw, false, inArray, false)
		}
	case kString, kBool:
		if old.s != nw.s {
			w.emit(OpReplace, old, nw, false, inArray, false)
		}
	}
}

// object merges two member lists sorted by key.
func (w *walker) object(o, n []node) {
	i, j := 0, 0
	for (i < len(o) || j < len(n)) && !w.full() {
		switch {
		case j == len(n) || i < len(o) && o[i].key < n[j].key:
			w.push(seg(o[i].key))
			w.emit(OpRemove, &o[i], nil, false, false, false)
			i++
		case i == len(o) || n[j].key < o[i].key:
			w.push(seg(n[j].key))
			w.emit(OpAdd, nil, &n[j], false, false, false)
			j++
		default:
			w.push(seg(o[i].key))
			w.value(&o[i], &n[j], false)
			i++
			j++
		}
		w.pop()
	}
}

func (w *walker) array(o, n []node) {
	start := len(w.ops)
	common := min(len(o), len(n))
	var differ []int // indices whose elements differ
	for i := 0; i < common; i++ {
		if w.full() {
			return
		}
		before := len(w.ops)
		w.push(idx(i))
		w.value(&o[i], &n[i], true)
		w.pop()
		if len(w.ops) > before {
			differ = append(differ, i)
		}
	}
	// Elements equal at the same index are common to both multisets, so
	// the arrays are a reordering of each other exactly when the differing
	// elements are.
	if len(o) == len(n) && len(differ) >= 2 && !w.full() && sameMultiset(o, n, differ) {
		w.ops = w.ops[:start]
		w.emit(OpReplace, &node{kind: kArray, kids: o}, &node{kind: kArray, kids: n}, false, false, true)
		return
	}
	for i := common; i < len(o); i++ {
		w.push(idx(i))
		w.emit(OpRemove, &o[i], nil, false, true, false)
		w.pop()
	}
	for i := common; i < len(n); i++ {
		w.push(idx(i))
		w.emit(OpAdd, nil, &n[i], false, true, false)
		w.pop()
	}
}

// numbersEqual compares two JSON number literals by value, exactly.
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	return normalizeNumber(a) == normalizeNumber(b)
}

// normalizeNumber returns a canonical form of a JSON number literal:
// sign, significant digits without leading or trailing zeros, and the
// decimal exponent ("0" for zero). A literal it cannot read (or whose
// exponent overflows) is returned as is.
func normalizeNumber(s string) string {
	orig := s
	neg := false
	if strings.HasPrefix(s, "-") {
		neg, s = true, s[1:]
	}
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
	}
	intPart, frac := mant, ""
	if i := strings.IndexByte(mant, '.'); i >= 0 {
		intPart, frac = mant[:i], mant[i+1:]
	}
	e := 0
	if exp != "" {
		v, err := strconv.Atoi(exp)
		if err != nil || v > 1<<40 || v < -(1<<40) {
			return orig
		}
		e = v
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	e -= len(frac)
	trimmed := strings.TrimRight(digits, "0")
	e += len(digits) - len(trimmed)
	if trimmed == "" {
		return "0"
	}
	for _, c := range trimmed {
		if c < '0' || c > '9' {
			return orig
		}
	}
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + trimmed + "e" + strconv.Itoa(e)
}

// decodeJSON decodes b as exactly one JSON value.
func decodeJSON(b []byte) (*node, bool) {
	return parseJSON(string(b))
}

// appendValue appends the JSON encoding of v to buf, object members in
// sorted order. With norm, numbers are written in their normalized form
// (for comparison, not display). With limit > 0 it stops once buf is longer
// than limit.
func appendValue(buf []byte, v *node, norm bool, limit int) []byte {
	if limit > 0 && len(buf) > limit {
		return buf
	}
	switch v.kind {
	case kNull:
		return append(buf, "null"...)
	case kBool:
		return append(buf, v.s...)
	case kNumber:
		if norm {
			return append(buf, normalizeNumber(v.s)...)
		}
		return append(buf, v.s...)
	case kString:
		return appendString(buf, v.s)
	}
	open, close := byte('['), byte(']')
	if v.kind == kObject {
		open, close = '{', '}'
	}
	buf = append(buf, open)
	for i := range v.kids {
		if i > 0 {
			buf = append(buf, ',')
		}
		if v.kind == kObject {
			buf = appendString(buf, v.kids[i].key)
			buf = append(buf, ':')
		}
		buf = appendValue(buf, &v.kids[i], norm, limit)
		if limit > 0 && len(buf) > limit {
			return buf
		}
	}
	return append(buf, close)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case c < 0x20:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				buf = append(buf, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, "\ufffd"...)
		} else {
			buf = append(buf, s[i:i+size]...)
		}
		i += size
	}
	return append(buf, '"')
}

// encodeTrunc encodes v for display: at most max bytes of JSON; a longer
// encoding becomes a JSON string holding its first max bytes and "…".
func encodeTrunc(v *node, max int) []byte {
	if v.kind == kString && max > 0 && len(v.s) > max {
		return appendString(nil, truncUTF8(v.s, max)+"…")
	}
	b := appendValue(nil, v, false, max)
	if max > 0 && len(b) > max {
		return appendString(nil, truncUTF8(string(b), max)+"…")
	}
	return b
}

// truncUTF8 cuts s to at most n bytes on a rune boundary.
func truncUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
