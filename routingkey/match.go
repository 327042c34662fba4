package routingkey

import (
	"regexp"
	"strings"
)

// HeaderMatcher matches one request header carrying a routing key, for mesh
// backends (Istio VirtualService, Gateway API HTTPRoute header matches).
type HeaderMatcher struct {
	// Header is the lowercase header name.
	Header string
	// Regex is an RE2 regex that must match the whole header value (Envoy
	// semantics: several header fields of the same name are joined with ",").
	Regex string
	// Exact is non-empty for single-valued headers (ot-baggage-*, uberctx-*,
	// baggage-*, custom headers) where an exact match is enough; it matches
	// the same values as Regex.
	Exact string
}

// HeaderMatchers returns one matcher per header in [Extractor.HeaderNames]
// order; a request carries key if any of them matches. It returns nil for an
// invalid key.
//
// For baggage the regex matches a comma-joined list that contains, anywhere, a
// member `OWS name OWS "=" OWS key OWS [";" properties]` for one of the key
// names; for tracestate a member `OWS name "=" key OWS`. A longer key, a key
// prefix or the key under another member name does not match. The regexes
// use only RE2 syntax that Go's regexp shares, and stay small (see the
// package tests for their RE2 program size).
//
// Deliberate divergences from [Extractor.Extract] (documented in
// docs/routing-key.md): a percent-encoded key in baggage is not matched;
// when one header carries several different keys under our names, every one
// of them matches (Extract returns the first); size limits are not applied.
func (e *Extractor) HeaderMatchers(key string) []HeaderMatcher {
	if !validKey(key) {
		return nil
	}
	alt := nameAlternation(e.names)
	out := make([]HeaderMatcher, 0, len(e.sources))
	for _, s := range e.sources {
		m := HeaderMatcher{Header: s.lower}
		switch s.kind {
		case kindSingle:
			m.Regex, m.Exact = regexp.QuoteMeta(key), key
		case kindBaggage:
			m.Regex = `(?s:.*,)?[ \t]*` + alt + `[ \t]*=[ \t]*` + key + `[ \t]*(?s:[;,].*)?`
		case kindTracestate:
			m.Regex = `(?s:.*,)?[ \t]*` + alt + `=` + key + `[ \t]*(?s:,.*)?`
		}
		out = append(out, m)
	}
	return out
}

func nameAlternation(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = regexp.QuoteMeta(n)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "(?:" + strings.Join(q, "|") + ")"
}
