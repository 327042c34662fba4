package diff_test

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

func ExampleCompare() {
	route := diff.CapturePoint{Kind: diff.KindDeployment, Namespace: "hotrod", Name: "route", Direction: diff.Inbound}
	capture := func(id, body string) []diff.Capture {
		return []diff.Capture{{ID: id, Point: route, Name: "eta", Seq: 1,
			Request:  diff.Request{Method: "GET", Path: "/route"},
			Response: diff.Response{Status: 200, Body: []byte(body)}}}
	}
	// Two baseline runs differ in their timestamps: that difference is noise.
	a := capture("a", `{"eta":{"minutes":5},"at":"2026-12-03T05:00:00Z"}`)
	b := capture("b", `{"eta":{"minutes":5},"at":"2026-12-03T05:00:01Z"}`)
	sandbox := capture("t", `{"eta":{"minutes":"7"},"at":"2026-12-03T05:00:02Z"}`)

	r := diff.Compare(sandbox, a, b, diff.Options{})
	for _, f := range r.Findings {
		fmt.Println(f.Category, f.Op, f.Path, string(f.OldValue), "->", string(f.Value), f.Relevance)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(r.Summary)
	// Output:
	// red replace /response/body/eta/minutes 5 -> "7" 0.9
	// {
	//   "captures": 1,
	//   "additions": 0,
	//   "removals": 0,
	//   "replacements": 2,
	//   "maxRelevance": 0.9,
	//   "red": {
	//     "additions": 0,
	//     "removals": 0,
	//     "replacements": 1,
	//     "captures": 1,
	//     "maxRelevance": 0.9
	//   },
	//   "yellow": {
	//     "additions": 0,
	//     "removals": 0,
	//     "replacements": 0,
	//     "captures": 0,
	//     "maxRelevance": 0
	//   },
	//   "green": {
	//     "additions": 0,
	//     "removals": 0,
	//     "replacements": 1,
	//     "captures": 1,
	//     "maxRelevance": 0
	//   },
	//   "capturePoints": 1,
	//   "unpairedCaptures": 0
	// }
}
