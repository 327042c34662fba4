package smarttests_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/smarttests"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

func capture(id, body string) diff.Capture {
	return diff.Capture{ID: id, Point: diff.CapturePoint{Kind: diff.KindJob, Namespace: "ns", Name: "job", Direction: diff.Outbound},
		Request: diff.Request{Method: "GET", Path: "/x"}, Response: diff.Response{Status: 200, Body: []byte(body)}}
}

func goodReport() executor.Report {
	run := func(n, body string) executor.Run {
		return executor.Run{Name: n, Result: &script.Result{Checks: []script.Check{{Name: "ok", Errors: []script.CheckError{}}}}, Captures: []diff.Capture{capture(n, body)}}
	}
	return executor.Report{Version: executor.ReportVersion, Execution: "e1", RoutingKey: "k1", Runs: []executor.Run{
		run(executor.RunTarget, `{"a":1,"id":"7f1c"}`), run(executor.RunBaselineA, `{"a":2,"id":"8a2d"}`), run(executor.RunBaselineB, `{"a":2,"id":"9b3e"}`)}}
}

func TestParseReport(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*executor.Report)
		raw    string
		want   string
	}{
		{name: "good"},
		{name: "version", change: func(r *executor.Report) { r.Version = "v0" }, want: "version"},
		{name: "execution", change: func(r *executor.Report) { r.Execution = "e2" }, want: "another execution"},
		{name: "routing key", change: func(r *executor.Report) { r.RoutingKey = "" }, want: "routingKey"},
		{name: "run name", change: func(r *executor.Report) { r.Runs[1].Name = "baseline-c" }, want: "runs[1].name"},
		{name: "twice", change: func(r *executor.Report) { r.Runs[2].Name = executor.RunTarget }, want: "appears twice"},
		{name: "missing run", change: func(r *executor.Report) { r.Runs = r.Runs[:2] }, want: `no run "baseline-b"`},
		{name: "capture", change: func(r *executor.Report) { r.Runs[0].Captures[0].Point.Kind = "Pod" }, want: "runs[0].captures[0]"},
		{name: "not json", raw: "<html>", want: "not a JSON report"},
		{name: "trailing", raw: `{"version":"x"} {}`, want: "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := goodReport()
			if tc.change != nil {
				tc.change(&r)
			}
			data, _ := json.Marshal(r)
			if tc.raw != "" {
				data = []byte(tc.raw)
			}
			_, err := smarttests.ParseReport(data, "e1", "k1")
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

// TestResults: the target run's checks are the sandbox's, baseline-a's the
// baseline's; a field that differs between the baselines too is noise.
func TestResults(t *testing.T) {
	r := goodReport()
	r.Runs[0].Result.Checks[0].Errors = []script.CheckError{{Message: "bad", SourcePosition: script.SourcePosition{File: "t.star", Line: 3, Col: 1}}}
	r.Runs[2].Error = "t.star:9:1: boom"
	res, full := smarttests.Results(&r, true, diff.Options{})
	if len(res.Checks.Sandbox) != 1 || len(res.Checks.Sandbox[0].Errors) != 1 || res.Checks.Sandbox[0].Errors[0].SourcePosition.Line != 3 || len(res.Checks.Baseline[0].Errors) != 0 {
		t.Fatalf("checks: %+v", res.Checks)
	}
	if len(res.Runs) != 3 || res.Runs[0].Passed || !res.Runs[1].Passed || res.Runs[2].Passed || res.Runs[2].Error == "" {
		t.Fatalf("runs: %+v", res.Runs)
	}
	if full == nil || res.TrafficDiff == nil || *res.TrafficDiff != full.Summary || full.Summary.Yellow.Replacements != 1 || full.Summary.Green.Replacements != 1 {
		t.Fatalf("diff: %+v", res.TrafficDiff)
	}
	if res, full := smarttests.Results(&r, false, diff.Options{}); full != nil || res.TrafficDiff != nil {
		t.Fatal("a diff without withDiff")
	}
}

// TestValidateScript: script errors are field errors at spec.script with
// the script's position.
func TestValidateScript(t *testing.T) {
	tt := apitypes.SmartTest{Spec: apitypes.SmartTestSpec{RunnerGroup: "rg", Script: "a = 1\nb = c + d\n"}}
	errs := smarttests.Validate("t", &tt)
	if len(errs) != 2 || errs[0].Path != "spec.script" || !strings.HasPrefix(errs[0].Message, "t.star:2:5: undefined: c") || !strings.HasPrefix(errs[1].Message, "t.star:2:9") {
		t.Fatalf("%+v", errs)
	}
}

// FuzzParseReport: any bytes are parsed without a panic, and a report that
// parses makes results and a diff without one.
func FuzzParseReport(f *testing.F) {
	good, _ := json.Marshal(goodReport())
	f.Add(good)
	f.Add([]byte(`{"version":"smarttest.sandboxmesh.dev/v1","execution":"e1","routingKey":"k1","runs":[{"name":"target"},{"name":"baseline-a"},{"name":"baseline-b"}]}`))
	f.Add([]byte(`{"runs":[{"name":"target","captures":[{"id":"x"}]}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := smarttests.ParseReport(data, "e1", "k1")
		if err != nil {
			return
		}
		res, _ := smarttests.Results(rep, true, diff.Options{})
		if _, err := json.Marshal(res); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzValidate: any body that decodes as a test is validated without a
// panic; errors always carry a field path.
func FuzzValidate(f *testing.F) {
	f.Add("eta", `{"spec":{"script":"x = 1","runnerGroup":"rg","triggers":[{"sandboxOf":{"namespace":"a","name":"b"}}]}}`)
	f.Add("executions", `{"spec":{"script":"def f(:","defaultTimeout":"1h"}}`)
	f.Add("x", `{"spec":{"script":"a = b\nc = d\n","triggers":[{"id":"A"},{"id":"A","executionTemplate":{"timeout":"1"}}]}}`)
	f.Fuzz(func(t *testing.T, name, body string) {
		var st apitypes.SmartTest
		if _, err := apitypes.DecodeWire([]byte(body), &st, apitypes.SmartTestWireRules); err != nil {
			return
		}
		st.Spec.Default()
		for _, fe := range smarttests.Validate(name, &st) {
			if fe.Path == "" || fe.Message == "" {
				t.Fatalf("field error without path or message: %+v", fe)
			}
		}
	})
}

// reportOf20 is a report of a 20-request test: 20 captures per run with
// JSON bodies of about 2 KB, one field changed in the target run, one
// id that differs in every run.
func reportOf20() []byte {
	r := executor.Report{Version: executor.ReportVersion, Execution: "e1", RoutingKey: "k1"}
	for _, n := range []string{executor.RunTarget, executor.RunBaselineA, executor.RunBaselineB} {
		run := executor.Run{Name: n, Result: &script.Result{Requests: 20, Checks: []script.Check{{Name: "ok", Errors: []script.CheckError{}}}}}
		for i := range 20 {
			items := make([]map[string]any, 20)
			for k := range items {
				items[k] = map[string]any{"sku": fmt.Sprintf("sku-%d", k), "price": 10 + k, "name": strings.Repeat("x", 40)}
			}
			body := map[string]any{"id": fmt.Sprintf("%s-%x", n, i*7919), "eta": 5, "items": items}
			if n == executor.RunTarget {
				body["eta"] = "5"
			}
			b, _ := json.Marshal(body)
			c := capture(fmt.Sprintf("e1.%s.%d", n, i), string(b))
			c.Seq = int64(i)
			run.Captures = append(run.Captures, c)
		}
		r.Runs = append(r.Runs, run)
	}
	data, _ := json.Marshal(r)
	return data
}

// BenchmarkConclude measures what concluding an execution of a 20-request
// test costs (parse and check the report, results, diff, encode both)
// beside its peer, decoding the same report with encoding/json alone.
func BenchmarkConclude(b *testing.B) {
	data := reportOf20()
	b.Run("decode-only", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			var r executor.Report
			if err := json.Unmarshal(data, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("conclude", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			rep, err := smarttests.ParseReport(data, "e1", "k1")
			if err != nil {
				b.Fatal(err)
			}
			res, full := smarttests.Results(rep, true, diff.Options{})
			if res.TrafficDiff.Red.Captures != 20 {
				b.Fatalf("red captures %d", res.TrafficDiff.Red.Captures)
			}
			if _, err := json.Marshal(res); err != nil {
				b.Fatal(err)
			}
			if _, err := json.Marshal(full); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// FuzzValidateExecution: any body that decodes as an execution request is
// validated without a panic; errors always carry a field path.
func FuzzValidateExecution(f *testing.F) {
	f.Add(`{"executionContext":{"routing":{"sandbox":"sb"},"autoDiff":{"enabled":false},"timeout":"2m"},"labels":{"a":"b"}}`)
	f.Add(`{"executionContext":{"cluster":"-x","routing":{"sandbox":"a","routegroup":"b"},"timeout":"1ms"}}`)
	f.Add(`{"executionContext":{"runID":"r1"},"hosted":{"x":1}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var es apitypes.TestExecutionSpec
		if _, err := apitypes.DecodeWire([]byte(body), &es, apitypes.TestExecutionWireRules); err != nil {
			return
		}
		for _, fe := range apitypes.ValidateTestExecutionSpec(&es) {
			if fe.Path == "" || fe.Message == "" {
				t.Fatalf("field error without path or message: %+v", fe)
			}
		}
	})
}

// TestScriptLimitFitsExecutor: a script the API accepts is one the executor takes.
func TestScriptLimitFitsExecutor(t *testing.T) {
	if apitypes.MaxSmartTestScriptBytes > executor.MaxScriptBytes {
		t.Errorf("a test's script may be larger (%d) than the executor takes (%d)", apitypes.MaxSmartTestScriptBytes, executor.MaxScriptBytes)
	}
}
