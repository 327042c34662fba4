// Package script owns the smart-test language: it runs a Starlark (.star) test script with the built-in
// modules a Signadot smart test expects (http, smart_test, assert, json, time, math) under limits on steps,
// wall time, HTTP calls, body and output sizes, and returns the checks and the captured requests the script
// made.
//
// The package is pure: it imports no Kubernetes, controller-runtime or HTTP-framework code, so the control
// plane can validate scripts (Validate) and an executor can run them (Run). It never dials by itself and has
// no file access: every HTTP call goes through the Config.HTTP Doer, which decides the target and adds the
// routing key; requests made with capture=True are announced to the Config.Capture hook, which returns the
// capture headers to add, and are listed in Result.Captures so the executor can pair them across runs.
//
// # Language
//
// Scripts are Starlark with top-level if/for/while, global reassignment and sets allowed; recursion and load()
// are not. Predeclared modules:
//
//   - http.get/post/put/delete/patch/head/options(url, params=, headers=, body=, json_body= (or json=),
//     form_body=, auth=, timeout=, capture=, name=) and http.request(method, url, ...) return a response with
//     .status_code, .status, .url, .headers (case-insensitive mapping), .ok, .text and the methods .body() and
//     .json() (starlet's response shape, as Signadot's examples use it: json.decode(res.body())).
//   - smart_test.check(name) returns a check whose .error(format, *args) records a failure with the caller's
//     position (format uses str.format's {} placeholders); smart_test.check(name, cond, message) records the
//     message when cond is false. A check with no errors passed.
//   - assert.true(cond, msg=), assert.eq(a, b, msg=), assert.ne(a, b, msg=) record failures into the check
//     named by check= (default "assert") and do not stop the script, like smart_test checks: a failed check
//     must not hide the traffic that follows it. fail(msg) stops the script.
//   - time: go.starlark.net/lib/time (now, parse_duration, ...) plus sleep(seconds), bounded by
//     Config.MaxSleep per call and by the run's deadline.
//   - json (go.starlark.net/lib/json: encode, decode, indent) and math (go.starlark.net/lib/math).
//
// # Limits
//
// Steps (Config.MaxSteps), wall time (Config.Timeout and the caller's context), HTTP calls
// (Config.MaxRequests), per-call HTTP time (Config.HTTPTimeout and timeout=), request and response bodies
// (Config.MaxBodyBytes), print output (Config.MaxLogBytes) and recorded check errors (Config.MaxCheckErrors)
// are bounded. Memory is not bounded as a whole: the interpreter refuses a single repetition
// ("x" * n, [..] * n) of 1 GiB or more, bodies and output are bounded as above, and the step limit bounds the
// number of operations, but an operation such as s = s + s still doubles its operand in one step; run
// untrusted scripts in a process or container with a memory limit. A built-in that does not observe
// cancellation (str() or json.encode of a value nested a million deep is quadratic) can outlive the deadline:
// Run then returns Config.AbandonGrace after it with ErrAbandoned, leaving the goroutine to finish.
//
// # Errors
//
// Syntax, resolution and runtime errors are returned as *Error with the script position (file:line:col) and,
// for runtime errors, the Starlark backtrace. Limit errors wrap ErrStepLimit, ErrTimeout, ErrRequestLimit,
// ErrBodyLimit or ErrSleepLimit; cancellation by the caller wraps the context's error; see above for
// ErrAbandoned.
package script
