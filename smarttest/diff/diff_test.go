package diff

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"
)

var route = CapturePoint{Kind: KindDeployment, Namespace: "hotrod", Name: "route", Direction: Inbound}
var driver = CapturePoint{Kind: KindDeployment, Namespace: "hotrod", Name: "driver", Direction: Inbound}

func capt(id string, p CapturePoint, name string, status int, body string) Capture {
	return Capture{ID: id, Point: p, Name: name, Seq: 1,
		Request:  Request{Method: "GET", Path: "/route", Headers: map[string][]string{"Accept": {"application/json"}}},
		Response: Response{Status: status, Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(body)}}
}

func one(c Capture) []Capture { return []Capture{c} }

// allOps returns every reported op of r.
func allOps(r *Result) []DiffOp {
	var out []DiffOp
	for _, p := range r.Points {
		for _, d := range p.Diffs {
			out = append(out, d.Request.DiffOps...)
			out = append(out, d.Response.DiffOps...)
		}
	}
	return out
}

func opAt(t *testing.T, r *Result, path string) DiffOp {
	t.Helper()
	for _, d := range allOps(r) {
		if d.Path == path {
			return d
		}
	}
	t.Fatalf("no op at %s; ops: %s", path, mustJSON(allOps(r)))
	return DiffOp{}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestNoiseVersusFinding(t *testing.T) {
	a := capt("a", route, "eta", 200, `{"eta":{"minutes":5},"ts":"2026-12-03T05:00:00Z","id":"0b4e1f5e-6a5c-4b8e-9a0e-1d2c3b4a5f60","v":1}`)
	b := capt("b", route, "eta", 200, `{"eta":{"minutes":5},"ts":"2026-12-03T05:00:01Z","id":"7c2d9a10-1b2c-4d3e-8f90-a1b2c3d4e5f6","v":1}`)
	tg := capt("t", route, "eta", 200, `{"eta":{"minutes":7},"ts":"2026-12-03T05:00:02Z","id":"3e1a2b3c-4d5e-4f60-8a9b-0c1d2e3f4a5b","v":1}`)
	r := Compare(one(tg), one(a), one(b), Options{})
	if len(r.Findings) != 1 {
		t.Fatalf("findings = %s, want one", mustJSON(r.Findings))
	}
	f := r.Findings[0]
	if f.Path != "/response/body/eta/minutes" || f.Category != Yellow || f.Op != OpReplace ||
		string(f.Value) != "7" || string(f.OldValue) != "5" || f.Relevance != 0.6 || f.Point != route {
		t.Errorf("finding = %s", mustJSON(f))
	}
	for _, p := range []string{"/response/body/ts", "/response/body/id"} {
		if d := opAt(t, r, p); !d.Classification.Noise || d.Classification.Category != Green || d.Classification.Relevance != 0 {
			t.Errorf("%s: %s, want green noise", p, mustJSON(d))
		}
	}
	want := TrafficDiff{Captures: 1, Replacements: 3, MaxRelevance: 0.6,
		Yellow:        Counts{Replacements: 1, Captures: 1, MaxRelevance: 0.6},
		Green:         Counts{Replacements: 2, Captures: 1},
		CapturePoints: 1}
	if r.Summary != want {
		t.Errorf("summary = %s\nwant      %s", mustJSON(r.Summary), mustJSON(want))
	}
}

func TestNoSecondBaselineMeansNoNoise(t *testing.T) {
	a := capt("a", route, "eta", 200, `{"ts":"2026-12-03T05:00:00Z"}`)
	tg := capt("t", route, "eta", 200, `{"ts":"2026-12-03T05:00:02Z"}`)
	r := Compare(one(tg), one(a), nil, Options{})
	if len(r.Findings) != 1 || r.Findings[0].Category != Yellow {
		t.Fatalf("findings = %s", mustJSON(r.Findings))
	}
}

func TestLearnedNoiseAcrossOccurrencesAndIndices(t *testing.T) {
	// A and B differ at items/0/id of the first occurrence; the target
	// differs at items/2/id of the second occurrence, with a uuid too.
	u := func(n int) string { return fmt.Sprintf("%08x-1b2c-4d3e-8f90-a1b2c3d4e5f6", n) }
	body := func(ids ...string) string {
		var items []string
		for _, id := range ids {
			items = append(items, fmt.Sprintf(`{"id":%q,"n":1}`, id))
		}
		return `{"items":[` + strings.Join(items, ",") + `]}`
	}
	mk := func(run string, b0, b1 string) []Capture {
		c0 := capt(run+"0", route, "list", 200, b0)
		c1 := capt(run+"1", route, "list", 200, b1)
		c1.Seq = 2
		return []Capture{c1, c0} // out of order on purpose: pairing sorts by Seq
	}
	a := mk("a", body(u(1), u(2), u(3)), body(u(1), u(2), u(3)))
	b := mk("b", body(u(9), u(2), u(3)), body(u(1), u(2), u(3)))
	tg := mk("t", body(u(1), u(2), u(3)), body(u(1), u(2), u(7)))
	r := Compare(tg, a, b, Options{})
	if len(r.Findings) != 0 {
		t.Fatalf("findings = %s, want none", mustJSON(r.Findings))
	}
	if d := opAt(t, r, "/response/body/items/2/id"); !d.Classification.Noise {
		t.Errorf("op = %s, want noise", mustJSON(d))
	}
	// A change of shape at the same place is not noise.
	tg = mk("t", body(u(1), u(2), u(3)), body(u(1), u(2), "plain"))
	r = Compare(tg, a, b, Options{})
	if len(r.Findings) != 1 || r.Findings[0].Path != "/response/body/items/2/id" || r.Findings[0].Occurrence != 1 {
		t.Fatalf("findings = %s", mustJSON(r.Findings))
	}
}

func TestReorderedArray(t *testing.T) {
	a := capt("a", route, "eta", 200, `{"drivers":[{"id":1},{"id":2},{"id":3}]}`)
	tg := capt("t", route, "eta", 200, `{"drivers":[{"id":3},{"id":1},{"id":2.0}]}`)
	r := Compare(one(tg), one(a), one(a), Options{})
	ops := allOps(r)
	if len(ops) != 1 || !ops[0].Reorder || ops[0].Path != "/response/body/drivers" || ops[0].Op != OpReplace ||
		ops[0].Classification.Category != Yellow || ops[0].Classification.Relevance != 0.2 {
		t.Fatalf("ops = %s, want one yellow reorder", mustJSON(ops))
	}
	// A baseline that reorders too makes the reorder noise.
	b := capt("b", route, "eta", 200, `{"drivers":[{"id":2},{"id":3},{"id":1}]}`)
	r = Compare(one(tg), one(a), one(b), Options{})
	if len(r.Findings) != 0 || !allOps(r)[0].Classification.Noise {
		t.Fatalf("ops = %s, want green reorder", mustJSON(allOps(r)))
	}
	// Different elements are per-index changes, not a reorder.
	tg = capt("t", route, "eta", 200, `{"drivers":[{"id":3},{"id":1},{"id":4}]}`)
	r = Compare(one(tg), one(a), one(a), Options{})
	if ops := allOps(r); len(ops) != 3 || ops[0].Reorder {
		t.Fatalf("ops = %s, want 3 per-index replaces", mustJSON(ops))
	}
}

func TestNumbersVersusStrings(t *testing.T) {
	for _, tc := range []struct {
		old, new string
		ops      int
		red      bool
	}{
		{`{"n":1}`, `{"n":1.0}`, 0, false},
		{`{"n":1}`, `{"n":1e0}`, 0, false},
		{`{"n":120}`, `{"n":1.2E+2}`, 0, false},
		{`{"n":-0}`, `{"n":0.000}`, 0, false},
		{`{"n":0.1}`, `{"n":0.10}`, 0, false},
		{`{"n":9007199254740993}`, `{"n":9007199254740992}`, 1, false},
		{`{"n":1}`, `{"n":2}`, 1, false},
		{`{"n":1}`, `{"n":"1"}`, 1, true},
		{`{"n":null}`, `{"n":0}`, 1, true},
		{`{"n":{}}`, `{"n":[]}`, 1, true},
		{`{"n":true}`, `{"n":"true"}`, 1, true},
	} {
		r := Compare(one(capt("t", route, "x", 200, tc.new)), one(capt("a", route, "x", 200, tc.old)), nil, Options{})
		ops := allOps(r)
		if len(ops) != tc.ops {
			t.Errorf("%s -> %s: ops = %s, want %d", tc.old, tc.new, mustJSON(ops), tc.ops)
			continue
		}
		if tc.ops == 1 && (ops[0].Classification.Category == Red) != tc.red {
			t.Errorf("%s -> %s: op = %s, red = %v", tc.old, tc.new, mustJSON(ops[0]), tc.red)
		}
		if tc.red && (!ops[0].TypeChange || ops[0].Classification.Relevance != 0.9) {
			t.Errorf("%s -> %s: op = %s, want type change 0.9", tc.old, tc.new, mustJSON(ops[0]))
		}
	}
}

func TestNestedRemoval(t *testing.T) {
	a := capt("a", route, "x", 200, `{"a":{"b":{"c":1,"d":2}},"list":[1,2,3]}`)
	tg := capt("t", route, "x", 200, `{"a":{"b":{"d":2,"e":3}},"list":[1,2]}`)
	r := Compare(one(tg), one(a), one(a), Options{})
	if d := opAt(t, r, "/response/body/a/b/c"); d.Op != OpRemove || d.Classification.Category != Red ||
		d.Classification.Relevance != 0.8 || string(d.OldValue) != "1" || d.Value != nil {
		t.Errorf("removal = %s", mustJSON(d))
	}
	if d := opAt(t, r, "/response/body/a/b/e"); d.Op != OpAdd || d.Classification.Category != Yellow || string(d.Value) != "3" {
		t.Errorf("addition = %s", mustJSON(d))
	}
	if d := opAt(t, r, "/response/body/list/2"); d.Op != OpRemove || d.Classification.Category != Yellow {
		t.Errorf("element removal = %s, want yellow", mustJSON(d))
	}
	s := r.Summary
	if s.Additions != 1 || s.Removals != 2 || s.Red.Removals != 1 || s.Yellow.Removals != 1 || s.Yellow.Additions != 1 ||
		s.MaxRelevance != 0.8 || s.Red.Captures != 1 || s.Yellow.Captures != 1 || s.Green.Captures != 0 {
		t.Errorf("summary = %s", mustJSON(s))
	}
	// Findings are most relevant first.
	if len(r.Findings) != 3 || r.Findings[0].Path != "/response/body/a/b/c" {
		t.Errorf("findings = %s", mustJSON(r.Findings))
	}
}

func TestStatusChange(t *testing.T) {
	a := capt("a", route, "x", 200, `{"ok":true}`)
	tg := capt("t", route, "x", 503, `{"ok":true}`)
	r := Compare(one(tg), one(a), one(a), Options{})
	d := opAt(t, r, "/response/status")
	if d.Op != OpReplace || string(d.Value) != "503" || string(d.OldValue) != "200" || d.Classification.Category != Red ||
		d.Classification.Relevance != 1 || r.Summary.MaxRelevance != 1 || r.Summary.Red.MaxRelevance != 1 {
		t.Errorf("op = %s summary = %s", mustJSON(d), mustJSON(r.Summary))
	}
}

func TestNonJSONBodies(t *testing.T) {
	a := capt("a", route, "x", 200, "line one\nline two\n")
	tg := capt("t", route, "x", 200, "line one\nline 2\n")
	r := Compare(one(tg), one(a), one(a), Options{})
	ops := allOps(r)
	if len(ops) != 1 || ops[0].Path != "/response/body" || string(ops[0].Value) != `"line one\nline 2\n"` ||
		ops[0].Classification.Category != Yellow {
		t.Fatalf("text ops = %s", mustJSON(ops))
	}
	// Long text is truncated.
	long := capt("t", route, "x", 200, strings.Repeat("é", 1000))
	d := allOps(Compare(one(long), one(a), nil, Options{MaxValueBytes: 64}))[0]
	var s string
	if err := json.Unmarshal(d.Value, &s); err != nil || len(s) > 64+len("…") || !strings.HasSuffix(s, "…") {
		t.Errorf("truncated value = %s (%v)", d.Value, err)
	}
	// Binary bodies become a placeholder.
	bin := capt("t", route, "x", 200, "\xff\xfe\x00\x01")
	d = allOps(Compare(one(bin), one(a), nil, Options{}))[0]
	if string(d.Value) != `"<binary 4 bytes>"` {
		t.Errorf("binary value = %s", d.Value)
	}
	// JSON that becomes text is a type change; a truncated JSON body is text.
	js := capt("a", route, "x", 200, `{"a":1}`)
	html := capt("t", route, "x", 200, `<html>oops</html>`)
	if d := allOps(Compare(one(html), one(js), nil, Options{}))[0]; !d.TypeChange || d.Classification.Category != Red {
		t.Errorf("json->text = %s", mustJSON(d))
	}
	tr := capt("t", route, "x", 200, `{"a":1`)
	tr.Response.BodyTruncated = true
	if d := allOps(Compare(one(tr), one(js), nil, Options{}))[0]; !d.TypeChange {
		t.Errorf("truncated = %s", mustJSON(d))
	}
	// A body that disappears is a red removal.
	empty := capt("t", route, "x", 200, "")
	if d := allOps(Compare(one(empty), one(js), nil, Options{}))[0]; d.Op != OpRemove || d.Classification.Category != Red {
		t.Errorf("empty = %s", mustJSON(d))
	}
}

func TestLargeBodiesBounded(t *testing.T) {
	old := make(map[string]any)
	nw := make(map[string]any)
	for i := range 5000 {
		old[fmt.Sprintf("k%05d", i)] = i
		nw[fmt.Sprintf("k%05d", i)] = i + 1
	}
	nw["big"] = strings.Repeat("x", 100000)
	delete(nw, "k04999")
	a := capt("a", route, "x", 200, mustJSON(old))
	tg := capt("t", route, "x", 200, mustJSON(nw))
	r := Compare(one(tg), one(a), nil, Options{MaxOps: 50, MaxValueBytes: 32})
	pd := r.Points[0].Diffs[0]
	ops := allOps(r)
	if len(ops) != 50 || !pd.Truncated || pd.Ops != 5001 {
		t.Fatalf("reported %d of %d, truncated %v", len(ops), pd.Ops, pd.Truncated)
	}
	// The red removal is reported even though it comes last in path order.
	if d := ops[len(ops)-1]; d.Path != "/response/body/k04999" || d.Classification.Category != Red {
		t.Errorf("last op = %s", mustJSON(d))
	}
	for _, d := range ops {
		if len(d.Value) > 40 || len(d.OldValue) > 40 {
			t.Errorf("value not truncated: %s", mustJSON(d))
		}
	}
	if r.Summary.Replacements != 4999 || r.Summary.Additions != 1 || r.Summary.Removals != 1 {
		t.Errorf("summary = %s", mustJSON(r.Summary))
	}
	// The same input gives the same output, whatever the map order.
	if again := Compare(one(tg), one(a), nil, Options{MaxOps: 50, MaxValueBytes: 32}); mustJSON(again) != mustJSON(r) {
		t.Error("two runs differ")
	}
}

func TestUnpaired(t *testing.T) {
	a := []Capture{capt("a1", route, "x", 200, `{}`), capt("a2", driver, "y", 200, `{}`)}
	tg := []Capture{capt("t1", route, "x", 200, `{}`), capt("t2", route, "x", 200, `{}`)}
	tg[1].Seq = 2
	r := Compare(tg, a, nil, Options{})
	want := []Unpaired{
		{Side: SideTarget, ID: "t2", Point: route, Name: "x", Occurrence: 1},
		{Side: SideBaseline, ID: "a2", Point: driver, Name: "y"},
	}
	if !reflect.DeepEqual(r.Unpaired, want) || r.Summary.UnpairedCaptures != 2 || r.Summary.Captures != 1 {
		t.Errorf("unpaired = %s summary = %s", mustJSON(r.Unpaired), mustJSON(r.Summary))
	}
}

func TestPairingByPathTemplate(t *testing.T) {
	mk := func(id, path string, seq int64, body string) Capture {
		c := capt(id, driver, "", 200, body)
		c.Request.Path, c.Seq = path, seq
		return c
	}
	a := []Capture{mk("a1", "/orders/123", 1, `{"n":1}`), mk("a2", "/orders/0b4e1f5e-6a5c-4b8e-9a0e-1d2c3b4a5f60", 2, `{"n":2}`)}
	tg := []Capture{mk("t1", "/orders/124", 1, `{"n":1}`), mk("t2", "/orders/9", 2, `{"n":3}`)}
	r := Compare(tg, a, nil, Options{})
	if len(r.Unpaired) != 0 || len(r.Points) != 1 || len(r.Points[0].Diffs) != 2 {
		t.Fatalf("result = %s", mustJSON(r))
	}
	d := r.Points[0].Diffs[1]
	if d.Name != "GET /orders/{}" || d.Occurrence != 1 || d.BaselineID != "a2" || d.TargetID != "t2" {
		t.Errorf("pair = %s", mustJSON(d))
	}
	if p := d.Request.DiffOps[0]; p.Path != "/request/path" {
		t.Errorf("request op = %s", mustJSON(p))
	}
}

func TestHeadersAndQuery(t *testing.T) {
	a := capt("a", route, "x", 200, `{}`)
	a.Request.Query = "from=1&to=2"
	a.Request.Headers["Date"] = []string{"Thu, 03 Dec 2026 05:00:00 GMT"}
	a.Request.Headers["Grpc-Timeout"] = []string{"9999748u"} // the caller's deadline left: differs per call
	a.Response.Headers["X-Request-Id"] = []string{"abc"}
	a.Response.Headers["X-Version"] = []string{"1"}
	tg := capt("t", route, "x", 200, `{}`)
	tg.Request.Query = "to=2&from=1&debug=1"
	tg.Request.Headers["baggage"] = []string{"sm-routing-key=abc"}
	tg.Request.Headers["Uberctx-Sm-Routing-Key"] = []string{"abc"}
	tg.Request.Headers["grpc-timeout"] = []string{"9999887u"}
	tg.Response.Headers["x-request-id"] = []string{"def"}
	tg.Response.Headers["Content-Type"] = []string{"text/plain"}
	r := Compare(one(tg), one(a), nil, Options{})
	var paths []string
	for _, d := range allOps(r) {
		paths = append(paths, string(d.Op)+" "+d.Path)
	}
	want := []string{"add /request/query/debug", "replace /response/headers/content-type", "remove /response/headers/x-version"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("ops = %q, want %q", paths, want)
	}
	if d := opAt(t, r, "/response/headers/x-version"); d.Classification.Category != Yellow || d.Classification.Relevance != 0.4 {
		t.Errorf("header removal = %s, want yellow 0.4", mustJSON(d))
	}
	// An explicit list replaces the default.
	r = Compare(one(tg), one(a), nil, Options{IgnoreHeaders: []string{"content-*", "X-VERSION"}})
	if n := len(allOps(r)); n != 6 { // query, baggage, uberctx, date, grpc-timeout, x-request-id
		t.Errorf("ops = %s", mustJSON(allOps(r)))
	}
}

func TestPathEscaping(t *testing.T) {
	ops := DiffCaptures(capt("a", route, "x", 200, `{"a/b~c":1}`), capt("t", route, "x", 200, `{"a/b~c":2}`), Options{})
	if len(ops) != 1 || ops[0].Path != "/response/body/a~1b~0c" {
		t.Errorf("ops = %s", mustJSON(ops))
	}
}

func TestFilterFindings(t *testing.T) {
	a := capt("a", route, "x", 200, `{"a":1,"b":2,"c":3}`)
	tg := capt("t", route, "x", 500, `{"a":2,"b":3}`)
	r := Compare(one(tg), one(a), nil, Options{})
	red, err := r.FilterFindings(Red, 0)
	if err != nil || len(red) != 2 || red[0].Path != "/response/status" {
		t.Errorf("red = %s (%v)", mustJSON(red), err)
	}
	yellow, _ := r.FilterFindings(Yellow, 1)
	if len(yellow) != 1 || yellow[0].Category != Yellow {
		t.Errorf("yellow = %s", mustJSON(yellow))
	}
	all, _ := r.FilterFindings("", 0)
	if len(all) != 4 {
		t.Errorf("all = %s", mustJSON(all))
	}
	if _, err := r.FilterFindings("green", 0); !errors.Is(err, ErrBadCategory) {
		t.Errorf("err = %v", err)
	}
}

// jsonValue is a random JSON document for testing/quick.
type jsonValue string

func randValue(r *rand.Rand, depth int) any {
	k := r.Intn(7)
	if depth > 3 {
		k = r.Intn(4)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return r.Intn(2) == 0
	case 2:
		return json.Number(fmt.Sprint(r.NormFloat64() * 1000))
	case 3:
		return fmt.Sprintf("s%d", r.Intn(100))
	case 4, 5:
		m := map[string]any{}
		for range r.Intn(5) {
			m[fmt.Sprintf("k%d", r.Intn(10))] = randValue(r, depth+1)
		}
		return m
	}
	l := make([]any, r.Intn(5))
	for i := range l {
		l[i] = randValue(r, depth+1)
	}
	return l
}

func (jsonValue) Generate(r *rand.Rand, _ int) reflect.Value {
	return reflect.ValueOf(jsonValue(mustJSON(randValue(r, 0))))
}

func TestDiffSelfIsEmpty(t *testing.T) {
	f := func(v jsonValue) bool {
		c := capt("a", route, "x", 200, string(v))
		c.Request.Body = []byte(v)
		return len(DiffCaptures(c, c, Options{})) == 0 && len(allOps(Compare(one(c), one(c), one(c), Options{}))) == 0
	}
	if err := quick.Check(f, &quick.Config{MaxCount: 500}); err != nil {
		t.Error(err)
	}
}

func FuzzDiff(f *testing.F) {
	for _, s := range [][2]string{
		{`{"a":1}`, `{"a":1.0}`},
		{`{"a":[1,2,3]}`, `{"a":[3,2,1]}`},
		{`{"a":{"b":null}}`, `{"a":{}}`},
		{`[{"id":"0b4e1f5e-6a5c-4b8e-9a0e-1d2c3b4a5f60"}]`, `[{"id":"2026-12-03T05:00:00Z"}]`},
		{`"x"`, `1e999999999999999999999`},
		{"text\n", "\xff"},
		{``, `{}`},
		{`{"a/b~":1}`, `{"a/b~":"1"}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
	} {
		f.Add([]byte(s[0]), []byte(s[1]))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ca := capt("a", route, "x", 200, string(a))
		cb := capt("b", route, "x", 200, string(b))
		cb.Request.Body = b
		opts := Options{MaxOps: 20, MaxValueBytes: 64}
		r1 := mustJSON(Compare(one(cb), one(ca), one(cb), opts))
		r2 := mustJSON(Compare(one(cb), one(ca), one(cb), opts))
		if r1 != r2 {
			t.Fatalf("not deterministic:\n%s\n%s", r1, r2)
		}
		if va, ok := decodeJSON(a); ok {
			if vb, ok := decodeJSON(b); ok && string(appendValue(nil, va, true, 0)) == string(appendValue(nil, vb, true, 0)) &&
				hashValue(va) != hashValue(vb) {
				t.Fatalf("equal values hash apart: %s %s", a, b)
			}
		}
		if ops := DiffCaptures(ca, ca, opts); len(ops) != 0 {
			t.Fatalf("diff(a, a) = %s", mustJSON(ops))
		}
		for _, d := range DiffCaptures(ca, cb, opts) {
			for _, v := range []json.RawMessage{d.Value, d.OldValue} {
				if v != nil && !json.Valid(v) {
					t.Fatalf("invalid value %q in %s", v, d.Path)
				}
			}
		}
	})
}

func TestNoiseNeedsSameOpKind(t *testing.T) {
	a := capt("a", route, "x", 200, `{"at":"2026-12-03T05:00:00Z","n":1}`)
	b := capt("b", route, "x", 200, `{"at":"2026-12-03T05:00:01Z","n":1}`)
	tg := capt("t", route, "x", 200, `{"n":1}`)
	r := Compare(one(tg), one(a), one(b), Options{})
	if len(r.Findings) != 1 || r.Findings[0].Category != Red || r.Findings[0].Op != OpRemove {
		t.Fatalf("findings = %s, want the removal red although the field varies", mustJSON(r.Findings))
	}
	// Text bodies that differ between the baselines are noise.
	a, b, tg = capt("a", route, "x", 200, "at 1"), capt("b", route, "x", 200, "at 2"), capt("t", route, "x", 200, "at 3")
	if r := Compare(one(tg), one(a), one(b), Options{}); len(r.Findings) != 0 || r.Summary.Green.Replacements != 1 {
		t.Fatalf("text noise: %s", mustJSON(r))
	}
}

func TestCaptureValidateAndJSON(t *testing.T) {
	c := capt("c1", route, "eta", 200, `{}`)
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*Capture)
		path string
	}{
		{func(c *Capture) { c.ID = "" }, "id"},
		{func(c *Capture) { c.Point.Kind = "Pod" }, "point.kind"},
		{func(c *Capture) { c.Point.Direction = "in" }, "point.direction"},
		{func(c *Capture) { c.Request.Path = "route" }, "request.path"},
		{func(c *Capture) { c.Response.Status = 42 }, "response.status"},
	} {
		c := capt("c1", route, "eta", 200, `{}`)
		tc.edit(&c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalidCapture) || !strings.Contains(err.Error(), ": "+tc.path+": ") {
			t.Errorf("%s: err = %v", tc.path, err)
		}
	}
	c.Request.BodyTruncated = true
	var m map[string]any
	if err := json.Unmarshal([]byte(mustJSON(c)), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "point", "name", "seq", "request", "response", "duration"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, mustJSON(c))
		}
	}
	if _, ok := m["request"].(map[string]any)["bodyTruncated"]; !ok {
		t.Errorf("no request.bodyTruncated in %s", mustJSON(c))
	}
}

// TestCompareConcurrent runs Compare on shared inputs from several
// goroutines (run with -race): inputs are not modified, results agree.
func TestCompareConcurrent(t *testing.T) {
	a := []Capture{capt("a", route, "x", 200, `{"n":[1,2,3],"at":"2026-12-03T05:00:00Z"}`)}
	b := []Capture{capt("b", route, "x", 200, `{"n":[1,2,3],"at":"2026-12-03T05:00:01Z"}`)}
	tg := []Capture{capt("t", route, "x", 200, `{"n":[3,2,1],"at":"2026-12-03T05:00:02Z"}`)}
	want := mustJSON(Compare(tg, a, b, Options{}))
	errs := make(chan string, 4)
	for range 4 {
		go func() { errs <- mustJSON(Compare(tg, a, b, Options{})) }()
	}
	for range 4 {
		if got := <-errs; got != want {
			t.Errorf("concurrent result differs:\n%s\n%s", got, want)
		}
	}
}

// TestDuplicateKeysLastWins: as in encoding/json, the last of duplicate
// member names is the value.
func TestDuplicateKeysLastWins(t *testing.T) {
	ops := DiffCaptures(capt("a", route, "x", 200, `{"a":1,"a":2,"b":[]}`), capt("t", route, "x", 200, `{"b":[],"a":2.0}`), Options{})
	if len(ops) != 0 {
		t.Errorf("ops = %s", mustJSON(ops))
	}
}

// TestExpectedValues: the routing key and the sandbox's name the target run carries, echoed by the app,
// are green; a removal stays red even when its old value holds one; short values are ignored.
func TestExpectedValues(t *testing.T) {
	a := capt("a", route, "eta", 200, `{"routingKey":"","baggage":"","pod":"route-1","eta":"5m","v":"ab"}`)
	b := capt("b", route, "eta", 200, `{"routingKey":"","baggage":"","pod":"route-1","eta":"5m","v":"ab"}`)
	tg := capt("t", route, "eta", 200, `{"routingKey":"k1abcdef","baggage":"sm-routing-key=k1abcdef","pod":"sb-route-x-route-9","v":"xy"}`)
	r := Compare(one(tg), one(a), one(b), Options{Expected: []string{"k1abcdef", "sb-route-x", "ab"}})
	for _, p := range []string{"/response/body/routingKey", "/response/body/baggage", "/response/body/pod"} {
		if d := opAt(t, r, p); d.Classification.Category != Green {
			t.Errorf("%s: %s, want green (expected value)", p, mustJSON(d))
		}
	}
	if d := opAt(t, r, "/response/body/eta"); d.Classification.Category != Red {
		t.Errorf("eta removal: %s, want red", mustJSON(d))
	}
	if d := opAt(t, r, "/response/body/v"); d.Classification.Category != Yellow {
		t.Errorf("v: %s, want yellow (\"ab\" is too short to be an expected value)", mustJSON(d))
	}
}

// TestPropagatedFrom: frontend echoes route's answer; the change route made shows at both hops and at the
// edge, and the findings of the edge and frontend name route as the origin. A change at frontend alone
// (another value) and one for another request name none.
func TestPropagatedFrom(t *testing.T) {
	frontend := CapturePoint{Kind: KindDeployment, Namespace: "hotrod", Name: "frontend", Direction: Inbound}
	edge := CapturePoint{Kind: KindJob, Namespace: "jobs", Name: "st", Direction: Outbound}
	run := func(r, eta, extra string) []Capture {
		routeBody := `{"data":{` + eta + `}}`
		front := `{"calls":[{"service":"route","data":{` + eta + `}}],"by":"` + extra + `"}`
		return []Capture{
			capt("ex."+r+".0", edge, "dispatch", 200, front),
			capt("ex."+r+".0", frontend, "", 200, front),
			capt("ex."+r+".0", route, "", 200, routeBody),
			capt("ex."+r+".1", route, "", 200, routeBody),
		}
	}
	res := Compare(run("target", `"etaSeconds":"420"`, "v2"), run("baseline-a", `"eta":"7m"`, "v1"), run("baseline-b", `"eta":"7m"`, "v1"), Options{})
	origins := map[string]string{}
	for _, f := range res.Findings {
		k := f.Point.Name + " " + string(f.Op) + " " + f.Path
		if _, ok := origins[k]; ok && f.Point == route {
			k += " (request 1)"
		}
		origins[k] = ""
		if f.PropagatedFrom != nil {
			origins[k] = f.PropagatedFrom.Name
		}
	}
	want := map[string]string{
		"route remove /response/body/data/eta":                 "",
		"route add /response/body/data/etaSeconds":             "",
		"route remove /response/body/data/eta (request 1)":     "",
		"route add /response/body/data/etaSeconds (request 1)": "",
		"frontend remove /response/body/calls/0/data/eta":      "route",
		"frontend add /response/body/calls/0/data/etaSeconds":  "route",
		"frontend replace /response/body/by":                   "",
		"st remove /response/body/calls/0/data/eta":            "route",
		"st add /response/body/calls/0/data/etaSeconds":        "route",
		"st replace /response/body/by":                         "",
	}
	if !reflect.DeepEqual(origins, want) {
		t.Fatalf("findings and their origins:\n got %v\nwant %v", origins, want)
	}
}
