package executor

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// seen is one request as the test server saw it.
type seen struct {
	path, key, capture, baggage string
}

// sandboxServer is a small app whose answer depends on the routing key: with key "k1" (the "sandbox") its
// ETA is "7m", else "5m"; every answer has a random request id and a timestamp (per-request noise).
func sandboxServer(t testing.TB) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var log []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, _ := routingkey.Default.Extract(r.Header)
		mu.Lock()
		log = append(log, seen{path: r.URL.Path, key: key, capture: r.Header.Get(CaptureHeader), baggage: r.Header.Get("Baggage")})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "session=s3cret-session")
		switch r.URL.Path {
		case "/eta":
			eta := "5m"
			if key == "k1" {
				eta = "7m"
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"customer": r.URL.Query().Get("customer"), "eta": eta,
				"requestId": rand.Text(), "at": time.Now().Format(time.RFC3339Nano)})
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			_, _ = w.Write(b)
		default:
			_, _ = io.WriteString(w, "plain")
		}
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), log...)
	}
}

const testScript = `
res = http.get(URL + "/eta", params={"customer": "392"}, capture=True, name="eta",
    headers={"Authorization": "Bearer s3cret-token", "Cookie": "a=s3cret-cookie", "X-Api-Key": "s3cret-key",
             "baggage": "sm-routing-key=evil, other=1"})
smart_test.check("status", res.status_code == 200, "status is {}".format(res.status_code))
eta = json.decode(res.body()).get("eta")
smart_test.check("eta present", eta != None, "no eta in the answer")
smart_test.check("eta is 5m", eta == "5m", "eta is {}".format(eta))
echo = http.post(URL + "/echo", json_body={"x": 1}, capture=True)
plain = http.get(URL + "/plain", headers={"X-Sandboxmesh-Capture": "forged.id.0", "baggage": "sm-capture=forged.id.1, a=b"})
`

func testConfig(srv *httptest.Server, src string) Config {
	return Config{
		Execution:     "ex-1",
		Filename:      "eta.star",
		Source:        "URL = " + fmt.Sprintf("%q", srv.URL) + "\n" + src,
		RoutingKey:    "k1",
		Transport:     srv.Client().Transport,
		Namespace:     "hotrod",
		Name:          "eta-test",
		RedactHeaders: []string{"X-Api-Key"},
		Limits:        script.Config{Timeout: time.Minute},
	}
}

