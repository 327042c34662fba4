package routingkey

import (
	"net/http"
	"strings"
	"testing"
)

var fuzzExtractors = []*Extractor{
	Default,
	func() *Extractor {
		e, _ := NewExtractor(Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"x-route"}})
		return e
	}(),
	func() *Extractor {
		e, _ := NewExtractor(Config{KeyNames: []string{"k", "kk"}})
		return e
	}(),
}

// checkList checks Extract on one list header against the reference model
// and the "never a key that was not in the header" rule.
func checkList(t *testing.T, header, v string) {
	for _, e := range fuzzExtractors {
		md := map[string][]string{header: {v}}
		k, ok := e.ExtractMetadata(md)
		wk, wok := refExtract(e, md)
		if k != wk || ok != wok {
			t.Fatalf("%s %q: Extract = %q %v, reference = %q %v", header, v, k, ok, wk, wok)
		}
		if ok && (Validate(k) != nil || (!strings.Contains(v, k) && !strings.Contains(v, "%"))) {
			t.Fatalf("%s %q: Extract returned %q", header, v, k)
		}
		hk, hok := e.Extract(http.Header{http.CanonicalHeaderKey(header): {v}})
		if hk != k || hok != ok {
			t.Fatalf("Extract(http.Header) = %q %v, ExtractMetadata = %q %v", hk, hok, k, ok)
		}
	}
}

func FuzzBaggage(f *testing.F) {
	for _, s := range []string{"sm-routing-key=abc", "a=1, sm-routing-key = abc ;p=1,b=2", "sm-routing-key=%61bc", "x-sm-routing-key=abc,sm-routing-key=ABC", ",,;=%", "sd-routing-key=old,sm-routing-key=new"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) { checkList(t, "baggage", v) })
}

