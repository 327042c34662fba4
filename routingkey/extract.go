package routingkey

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// singlePrefixes are the single-valued header forms, in precedence order:
// OpenTracing, Jaeger, B3/Brave.
var singlePrefixes = []string{"ot-baggage-", "uberctx-", "baggage-"}

type kind uint8

const (
	kindSingle kind = iota
	kindBaggage
	kindTracestate
)

// source is one header the extractor reads.
type source struct {
	kind  kind
	canon string // key in an http.Header
	lower string // key in gRPC metadata; the name given to meshes
}

// Extractor reads and writes routing keys according to a Config. It is
// immutable and safe for concurrent use.
type Extractor struct {
	cfg     Config
	sources []source // in precedence order
	names   []string // cfg.KeyNames
}

// NewExtractor validates cfg, applies its defaults and returns an Extractor.
func NewExtractor(cfg Config) (*Extractor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("routing-key extractor: %w", err)
	}
	c := cfg.withDefaults()
	e := &Extractor{cfg: c, names: c.KeyNames}
	add := func(k kind, name string) {
		e.sources = append(e.sources, source{kind: k, canon: textproto.CanonicalMIMEHeaderKey(name), lower: name})
	}
	for _, h := range c.CustomHeaders {
		add(kindSingle, h)
	}
	add(kindBaggage, "baggage")
	add(kindTracestate, "tracestate")
	for _, p := range singlePrefixes {
		for _, n := range c.KeyNames {
			add(kindSingle, p+n)
		}
	}
	return e, nil
}

// Default is an Extractor with the zero Config: key name [DefaultKeyName], no
// custom headers.
var Default = func() *Extractor {
	e, err := NewExtractor(Config{})
	if err != nil {
		panic(err)
	}
	return e
}()

// Config returns the configuration with defaults applied (a copy).
func (e *Extractor) Config() Config {
	return Config{
		KeyNames:      append([]string(nil), e.cfg.KeyNames...),
		CustomHeaders: append([]string(nil), e.cfg.CustomHeaders...),
	}
}

// HeaderNames returns every header the extractor reads and Inject writes,
// lowercase, in precedence order. Proxies use it to know which headers to
// keep; it is also the propagator's Fields.
func (e *Extractor) HeaderNames() []string {
	out := make([]string, len(e.sources))
	for i, s := range e.sources {
		out[i] = s.lower
	}
	return out
}

// Extract returns the routing key carried by h (see the package doc for the
// forms and their precedence). It only returns valid keys. It reads the
// canonical header keys, as net/http stores them. It does not allocate unless
// the key is percent-encoded in baggage.
func (e *Extractor) Extract(h http.Header) (key string, ok bool) {
	return e.extract(h, false)
}

// ExtractMetadata is Extract for gRPC metadata (or any map whose keys are
// lowercase header names).
func (e *Extractor) ExtractMetadata(md map[string][]string) (string, bool) {
	return e.extract(md, true)
}

func (e *Extractor) extract(m map[string][]string, lower bool) (string, bool) {
	if len(m) == 0 {
		return "", false
	}
	for i := range e.sources {
		s := &e.sources[i]
		k := s.canon
		if lower {
			k = s.lower
		}
		vs := m[k]
		if len(vs) == 0 {
			continue
		}
		var key string
		var ok bool
		switch s.kind {
		case kindSingle:
			key, ok = vs[0], len(vs) == 1 && validKey(vs[0])
		case kindBaggage:
			key, ok = e.fromList(vs, MaxBaggageBytes, baggageValue)
		case kindTracestate:
			key, ok = e.fromList(vs, MaxTracestateBytes, tracestateValue)
		}
		if ok {
			return key, true
		}
	}
	return "", false
}

