package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// Limits and defaults of Execute.
const (
	// MaxScriptBytes bounds a script's source.
	MaxScriptBytes = 256 << 10
	// MaxExecutionLen bounds an execution id.
	MaxExecutionLen = 128
	// DefaultMaxCaptureBodyBytes bounds each recorded request and response body.
	DefaultMaxCaptureBodyBytes = 1 << 20
	// DefaultMaxCaptureBytes bounds the body bytes recorded in one run, so that a report of three runs
	// (bodies base64-encoded) stays well below the control plane's 100 MiB artifact limit.
	DefaultMaxCaptureBytes = 16 << 20
	// DefaultNamespace and DefaultName name the capture point when Config leaves them empty.
	DefaultNamespace = "default"
	DefaultName      = "smarttest"
	// Redacted replaces the values of redacted headers in captures.
	Redacted = "[REDACTED]"
)

// DefaultRedactHeaders are always redacted in captures; Config.RedactHeaders adds to them.
var DefaultRedactHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("invalid smart-test execution configuration")

// Config is what Execute needs.
type Config struct {
	// Execution is the execution's id: letters, digits, '-' and '_', at most MaxExecutionLen bytes. Capture
	// ids are "<Execution>.<run>.<index>".
	Execution string
	// Filename names the script in positions ("test.star" when empty); Source is its text (at most
	// MaxScriptBytes).
	Filename string
	Source   string
	// RoutingKey is the sandbox's (or route group's) routing key; it must be valid (routingkey.Validate).
	RoutingKey string
	// Extractor injects the routing key into the target run's requests and strips it from the baseline
	// runs' (nil: routingkey.Default, whose baggage member is sm-routing-key=<key>).
	Extractor *routingkey.Extractor
	// Transport sends the requests (nil: a clone of http.DefaultTransport).
	Transport http.RoundTripper
	// Namespace and Name name the capture point (kind Job, direction Outbound) of the captures recorded
	// here: the job's namespace and name (DefaultNamespace and DefaultName when empty).
	Namespace string
	Name      string
	// RedactHeaders are header names (case-insensitive) whose values are replaced by Redacted in captures,
	// in addition to DefaultRedactHeaders.
	RedactHeaders []string
	// MaxCaptureBodyBytes bounds each recorded body (0: DefaultMaxCaptureBodyBytes); a longer body is cut
	// and marked truncated. The script still sees the whole body (up to its own MaxBodyBytes).
	MaxCaptureBodyBytes int64
	// MaxCaptureBytes bounds the body bytes recorded in one run (0: DefaultMaxCaptureBytes); bodies beyond
	// it are cut (to nothing) and marked truncated.
	MaxCaptureBytes int64
	// Limits carries the script limits (MaxSteps, Timeout, HTTPTimeout, MaxRequests, MaxBodyBytes, MaxSleep,
	// MaxLogBytes, MaxCheckErrors, AbandonGrace) and Now; its Filename, Source, HTTP and Capture are ignored.
	Limits script.Config
	// Logger receives one line per run; nil discards.
	Logger *slog.Logger
}

// validate checks c; name gives the name of a field in errors (the environment variable it came from).
func (c *Config) validate(name func(field string) string) error {
	bad := func(field, msg string) error { return fmt.Errorf("%w: %s: %s", ErrConfig, name(field), msg) }
	switch {
	case c.Execution == "":
		return bad("execution", "required")
	case len(c.Execution) > MaxExecutionLen:
		return bad("execution", fmt.Sprintf("longer than %d bytes", MaxExecutionLen))
	case strings.IndexFunc(c.Execution, func(r rune) bool { return !idChar(r) }) >= 0:
		return bad("execution", fmt.Sprintf("%q: only letters, digits, '-' and '_' are allowed", c.Execution))
	case c.Source == "":
		return bad("source", "the script is empty")
	case len(c.Source) > MaxScriptBytes:
		return bad("source", fmt.Sprintf("the script is %d bytes, more than %d", len(c.Source), MaxScriptBytes))
	case c.MaxCaptureBodyBytes < 0:
		return bad("maxCaptureBodyBytes", "must not be negative")
	case c.MaxCaptureBytes < 0:
		return bad("maxCaptureBytes", "must not be negative")
	}
	if err := routingkey.Validate(c.RoutingKey); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrConfig, name("routingKey"), err)
	}
	for i, h := range c.RedactHeaders {
		if h == "" || strings.ContainsAny(h, " \t\r\n:") {
			return bad(fmt.Sprintf("redactHeaders[%d]", i), fmt.Sprintf("%q is not a header name", h))
		}
	}
	return nil
}

func idChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// Execute runs the script three times, one run after the other: RunTarget with the routing key injected
// into every request (in every header form of the Extractor; a key the script sets itself is replaced),
// then RunBaselineA and RunBaselineB with any routing key the script's headers carry removed, so that the
// baseline runs reach the baseline whatever the script does. Requests made with capture=True carry
// CaptureHeader and are recorded in Run.Captures (ID the capture id, Name the script's name= or empty, in
// which case the diff pairs the request by method and templated path, Seq the script's capture index); the
// header is removed from any other request, so a capture id never leaks into a non-capture request. A
// run's script error (syntax, runtime, limit) goes to Run.Error with its position (and ErrorKind,
// ErrorPosition, Backtrace) and does not stop the other runs.
//
// Execute returns an error wrapping ErrConfig for an invalid Config (and no Report), and the context's
// error, with the Report of what ran, when ctx ends (the runs not started have that error in Run.Error).
func Execute(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.validate(func(f string) string { return f }); err != nil {
		return nil, err
	}
	if cfg.Extractor == nil {
		cfg.Extractor = routingkey.Default
	}
	if cfg.Transport == nil {
		cfg.Transport = http.DefaultTransport.(*http.Transport).Clone()
	}
	if cfg.Namespace == "" {
		cfg.Namespace = DefaultNamespace
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.MaxCaptureBodyBytes == 0 {
		cfg.MaxCaptureBodyBytes = DefaultMaxCaptureBodyBytes
	}
	if cfg.MaxCaptureBytes == 0 {
		cfg.MaxCaptureBytes = DefaultMaxCaptureBytes
	}
	if cfg.Filename == "" {
		cfg.Filename = "test.star"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
		cfg.Logger = log
	}
	redact := map[string]bool{}
	for _, h := range append(append([]string(nil), DefaultRedactHeaders...), cfg.RedactHeaders...) {
		redact[http.CanonicalHeaderKey(h)] = true
	}

	rep := &Report{Version: ReportVersion, Execution: cfg.Execution, RoutingKey: cfg.RoutingKey, Runs: []Run{}}
	for _, name := range []string{RunTarget, RunBaselineA, RunBaselineB} {
		if err := ctx.Err(); err != nil {
			rep.Runs = append(rep.Runs, Run{Name: name, Error: fmt.Sprintf("not run: %v", err)})
			continue
		}
		run := runOnce(ctx, &cfg, name, redact)
		log.Info("smart-test run finished", "execution", cfg.Execution, "run", name, "checks", checkCount(run.Result),
			"captures", len(run.Captures), "error", run.Error)
		rep.Runs = append(rep.Runs, run)
	}
	if err := ctx.Err(); err != nil {
		return rep, fmt.Errorf("smart-test execution %s: %w", cfg.Execution, err)
	}
	return rep, nil
}

func checkCount(r *script.Result) int {
	if r == nil {
		return 0
	}
	return len(r.Checks)
}

// CaptureID is the capture id of the index-th capture=True request of a run.
func CaptureID(execution, run string, index int) string {
	return fmt.Sprintf("%s.%s.%d", execution, run, index)
}

// runOnce runs the script once as the named run.
func runOnce(ctx context.Context, cfg *Config, name string, redact map[string]bool) Run {
	d := &doer{
		client: &http.Client{Transport: cfg.Transport},
		ext:    cfg.Extractor,
		target: name == RunTarget,
		key:    cfg.RoutingKey,
		prefix: cfg.Execution + "." + name + ".",
		point:  diff.CapturePoint{Kind: diff.KindJob, Namespace: cfg.Namespace, Name: cfg.Name, Direction: diff.Outbound},
		limit:  cfg.MaxCaptureBodyBytes,
		budget: cfg.MaxCaptureBytes,
		log:    cfg.Logger.With("execution", cfg.Execution, "run", name),
		redact: redact,
		names:  map[string]captureMeta{},
	}
	sc := cfg.Limits
	sc.Filename, sc.Source, sc.HTTP = cfg.Filename, cfg.Source, d
	sc.Capture = func(c script.Capture) http.Header {
		id := CaptureID(cfg.Execution, name, c.Index)
		d.mu.Lock()
		d.names[id] = captureMeta{name: c.Name, seq: int64(c.Index)}
		d.mu.Unlock()
		return http.Header{CaptureHeader: {id}}
	}
	res, err := script.Run(ctx, sc)
	out := Run{Name: name, Result: res}
	if err != nil {
		out.Error = err.Error()
		var se *script.Error
		if errors.As(err, &se) {
			out.ErrorKind, out.Backtrace = se.Kind, se.Backtrace
			if se.Pos.Line > 0 {
				pos := se.Pos
				out.ErrorPosition = &pos
			}
		}
	}
	out.Captures = d.captures()
	return out
}

type captureMeta struct {
	name string
	seq  int64
}

// doer is a run's script.Doer: it adds or strips the routing key and records capture=True requests.
type doer struct {
	client *http.Client
	ext    *routingkey.Extractor
	target bool
	key    string
	prefix string // capture ids of this run start with it
	point  diff.CapturePoint
	limit  int64 // bytes of one body
	redact map[string]bool
	log    *slog.Logger

	stripped bool // a routing key the script set was removed (logged once)

	mu     sync.Mutex
	names  map[string]captureMeta
	recs   []diff.Capture
	budget int64 // body bytes the run may still record
}

func (d *doer) captures() []diff.Capture {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]diff.Capture(nil), d.recs...)
	// Order by the script's order (a body closed late must not reorder them).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].Seq < out[j-1].Seq; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// Do sends req with the run's routing-key headers and, when it carries this run's capture id, records it.
