package diff

import (
	"bytes"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// DefaultIgnoreHeaders are the headers skipped when Options.IgnoreHeaders
// is nil: hop-by-hop headers, headers that vary per request or per
// connection (grpc-timeout is the caller's deadline left, to the
// microsecond), and the trace and routing-key propagation headers (the
// sandbox run carries a routing key, the baseline runs do not). A trailing
// "*" matches a prefix.
var DefaultIgnoreHeaders = []string{
	"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
	"te", "trailer", "transfer-encoding", "upgrade",
	"content-length", "date", "age", "expires", "last-modified", "etag", "server-timing",
	"x-request-id", "x-correlation-id", "x-amzn-trace-id", "x-envoy-upstream-service-time",
	"x-envoy-expected-rq-timeout-ms", "grpc-timeout", "x-forwarded-for", "x-forwarded-port", "x-real-ip",
	"traceparent", "tracestate", "baggage", "b3", "x-b3-*", "uber-trace-id", "uberctx-*",
	"ot-baggage-*", "baggage-*", "x-sandboxmesh-*", "sm-*", "x-capture-id",
	"authorization", "cookie", "set-cookie",
}

// Options tune [Compare] and [DiffCaptures]. The zero value is usable.
type Options struct {
	// IgnoreHeaders lists header names (case-insensitive; a trailing "*"
	// matches a prefix) left out of the diff. Nil means
	// DefaultIgnoreHeaders; an empty non-nil slice ignores none.
	IgnoreHeaders []string
	// MaxOps is the number of ops reported per pair (default 100).
	MaxOps int
	// MaxValueBytes bounds the encoded value and oldValue of an op
	// (default 256).
	MaxValueBytes int
	// Expected are values the target run differs by on purpose: the
	// routing key it carries and the name of the sandbox (or route group)
	// it reaches. Apps echo them (a trace's baggage, a fork's pod name),
	// so an op whose value or old value contains one is noise (green),
	// unless it is red (a status or type change, a removal). Values of
	// fewer than MinExpectedBytes bytes are ignored: they would match by
	// chance.
	Expected []string
}

// MinExpectedBytes is the shortest Options.Expected value used.
const MinExpectedBytes = 4

// expected reports whether an op's value or old value contains one of the
// Expected values.
func (o Options) expected(d *DiffOp) bool {
	for _, e := range o.Expected {
		if len(e) < MinExpectedBytes {
			continue
		}
		if containsIn(d.val, e) || containsIn(d.old, e) || bytes.Contains(d.Value, []byte(e)) || bytes.Contains(d.OldValue, []byte(e)) {
			return true
		}
	}
	return false
}

// containsIn reports whether the encoding of n (its first 4 KiB) contains e.
func containsIn(n *node, e string) bool {
	return n != nil && bytes.Contains(encodeTrunc(n, 4<<10), []byte(e))
}

func (o Options) maxOps() int {
	if o.MaxOps <= 0 {
		return 100
	}
	return o.MaxOps
}

func (o Options) maxValueBytes() int {
	if o.MaxValueBytes <= 0 {
		return 256
	}
	return o.MaxValueBytes
}

type headerFilter struct {
	exact    map[string]bool
	prefixes []string
}

func newHeaderFilter(names []string) headerFilter {
	if names == nil {
		names = DefaultIgnoreHeaders
	}
	f := headerFilter{exact: map[string]bool{}}
	for _, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if p, ok := strings.CutSuffix(n, "*"); ok {
			f.prefixes = append(f.prefixes, p)
		} else {
			f.exact[n] = true
		}
	}
	return f
}

