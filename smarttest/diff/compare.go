package diff

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// OpKind is the kind of a diff op.
type OpKind string

// Kinds of ops, as in RFC 6902.
const (
	OpAdd     OpKind = "add"
	OpRemove  OpKind = "remove"
	OpReplace OpKind = "replace"
)

// Category is the class of an op: a red or yellow finding, or green noise.
type Category string

// Categories of ops.
const (
	Red    Category = "red"
	Yellow Category = "yellow"
	Green  Category = "green"
)

// Classification says whether an op is noise, its category and relevance.
type Classification struct {
	Noise     bool     `json:"noise"`
	Category  Category `json:"category"`
	Relevance float64  `json:"relevance"`
}

// DiffOp is one difference between a baseline and a target capture.
type DiffOp struct {
	Op   OpKind `json:"op"`
	Path string `json:"path"`
	// Value is the target's value (add, replace), OldValue the baseline's
	// (remove, replace); both truncated for display.
	Value    json.RawMessage `json:"value,omitempty"`
	OldValue json.RawMessage `json:"oldValue,omitempty"`
	// TypeChange marks a replace whose values have different JSON types.
	TypeChange bool `json:"typeChange,omitempty"`
	// Reorder marks a replace of an array by the same elements in another
	// order.
	Reorder        bool           `json:"reorder,omitempty"`
	Classification Classification `json:"classification"`

	old, val  *node
	fromArray bool
	wild      string
}

func (d *DiffOp) finish(maxValue int) {
	if d.Op != OpAdd {
		d.OldValue = encodeTrunc(d.old, maxValue)
	}
	if d.Op != OpRemove {
		d.Value = encodeTrunc(d.val, maxValue)
	}
	d.old, d.val = nil, nil // do not keep decoded bodies alive
}

// RequestDiff is the request half of a pair's diff.
type RequestDiff struct {
	Baseline *Request `json:"baseline"`
	Target   *Request `json:"target"`
	DiffOps  []DiffOp `json:"diffOps"`
}

// ResponseDiff is the response half of a pair's diff.
type ResponseDiff struct {
	Baseline *Response `json:"baseline"`
	Target   *Response `json:"target"`
	DiffOps  []DiffOp  `json:"diffOps"`
}

// PairDiff is the diff of one target capture against its baseline
// capture.
type PairDiff struct {
	Name       string       `json:"name"`
	Occurrence int          `json:"occurrence"`
	BaselineID string       `json:"baselineId"`
	TargetID   string       `json:"targetId"`
	Request    RequestDiff  `json:"request"`
	Response   ResponseDiff `json:"response"`
	// Ops is the number of ops found; when it exceeds the ops reported,
	// Truncated is set.
	Ops       int  `json:"ops"`
	Truncated bool `json:"truncated,omitempty"`
}

// PointDiff holds the pair diffs of one capture point.
type PointDiff struct {
	Point CapturePoint `json:"point"`
	Diffs []PairDiff   `json:"diffs"`
}

// Counts are the counters of one category (or of all).
type Counts struct {
	Additions    int     `json:"additions"`
	Removals     int     `json:"removals"`
	Replacements int     `json:"replacements"`
	Captures     int     `json:"captures"`
	MaxRelevance float64 `json:"maxRelevance"`
}

// TrafficDiff is the summary of a traffic diff, in the shape of
// Signadot's TrafficDiff.
type TrafficDiff struct {
	Captures         int     `json:"captures"`
	Additions        int     `json:"additions"`
	Removals         int     `json:"removals"`
	Replacements     int     `json:"replacements"`
	MaxRelevance     float64 `json:"maxRelevance"`
	Red              Counts  `json:"red"`
	Yellow           Counts  `json:"yellow"`
	Green            Counts  `json:"green"`
	CapturePoints    int     `json:"capturePoints"`
	UnpairedCaptures int     `json:"unpairedCaptures"`
}

// Side names the run an unpaired capture belongs to.
type Side string

// Sides of unpaired captures.
const (
	SideTarget   Side = "target"
	SideBaseline Side = "baseline"
)

// Unpaired is a capture without a partner in the other run.
type Unpaired struct {
	Side       Side         `json:"side"`
	ID         string       `json:"id"`
	Point      CapturePoint `json:"point"`
	Name       string       `json:"name"`
	Occurrence int          `json:"occurrence"`
}

// Finding is one red or yellow op, flattened for a findings endpoint.
type Finding struct {
	Point      CapturePoint    `json:"point"`
	Name       string          `json:"name"`
	Occurrence int             `json:"occurrence"`
	Category   Category        `json:"category"`
	Op         OpKind          `json:"op"`
	Path       string          `json:"path"`
	Value      json.RawMessage `json:"value,omitempty"`
	OldValue   json.RawMessage `json:"oldValue,omitempty"`
	Relevance  float64         `json:"relevance"`
	// PropagatedFrom is set when the same change (op, values, and a body path that ends with the other's)
	// shows for the same request at another capture point: the point the change comes from, a hop this
	// one called (e.g. an app echoing a changed answer of a service it called). Nil: the change shows
	// first here.
	PropagatedFrom *CapturePoint `json:"propagatedFrom,omitempty"`
}

