package script_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// TestChecks checks smart_test.check in both forms and assert, with messages and positions.
func TestChecks(t *testing.T) {
	src := `ck = smart_test.check("status")
ck.error("bad status: {}", 500)
smart_test.check("fine", True, "never")
smart_test.check("cond", 1 == 2, "one is not two")
smart_test.check("status").error("again {n}", n=2)
smart_test.check("empty")
assert.eq(1, 2)
assert.true(False, "custom")
assert.ne("a", "a", check="named")
assert.eq([1], [1])
print("still running")
smart_test.check("nomsg", False)
`
	res, err := runScript(t, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Passed() {
		t.Fatal("Passed() = true with failing checks")
	}
	type ce struct {
		check, msg string
		line, col  int
	}
	want := []ce{
		{"status", "bad status: 500", 2, 9},
		{"status", "again 2", 5, 33},
		{"cond", "one is not two", 4, 17},
		{"assert", "assertion failed: 1 != 2", 7, 10},
		{"assert", "custom", 8, 12},
		{"named", `"a" == "a"`, 9, 10},
		{"nomsg", "check failed", 12, 17},
	}
	var got []ce
	var names []string
	for _, c := range res.Checks {
		names = append(names, c.Name)
		for _, e := range c.Errors {
			got = append(got, ce{c.Name, e.Message, e.SourcePosition.Line, e.SourcePosition.Col})
		}
	}
	if strings.Join(names, ",") != "status,fine,cond,empty,assert,named,nomsg" {
		t.Errorf("check order %v", names)
	}
	if len(got) != len(want) {
		t.Fatalf("errors\n%v\nwant\n%v", got, want)
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if g.check == w.check && strings.HasSuffix(g.msg, w.msg) && g.line == w.line && g.col == w.col {
				found = true
			}
		}
		if !found {
			t.Errorf("missing %+v in %+v", w, got)
		}
	}
	if len(res.Logs) != 1 || res.Logs[0] != "still running" {
		t.Errorf("logs %q: asserts must not stop the script", res.Logs)
	}
}

// TestResultJSON checks the JSON names, which follow Signadot's check results.
func TestResultJSON(t *testing.T) {
	res, err := runScript(t, `smart_test.check("c").error("m")`, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res.Checks)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"c","errors":[{"message":"m","sourcePosition":{"file":"t.star","line":1,"col":28}}]}]`
	if string(b) != want {
		t.Fatalf("json %s\nwant %s", b, want)
	}
}

// TestCheckArgumentErrors checks bad arguments of the check functions.
func TestCheckArgumentErrors(t *testing.T) {
	cases := []struct{ src, want string }{
		{`smart_test.check("")`, "smart_test.check: name: must not be empty"},
		{`smart_test.check(1)`, "smart_test.check: for parameter name: got int, want string"},
		{`smart_test.check("a").error()`, "error: missing argument for format"},
		{`smart_test.check("a").error(1)`, "error: format: got int, want string"},
		{`smart_test.check("a").error("{} {}", 1)`, "error: format: tuple index out of range"},
		{`assert.eq(1)`, "assert.eq: missing argument for b"},
		{`assert.true(True, check="")`, "assert.true: check: name: must not be empty"},
		{`smart_test.check("x" * 257)`, "smart_test.check: name: longer than 256 bytes"},
		{`[smart_test.check(str(i)) for i in range(1001)]`, `smart_test.check: name "1000": more than 1000 checks`},
		{`assert.eq(1, "a") or assert.eq({}, 1, msg=None)`, `assert.eq: for parameter "msg": got NoneType, want string`},
	}
	for _, tc := range cases {
		t.Run(tc.src, func(t *testing.T) {
			_, err := runScript(t, tc.src, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestMaxCheckErrors checks that check errors beyond the bound are counted, not kept.
func TestMaxCheckErrors(t *testing.T) {
	res, err := runScript(t, `
ck = smart_test.check("many")
for i in range(10):
    ck.error("e{}", i)
`, func(c *script.Config) { c.MaxCheckErrors = 3 })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Checks[0].Errors) != 3 || res.DroppedCheckErrors != 7 || res.Passed() {
		t.Fatalf("kept %d, dropped %d", len(res.Checks[0].Errors), res.DroppedCheckErrors)
	}
}

// TestModules checks time, json and math and the dialect (top-level loops, reassignment, sets).
func TestModules(t *testing.T) {
	fixed := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	res, err := runScript(t, `