// TestExecuteThreeRuns: the target run carries the routing key (and only ours, whatever the script set), the
// baseline runs carry none; capture=True requests are recorded with ids, names, bodies and redacted headers;
// a forged capture id never leaves the executor.
func TestExecuteThreeRuns(t *testing.T) {
	srv, log := sandboxServer(t)
	rep, err := Execute(t.Context(), testConfig(srv, testScript))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Version != ReportVersion || rep.Execution != "ex-1" || rep.RoutingKey != "k1" || len(rep.Runs) != 3 {
		t.Fatalf("report %+v", rep)
	}
	for i, name := range []string{RunTarget, RunBaselineA, RunBaselineB} {
		r := rep.Runs[i]
		if r.Name != name || r.Error != "" || r.Result == nil || len(r.Result.Checks) != 3 {
			t.Fatalf("run %d: %+v", i, r)
		}
		// The sandbox answers 7m: the third check fails on the target only (a result, not an error).
		if got, want := r.Result.Passed(), name != RunTarget; got != want {
			t.Errorf("run %s passed = %v, want %v: %+v", name, got, want, r.Result.Checks)
		}
		if len(r.Captures) != 2 {
			t.Fatalf("run %s: %d captures, want 2", name, len(r.Captures))
		}
		eta, echo := r.Captures[0], r.Captures[1]
		if err := eta.Validate(); err != nil {
			t.Error(err)
		}
		wantPoint := diff.CapturePoint{Kind: diff.KindJob, Namespace: "hotrod", Name: "eta-test", Direction: diff.Outbound}
		if eta.ID != "ex-1."+name+".0" || eta.Name != "eta" || eta.Seq != 0 || eta.Point != wantPoint ||
			eta.Request.Method != "GET" || eta.Request.Path != "/eta" || eta.Request.Query != "customer=392" ||
			eta.Response.Status != 200 || !strings.Contains(string(eta.Response.Body), `"eta"`) || eta.Duration <= 0 {
			t.Errorf("run %s: eta capture %+v", name, eta)
		}
		if echo.ID != "ex-1."+name+".1" || echo.Name != "" || echo.Seq != 1 || echo.Request.Method != "POST" ||
			string(echo.Request.Body) != `{"x":1}` || string(echo.Response.Body) != `{"x":1}` {
			t.Errorf("run %s: echo capture %+v (request body %q)", name, echo, echo.Request.Body)
		}
		for _, h := range []string{"Authorization", "Cookie", "X-Api-Key"} {
			if v := eta.Request.Headers[h]; len(v) != 1 || v[0] != Redacted {
				t.Errorf("run %s: request header %s = %q, want redacted", name, h, v)
			}
		}
		if v := eta.Response.Headers["Set-Cookie"]; len(v) != 1 || v[0] != Redacted {
			t.Errorf("run %s: Set-Cookie = %q, want redacted", name, v)
		}
		b, _ := json.Marshal(r)
		if strings.Contains(string(b), "s3cret") {
			t.Errorf("run %s: a secret is in the report: %s", name, b)
		}
	}

	got := log()
	if len(got) != 9 {
		t.Fatalf("server saw %d requests, want 9: %+v", len(got), got)
	}
	for i, s := range got {
		run := []string{RunTarget, RunBaselineA, RunBaselineB}[i/3]
		wantKey := ""
		if run == RunTarget {
			wantKey = "k1"
		}
		if s.key != wantKey {
			t.Errorf("request %d (%s %s): key %q, want %q (baggage %q)", i, run, s.path, s.key, wantKey, s.baggage)
		}
		wantCap := ""
		if s.path != "/plain" {
			wantCap = CaptureID("ex-1", run, map[string]int{"/eta": 0, "/echo": 1}[s.path])
		}
		if s.path == "/eta" && run != RunTarget && s.baggage != "other=1,sm-capture="+wantCap {
			t.Errorf("baseline %s: baggage %q, want the script's foreign member and the capture id", run, s.baggage)
		}
		if s.capture != wantCap {
			t.Errorf("request %d (%s %s): capture header %q, want %q", i, run, s.path, s.capture, wantCap)
		}
		// The id travels in baggage too (for hops behind the first), and a forged one never leaves.
		if id, _ := baggageMember(s.baggage, CaptureBaggageKey); id != wantCap {
			t.Errorf("request %d (%s %s): baggage %q carries capture id %q, want %q", i, run, s.path, s.baggage, id, wantCap)
		}
		if s.path == "/plain" && strings.TrimPrefix(s.baggage, "sm-routing-key=k1,") != "a=b" {
			t.Errorf("request %d (%s %s): baggage %q, want a=b", i, run, s.path, s.baggage)
		}
	}
}

// TestExecuteDiff: diff.Compare on the report's captures finds exactly the field the sandbox changes (red)
// and learns the per-request id and timestamp as noise (green) from the two baseline runs.
func TestExecuteDiff(t *testing.T) {
	srv, _ := sandboxServer(t)
	rep, err := Execute(t.Context(), testConfig(srv, testScript))
	if err != nil {
		t.Fatal(err)
	}
	res := diff.Compare(rep.Runs[0].Captures, rep.Runs[1].Captures, rep.Runs[2].Captures, diff.Options{})
	if len(res.Findings) != 1 {
		t.Fatalf("findings %+v, want one", res.Findings)
	}
	f := res.Findings[0]
	if f.Name != "eta" || f.Path != "/response/body/eta" || f.Op != diff.OpReplace || string(f.OldValue) != `"5m"` ||
		string(f.Value) != `"7m"` || f.Point.Kind != diff.KindJob {
		t.Errorf("finding %+v", f)
	}
	if res.Summary.Green.Replacements != 2 || res.Summary.Captures != 2 || res.Summary.UnpairedCaptures != 0 {
		t.Errorf("summary %+v, want 2 green replacements (requestId, at) over 2 captures", res.Summary)
	}
	green := map[string]bool{}
	for _, p := range res.Points {
		for _, d := range p.Diffs {
			for _, op := range d.Response.DiffOps {
				if op.Classification.Category == diff.Green {
					green[op.Path] = op.Classification.Noise
				}
			}
		}
	}
	if !green["/response/body/requestId"] || !green["/response/body/at"] {
		t.Errorf("green ops %v, want requestId and at as noise", green)
	}
}