// Result is the traffic diff of a target run against the baseline runs.
type Result struct {
	Summary  TrafficDiff `json:"summary"`
	Points   []PointDiff `json:"capturePoints"`
	Unpaired []Unpaired  `json:"unpairedCaptures"`
	// Findings are the reported red and yellow ops, most relevant first.
	Findings []Finding `json:"findings"`
}

// ErrBadCategory is returned by [Result.FilterFindings] for a category
// other than red, yellow or empty.
var ErrBadCategory = errors.New("category must be red or yellow")

// FilterFindings returns the findings of category (all when empty), at
// most max of them (all when max <= 0), most relevant first.
func (r *Result) FilterFindings(category Category, max int) ([]Finding, error) {
	if category != "" && category != Red && category != Yellow {
		return nil, fmt.Errorf("category %q: %w", category, ErrBadCategory)
	}
	out := []Finding{}
	for _, f := range r.Findings {
		if category != "" && f.Category != category {
			continue
		}
		if max > 0 && len(out) == max {
			break
		}
		out = append(out, f)
	}
	return out, nil
}

// key identifies a capture within a run.
type key struct {
	point CapturePoint
	name  string
	occ   int
}

func requestName(c *Capture) string {
	if c.Name != "" {
		return c.Name
	}
	return c.Request.Method + " " + pathTemplate(c.Request.Path)
}

// pathTemplate replaces path segments that look like ids (digits, uuids,
// long hex) with "{}".
func pathTemplate(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		switch sh := stringShape(s); {
		case s == "":
		case sh == "uuid", sh == "hex", sh == "digits":
			segs[i] = "{}"
		}
	}
	return strings.Join(segs, "/")
}

type run struct {
	keys  []key
	byKey map[key]*Capture
}

func index(cs []Capture) run {
	ptrs := make([]*Capture, len(cs))
	for i := range cs {
		ptrs[i] = &cs[i]
	}
	names := make(map[*Capture]string, len(cs))
	for _, c := range ptrs {
		names[c] = requestName(c)
	}
	slices.SortStableFunc(ptrs, func(a, b *Capture) int {
		return cmp.Or(strings.Compare(a.Point.String(), b.Point.String()), strings.Compare(names[a], names[b]),
			compareRequestIndex(a.ID, b.ID), cmp.Compare(a.Seq, b.Seq), strings.Compare(a.ID, b.ID))
	})
	r := run{byKey: make(map[key]*Capture, len(cs))}
	for i, c := range ptrs {
		k := key{point: c.Point, name: names[c]}
		if i > 0 {
			if prev := r.keys[i-1]; prev.point == k.point && prev.name == k.name {
				k.occ = prev.occ + 1
			}
		}
		r.keys = append(r.keys, k)
		r.byKey[k] = c
	}
	return r
}

// compareRequestIndex orders two capture ids by the script's request they
// belong to: the part after the second '.' of "<execution>.<run>.<index>",
// numerically when both are numbers. Captures of several hops (several
// pods, each counting its own Seq) then pair by the request that caused
// them before their order of arrival. Ids of another shape compare equal.
func compareRequestIndex(a, b string) int {
	ia, ib := requestIndex(a), requestIndex(b)
	if ia == "" || ib == "" {
		return 0
	}
	if digits := func(s string) bool { return strings.Trim(s, "0123456789") == "" }; len(ia) != len(ib) && digits(ia) && digits(ib) {
		return cmp.Compare(len(ia), len(ib))
	}
	return strings.Compare(ia, ib)
}

func requestIndex(id string) string {
	_, rest, ok := strings.Cut(id, ".")
	if !ok {
		return ""
	}
	_, idx, _ := strings.Cut(rest, ".")
	return idx
}

// noiseKey1 is the Diffy rule: same pair, op kind and path.
type noiseKey1 struct {
	k    key
	op   OpKind
	path string
}

// noiseKey2 is the learned rule: same point and name, op kind, wildcard
// path and value shapes.
type noiseKey2 struct {
	point CapturePoint
	name  string
	op    OpKind
	wild  string
	shape string
}

func opShape(d *DiffOp) string {
	switch d.Op {
	case OpAdd:
		return valueShape(d.val)
	case OpRemove:
		return valueShape(d.old)
	}
	return valueShape(d.old) + ">" + valueShape(d.val)
}