func (d *doer) Do(req *http.Request) (*http.Response, error) {
	if d.target {
		d.ext.Inject(req.Header, d.key)
	} else if StripRoutingKey(d.ext, req.Header) && !d.stripped {
		d.stripped = true
		d.log.Warn("the script set a routing key; it was removed from this baseline run's requests")
	}
	id := req.Header.Get(CaptureHeader)
	d.mu.Lock()
	meta, capture := d.names[id]
	delete(d.names, id) // one request per capture id
	d.mu.Unlock()
	if !capture || !strings.HasPrefix(id, d.prefix) {
		if id != "" { // not ours: never forward a foreign capture id
			req.Header.Del(CaptureHeader)
		}
		removeBaggageMember(req.Header, CaptureBaggageKey)
		return d.client.Do(req)
	}
	// The id travels in baggage too, for the hops behind apps that propagate only OTel context.
	removeBaggageMember(req.Header, CaptureBaggageKey)
	member := CaptureBaggageKey + "=" + id
	if b := req.Header.Get("Baggage"); b != "" {
		member = b + "," + member
	}
	req.Header.Set("Baggage", member)

	c := diff.Capture{ID: id, Point: d.point, Name: meta.name, Seq: meta.seq}
	c.Request.Method = req.Method
	c.Request.Path = req.URL.EscapedPath()
	if c.Request.Path == "" {
		c.Request.Path = "/"
	}
	c.Request.Query = req.URL.RawQuery
	c.Request.Headers = d.headers(req.Header)
	if req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the request body: %w", err)
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		c.Request.Body, c.Request.BodyTruncated = d.cut(body)
	}
	start := time.Now()
	resp, err := d.client.Do(req)
	if err != nil {
		c.Duration = time.Since(start)
		d.add(c)
		return nil, err
	}
	c.Response.Status = resp.StatusCode
	c.Response.Headers = d.headers(resp.Header)
	resp.Body = &recorder{ReadCloser: resp.Body, d: d, c: c, start: start, max: d.room()}
	return resp, nil
}

func (d *doer) add(c diff.Capture) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs = append(d.recs, c)
}

