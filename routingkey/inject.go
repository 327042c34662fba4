package routingkey

import (
	"net/http"
	"strings"
)

// Inject writes key into h in every form and under every configured key name:
// each custom header, a member of baggage and of tracestate per key name, and
// the ot-baggage-, uberctx- and baggage- headers. Other baggage and tracestate
// members are kept (in order, after ours; several header fields are merged
// into one); an earlier member with one of our names is replaced. Foreign
// members are dropped from the end only where the W3C limits require it
// ([MaxBaggageBytes], [MaxTracestateMembers]). An invalid key or a nil h is
// ignored.
func (e *Extractor) Inject(h http.Header, key string) {
	e.inject(h, key, false)
}

// InjectMetadata is Inject for gRPC metadata (lowercase keys).
func (e *Extractor) InjectMetadata(md map[string][]string, key string) {
	e.inject(md, key, true)
}

func (e *Extractor) inject(m map[string][]string, key string, lower bool) {
	if m == nil || !validKey(key) {
		return
	}
	for _, s := range e.sources {
		k := s.canon
		if lower {
			k = s.lower
		}
		switch s.kind {
		case kindSingle:
			m[k] = []string{key}
		case kindBaggage:
			m[k] = []string{e.mergeBaggage(m[k], key)}
		case kindTracestate:
			m[k] = []string{e.mergeTracestate(m[k], key)}
		}
	}
}

// splitList returns the trimmed, non-empty members of the comma-joined fields.
func splitList(fields []string) []string {
	var out []string
	for _, f := range fields {
		for m := range strings.SplitSeq(f, ",") {
			if m = strings.Trim(m, " \t"); m != "" {
				out = append(out, m)
			}
		}
	}
	return out
}

// memberName returns the name of a list member: the text before the first
// '=' (or ';' for baggage), trimmed.
func memberName(m string, stops string) string {
	if i := strings.IndexAny(m, stops); i >= 0 {
		m = m[:i]
	}
	return strings.Trim(m, " \t")
}

func (e *Extractor) ours(name string) bool {
	for _, n := range e.names {
		if n == name {
			return true
		}
	}
	return false
}

func (e *Extractor) mergeBaggage(fields []string, key string) string {
	var b strings.Builder
	for i, n := range e.names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(key)
	}
	for _, m := range splitList(fields) {
		if e.ours(memberName(m, "=;")) {
			continue
		}
		if b.Len()+1+len(m) > MaxBaggageBytes {
			continue // keep later, shorter members if they fit
		}
		b.WriteByte(',')
		b.WriteString(m)
	}
	return b.String()
}

func (e *Extractor) mergeTracestate(fields []string, key string) string {
	var b strings.Builder
	members := 0
	for i, n := range e.names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(key)
		members++
	}
	for _, m := range splitList(fields) {
		if e.ours(memberName(m, "=")) {
			continue
		}
		if members >= MaxTracestateMembers {
			break
		}
		if b.Len()+1+len(m) > MaxTracestateBytes {
			continue
		}
		b.WriteByte(',')
		b.WriteString(m)
		members++
	}
	return b.String()
}
