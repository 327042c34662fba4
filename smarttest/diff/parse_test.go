package diff

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

func stdDecode(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if dec.InputOffset() != int64(len(bytes.TrimRight(b, " \t\r\n"))) {
		return nil, false
	}
	return v, true
}

// FuzzParseJSON checks the parser against encoding/json: the same inputs
// are accepted and decode to the same values.
func FuzzParseJSON(f *testing.F) {
	for _, s := range []string{
		`{"a":[1,-2.5e+3,"x\u00e9\n",true,false,null,{}]}`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`,
		`"\ud83d\u0041"`, "\"\xff\xfe\"", `"é"`, ` 0 `, `01`, `-`, `1.`, `1e`, `[1,]`, `{"a":1,}`, `{"a" 1}`,
		`{"a":1,"a":2}`, `[[[[]]]]`, "\"\x01\"", `"\/\b\f\r\t\\"`, `nul`, `1 2`, `"\u12g4"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := parseJSON(string(b))
		want, wantOK := stdDecode(b)
		if ok != wantOK {
			t.Fatalf("%q: ok = %v, encoding/json ok = %v", b, ok, wantOK)
		}
		if !ok {
			return
		}
		if got := toAny(n); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: got %#v, encoding/json %#v", b, got, want)
		}
	})
}

// toAny converts a node tree to the values encoding/json gives.
func toAny(v *node) any {
	switch v.kind {
	case kBool:
		return v.s == "true"
	case kNumber:
		return json.Number(v.s)
	case kString:
		return v.s
	case kArray:
		a := make([]any, len(v.kids))
		for i := range v.kids {
			a[i] = toAny(&v.kids[i])
		}
		return a
	case kObject:
		m := make(map[string]any, len(v.kids))
		for i := range v.kids {
			m[v.kids[i].key] = toAny(&v.kids[i])
		}
		return m
	}
	return nil
}

func TestParseDepthLimit(t *testing.T) {
	deep := bytes.Repeat([]byte("["), maxDepth+1)
	deep = append(deep, bytes.Repeat([]byte("]"), maxDepth+1)...)
	if _, ok := parseJSON(string(deep)); ok {
		t.Error("accepted nesting beyond maxDepth")
	}
	if _, ok := parseJSON(string(deep[1 : len(deep)-1])); !ok {
		t.Error("rejected nesting at maxDepth")
	}
}

func TestHashAgreesWithNumberEquality(t *testing.T) {
	for _, p := range [][2]string{{"0", "-0.0"}, {"0", "0e5"}, {"120", "1.2E+2"}, {"-120", "-1200e-1"},
		{"0.5", "5e-1"}, {"1", "1.000"}, {"100", "1e2"}} {
		if !numbersEqual(p[0], p[1]) {
			t.Errorf("%s != %s", p[0], p[1])
		}
		if hashValue(&node{kind: kNumber, s: p[0]}) != hashValue(&node{kind: kNumber, s: p[1]}) {
			t.Errorf("hash(%s) != hash(%s)", p[0], p[1])
		}
	}
	o, _ := parseJSON(`[0,1]`)
	n, _ := parseJSON(`[1,0.0]`)
	if !sameMultiset(o.kids, n.kids, []int{0, 1}) {
		t.Error("[0,1] and [1,0.0] are not the same multiset")
	}
}
