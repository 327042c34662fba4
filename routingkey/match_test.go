package routingkey

import (
	"math/rand/v2"
	"regexp/syntax"
	"strings"
	"testing"
)

func TestHeaderMatchersTable(t *testing.T) {
	e := Default
	bag := func(v string) map[string][]string { return hm("baggage", v) }
	ts := func(v string) map[string][]string { return hm("tracestate", v) }
	tests := []struct {
		name  string
		h     map[string][]string
		match bool
	}{
		{"baggage alone", bag("sm-routing-key=abc"), true},
		{"baggage first", bag("sm-routing-key=abc,a=1"), true},
		{"baggage middle OWS props", bag("a=1, \tsm-routing-key \t=\t abc \t;p=1;q ,b=2"), true},
		{"baggage last", bag("a=1;p,sm-routing-key=abc"), true},
		{"baggage joined fields", bag("a=1,sm-routing-key=abc,c=3"), true},
		{"baggage duplicate member", bag("sm-routing-key=zzz,sm-routing-key=abc"), true},
		{"baggage longer key", bag("sm-routing-key=abcx"), false},
		{"baggage key prefix", bag("sm-routing-key=ab"), false},
		{"baggage key suffix", bag("sm-routing-key=xabc"), false},
		{"baggage other member name", bag("x-sm-routing-key=abc"), false},
		{"baggage name suffix", bag("sm-routing-keyx=abc"), false},
		{"baggage in property", bag("a=1;sm-routing-key=abc"), false},
		{"baggage in value", bag("a=sm-routing-key=abc"), false},
		{"baggage percent-encoded (divergence)", bag("sm-routing-key=%61bc"), false},
		{"tracestate", ts("rojo=1, sm-routing-key=abc ,congo=2"), true},
		{"tracestate OWS around =", ts("sm-routing-key =abc"), false},
		{"tracestate longer", ts("sm-routing-key=abc-d"), false},
		{"ot-baggage", hm("ot-baggage-sm-routing-key", "abc"), true},
		{"ot-baggage longer", hm("ot-baggage-sm-routing-key", "abcd"), false},
		{"uberctx joined", hm("uberctx-sm-routing-key", "abc,abc"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			matched := false
			for _, m := range e.HeaderMatchers("abc") {
				for h, vs := range tt.h {
					if h == m.Header && fullMatch(t, m.Regex, strings.Join(vs, ",")) {
						matched = true
					}
				}
			}
			if matched != tt.match {
				t.Fatalf("matched = %v, want %v", matched, tt.match)
			}
			for h, vs := range tt.h {
				checkMatchers(t, e, "abc", strings.Join(vs, ","))
				_ = h
			}
		})
	}
	if e.HeaderMatchers("Not A Key") != nil {
		t.Fatal("HeaderMatchers of an invalid key must be nil")
	}
}

// TestHeaderMatchersProgramSize logs the RE2 program size (Go's compiled
// instruction count, close to RE2's) so mesh backends can set Envoy's
// re2.max_program_size limits, and keeps it bounded.
func TestHeaderMatchersProgramSize(t *testing.T) {
	e := mustExtractor(t, Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}})
	for _, m := range e.HeaderMatchers(strings.Repeat("k", 63)) {
		re, err := syntax.Parse(`^(?:`+m.Regex+`)$`, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		p, err := syntax.Compile(re.Simplify())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %d instructions: %s", m.Header, len(p.Inst), m.Regex)
		if len(p.Inst) > 200 {
			t.Errorf("%s regex program has %d instructions", m.Header, len(p.Inst))
		}
	}
}

// genList builds a random comma-separated list from pieces that stress the
// grammar: our names and near misses, keys and near misses, whitespace,
// properties, percent-encoding, empty members and junk.
func genList(r *rand.Rand, names []string, key string) string {
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	ows := func() string { return pick("", "", "", " ", "\t", "  ", " \t ") }
	var b strings.Builder
	n := 1 + r.IntN(5)
	for i := range n {
		if i > 0 {
			b.WriteString(ows() + pick(",", ",", ",", ",,", ";", "") + ows())
		}
		name := pick(append(append(append(names, names...), names...), "x-"+names[0], names[0]+"x", strings.ToUpper(names[0]), "foo", "", names[0][1:], "a@"+names[0])...)
		val := pick(key, key, key, key, key+"x", key[:len(key)-1], "x"+key, "%61"+key[1:], strings.ToUpper(key), "", "a b", key+"=", "ok-key", "-"+key)
		eq := pick("=", "=", "=", " =", "= ", " = ", "==", "")
		prop := pick("", "", ";p", ";p=1", " ; p = v ", ";"+names[0]+"="+key, ";", "\x00", "\xff")
		switch r.IntN(12) {
		case 0:
			b.WriteString(pick("\"", "\\", "%", "\n", "é", "\xff", "="))
		case 1:
			// Nothing: an empty member.
		default:
			b.WriteString(ows() + name + eq + val + prop + ows())
		}
	}
	return b.String()
}

func TestHeaderMatchersProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cfgs := []Config{{}, {KeyNames: []string{"sm-routing-key", "sd-routing-key"}}, {KeyNames: []string{"k", "kk"}}}
	keys := []string{"abc", "a", "k-1", "q2b7a3xzr5mw4c6d"}
	iters := 20000
	if testing.Short() {
		iters = 2000
	}
	matchedSome := 0
	for i := range iters {
		e := mustExtractor(t, cfgs[i%len(cfgs)])
		key := keys[r.IntN(len(keys))]
		v := genList(r, e.Config().KeyNames, key)
		for _, k := range keys {
			checkMatchers(t, e, k, v)
		}
		if contains(refBaggage(v, e.Config().KeyNames, false), key) {
			matchedSome++
		}
		// The fast scanner agrees with the reference model on this header
		// in every list form.
		for _, h := range []string{"baggage", "tracestate"} {
			md := hm(h, v)
			gk, gok := e.ExtractMetadata(md)
			wk, wok := refExtract(e, md)
			if gk != wk || gok != wok {
				t.Fatalf("%s %q: Extract = %q %v, reference = %q %v", h, v, gk, gok, wk, wok)
			}
		}
	}
	if matchedSome < iters/10 {
		t.Fatalf("generator too weak: only %d of %d lists carry the key", matchedSome, iters)
	}
}