func (f headerFilter) ignored(name string) bool {
	if f.exact[name] {
		return true
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// body is a captured body, decoded on first use (bodies with equal bytes
// are never decoded): JSON when isJSON, else text or a binary placeholder.
type body struct {
	raw       []byte
	truncated bool
	loaded    bool
	isJSON    bool
	value     *node
}

func (b *body) empty() bool { return len(b.raw) == 0 }

func (b *body) load() {
	if b.loaded {
		return
	}
	b.loaded = true
	if !b.truncated {
		if v, ok := decodeJSON(b.raw); ok {
			b.isJSON, b.value = true, v
			return
		}
	}
	if utf8.Valid(b.raw) {
		b.value = str(string(b.raw))
	} else {
		b.value = str("<binary " + strconv.Itoa(len(b.raw)) + " bytes>")
	}
}

// parsed is a capture prepared for diffing, decoded once.
type parsed struct {
	method, path string
	query        map[string]string
	rawQuery     string
	queryOK      bool
	reqHeaders   map[string]string
	reqBody      body
	status       int
	respHeaders  map[string]string
	respBody     body
}

func parseCapture(c *Capture, f headerFilter) *parsed {
	p := &parsed{
		method: c.Request.Method, path: c.Request.Path, rawQuery: c.Request.Query,
		reqHeaders: normHeaders(c.Request.Headers, f), reqBody: body{raw: c.Request.Body, truncated: c.Request.BodyTruncated},
		status: c.Response.Status, respHeaders: normHeaders(c.Response.Headers, f),
		respBody: body{raw: c.Response.Body, truncated: c.Response.BodyTruncated},
	}
	if q, err := url.ParseQuery(c.Request.Query); err == nil {
		p.queryOK = true
		p.query = make(map[string]string, len(q))
		for k, v := range q {
			p.query[k] = strings.Join(v, ", ")
		}
	}
	return p
}

func normHeaders(h map[string][]string, f headerFilter) map[string]string {
	out := make(map[string]string, len(h))
	for k, v := range h {
		k = strings.ToLower(k)
		if f.ignored(k) {
			continue
		}
		if prev, ok := out[k]; ok {
			out[k] = prev + ", " + strings.Join(v, ", ")
		} else {
			out[k] = strings.Join(v, ", ")
		}
	}
	return out
}

// DiffCaptures returns the ops that turn baseline into target, in path
// order, unclassified, with values truncated as opts say (all ops up to
// the internal bound, not only opts.MaxOps).
func DiffCaptures(baseline, target Capture, opts Options) []DiffOp {
	f := newHeaderFilter(opts.IgnoreHeaders)
	ops := diffParsed(parseCapture(&baseline, f), parseCapture(&target, f))
	for i := range ops {
		ops[i].finish(opts.maxValueBytes())
	}
	return ops
}

func diffParsed(a, b *parsed) []DiffOp {
	w := &walker{}
	w.push(seg("request"))
	w.scalar("method", a.method, b.method)
	w.scalar("path", a.path, b.path)
	if a.queryOK && b.queryOK {
		w.strMap("query", a.query, b.query)
	} else {
		w.scalar("query", a.rawQuery, b.rawQuery)
	}
	w.strMap("headers", a.reqHeaders, b.reqHeaders)
	w.body(&a.reqBody, &b.reqBody)
	w.pop()
	w.push(seg("response"))
	if a.status != b.status {
		w.push(seg("status"))
		w.emit(OpReplace, &node{kind: kNumber, s: strconv.Itoa(a.status)}, &node{kind: kNumber, s: strconv.Itoa(b.status)}, false, false, false)
		w.pop()
	}
	w.strMap("headers", a.respHeaders, b.respHeaders)
	w.body(&a.respBody, &b.respBody)
	w.pop()
	return w.ops
}

// str makes a string node.
func str(s string) *node { return &node{kind: kString, s: s} }

func (w *walker) scalar(name, a, b string) {
	if a == b {
		return
	}
	w.push(seg(name))
	w.emit(OpReplace, str(a), str(b), false, false, false)
	w.pop()
}

func (w *walker) strMap(name string, a, b map[string]string) {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	w.push(seg(name))
	for _, k := range keys {
		av, inA := a[k]
		bv, inB := b[k]
		w.push(seg(k))
		switch {
		case !inB:
			w.emit(OpRemove, str(av), nil, false, false, false)
		case !inA:
			w.emit(OpAdd, nil, str(bv), false, false, false)
		case av != bv:
			w.emit(OpReplace, str(av), str(bv), false, false, false)
		}
		w.pop()
	}
	w.pop()
}

func (w *walker) body(a, b *body) {
	if a.empty() && b.empty() || bytes.Equal(a.raw, b.raw) {
		return
	}
	w.push(seg("body"))
	defer w.pop()
	switch {
	case b.empty():
		a.load()
		w.emit(OpRemove, a.value, nil, false, false, false)
		return
	case a.empty():
		b.load()
		w.emit(OpAdd, nil, b.value, false, false, false)
		return
	}
	a.load()
	b.load()
	switch {
	case a.isJSON && b.isJSON:
		w.value(a.value, b.value, false)
	case a.isJSON != b.isJSON:
		w.emit(OpReplace, a.value, b.value, true, false, false)
	default:
		w.emit(OpReplace, a.value, b.value, false, false, false)
	}
}