assert.eq(time.now().unix, 1796277600)
assert.eq(time.parse_duration("1s") * 2, time.parse_duration("2s"))
time.sleep(0.001)
time.sleep(0)
time.sleep(time.parse_duration("1ms"))
assert.eq(json.decode(json.encode({"a": [1, 2.5, None]})), {"a": [1, 2.5, None]})
assert.eq(json.indent('{"a":1}'), '{\n\t"a": 1\n}')
assert.eq(math.sqrt(16), 4.0)
n = 0
while n < 3:
    n += 1
n = n * 2
assert.eq(n, 6)
assert.eq(len(set([1, 1, 2])), 2)
`, func(c *script.Config) { c.Now = func() time.Time { return fixed } })
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatalf("checks failed:\n%s", failures(res))
	}
}

// TestErrors checks that syntax and runtime errors point at the script's line and carry the backtrace.
func TestErrors(t *testing.T) {
	cases := []struct {
		name, src   string
		kind        script.ErrorKind
		line, col   int
		msg, traces string
	}{
		{"syntax", "x = 1\ny = (\n", script.KindSyntax, 3, 1, "got end of file", ""},
		{"undefined name", "x = 1\nprint(y)\n", script.KindSyntax, 2, 7, "undefined: y", ""},
		{"bad indentation", "def f():\n  x = 1\n    y = 2\n", script.KindSyntax, 3, 5, "got indent, want primary expression", ""},
		{"fail", "x = 1\n\nfail(\"boom\")\n", script.KindRuntime, 3, 5, "boom", "t.star:3:5: in <toplevel>"},
		{"nested", "def g(d):\n    return d[\"k\"]\ndef f():\n    return g({})\nf()\n", script.KindRuntime, 2, 13,
			`key "k" not in dict`, "t.star:5:2: in <toplevel>\n  t.star:4:13: in f\n  t.star:2:13: in g"},
		{"division", "x = 0\ny = 1 // x\n", script.KindRuntime, 2, 7, "floored division by zero", ""},
		{"recursion", "def f(n):\n    return f(n)\nf(1)\n", script.KindRuntime, 2, 12, "called recursively", ""},
		{"load", "load(\"other.star\", \"x\")\n", script.KindRuntime, 1, 1, "load is not supported", ""},
		{"frozen module", "http.get = 1\n", script.KindRuntime, 1, 5, "can't assign to .get field of module", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runScript(t, tc.src, nil)
			var se *script.Error
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want *script.Error", err, err)
			}
			if se.Kind != tc.kind || se.Pos.Line != tc.line || se.Pos.Col != tc.col || se.Pos.File != "t.star" {
				t.Errorf("%s at %s, want %s at t.star:%d:%d (%v)", se.Kind, se.Pos, tc.kind, tc.line, tc.col, err)
			}
			if !strings.Contains(se.Msg, tc.msg) {
				t.Errorf("msg %q, want %q", se.Msg, tc.msg)
			}
			if !strings.Contains(se.Backtrace, tc.traces) {
				t.Errorf("backtrace %q, want %q", se.Backtrace, tc.traces)
			}
			if !strings.HasPrefix(err.Error(), se.Pos.String()+": ") {
				t.Errorf("Error() = %q, want position prefix", err.Error())
			}
		})
	}
}

// TestValidate checks validation without running.
func TestValidate(t *testing.T) {
	if err := script.Validate("ok.star", "res = http.get('http://x')\nsmart_test.check('a')\nfor i in range(2):\n    pass\n"); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	err := script.Validate("", "x = 1\nhttpx.get('a')\nz = q\n")
	var se *script.Error
	if !errors.As(err, &se) || se.Pos.String() != "test.star:2:1" || !strings.Contains(se.Msg, "undefined: httpx") {
		t.Fatalf("err = %v", err)
	}
	if len(se.More) != 1 || se.More[0].Pos.Line != 3 {
		t.Fatalf("More = %v", se.More)
	}
}

// TestLimits checks that each limit stops the script with its error, at the script line, quickly.
func TestLimits(t *testing.T) {
	cases := []struct {
		name   string
		src    string
		mutate func(*script.Config)
		want   error
		line   int
	}{
		{"infinite loop", "x = 1\nwhile True:\n    x += 1\n", func(c *script.Config) { c.MaxSteps = 10_000 }, script.ErrStepLimit, 3},
		{"loop in function", "def f():\n    for i in range(1 << 40):\n        pass\nf()\n", func(c *script.Config) { c.MaxSteps = 10_000 }, script.ErrStepLimit, 2},
		{"wall time", "x = 1\nwhile True:\n    x += 1\n", func(c *script.Config) { c.MaxSteps = 1 << 62; c.Timeout = 50 * time.Millisecond }, script.ErrTimeout, 3},
		{"sleep beyond bound", "x = 1\ntime.sleep(2)\n", nil, script.ErrSleepLimit, 2},
		{"sleep past timeout", "time.sleep(1)\n", func(c *script.Config) { c.Timeout = 50 * time.Millisecond }, script.ErrTimeout, 1},
		{"http past timeout", "\nhttp.get(\"http://x/slow?ms=5000\")\n", func(c *script.Config) { c.Timeout = 50 * time.Millisecond }, script.ErrTimeout, 2},
		{"requests", "for i in range(5):\n    http.get(\"http://x/echo\")\n", func(c *script.Config) { c.MaxRequests = 3 }, script.ErrRequestLimit, 2},
		{"response body", "http.get(\"http://x/big?n=2000\")\n", func(c *script.Config) { c.MaxBodyBytes = 1000 }, script.ErrBodyLimit, 1},
		{"request body", "http.post(\"http://x/echo\", body=\"x\" * 2000)\n", func(c *script.Config) { c.MaxBodyBytes = 1000 }, script.ErrBodyLimit, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := runScript(t, tc.src, tc.mutate)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var se *script.Error
			if !errors.As(err, &se) || se.Pos.Line != tc.line {
				t.Fatalf("err %v: want *script.Error at line %d", err, tc.line)
			}
			if res == nil {
				t.Fatal("no partial result")
			}
		})
	}
}

// TestStepLimitStopsWithinLimit checks that the step counter ends near the limit.
func TestStepLimitStopsWithinLimit(t *testing.T) {
	res, err := runScript(t, "while True:\n    pass\n", func(c *script.Config) { c.MaxSteps = 5000 })
	if !errors.Is(err, script.ErrStepLimit) {
		t.Fatalf("err = %v", err)
	}
	if res.Steps < 5000 || res.Steps > 5100 {
		t.Fatalf("Steps = %d, want about 5000", res.Steps)
	}
	if !strings.Contains(err.Error(), "step limit exceeded: more than 5000 steps") {
		t.Fatalf("message %q", err)
	}
}

// TestCallerCancel checks that cancelling the caller's context stops the run with the context's error.
func TestCallerCancel(t *testing.T) {
	_, doer := newServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err := script.Run(ctx, script.Config{Source: "while True:\n    pass\n", HTTP: doer, MaxSteps: 1 << 62})
	if !errors.Is(err, context.Canceled) || errors.Is(err, script.ErrTimeout) {
		t.Fatalf("err = %v", err)
	}
}

// TestLogs checks print capture and its bound.
func TestLogs(t *testing.T) {
	res, err := runScript(t, "for i in range(100):\n    print('line', i)\n", func(c *script.Config) { c.MaxLogBytes = 30 })
	if err != nil {
		t.Fatal(err)
	}
	if !res.LogsTruncated || len(res.Logs) != 5 || res.Logs[0] != "line 0" {
		t.Fatalf("logs %q truncated %v", res.Logs, res.LogsTruncated)
	}
}

// TestConfigErrors checks invalid configurations.
func TestConfigErrors(t *testing.T) {
	for _, c := range []script.Config{{Timeout: -1}, {MaxBodyBytes: -1}, {MaxSleep: -1}, {MaxRequests: -1}} {
		if _, err := script.Run(context.Background(), c); !errors.Is(err, script.ErrConfig) {
			t.Errorf("%+v: err = %v", c, err)
		}
	}
}

// TestAbandon checks that Run returns by its deadline even when a built-in ignores cancellation: str() of a
// list nested 60000 deep takes about a second, ten under the race detector (its cycle check is quadratic),
// while building the list takes 8 ms (70 ms with -race).
func TestAbandon(t *testing.T) {
	start := time.Now()
	_, err := runScript(t, "x = []\nfor i in range(60000):\n    x = [x]\ns = str(x)\nprint(len(s))\n", func(c *script.Config) {
		c.Timeout = 500 * time.Millisecond
		c.AbandonGrace = 100 * time.Millisecond
	})
	if !errors.Is(err, script.ErrAbandoned) || !errors.Is(err, script.ErrTimeout) {
		t.Fatalf("err = %v, want ErrAbandoned and ErrTimeout (after %s)", err, time.Since(start))
	}
	var se *script.Error
	if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), "t.star: script timed out after 500ms; a built-in did not stop within 100ms") {
		t.Fatalf("err = %q", err)
	}
}