// TestExecuteErrorInOneRun: a runtime error in the target run (the sandbox's answer makes the script fail)
// is recorded with its position, and both baseline runs still run.
func TestExecuteErrorInOneRun(t *testing.T) {
	srv, log := sandboxServer(t)
	src := `
res = http.get(URL + "/eta", capture=True, name="eta")
if json.decode(res.body())["eta"] != "5m":
    fail("unexpected eta")
smart_test.check("done", True, "")
`
	rep, err := Execute(t.Context(), testConfig(srv, src))
	if err != nil {
		t.Fatal(err)
	}
	if e := rep.Runs[0].Error; !strings.Contains(e, "eta.star:5:9") || !strings.Contains(e, "unexpected eta") {
		t.Errorf("target error %q, want it at eta.star:5:9", e)
	}
	if r := rep.Runs[0]; r.ErrorKind != script.KindRuntime || r.ErrorPosition == nil || r.ErrorPosition.Line != 5 ||
		!strings.Contains(r.Backtrace, "Traceback") {
		t.Errorf("target error details: kind %q position %v backtrace %q", r.ErrorKind, r.ErrorPosition, r.Backtrace)
	}
	if len(rep.Runs[0].Captures) != 1 || rep.Runs[0].Result == nil {
		t.Errorf("target run %+v: want its result and capture up to the error", rep.Runs[0])
	}
	for _, r := range rep.Runs[1:] {
		if r.Error != "" || len(r.Result.Checks) != 1 || len(r.Captures) != 1 {
			t.Errorf("run %s: %+v", r.Name, r)
		}
	}
	if n := len(log()); n != 3 {
		t.Errorf("server saw %d requests, want 3", n)
	}

	// A syntax error fails every run, with its position; Execute itself succeeds.
	rep, err = Execute(t.Context(), testConfig(srv, "x = (\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Runs {
		if !strings.HasPrefix(r.Error, "eta.star:3:1:") {
			t.Errorf("run %s: error %q, want a syntax error at eta.star:3:1", r.Name, r.Error)
		}
	}
}

// TestExecuteCaptureBodyLimit: a body longer than MaxCaptureBodyBytes is cut and marked; the script sees it whole.
func TestExecuteCaptureBodyLimit(t *testing.T) {
	srv, _ := sandboxServer(t)
	cfg := testConfig(srv, `
res = http.post(URL + "/echo", body="0123456789" * 10, capture=True)
smart_test.check("whole", len(res.body()) == 100, "got {} bytes".format(len(res.body())))
`)
	cfg.MaxCaptureBodyBytes = 16
	rep, err := Execute(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := rep.Runs[0].Captures[0]
	if string(c.Request.Body) != "0123456789012345" || !c.Request.BodyTruncated ||
		string(c.Response.Body) != "0123456789012345" || !c.Response.BodyTruncated || !rep.Runs[0].Result.Passed() {
		t.Errorf("capture %+v, result %+v", c, rep.Runs[0].Result)
	}
}

// TestExecuteCaptureBudget: bodies beyond a run's MaxCaptureBytes are cut (to nothing) and marked truncated;
// every run has its own budget.
func TestExecuteCaptureBudget(t *testing.T) {
	srv, _ := sandboxServer(t)
	cfg := testConfig(srv, `
for i in range(3):
    http.post(URL + "/echo", body="0123456789", capture=True)
`)
	cfg.MaxCaptureBytes = 25
	rep, err := Execute(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Runs {
		cs := r.Captures
		if len(cs) != 3 || string(cs[0].Request.Body) != "0123456789" || string(cs[0].Response.Body) != "0123456789" ||
			string(cs[1].Request.Body) != "01234" || !cs[1].Request.BodyTruncated || len(cs[1].Response.Body) != 0 || !cs[1].Response.BodyTruncated ||
			len(cs[2].Request.Body) != 0 || !cs[2].Request.BodyTruncated || len(cs[2].Response.Body) != 0 || !cs[2].Response.BodyTruncated {
			t.Errorf("run %s: captures %+v", r.Name, cs)
		}
	}
}

func TestExecuteConfigErrors(t *testing.T) {
	srv, _ := sandboxServer(t)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no execution", func(c *Config) { c.Execution = "" }, "execution: required"},
		{"bad execution", func(c *Config) { c.Execution = "a.b" }, "execution: \"a.b\""},
		{"long execution", func(c *Config) { c.Execution = strings.Repeat("a", MaxExecutionLen+1) }, "execution: longer"},
		{"empty script", func(c *Config) { c.Source = "" }, "source: the script is empty"},
		{"large script", func(c *Config) { c.Source = strings.Repeat("#", MaxScriptBytes+1) }, "source: the script is"},
		{"bad key", func(c *Config) { c.RoutingKey = "Not A Key" }, "routingKey:"},
		{"no key", func(c *Config) { c.RoutingKey = "" }, "routingKey:"},
		{"bad redact", func(c *Config) { c.RedactHeaders = []string{"ok", "a b"} }, "redactHeaders[1]"},
		{"negative body", func(c *Config) { c.MaxCaptureBodyBytes = -1 }, "maxCaptureBodyBytes"},
		{"negative budget", func(c *Config) { c.MaxCaptureBytes = -1 }, "maxCaptureBytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(srv, "x = 1\n")
			tc.mod(&cfg)
			rep, err := Execute(t.Context(), cfg)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.want) || rep != nil {
				t.Fatalf("err %v, want ErrConfig with %q", err, tc.want)
			}
		})
	}
}

