package diff

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxComputedOps bounds the ops computed for one pair, whatever
// Options.MaxOps says: the counters count at most this many.
const maxComputedOps = 10000

// walker computes the ops between two decoded values. Paths are kept as a
// stack of segments and joined only when an op is emitted, so equal
// subtrees cost no allocation for paths.
type walker struct {
	segs []pathSeg
	ops  []DiffOp
	keys []string // scratch stack of object member names
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

func (w *walker) emit(op OpKind, old, nw any, typeChange, fromArray, reorder bool) {
	if w.full() {
		return
	}
	d := DiffOp{Op: op, Path: pathOf(w.segs, false), TypeChange: typeChange, Reorder: reorder,
		old: old, val: nw, fromArray: fromArray, wild: pathOf(w.segs, true)}
	w.ops = append(w.ops, d)
}

// value diffs old (baseline) against nw (target). inArray says whether the
// current path is an array element.
func (w *walker) value(old, nw any, inArray bool) {
	if w.full() {
		return
	}
	switch o := old.(type) {
	case map[string]any:
		n, ok := nw.(map[string]any)
		if !ok {
			w.emit(OpReplace, old, nw, true, inArray, false)
			return
		}
		w.object(o, n)
	case []any:
		n, ok := nw.([]any)
		if !ok {
			w.emit(OpReplace, old, nw, true, inArray, false)
			return
		}
		w.array(o, n)
	case json.Number:
		n, ok := nw.(json.Number)
		if !ok {
			w.emit(OpReplace, old, nw, true, inArray, false)
			return
		}
		if !numbersEqual(string(o), string(n)) {
			w.emit(OpReplace, old, nw, false, inArray, false)
		}
	case string:
		n, ok := nw.(string)
		if !ok {
			w.emit(OpReplace, old, nw, true, inArray, false)
			return
		}
		if o != n {
			w.emit(OpReplace, old, nw, false, inArray, false)
		}
	case bool:
		n, ok := nw.(bool)
		if !ok {
			w.emit(OpReplace, old, nw, true, inArray, false)
			return
		}
		if o != n {
			w.emit(OpReplace, old, nw, false, inArray, false)
		}
	case nil:
		if nw != nil {
			w.emit(OpReplace, old, nw, true, inArray, false)
		}
	default:
		// Not produced by the decoder; compare as encoded text.
		if string(appendValue(nil, old, true, 0)) != string(appendValue(nil, nw, true, 0)) {
			w.emit(OpReplace, old, nw, jsonType(old) != jsonType(nw), inArray, false)
		}
	}
}

func (w *walker) object(o, n map[string]any) {
	start := len(w.keys)
	for k := range o {
		w.keys = append(w.keys, k)
	}
	for k := range n {
		if _, ok := o[k]; !ok {
			w.keys = append(w.keys, k)
		}
	}
	keys := w.keys[start:]
	slices.Sort(keys)
	defer func() { w.keys = w.keys[:start] }()
	for _, k := range keys {
		if w.full() {
			return
		}
		ov, inO := o[k]
		nv, inN := n[k]
		w.push(seg(k))
		switch {
		case !inN:
			w.emit(OpRemove, ov, nil, false, false, false)
		case !inO:
			w.emit(OpAdd, nil, nv, false, false, false)
		default:
			w.value(ov, nv, false)
		}
		w.pop()
	}
}

func (w *walker) array(o, n []any) {
	start := len(w.ops)
	common := min(len(o), len(n))
	var differ []int // indices whose elements differ
	for i := 0; i < common; i++ {
		if w.full() {
			return
		}
		before := len(w.ops)
		w.push(idx(i))
		w.value(o[i], n[i], true)
		w.pop()
		if len(w.ops) > before {
			differ = append(differ, i)
		}
	}
	// Elements equal at the same index are common to both multisets, so
	// the arrays are a reordering of each other exactly when the differing
	// elements are.
	if len(o) == len(n) && len(differ) >= 2 && !w.full() && sameMultiset(pick(o, differ), pick(n, differ)) {
		w.ops = w.ops[:start]
		w.emit(OpReplace, o, n, false, false, true)
		return
	}
	for i := common; i < len(o); i++ {
		w.push(idx(i))
		w.emit(OpRemove, o[i], nil, false, true, false)
		w.pop()
	}
	for i := common; i < len(n); i++ {
		w.push(idx(i))
		w.emit(OpAdd, nil, n[i], false, true, false)
		w.pop()
	}
}

func pick(a []any, idx []int) []any {
	out := make([]any, len(idx))
	for i, j := range idx {
		out[i] = a[j]
	}
	return out
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number, float64, int:
		return "number"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	}
	return "unknown"
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

// decodeJSON decodes b as exactly one JSON value with numbers kept as
// json.Number.
func decodeJSON(b []byte) (any, bool) {
	return parseJSON(string(b))
}

// appendValue appends the JSON encoding of v to buf, with object members
// in sorted order. With norm, numbers are written in their normalized form
// (for comparison, not display). With limit > 0 it stops once buf is longer
// than limit.
func appendValue(buf []byte, v any, norm bool, limit int) []byte {
	if limit > 0 && len(buf) > limit {
		return buf
	}
	switch x := v.(type) {
	case nil:
		return append(buf, "null"...)
	case bool:
		return strconv.AppendBool(buf, x)
	case json.Number:
		if norm {
			return append(buf, normalizeNumber(string(x))...)
		}
		return append(buf, x...)
	case string:
		return appendString(buf, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		buf = append(buf, '{')
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = appendValue(buf, x[k], norm, limit)
			if limit > 0 && len(buf) > limit {
				return buf
			}
		}
		return append(buf, '}')
	case []any:
		buf = append(buf, '[')
		for i, e := range x {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendValue(buf, e, norm, limit)
			if limit > 0 && len(buf) > limit {
				return buf
			}
		}
		return append(buf, ']')
	}
	b, err := json.Marshal(v)
	if err != nil {
		return appendString(buf, "<unencodable>")
	}
	return append(buf, b...)
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
func encodeTrunc(v any, max int) json.RawMessage {
	if s, ok := v.(string); ok && max > 0 && len(s) > max {
		return appendString(nil, truncUTF8(s, max)+"…")
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