func FuzzTracestate(f *testing.F) {
	for _, s := range []string{"sm-routing-key=abc", "rojo=00f067aa0ba902b7, sm-routing-key=abc ,congo=t61", "sm-routing-key =abc", "t@sm-routing-key=abc", "k=1,kk=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) { checkList(t, "tracestate", v) })
}

// FuzzExtract feeds several headers (and several fields of baggage) at once and
// checks precedence against the reference model.
func FuzzExtract(f *testing.F) {
	f.Add("x=1", "sm-routing-key=abc", "sm-routing-key=ts", "ot", "ub", "b3", "custom")
	f.Add("sd-routing-key=a", "", "", "", "uber-ctx", "", "BAD")
	f.Add("", "", "", "", "", "b3", "")
	f.Fuzz(func(t *testing.T, bag1, bag2, ts, ot, ub, b3, custom string) {
		for _, e := range fuzzExtractors {
			names := e.Config().KeyNames
			md := map[string][]string{}
			add := func(k, v string) {
				if v != "" {
					md[k] = append(md[k], v)
				}
			}
			add("baggage", bag1)
			add("baggage", bag2)
			add("tracestate", ts)
			add("ot-baggage-"+names[len(names)-1], ot)
			add("uberctx-"+names[0], ub)
			add("baggage-"+names[0], b3)
			add("x-route", custom)
			k, ok := e.ExtractMetadata(md)
			wk, wok := refExtract(e, md)
			if k != wk || ok != wok {
				t.Fatalf("%q: Extract = %q %v, reference = %q %v", md, k, ok, wk, wok)
			}
			h := http.Header{}
			for name, vs := range md {
				for _, v := range vs {
					h.Add(name, v)
				}
			}
			if hk, hok := e.Extract(h); hk != k || hok != ok {
				t.Fatalf("Extract(http.Header) = %q %v, ExtractMetadata = %q %v", hk, hok, k, ok)
			}
		}
	})
}

// FuzzHeaderMatchers checks that the mesh regexes agree with the reference
// model (and with Extract) on fuzzed header values and keys.
func FuzzHeaderMatchers(f *testing.F) {
	f.Add("sm-routing-key=abc", "abc")
	f.Add("a=1,\tsm-routing-key \t= abc ;p, b", "abc")
	f.Add("sm-routing-key=abcx", "abc")
	f.Add("x-sm-routing-key=abc", "abc")
	f.Add("sd-routing-key=k-1,sm-routing-key=zz", "k-1")
	f.Add("kk=a,k=b", "a")
	f.Fuzz(func(t *testing.T, v, key string) {
		if Validate(key) != nil {
			if Default.HeaderMatchers(key) != nil {
				t.Fatal("matchers for an invalid key")
			}
			return
		}
		for _, e := range fuzzExtractors {
			checkMatchers(t, e, key, v)
		}
	})
}

// FuzzInject checks that Inject always makes the key extractable, replaces
// our old members and keeps the others.
func FuzzInject(f *testing.F) {
	f.Add("a=1,sm-routing-key=old;p", "rojo=1,sm-routing-key=old", "abc")
	f.Add(",, ;", "=", "k")
	f.Fuzz(func(t *testing.T, bag, ts, key string) {
		for _, e := range fuzzExtractors {
			h := http.Header{"Baggage": {bag}, "Tracestate": {ts}}
			e.Inject(h, key)
			k, ok := e.Extract(h)
			if Validate(key) != nil {
				if h.Get("Baggage") != bag || h.Get("Tracestate") != ts {
					t.Fatal("invalid key changed the headers")
				}
				continue
			}
			if k != key || !ok {
				t.Fatalf("after Inject(%q) into baggage %q: Extract = %q %v", key, bag, k, ok)
			}
			out := h.Get("Baggage")
			if len(out) > MaxBaggageBytes {
				t.Fatalf("baggage grew over the limit: %d", len(out))
			}
			outMembers := map[string]bool{}
			for _, m := range splitList([]string{out}) {
				outMembers[m] = true
			}
			for _, m := range splitList([]string{bag}) {
				if !e.ours(memberName(m, "=;")) && len(bag) < 4000 && !outMembers[m] {
					t.Fatalf("member %q of %q lost: %q", m, bag, out)
				}
			}
			for _, kb := range [][]string{h.Values("Baggage"), h.Values("Tracestate")} {
				for _, n := range e.Config().KeyNames {
					for _, m := range splitList(kb) {
						if memberName(m, "=;") == n && m != n+"="+key {
							t.Fatalf("old member %q left in %q", m, kb)
						}
					}
				}
			}
		}
	})
}

// FuzzConfig checks that any config either fails validation with an error or
// yields an extractor whose matchers compile.
func FuzzConfig(f *testing.F) {
	f.Add("sm-routing-key\nsd-routing-key", "x-route")
	f.Add("A\n\n", "baggage\nx y")
	f.Fuzz(func(t *testing.T, names, headers string) {
		var cfg Config
		if names != "" {
			cfg.KeyNames = strings.Split(names, "\n")
		}
		if headers != "" {
			cfg.CustomHeaders = strings.Split(headers, "\n")
		}
		e, err := NewExtractor(cfg)
		if (err == nil) != (cfg.Validate() == nil) {
			t.Fatalf("NewExtractor and Validate disagree: %v", err)
		}
		if err != nil {
			return
		}
		for _, m := range e.HeaderMatchers("abc") {
			fullMatch(t, m.Regex, "abc")
		}
		h := http.Header{}
		e.Inject(h, "abc")
		if k, _ := e.Extract(h); k != "abc" {
			t.Fatalf("round trip = %q", k)
		}
	})
}

// FuzzValidate checks the key validator against the documented regex and
// that New's alphabet stays inside it.
func FuzzValidate(f *testing.F) {
	for _, s := range []string{"abc", "a", "-a", "a-", "A", strings.Repeat("a", 63), strings.Repeat("a", 64), "a--b", "\xff", New()} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := Validate(key)
		if (err == nil) != validKeyRE.MatchString(key) {
			t.Fatalf("Validate(%q) = %v, regex says %v", key, err, validKeyRE.MatchString(key))
		}
		if _, ok := FromContext(WithKey(t.Context(), key)); ok != (err == nil) {
			t.Fatalf("WithKey(%q) stored=%v", key, ok)
		}
	})
}