// TestExecuteCanceled: a cancelled context still gives a report with every run, and the context's error.
func TestExecuteCanceled(t *testing.T) {
	srv, _ := sandboxServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rep, err := Execute(ctx, testConfig(srv, "x = 1\n"))
	if !errors.Is(err, context.Canceled) || rep == nil || len(rep.Runs) != 3 || !strings.Contains(rep.Runs[2].Error, "not run") {
		t.Fatalf("err %v, report %+v", err, rep)
	}
}

func TestStripRoutingKey(t *testing.T) {
	h := http.Header{}
	routingkey.Default.Inject(h, "k1")
	h.Add("Baggage", "other=1;p, sm-routing-key = k2")
	h.Set("Tracestate", "sm-routing-key=k1,vendor=x")
	h.Set("X-Keep", "yes")
	if !StripRoutingKey(routingkey.Default, h) {
		t.Fatal("nothing removed")
	}
	if _, ok := routingkey.Default.Extract(h); ok {
		t.Fatalf("a key is left: %v", h)
	}
	if h.Get("Baggage") != "other=1;p" || h.Get("Tracestate") != "vendor=x" || h.Get("X-Keep") != "yes" {
		t.Fatalf("headers %v", h)
	}
	if StripRoutingKey(routingkey.Default, http.Header{"X-Keep": {"1"}}) {
		t.Fatal("removed something from a header set without a key")
	}
}

// baggageMember returns the value of the member named key of a baggage list.
func baggageMember(list, key string) (string, bool) {
	for m := range strings.SplitSeq(list, ",") {
		k, v, ok := strings.Cut(m, "=")
		if ok && strings.TrimSpace(k) == key {
			v, _, _ = strings.Cut(v, ";")
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}
