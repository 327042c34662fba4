package script

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"go.starlark.net/lib/math"
	starlarktime "go.starlark.net/lib/time"
	"go.starlark.net/starlark"
	"go.starlark.net/syntax"
)

// Defaults used for zero Config fields.
const (
	DefaultMaxSteps       = 10_000_000
	DefaultTimeout        = 5 * time.Minute
	DefaultHTTPTimeout    = 30 * time.Second
	DefaultMaxRequests    = 1000
	DefaultMaxBodyBytes   = 8 << 20
	DefaultMaxSleep       = time.Minute
	DefaultMaxLogBytes    = 64 << 10
	DefaultMaxCheckErrors = 1000
	DefaultAbandonGrace   = 2 * time.Second
	// MaxMessageBytes bounds one check error message; longer messages are cut.
	MaxMessageBytes = 4 << 10
)

// Doer sends an HTTP request; *http.Client implements it. The executor's Doer decides where requests go and
// adds the routing key; the runtime itself never dials.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

// Config is what Run needs. Zero limits take the Default values; negative limits are invalid.
type Config struct {
	// Filename names the script in positions and backtraces ("test.star" when empty).
	Filename string
	// Source is the script text.
	Source string
	// HTTP sends the script's requests. When nil, every http call fails with an error.
	HTTP Doer
	// Capture, when set, is called before each request made with capture=True and returns the headers to add
	// to it (for example an execution and capture id). They override the script's headers of the same name.
	Capture func(Capture) http.Header
	// Now, when set, is what time.now() returns (for reproducible runs).
	Now func() time.Time

	MaxSteps       uint64        // Starlark execution steps
	Timeout        time.Duration // wall time of the whole run
	HTTPTimeout    time.Duration // default and maximum time of one HTTP call
	MaxRequests    int           // HTTP calls
	MaxBodyBytes   int64         // request and response body bytes
	MaxSleep       time.Duration // one time.sleep
	MaxLogBytes    int           // print output kept in Result.Logs
	MaxCheckErrors int           // check errors kept in Result.Checks, and checks a script may name
	// AbandonGrace is how long Run waits, after the deadline, for the script to stop before it returns
	// without it (ErrAbandoned).
	AbandonGrace time.Duration
}

// Result is what a run produced. Run returns it also when the script fails, with what happened up to the
// failure.
type Result struct {
	// Checks lists the checks in the order the script first named them.
	Checks []Check `json:"checks"`
	// Captures lists the requests made with capture=True, in order.
	Captures []Capture `json:"captures,omitempty"`
	// Requests counts the HTTP calls made.
	Requests int `json:"requests"`
	// Logs holds the print output, one entry a call.
	Logs []string `json:"logs,omitempty"`
	// LogsTruncated reports that output beyond MaxLogBytes was dropped.
	LogsTruncated bool `json:"logsTruncated,omitempty"`
	// DroppedCheckErrors counts check errors beyond MaxCheckErrors that were not kept.
	DroppedCheckErrors int `json:"droppedCheckErrors,omitempty"`
	// Steps is the number of Starlark steps executed.
	Steps uint64 `json:"steps"`
	// Duration is the run's wall time (JSON: nanoseconds).
	Duration time.Duration `json:"duration"`
}

// Passed reports whether every check passed (no check recorded an error).
func (r *Result) Passed() bool {
	for _, c := range r.Checks {
		if len(c.Errors) > 0 {
			return false
		}
	}
	return r.DroppedCheckErrors == 0
}

// Check is a named check and the failures recorded for it; field names follow Signadot's check results.
type Check struct {
	Name   string       `json:"name"`
	Errors []CheckError `json:"errors"`
}

// CheckError is one failure of a check, at the script position that recorded it.
type CheckError struct {
	Message        string         `json:"message"`
	SourcePosition SourcePosition `json:"sourcePosition"`
}

// Capture describes a request made with capture=True.
type Capture struct {
	// Index counts captured requests from 0 in the order the script made them.
	Index int `json:"index"`
	// Name is the script's name= argument ("" when not given).
	Name   string `json:"name,omitempty"`
	Method string `json:"method"`
	URL    string `json:"url"`
	// StatusCode is the response status, 0 when the request failed (Error says why).
	StatusCode int    `json:"statusCode,omitempty"`
	Error      string `json:"error,omitempty"`
	// Pos is where the script made the request.
	Pos SourcePosition `json:"sourcePosition"`
}