// fromList applies find to the header fields vs of a comma-separated list,
// key name by key name. Scanning the fields one by one is the same as
// scanning their comma-joined value, as field boundaries are member
// boundaries.
func (e *Extractor) fromList(vs []string, limit int, find func(v, name string) (string, bool)) (string, bool) {
	n := len(vs) - 1
	for _, v := range vs {
		n += len(v)
	}
	if n > limit {
		return "", false
	}
	for _, name := range e.names {
		for _, v := range vs {
			if key, ok := find(v, name); ok {
				return key, true
			}
		}
	}
	return "", false
}

func isOWS(c byte) bool { return c == ' ' || c == '\t' }

func skipOWS(v string, i int) int {
	for i < len(v) && isOWS(v[i]) {
		i++
	}
	return i
}

func trimRightOWS(v string) string {
	for len(v) > 0 && isOWS(v[len(v)-1]) {
		v = v[:len(v)-1]
	}
	return v
}

// baggageValue returns the first valid key in a baggage list v from a member
// `OWS name OWS "=" OWS value OWS [";" properties]`. The value may be
// percent-encoded. Properties are skipped, not validated; other members are
// not parsed beyond finding the comma that ends them.
func baggageValue(v, name string) (string, bool) {
	for i := 0; i < len(v); {
		i = skipOWS(v, i)
		if strings.HasPrefix(v[i:], name) {
			if key, ok := baggageMember(v[i+len(name):]); ok {
				return key, true
			}
		}
		c := strings.IndexByte(v[i:], ',')
		if c < 0 {
			break
		}
		i += c + 1
	}
	return "", false
}

// baggageMember parses the rest of a member after its name:
// OWS "=" OWS value OWS [";" ...] up to the end of the member.
func baggageMember(v string) (string, bool) {
	j := skipOWS(v, 0)
	if j >= len(v) || v[j] != '=' {
		return "", false
	}
	j = skipOWS(v, j+1)
	// Fast path: a run of key characters ended by the end of the list, ','
	// or ';' (what Inject writes), validated in the same pass.
	k := j
	for k < len(v) && keyChar[v[k]] != 0 {
		k++
	}
	if k == len(v) || v[k] == ',' || v[k] == ';' {
		return v[j:k], validKeyRun(v[j:k])
	}
	for k < len(v) && v[k] != ';' && v[k] != ',' {
		k++
	}
	return decodeKey(trimRightOWS(v[j:k]))
}

// validKeyRun reports whether s, known to hold only key characters, is a
// valid key (length and first and last character).
func validKeyRun(s string) bool {
	n := len(s)
	return n > 0 && n <= MaxKeyLen && keyChar[s[0]] == 1 && keyChar[s[n-1]] == 1
}

// tracestateValue returns the first valid key in a tracestate list v from a
// member `OWS name "=" value OWS`.
func tracestateValue(v, name string) (string, bool) {
	for i := 0; i < len(v); {
		i = skipOWS(v, i)
		c := strings.IndexByte(v[i:], ',')
		end := len(v)
		if c >= 0 {
			end = i + c
		}
		if m := v[i:end]; len(m) > len(name) && m[len(name)] == '=' && m[:len(name)] == name {
			if val := trimRightOWS(m[len(name)+1:]); validKey(val) {
				return val, true
			}
		}
		if c < 0 {
			break
		}
		i = end + 1
	}
	return "", false
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// decodeKey returns the percent-decoded v if it is a valid key. It allocates
// only when v contains a '%'.
func decodeKey(v string) (string, bool) {
	if strings.IndexByte(v, '%') < 0 {
		return v, validKey(v)
	}
	if len(v) > 3*MaxKeyLen {
		return "", false
	}
	var buf [MaxKeyLen]byte
	n := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '%' {
			if i+2 >= len(v) {
				return "", false
			}
			hi, ok1 := unhex(v[i+1])
			lo, ok2 := unhex(v[i+2])
			if !ok1 || !ok2 {
				return "", false
			}
			c = hi<<4 | lo
			i += 2
		}
		if n == len(buf) {
			return "", false
		}
		buf[n] = c
		n++
	}
	if !validKey(string(buf[:n])) { // no allocation: the conversion does not escape
		return "", false
	}
	return string(buf[:n]), true
}