// Compare diffs the target (sandbox) run against baseline run A and
// classifies each difference using baseline run B (nil: no noise is
// learned, every difference is a finding).
func Compare(target, baselineA, baselineB []Capture, opts Options) *Result {
	f := newHeaderFilter(opts.IgnoreHeaders)
	tr, ar, br := index(target), index(baselineA), index(baselineB)
	cache := map[*Capture]*parsed{}
	parse := func(c *Capture) *parsed {
		p, ok := cache[c]
		if !ok {
			p = parseCapture(c, f)
			cache[c] = p
		}
		return p
	}

	noise1 := map[noiseKey1]bool{}
	noise2 := map[noiseKey2]bool{}
	for _, k := range ar.keys {
		b := br.byKey[k]
		if b == nil {
			continue
		}
		for _, d := range diffParsed(parse(ar.byKey[k]), parse(b)) {
			noise1[noiseKey1{k, d.Op, d.Path}] = true
			noise2[noiseKey2{k.point, k.name, d.Op, d.wild, opShape(&d)}] = true
		}
	}

	res := &Result{Points: []PointDiff{}, Unpaired: []Unpaired{}, Findings: []Finding{}}
	sum := &res.Summary
	var findingIDs []string // the target capture of each finding
	maxOps, maxValue := opts.maxOps(), opts.maxValueBytes()
	for _, k := range tr.keys {
		t := tr.byKey[k]
		a := ar.byKey[k]
		if a == nil {
			res.Unpaired = append(res.Unpaired, Unpaired{SideTarget, t.ID, k.point, k.name, k.occ})
			continue
		}
		ops := diffParsed(parse(a), parse(t))
		seen := map[Category]bool{}
		for i := range ops {
			d := &ops[i]
			noise := noise1[noiseKey1{k, d.Op, d.Path}] || noise2[noiseKey2{k.point, k.name, d.Op, d.wild, opShape(d)}]
			d.Classification = classify(d, noise)
			if d.Classification.Category == Yellow && len(opts.Expected) > 0 && opts.expected(d) {
				d.Classification = classify(d, true)
			}
			c := d.Classification.Category
			seen[c] = true
			count(&sum.Red, &sum.Yellow, &sum.Green, d)
			switch d.Op {
			case OpAdd:
				sum.Additions++
			case OpRemove:
				sum.Removals++
			case OpReplace:
				sum.Replacements++
			}
			sum.MaxRelevance = max(sum.MaxRelevance, d.Classification.Relevance)
		}
		sum.Captures++
		for c, counts := range map[Category]*Counts{Red: &sum.Red, Yellow: &sum.Yellow, Green: &sum.Green} {
			if seen[c] {
				counts.Captures++
			}
		}
		reported := selectOps(ops, maxOps)
		pd := PairDiff{Name: k.name, Occurrence: k.occ, BaselineID: a.ID, TargetID: t.ID, Ops: len(ops),
			Truncated: len(reported) < len(ops),
			Request:   RequestDiff{Baseline: &a.Request, Target: &t.Request, DiffOps: []DiffOp{}},
			Response:  ResponseDiff{Baseline: &a.Response, Target: &t.Response, DiffOps: []DiffOp{}}}
		for _, d := range reported {
			d.finish(maxValue)
			if strings.HasPrefix(d.Path, "/request/") {
				pd.Request.DiffOps = append(pd.Request.DiffOps, d)
			} else {
				pd.Response.DiffOps = append(pd.Response.DiffOps, d)
			}
			if !d.Classification.Noise {
				findingIDs = append(findingIDs, t.ID)
				res.Findings = append(res.Findings, Finding{Point: k.point, Name: k.name, Occurrence: k.occ,
					Category: d.Classification.Category, Op: d.Op, Path: d.Path, Value: d.Value,
					OldValue: d.OldValue, Relevance: d.Classification.Relevance})
			}
		}
		if n := len(res.Points); n == 0 || res.Points[n-1].Point != k.point {
			res.Points = append(res.Points, PointDiff{Point: k.point})
		}
		res.Points[len(res.Points)-1].Diffs = append(res.Points[len(res.Points)-1].Diffs, pd)
	}
	for _, k := range ar.keys {
		if tr.byKey[k] == nil {
			a := ar.byKey[k]
			res.Unpaired = append(res.Unpaired, Unpaired{SideBaseline, a.ID, k.point, k.name, k.occ})
		}
	}
	sum.CapturePoints = len(res.Points)
	sum.UnpairedCaptures = len(res.Unpaired)
	propagate(res.Findings, findingIDs)
	slices.SortStableFunc(res.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(b.Relevance, a.Relevance), strings.Compare(a.Point.String(), b.Point.String()),
			strings.Compare(a.Name, b.Name), cmp.Compare(a.Occurrence, b.Occurrence), strings.Compare(a.Path, b.Path))
	})
	return res
}