// fileOptions are the dialect scripts are written in: Python-like top-level code, no recursion.
var fileOptions = &syntax.FileOptions{
	Set:             true,
	While:           true,
	TopLevelControl: true,
	GlobalReassign:  true,
}

// moduleNames are the predeclared names, for Validate.
var moduleNames = map[string]bool{"http": true, "smart_test": true, "assert": true, "json": true, "time": true, "math": true}

// Validate parses and resolves a script without running it, returning an *Error for the first syntax or
// undefined-name error.
func Validate(filename, source string) error {
	if filename == "" {
		filename = "test.star"
	}
	_, _, err := starlark.SourceProgramOptions(fileOptions, filename, source, func(name string) bool { return moduleNames[name] })
	if err != nil {
		return syntaxError(err)
	}
	return nil
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.Filename == "" {
		out.Filename = "test.star"
	}
	type lim struct {
		name string
		neg  bool
	}
	for _, l := range []lim{
		{"timeout", out.Timeout < 0}, {"httpTimeout", out.HTTPTimeout < 0}, {"maxRequests", out.MaxRequests < 0},
		{"maxBodyBytes", out.MaxBodyBytes < 0}, {"maxSleep", out.MaxSleep < 0}, {"maxLogBytes", out.MaxLogBytes < 0},
		{"maxCheckErrors", out.MaxCheckErrors < 0}, {"abandonGrace", out.AbandonGrace < 0},
	} {
		if l.neg {
			return out, fmt.Errorf("%w: %s: must not be negative", ErrConfig, l.name)
		}
	}
	if out.MaxSteps == 0 {
		out.MaxSteps = DefaultMaxSteps
	}
	if out.Timeout == 0 {
		out.Timeout = DefaultTimeout
	}
	if out.HTTPTimeout == 0 {
		out.HTTPTimeout = DefaultHTTPTimeout
	}
	if out.MaxRequests == 0 {
		out.MaxRequests = DefaultMaxRequests
	}
	if out.MaxBodyBytes == 0 {
		out.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if out.MaxSleep == 0 {
		out.MaxSleep = DefaultMaxSleep
	}
	if out.MaxLogBytes == 0 {
		out.MaxLogBytes = DefaultMaxLogBytes
	}
	if out.AbandonGrace == 0 {
		out.AbandonGrace = DefaultAbandonGrace
	}
	if out.MaxCheckErrors == 0 {
		out.MaxCheckErrors = DefaultMaxCheckErrors
	}
	return out, nil
}

// run is the state of one Run, shared by the built-ins.
type run struct {
	cfg    Config
	ctx    context.Context
	result *Result

	checks    map[string]int // name -> index in result.Checks
	logBytes  int
	errorsLen int

	mu     sync.Mutex
	cause  error // why the thread was cancelled
	thread *starlark.Thread

	expired atomic.Bool // the run's context ended; OnMaxSteps stops the script at its next chunk
	pending error       // the limit OnMaxSteps is stopping the script for
	tries   int         // steps OnMaxSteps waited for a precise position
}

// stepChunk is how often (in steps) the interpreter calls back to check the deadline.
const stepChunk = 10_000

// onMaxSteps runs every stepChunk steps: it stops the script when the step limit is reached or the run's
// context ended. It stops at an instruction whose position is a script line: some instructions (loop jumps)
// have only their function's position, so it waits a few steps for a better one.
func (r *run) onMaxSteps(thread *starlark.Thread) {
	if r.pending == nil {
		switch {
		case thread.Steps >= r.cfg.MaxSteps:
			r.pending = fmt.Errorf("%w: more than %d steps", ErrStepLimit, r.cfg.MaxSteps)
		case r.expired.Load():
			r.pending = r.ctxErr()
		default:
			thread.SetMaxExecutionSteps(min(thread.Steps+stepChunk, r.cfg.MaxSteps))
			return
		}
	}
	r.tries++
	if r.tries > 16 || preciseFrame(thread) {
		r.cancel(r.pending)
	}
}

// preciseFrame reports whether the innermost frame is at a position other than its function's start.
func preciseFrame(thread *starlark.Thread) bool {
	fr := thread.DebugFrame(0)
	fn, ok := fr.Callable().(*starlark.Function)
	if !ok {
		return true
	}
	p, start := fr.Position(), fn.Position()
	return p.Line != start.Line || p.Col != start.Col
}

// cancel stops the thread for the given cause; the first cause wins.
func (r *run) cancel(cause error) {
	r.mu.Lock()
	if r.cause == nil {
		r.cause = cause
	}
	r.mu.Unlock()
	r.thread.Cancel(cause.Error())
}

func (r *run) cancelCause() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cause
}

