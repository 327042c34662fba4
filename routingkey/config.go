package routingkey

import (
	"errors"
	"fmt"
	"strings"
)

// DefaultKeyName is the key name used when Config.KeyNames is empty.
const DefaultKeyName = "sm-routing-key"

// Limits of a Config and of the headers the extractor reads.
const (
	// MaxKeyNames is the maximum number of Config.KeyNames.
	MaxKeyNames = 8
	// MaxCustomHeaders is the maximum number of Config.CustomHeaders.
	MaxCustomHeaders = 8
	// MaxKeyNameLen is the maximum length of a key name.
	MaxKeyNameLen = 128
	// MaxHeaderNameLen is the maximum length of a custom header name.
	MaxHeaderNameLen = 256
	// MaxBaggageBytes is the W3C baggage size limit: a baggage list whose
	// header fields, joined with ",", are longer is ignored by extraction,
	// and injection drops foreign members from the end to stay within it.
	MaxBaggageBytes = 8192
	// MaxTracestateBytes bounds the tracestate list in the same way.
	MaxTracestateBytes = 8192
	// MaxTracestateMembers is the W3C tracestate member limit; injection
	// drops foreign members from the end to stay within it.
	MaxTracestateMembers = 32
)

// ErrInvalidConfig is wrapped by [Config.Validate] and [NewExtractor].
var ErrInvalidConfig = errors.New("invalid routing-key config")

// Config says where the routing key travels.
type Config struct {
	// KeyNames are the baggage and tracestate member names and the suffixes
	// of the ot-baggage-, uberctx- and baggage- headers, in precedence order.
	// Each is a lowercase letter followed by lowercase letters, digits, '_'
	// and '-' (valid in every form). Default [DefaultKeyName]. Add e.g.
	// "sd-routing-key" when migrating from Signadot.
	KeyNames []string `json:"keyNames,omitempty"`
	// CustomHeaders are header names whose whole value is the key, in
	// precedence order (they come before every other form). Matched case
	// insensitively.
	CustomHeaders []string `json:"customHeaders,omitempty"`
}

// withDefaults returns a copy of c with defaults applied and custom header
// names lowercased; the slices never alias c's.
func (c Config) withDefaults() Config {
	out := Config{KeyNames: append([]string(nil), c.KeyNames...)}
	if len(out.KeyNames) == 0 {
		out.KeyNames = []string{DefaultKeyName}
	}
	for _, h := range c.CustomHeaders {
		out.CustomHeaders = append(out.CustomHeaders, strings.ToLower(h))
	}
	return out
}

// Validate checks c and returns all problems, each with its field path
// (e.g. "keyNames[1]: ..."), wrapping [ErrInvalidConfig]. A zero Config is
// valid (it means the defaults).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...))
	}
	if len(c.KeyNames) > MaxKeyNames {
		bad("keyNames: %d names, at most %d allowed", len(c.KeyNames), MaxKeyNames)
	}
	if len(c.CustomHeaders) > MaxCustomHeaders {
		bad("customHeaders: %d headers, at most %d allowed", len(c.CustomHeaders), MaxCustomHeaders)
	}
	d := c.withDefaults()
	derived := map[string]string{"baggage": "the W3C baggage header", "tracestate": "the W3C tracestate header"}
	seen := map[string]int{}
	for i, n := range c.KeyNames {
		if err := validKeyName(n); err != nil {
			bad("keyNames[%d]: %v", i, err)
			continue
		}
		if j, ok := seen[n]; ok {
			bad("keyNames[%d]: %q duplicates keyNames[%d]", i, n, j)
			continue
		}
		seen[n] = i
	}
	for _, n := range d.KeyNames {
		for _, p := range singlePrefixes {
			derived[p+n] = fmt.Sprintf("the %s header of key name %q", strings.TrimSuffix(p, "-"), n)
		}
	}
	seenH := map[string]int{}
	for i, h := range c.CustomHeaders {
		lh := strings.ToLower(h)
		if err := validHeaderName(h); err != nil {
			bad("customHeaders[%d]: %v", i, err)
			continue
		}
		if what, ok := derived[lh]; ok {
			bad("customHeaders[%d]: %q is already read as %s", i, h, what)
			continue
		}
		if j, ok := seenH[lh]; ok {
			bad("customHeaders[%d]: %q duplicates customHeaders[%d]", i, h, j)
			continue
		}
		seenH[lh] = i
	}
	return errors.Join(errs...)
}

func validKeyName(n string) error {
	if n == "" {
		return errors.New("empty")
	}
	if len(n) > MaxKeyNameLen {
		return fmt.Errorf("%d characters, at most %d allowed", len(n), MaxKeyNameLen)
	}
	if n[0] < 'a' || n[0] > 'z' {
		return fmt.Errorf("%q must start with a lowercase letter", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("%q: only lowercase letters, digits, '_' and '-' allowed (valid in baggage, tracestate and header names)", n)
		}
	}
	return nil
}

// isTchar reports whether c is an RFC 9110 token character.
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func validHeaderName(h string) error {
	if h == "" {
		return errors.New("empty")
	}
	if len(h) > MaxHeaderNameLen {
		return fmt.Errorf("%d characters, at most %d allowed", len(h), MaxHeaderNameLen)
	}
	for i := 0; i < len(h); i++ {
		if !isTchar(h[i]) {
			return fmt.Errorf("%q is not a valid HTTP header name (character %q)", h, h[i])
		}
	}
	return nil
}