// headers copies h with redacted values replaced.
func (d *doer) headers(h http.Header) map[string][]string {
	if len(h) == 0 {
		return nil
	}
	out := make(map[string][]string, len(h))
	for k, vs := range h {
		if d.redact[http.CanonicalHeaderKey(k)] {
			out[k] = []string{Redacted}
			continue
		}
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// room is how many bytes of one body may be recorded now.
func (d *doer) room() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return min(d.limit, d.budget)
}

// spend takes n bytes from the run's budget.
func (d *doer) spend(n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.budget -= int64(n)
}

// cut bounds a recorded request body.
func (d *doer) cut(b []byte) ([]byte, bool) {
	n := min(int64(len(b)), d.room())
	d.spend(int(n))
	return append([]byte(nil), b[:n]...), n < int64(len(b))
}

// recorder keeps the first limit bytes of a response body as the script reads it and records the capture
// when the body is closed.
type recorder struct {
	io.ReadCloser
	d     *doer
	c     diff.Capture
	start time.Time
	max   int64 // bytes to keep
	buf   []byte
	more  bool // bytes beyond the limit were read
	eof   bool
	done  bool
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if room := r.max - int64(len(r.buf)); room > 0 {
		r.buf = append(r.buf, p[:min(int64(n), room)]...)
		if int64(n) > room {
			r.more = true
		}
	} else if n > 0 {
		r.more = true
	}
	if err == io.EOF {
		r.eof = true
	}
	return n, err
}

func (r *recorder) Close() error {
	err := r.ReadCloser.Close()
	if !r.done {
		r.done = true
		r.c.Duration = time.Since(r.start)
		r.c.Response.Body = r.buf
		r.d.spend(len(r.buf))
		// Cut by the limit, or closed before the end (the script's own body limit).
		r.c.Response.BodyTruncated = r.more || !r.eof && !r.empty()
		r.d.add(r.c)
	}
	return err
}

// empty reports whether the body was empty even though EOF was not seen (a HEAD response, 204).
func (r *recorder) empty() bool {
	return len(r.buf) == 0
}

// removeBaggageMember removes the members named key from h's baggage (other members stay).
func removeBaggageMember(h http.Header, key string) {
	vs, ok := h["Baggage"]
	if !ok {
		return
	}
	var keep []string
	for _, f := range vs {
		for m := range strings.SplitSeq(f, ",") {
			n := m
			if i := strings.IndexAny(n, "=;"); i >= 0 {
				n = n[:i]
			}
			if m = strings.Trim(m, " \t"); m != "" && strings.Trim(n, " \t") != key {
				keep = append(keep, m)
			}
		}
	}
	if len(keep) == 0 {
		delete(h, "Baggage")
	} else {
		h["Baggage"] = []string{strings.Join(keep, ",")}
	}
}

// StripRoutingKey removes the routing key from h in every form ext reads: the custom and single-valued
// headers are deleted, and the members with one of ext's key names are removed from baggage and tracestate
// (other members stay). It reports whether anything was removed.
func StripRoutingKey(ext *routingkey.Extractor, h http.Header) bool {
	names := map[string]bool{}
	for _, n := range ext.Config().KeyNames {
		names[n] = true
	}
	removed := false
	for _, name := range ext.HeaderNames() {
		k := http.CanonicalHeaderKey(name)
		vs, ok := h[k]
		if !ok {
			continue
		}
		switch name {
		case "baggage", "tracestate":
			stops := "="
			if name == "baggage" {
				stops = "=;"
			}
			var keep []string
			for _, f := range vs {
				for m := range strings.SplitSeq(f, ",") {
					n := m
					if i := strings.IndexAny(n, stops); i >= 0 {
						n = n[:i]
					}
					if names[strings.Trim(n, " \t")] {
						removed = true
						continue
					}
					if strings.Trim(m, " \t") != "" {
						keep = append(keep, strings.Trim(m, " \t"))
					}
				}
			}
			if len(keep) == 0 {
				delete(h, k)
			} else {
				h[k] = []string{strings.Join(keep, ",")}
			}
		default:
			delete(h, k)
			removed = true
		}
	}
	return removed
}
