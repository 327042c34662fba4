package diff

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth bounds the nesting of a decoded body, as encoding/json does.
const maxDepth = 10000

// parser decodes one JSON text into a tree of nodes holding the values
// encoding/json gives with UseNumber. Strings without escapes and numbers
// are slices of one copy of the input, and each container is one
// allocation of its exact size, gathered on a scratch stack first.
type parser struct {
	s     string
	i     int
	depth int
	stack []node
}

// parseJSON decodes s as exactly one JSON value surrounded by optional
// white space.
func parseJSON(s string) (*node, bool) {
	p := parser{s: s}
	v, ok := p.value()
	if !ok {
		return nil, false
	}
	p.space()
	return &v, p.i == len(p.s)
}

func (p *parser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

// value decodes the value at p.i. Nodes are returned by value, so that
// they stay off the heap until copied into their container.
func (p *parser) value() (node, bool) {
	p.space()
	if p.i >= len(p.s) {
		return node{}, false
	}
	switch c := p.s[p.i]; {
	case c == '{':
		kids, ok := p.object()
		return node{kind: kObject, kids: kids}, ok
	case c == '[':
		kids, ok := p.array()
		return node{kind: kArray, kids: kids}, ok
	case c == '"':
		s, ok := p.str()
		return node{kind: kString, s: s}, ok
	case c == '-' || c >= '0' && c <= '9':
		s, ok := p.number()
		return node{kind: kNumber, s: s}, ok
	case c == 't':
		return node{kind: kBool, s: "true"}, p.literal("true")
	case c == 'f':
		return node{kind: kBool, s: "false"}, p.literal("false")
	case c == 'n':
		return node{kind: kNull}, p.literal("null")
	}
	return node{}, false
}

func (p *parser) literal(l string) bool {
	if len(p.s)-p.i >= len(l) && p.s[p.i:p.i+len(l)] == l {
		p.i += len(l)
		return true
	}
	return false
}

// kids moves the nodes above base on the stack into a slice of their own.
func (p *parser) kids(base int) []node {
	k := make([]node, len(p.stack)-base)
	copy(k, p.stack[base:])
	clear(p.stack[base:]) // drop references held by the scratch stack
	p.stack = p.stack[:base]
	return k
}

// object decodes the members of the object at p.i, sorted by key.
func (p *parser) object() ([]node, bool) {
	if p.depth++; p.depth > maxDepth {
		return nil, false
	}
	defer func() { p.depth-- }()
	p.i++ // {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == '}' {
		p.i++
		return []node{}, true
	}
	base := len(p.stack)
	for {
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != '"' {
			p.stack = p.stack[:base]
			return nil, false
		}
		k, ok := p.str()
		if !ok {
			p.stack = p.stack[:base]
			return nil, false
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			p.stack = p.stack[:base]
			return nil, false
		}
		p.i++
		// The member's own members are gathered on the stack above base
		// first, then it is pushed.
		m, ok := p.value()
		if !ok {
			p.stack = p.stack[:base]
			return nil, false
		}
		m.key = k
		p.stack = append(p.stack, m)
		p.space()
		if p.i >= len(p.s) {
			p.stack = p.stack[:base]
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case '}':
			p.i++
			return sortMembers(p.kids(base)), true
		default:
			p.stack = p.stack[:base]
			return nil, false
		}
	}
}

// sortMembers sorts members by key and keeps the last of duplicates.
func sortMembers(m []node) []node {
	slices.SortStableFunc(m, func(a, b node) int { return strings.Compare(a.key, b.key) })
	out := m[:0]
	for i := range m {
		if i+1 < len(m) && m[i+1].key == m[i].key {
			continue
		}
		out = append(out, m[i])
	}
	return out
}

// array decodes the elements of the array at p.i.
func (p *parser) array() ([]node, bool) {
	if p.depth++; p.depth > maxDepth {
		return nil, false
	}
	defer func() { p.depth-- }()
	p.i++ // [
	p.space()
	if p.i < len(p.s) && p.s[p.i] == ']' {
		p.i++
		return []node{}, true
	}
	base := len(p.stack)
	for {
		e, ok := p.value()
		if !ok {
			p.stack = p.stack[:base]
			return nil, false
		}
		p.stack = append(p.stack, e)
		p.space()
		if p.i >= len(p.s) {
			p.stack = p.stack[:base]
			return nil, false
		}
		switch p.s[p.i] {
		case ',':
			p.i++
		case ']':
			p.i++
			return p.kids(base), true
		default:
			p.stack = p.stack[:base]
			return nil, false
		}
	}
}

func (p *parser) number() (string, bool) {
	start := p.i
	if p.s[p.i] == '-' {
		p.i++
	}
	switch {
	case p.i < len(p.s) && p.s[p.i] == '0':
		p.i++
	case p.i < len(p.s) && p.s[p.i] >= '1' && p.s[p.i] <= '9':
		p.digits()
	default:
		return "", false
	}
	if p.i < len(p.s) && p.s[p.i] == '.' {
		p.i++
		if p.digits() == 0 {
			return "", false
		}
	}
	if p.i < len(p.s) && (p.s[p.i] == 'e' || p.s[p.i] == 'E') {
		p.i++
		if p.i < len(p.s) && (p.s[p.i] == '+' || p.s[p.i] == '-') {
			p.i++
		}
		if p.digits() == 0 {
			return "", false
		}
	}
	return p.s[start:p.i], true
}

func (p *parser) digits() int {
	n := 0
	for p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '9' {
		p.i++
		n++
	}
	return n
}

// str decodes a string at p.i (which holds '"'), replacing invalid UTF-8
// and lone surrogates with U+FFFD as encoding/json does.
func (p *parser) str() (string, bool) {
	p.i++
	start := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			s := p.s[start:p.i]
			p.i++
			return s, true
		case c == '\\':
			return p.slowStr(start)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				return p.slowStr(start)
			}
			p.i += size
			continue
		}
		p.i++
	}
	return "", false
}

func (p *parser) slowStr(start int) (string, bool) {
	b := []byte(p.s[start:p.i])
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return string(b), true
		case c < 0x20:
			return "", false
		case c == '\\':
			if p.i+1 >= len(p.s) {
				return "", false
			}
			e := p.s[p.i+1]
			p.i += 2
			switch e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				r, ok := p.hex4()
				if !ok {
					return "", false
				}
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if save := p.i; p.i+1 < len(p.s) && p.s[p.i] == '\\' && p.s[p.i+1] == 'u' {
						p.i += 2
						if r2, ok = p.hex4(); !ok {
							return "", false
						}
						if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
							b = utf8.AppendRune(b, d)
							continue
						}
						p.i = save
					}
					r = utf8.RuneError
				}
				b = utf8.AppendRune(b, r)
			default:
				return "", false
			}
		case c < utf8.RuneSelf:
			b = append(b, c)
			p.i++
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			if r == utf8.RuneError && size == 1 {
				b = append(b, "\ufffd"...)
			} else {
				b = append(b, p.s[p.i:p.i+size]...)
			}
			p.i += size
		}
	}
	return "", false
}

func (p *parser) hex4() (rune, bool) {
	if len(p.s)-p.i < 4 {
		return 0, false
	}
	v, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += 4
	return rune(v), true
}