// Run parses and runs a script. It returns the Result, also on failure (what ran until then; nil only for an
// invalid Config, with ErrConfig), and an *Error when the script has a syntax error, fails at run time or
// exceeds a limit. Runs share no state: Run may be called from many goroutines.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	res := &Result{Checks: []Check{}}
	r := &run{cfg: c, result: res, checks: map[string]int{}}

	predeclared := starlark.StringDict{
		"http":       r.httpModule(),
		"smart_test": r.smartTestModule(),
		"assert":     r.assertModule(),
		"json":       jsonModule,
		"time":       r.timeModule(),
		"math":       math.Module,
	}
	predeclared.Freeze()

	_, prog, err := starlark.SourceProgramOptions(fileOptions, c.Filename, c.Source, predeclared.Has)
	if err != nil {
		return res, syntaxError(err)
	}

	runCtx, stop := context.WithTimeoutCause(ctx, c.Timeout, ErrTimeout)
	defer stop()
	r.ctx = runCtx

	thread := &starlark.Thread{
		Name: c.Filename,
		Print: func(_ *starlark.Thread, msg string) {
			r.print(msg)
		},
		Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			return nil, errors.New("load is not supported: a test is a single file")
		},
		OnMaxSteps: r.onMaxSteps,
	}
	r.thread = thread
	thread.SetMaxExecutionSteps(min(stepChunk, c.MaxSteps))
	if c.Now != nil {
		starlarktime.SetNow(thread, func() (time.Time, error) { return c.Now(), nil })
	}

	// The interpreter runs on its own goroutine so that Run returns by its deadline even when a built-in does
	// not observe cancellation (str() of a value nested a million deep takes minutes).
	finished := make(chan error, 1)
	go func() {
		_, err := prog.Init(thread, predeclared)
		finished <- err
	}()
	expired := runCtx.Done()
	var grace <-chan time.Time
	for {
		select {
		case err := <-finished:
			res.Steps = thread.ExecutionSteps()
			res.Duration = time.Since(start)
			if err != nil {
				return res, runtimeError(err, r.cancelCause())
			}
			return res, nil
		case <-expired:
			// Built-ins that wait (http, time.sleep) return on the context themselves; Starlark code
			// stops at its next step chunk, where the position is known.
			r.expired.Store(true)
			expired = nil
			t := time.NewTimer(c.AbandonGrace)
			defer t.Stop()
			grace = t.C
		case <-grace:
			cause := r.ctxErr()
			r.cancel(cause)
			// The interpreter goroutine still owns the result: return a fresh one.
			return &Result{Checks: []Check{}, Duration: time.Since(start)}, &Error{
				Kind: KindRuntime,
				Pos:  SourcePosition{File: c.Filename},
				Msg:  fmt.Sprintf("%v; a built-in did not stop within %s and was abandoned", cause, c.AbandonGrace),
				err:  fmt.Errorf("%w: %w", cause, ErrAbandoned),
			}
		}
	}
}

// ctxErr explains why the run's context ended: ErrTimeout for the run's own timeout, else the caller's error.
func (r *run) ctxErr() error {
	if cause := context.Cause(r.ctx); errors.Is(cause, ErrTimeout) {
		return fmt.Errorf("%w after %s", ErrTimeout, r.cfg.Timeout)
	}
	return fmt.Errorf("script cancelled: %w", r.ctx.Err())
}

// print keeps print output up to MaxLogBytes.
func (r *run) print(msg string) {
	if r.result.LogsTruncated {
		return
	}
	if r.logBytes+len(msg) > r.cfg.MaxLogBytes {
		r.result.LogsTruncated = true
		return
	}
	r.logBytes += len(msg)
	r.result.Logs = append(r.result.Logs, msg)
}

// callerPos is the script position that called the running built-in.
func callerPos(thread *starlark.Thread) SourcePosition {
	for d := 1; d < thread.CallStackDepth(); d++ {
		if p := thread.CallFrame(d).Pos; p.IsValid() && p.Filename() != "<builtin>" {
			return positionOf(p)
		}
	}
	return SourcePosition{}
}

// truncate cuts s to n bytes at a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