// propagate sets PropagatedFrom of the findings that repeat a finding of another capture point for the same
// request (ids[i] is the target capture of fs[i]; same request: same part after "<execution>.<run>."):
// same op and values, in the same half (request or response body), with a body path that ends with the
// other's, strictly longer. Of several such points the one with the shortest path (the deepest hop) is
// the origin. Findings with equal paths at two points name no origin: nothing tells which came first.
func propagate(fs []Finding, ids []string) {
	body := func(p string) (half, rest string, ok bool) {
		for _, h := range []string{"/response/body", "/request/body"} {
			if r, found := strings.CutPrefix(p, h); found && (r == "" || r[0] == '/') {
				return h, r, true
			}
		}
		return "", "", false
	}
	for i := range fs {
		f := &fs[i]
		fh, fr, ok := body(f.Path)
		if !ok {
			continue
		}
		best := -1
		for j := range fs {
			g := &fs[j]
			gh, gr, ok := body(g.Path)
			// gr starts with '/': a suffix match ends at a path segment's start
			if j == i || !ok || gh != fh || g.Point == f.Point || g.Op != f.Op || len(gr) >= len(fr) || !strings.HasSuffix(fr, gr) ||
				requestIndex(ids[i]) != requestIndex(ids[j]) || !bytes.Equal(f.Value, g.Value) || !bytes.Equal(f.OldValue, g.OldValue) {
				continue
			}
			if best < 0 || len(gr) < len(fs[best].Path)-len(fh) {
				best = j
			}
		}
		if best >= 0 {
			p := fs[best].Point
			f.PropagatedFrom = &p
		}
	}
}

func count(red, yellow, green *Counts, d *DiffOp) {
	c := green
	switch d.Classification.Category {
	case Red:
		c = red
	case Yellow:
		c = yellow
	}
	switch d.Op {
	case OpAdd:
		c.Additions++
	case OpRemove:
		c.Removals++
	case OpReplace:
		c.Replacements++
	}
	c.MaxRelevance = max(c.MaxRelevance, d.Classification.Relevance)
}

// classify applies the rules of the package doc.
func classify(d *DiffOp, noise bool) Classification {
	if noise {
		return Classification{Noise: true, Category: Green}
	}
	inBody := strings.HasPrefix(d.Path, "/response/body") || strings.HasPrefix(d.Path, "/request/body")
	switch {
	case d.Path == "/response/status":
		return Classification{Category: Red, Relevance: 1.0}
	case d.TypeChange:
		return Classification{Category: Red, Relevance: 0.9}
	case d.Op == OpRemove && inBody && !d.fromArray:
		return Classification{Category: Red, Relevance: 0.8}
	case d.Reorder:
		return Classification{Category: Yellow, Relevance: 0.2}
	case strings.HasPrefix(d.Path, "/response/body"):
		return Classification{Category: Yellow, Relevance: 0.6}
	case strings.HasPrefix(d.Path, "/response/"):
		return Classification{Category: Yellow, Relevance: 0.4}
	}
	return Classification{Category: Yellow, Relevance: 0.3}
}

// selectOps keeps at most n ops, red first, then yellow, then green, each
// in path order, and returns them in path order.
func selectOps(ops []DiffOp, n int) []DiffOp {
	if len(ops) <= n {
		return ops
	}
	rank := map[Category]int{Red: 0, Yellow: 1, Green: 2}
	order := make([]int, len(ops))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(rank[ops[a].Classification.Category], rank[ops[b].Classification.Category])
	})
	order = order[:n]
	slices.Sort(order)
	out := make([]DiffOp, n)
	for i, j := range order {
		out[i] = ops[j]
	}
	return out
}

// valueShape names the shape of a value for the learned noise rule.
func valueShape(v *node) string {
	switch v.kind {
	case kString:
		return stringShape(v.s)
	case kNumber:
		if _, err := strconv.ParseInt(v.s, 10, 64); err == nil {
			return "int"
		}
		return "number"
	}
	return kindNames[v.kind]
}

var timeLayouts = []string{time.RFC3339Nano, time.RFC1123, time.RFC1123Z, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02"}

// stringShape classifies a string as uuid, timestamp, digits, hex (16 or
// more hex digits) or string.
func stringShape(s string) string {
	if isUUID(s) {
		return "uuid"
	}
	if len(s) >= 10 && len(s) <= 40 {
		for _, l := range timeLayouts {
			if _, err := time.Parse(l, s); err == nil {
				return "timestamp"
			}
		}
	}
	if s != "" && strings.Trim(s, "0123456789") == "" {
		return "digits"
	}
	if len(s) >= 16 && strings.Trim(strings.ToLower(s), hexDigits) == "" {
		return "hex"
	}
	return "string"
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}
