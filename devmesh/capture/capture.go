// Package capture owns the devmesh capture point of smart tests (issue 15): it says which requests carry a
// capture id (the X-Sandboxmesh-Capture header, or the sm-capture member of W3C baggage for hops behind
// an app that propagates only OpenTelemetry context), records their request and response as a
// diff.Capture (selected headers redacted, bodies bounded) and ships the records in batches to a Sink
// (HTTPSink: JSON arrays posted to a URL, with a bounded queue that drops and counts on overflow and
// never blocks the request path). The devmesh proxy calls it only for requests that carry an id.
package capture

import (
	"bytes"
	"net/http"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

const (
	// Header carries a capture id (the smart-test executor's CaptureHeader).
	Header = "X-Sandboxmesh-Capture"
	// BaggageKey is the W3C baggage member that carries a capture id past apps that propagate only
	// OpenTelemetry context (the executor puts both on a capture=True request).
	BaggageKey = "sm-capture"
	// MaxIDLen bounds a capture id.
	MaxIDLen = 256
	// DefaultMaxBodyBytes bounds each recorded body when a Recorder's MaxBodyBytes is 0.
	DefaultMaxBodyBytes = 64 << 10
	// Redacted replaces the values of redacted headers.
	Redacted = "[REDACTED]"
)

// DefaultRedactHeaders are always redacted; Recorder.RedactHeaders adds to them.
var DefaultRedactHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}

// ValidID reports whether s is a capture id: 1 to MaxIDLen letters, digits, '.', '-' and '_' (the
// executor's ids are "<execution>.<run>.<index>").
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// ID returns the capture id h carries: the Header's value, else the BaggageKey member of the baggage
// header; ok is false when there is none or it is not a valid id. It does not allocate when h carries
// neither.
func ID(h http.Header) (id string, ok bool) {
	if vs := h[Header]; len(vs) > 0 {
		id = strings.TrimSpace(vs[0])
		return id, ValidID(id)
	}
	for _, v := range h["Baggage"] {
		if id, ok := BaggageID(v); ok {
			return id, true
		}
	}
	return "", false
}

// BaggageID returns the value of the BaggageKey member of a W3C baggage list (members separated by ',',
// optional whitespace around keys and values, properties after ';' ignored); ok is false when the list
// has no such member or its value is not a valid id.
func BaggageID(list string) (string, bool) {
	if !strings.Contains(list, BaggageKey) {
		return "", false
	}
	for m := range strings.SplitSeq(list, ",") {
		k, v, found := strings.Cut(m, "=")
		if !found || strings.Trim(k, " \t") != BaggageKey {
			continue
		}
		v, _, _ = strings.Cut(v, ";")
		v = strings.Trim(v, " \t")
		if ValidID(v) {
			return v, true
		}
		return "", false
	}
	return "", false
}

// MaybeBaggageID is the fast path's cheap test of a baggage field value: false means the value surely has
// no capture id. It does not allocate.
func MaybeBaggageID(value []byte) bool {
	return bytes.Contains(value, baggageKeyBytes)
}

var baggageKeyBytes = []byte(BaggageKey)

// Recorder turns a request seen at a capture point into a diff.Capture. Its zero value (except Point)
// uses the defaults; it is safe for concurrent use once built.
type Recorder struct {
	// Point is the capture point (kind, namespace and name of the workload; direction).
	Point diff.CapturePoint
	// MaxBodyBytes bounds each recorded body (0: DefaultMaxBodyBytes); a longer one is cut and marked
	// BodyTruncated.
	MaxBodyBytes int
	redact       map[string]bool
}

// NewRecorder builds a Recorder; redact names headers (any case) redacted besides DefaultRedactHeaders.
func NewRecorder(point diff.CapturePoint, maxBody int, redact []string) *Recorder {
	if maxBody <= 0 {
		maxBody = DefaultMaxBodyBytes
	}
	r := &Recorder{Point: point, MaxBodyBytes: maxBody, redact: map[string]bool{}}
	for _, n := range append(append([]string(nil), DefaultRedactHeaders...), redact...) {
		r.redact[http.CanonicalHeaderKey(strings.TrimSpace(n))] = true
	}
	return r
}

// Headers copies h with the values of redacted headers replaced by Redacted (nil for no headers).
func (r *Recorder) Headers(h http.Header) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if r.redact[http.CanonicalHeaderKey(k)] {
			out[k] = []string{Redacted}
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Body keeps the first max bytes written to it and remembers whether more came.
type Body struct {
	max       int
	buf       []byte
	truncated bool
}

// NewBody returns a Body keeping at most max bytes.
func (r *Recorder) NewBody() *Body { return &Body{max: r.MaxBodyBytes} }

// Write keeps what fits; it never fails.
func (b *Body) Write(p []byte) (int, error) {
	room := b.max - len(b.buf)
	if len(p) > room {
		b.truncated = true
		b.buf = append(b.buf, p[:max(room, 0)]...)
	} else {
		b.buf = append(b.buf, p...)
	}
	return len(p), nil
}

// Bytes returns the kept bytes and whether bytes beyond the bound were cut.
func (b *Body) Bytes() ([]byte, bool) { return b.buf, b.truncated }
