package routingkey

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// This file holds a deliberately naive reference model of the documented
// extraction rules (split, cut, trim), used as an oracle for the fast scanner
// and for the mesh regexes.

var validKeyRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// refBaggage returns the valid values of members named one of names in the
// baggage list joined, in precedence order (name by name, then position).
// With decode, values are percent-decoded first.
func refBaggage(joined string, names []string, decode bool) []string {
	var out []string
	members := strings.Split(joined, ",")
	for _, n := range names {
		for _, m := range members {
			if i := strings.IndexByte(m, ';'); i >= 0 {
				m = m[:i]
			}
			name, val, ok := strings.Cut(m, "=")
			if !ok || strings.Trim(name, " \t") != n {
				continue
			}
			val = strings.Trim(val, " \t")
			if decode {
				d, err := url.PathUnescape(val)
				if err != nil {
					continue
				}
				val = d
			}
			if validKeyRE.MatchString(val) {
				out = append(out, val)
			}
		}
	}
	return out
}

// refTracestate is refBaggage for tracestate.
func refTracestate(joined string, names []string) []string {
	var out []string
	members := strings.Split(joined, ",")
	for _, n := range names {
		for _, m := range members {
			m = strings.Trim(m, " \t")
			name, val, ok := strings.Cut(m, "=")
			if ok && name == n && validKeyRE.MatchString(val) {
				out = append(out, val)
			}
		}
	}
	return out
}

// refExtract applies the documented precedence to lowercase-keyed headers.
func refExtract(e *Extractor, md map[string][]string) (string, bool) {
	for _, h := range e.HeaderNames() {
		vs := md[h]
		if len(vs) == 0 {
			continue
		}
		joined := strings.Join(vs, ",")
		switch h {
		case "baggage":
			if len(joined) <= MaxBaggageBytes {
				if ks := refBaggage(joined, e.Config().KeyNames, true); len(ks) > 0 {
					return ks[0], true
				}
			}
		case "tracestate":
			if len(joined) <= MaxTracestateBytes {
				if ks := refTracestate(joined, e.Config().KeyNames); len(ks) > 0 {
					return ks[0], true
				}
			}
		default:
			if validKeyRE.MatchString(joined) {
				return joined, true
			}
		}
	}
	return "", false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

var regexCache = map[string]*regexp.Regexp{}

func fullMatch(t testing.TB, re, v string) bool {
	t.Helper()
	r, ok := regexCache[re]
	if !ok {
		var err error
		r, err = regexp.Compile(`^(?:` + re + `)$`)
		if err != nil {
			t.Fatalf("regex %q does not compile: %v", re, err)
		}
		if len(regexCache) > 1000 {
			clear(regexCache)
		}
		regexCache[re] = r
	}
	return r.MatchString(v)
}

// checkMatchers checks that the mesh matchers of key agree with the literal
// reference model on the single header value v of every header e reads, and
// that Exact agrees with Regex.
func checkMatchers(t testing.TB, e *Extractor, key, v string) {
	t.Helper()
	names := e.Config().KeyNames
	for _, m := range e.HeaderMatchers(key) {
		got := fullMatch(t, m.Regex, v)
		var want bool
		switch m.Header {
		case "baggage":
			want = contains(refBaggage(v, names, false), key)
		case "tracestate":
			want = contains(refTracestate(v, names), key)
		default:
			want = v == key
			if m.Exact != key {
				t.Fatalf("%s: Exact = %q, want %q", m.Header, m.Exact, key)
			}
		}
		if got != want {
			t.Fatalf("%s matcher for key %q on %q: regex %q matched=%v, reference says %v", m.Header, key, v, m.Regex, got, want)
		}
		// Agreement with Extract on that single header: if Extract (size
		// limits apart) finds a literal key, the matcher for it matches.
		md := map[string][]string{m.Header: {v}}
		if k, ok := e.ExtractMetadata(md); ok && k == key && !strings.Contains(v, "%") && !got {
			t.Fatalf("%s: Extract found %q in %q but the matcher does not match", m.Header, k, v)
		}
		if got && len(v) <= MaxBaggageBytes {
			if k, ok := e.ExtractMetadata(md); !ok {
				t.Fatalf("%s: matcher for %q matched %q but Extract found nothing", m.Header, key, v)
			} else if k != key && !contains(refBaggage(v, names, true), k) && !contains(refTracestate(v, names), k) {
				t.Fatalf("%s: matcher for %q matched %q but Extract found unrelated %q", m.Header, key, v, k)
			}
		}
	}
}
