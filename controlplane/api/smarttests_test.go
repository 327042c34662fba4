package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/smarttests"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

const etaScript = `r = http.get("http://route.hotrod.svc:8083/route?from=1&to=2", capture=True, name="route")
c = smart_test.check("eta is a number")
if type(r.json()["eta"]) != "int":
    c.error("eta is %s", type(r.json()["eta"]))
`

func smartTest(name string) *client.SmartTest {
	return &client.SmartTest{Name: name, Spec: apitypes.SmartTestSpec{Script: etaScript, RunnerGroup: "rg", DefaultTimeout: "2m",
		Triggers: []apitypes.SmartTestTrigger{{SandboxOf: &v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "hotrod", Name: "route"},
			ExecutionTemplate: apitypes.SmartTestExecutionTemplate{Cluster: "c1", AutoDiff: &apitypes.SmartTestAutoDiff{Enabled: true}}}}}}
}

// routeCapture is a capture of the route hop answering body.
func routeCapture(id string, body string) diff.Capture {
	return diff.Capture{ID: id, Point: diff.CapturePoint{Kind: diff.KindJob, Namespace: "sandboxmesh-jobs", Name: "smarttest", Direction: diff.Outbound},
		Name: "route", Request: diff.Request{Method: "GET", Path: "/route", Query: "from=1&to=2"},
		Response: diff.Response{Status: 200, Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: []byte(body)}}
}

// report is what the executor would upload for execution id: the sandbox
// answers eta as a string (a red finding), ts differs in every run (noise).
func report(id, key string) executor.Report {
	run := func(name, body string, failed bool) executor.Run {
		res := &script.Result{Requests: 1, Checks: []script.Check{{Name: "eta is a number", Errors: []script.CheckError{}}}}
		if failed {
			res.Checks[0].Errors = append(res.Checks[0].Errors, script.CheckError{Message: "eta is string", SourcePosition: script.SourcePosition{File: "eta.star", Line: 4, Col: 12}})
		}
		return executor.Run{Name: name, Result: res, Captures: []diff.Capture{routeCapture(id+"."+name+".0", body)}}
	}
	return executor.Report{Version: executor.ReportVersion, Execution: id, RoutingKey: key, Runs: []executor.Run{
		run(executor.RunTarget, `{"eta":"5","ts":"2026-12-03T06:00:01Z","route":["a","b"]}`, true),
		run(executor.RunBaselineA, `{"eta":5,"ts":"2026-12-03T06:00:02Z","route":["a","b"]}`, false),
		run(executor.RunBaselineB, `{"eta":5,"ts":"2026-12-03T06:00:03Z","route":["a","b"]}`, false),
	}}
}

// claimExecution claims the next job as a runner pod and checks it is the
// smart-test job of e.
func claimExecution(t *testing.T, rc *client.RunnerClient, e *client.TestExecution, script string) *apitypes.RunnerJob {
	t.Helper()
	rj, err := rc.Claim(context.Background(), 5*time.Second)
	if err != nil || rj == nil {
		t.Fatalf("claim: %v %v", rj, err)
	}
	if rj.Name != e.Status.Job || !slices.Equal(rj.Command, smarttests.RunnerCommand) || rj.RoutingKey != e.Status.RoutingKey {
		t.Fatalf("claimed %+v for execution %+v", rj, e)
	}
	env := map[string]string{}
	for _, v := range rj.Env {
		env[v.Name] = v.Value
	}
	if env[smarttests.EnvScript] != script || env[smarttests.EnvExecution] != e.ID || env[smarttests.EnvFilename] == "" || env["SANDBOXMESH_ROUTING_KEY"] != e.Status.RoutingKey {
		t.Fatalf("env of the smart-test job: %v", env)
	}
	if len(rj.UploadArtifact) != 1 || rj.UploadArtifact[0].Path != executor.ReportFile {
		t.Fatalf("uploadArtifact: %+v", rj.UploadArtifact)
	}
	return rj
}

func upload(t *testing.T, rc *client.RunnerClient, rj *apitypes.RunnerJob, body []byte) {
	t.Helper()
	if _, err := rc.UploadArtifact(context.Background(), rj.Name, rj.Attempt, executor.ReportFile, "application/json", bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
}

func finish(t *testing.T, rc *client.RunnerClient, rj *apitypes.RunnerJob, code int) {
	t.Helper()
	if _, err := rc.Finish(context.Background(), rj.Name, rj.Attempt, apitypes.RunnerFinish{ExitCode: code}); err != nil {
		t.Fatal(err)
	}
}

func wantFields(t *testing.T, err error, status int, paths ...string) *client.APIError {
	t.Helper()
	ae := apiErr(t, err)
	if ae.Status != status {
		t.Fatalf("status %d, want %d: %v", ae.Status, status, err)
	}
	for _, p := range paths {
		found := false
		for _, f := range ae.Fields {
			found = found || f.Path == p
		}
		if !found {
			t.Fatalf("no field error at %s: %v", p, err)
		}
	}
	return ae
}

// TestSmartTestsEndToEnd drives tests and executions through the API with a
// runner pod played over the real runner protocol: the job an execution
// makes, the report it uploads, the results, traffic diff and findings the
// control plane makes of it once, cancel, failures, lists, another org.
func TestSmartTestsEndToEnd(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newJobsEnv(t, d)
			ctx := context.Background()
			e.applyGroup(t, "rg", "1h")
			sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("route-v2", nil))
			if err != nil {
				t.Fatal(err)
			}
			rc := e.runner(t, "rg", e.runnerToken(t, "rg"), "p1")

			// tests
			var created bool
			st, err := e.acme.ApplyTest(ctx, "acme", smartTest("eta"), client.Created(&created))
			if err != nil || !created || st.Version != 1 || st.Spec.Triggers[0].ID != "trigger-0" || st.CreatedAt == "" {
				t.Fatalf("apply: %+v %v %v", st, created, err)
			}
			if st, err = e.acme.ApplyTest(ctx, "acme", st, client.Created(&created)); err != nil || created || st.Version != 1 {
				t.Fatalf("apply again: %+v %v %v", st, created, err)
			}
			changed := smartTest("eta")
			changed.Spec.DefaultTimeout = "3m"
			if _, err := e.acme.ApplyTest(ctx, "acme", changed, client.IfMatch(7)); !errors.Is(err, client.ErrConflict) {
				t.Fatalf("stale If-Match: %v", err)
			}
			if st, err = e.acme.ApplyTest(ctx, "acme", changed, client.IfMatch(1)); err != nil || st.Version != 2 || st.Spec.DefaultTimeout != "3m" {
				t.Fatalf("update: %+v %v", st, err)
			}
			if _, err := e.acme.ApplyTest(ctx, "acme", smartTest("second")); err != nil {
				t.Fatal(err)
			}
			if ts, err := e.acme.ListTests(ctx, "acme"); err != nil || len(ts) != 2 || ts[0].Name != "eta" || ts[1].Name != "second" {
				t.Fatalf("list: %+v %v", ts, err)
			}
			if got, err := e.acme.GetTest(ctx, "acme", "eta"); err != nil || got.Spec.Script != etaScript {
				t.Fatalf("get: %+v %v", got, err)
			}

			// an execution that runs to the end
			ex, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
				ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "route-v2"}, Publish: true},
				Labels:           map[string]string{"ci": "yes"}})
			if err != nil {
				t.Fatal(err)
			}
			if ex.Status.Phase != apitypes.TestPhasePending || ex.Status.RoutingKey != sb.RoutingKey || ex.TestName != "eta" || ex.Results != nil ||
				ex.Spec.ExecutionContext.Cluster != "c1" || ex.Spec.ExecutionContext.Timeout != "3m" || !ex.Spec.ExecutionContext.AutoDiff.Enabled {
				t.Fatalf("created: %+v", ex)
			}
			rj := claimExecution(t, rc, ex, etaScript)
			if got, err := e.acme.GetTestExecution(ctx, "acme", ex.ID); err != nil || got.Status.Phase != apitypes.TestPhaseInProgress {
				t.Fatalf("running: %+v %v", got, err)
			}
			if _, err := e.acme.GetTrafficDiff(ctx, "acme", ex.ID); !errors.Is(err, client.ErrConflict) {
				t.Fatalf("diff before the end: %v", err)
			}
			body, _ := json.Marshal(report(ex.ID, sb.RoutingKey))
			upload(t, rc, rj, body)
			finish(t, rc, rj, 0)
			// concurrent first reads conclude it once; all see the same
			views := make([]*client.TestExecution, 8)
			var wg sync.WaitGroup
			for i := range views {
				wg.Add(1)
				go func() {
					defer wg.Done()
					v, err := e.acme.GetTestExecution(ctx, "acme", ex.ID)
					if err != nil {
						t.Error(err)
						return
					}
					views[i] = v
				}()
			}
			wg.Wait()
			got := views[0]
			if got == nil {
				t.FailNow()
			}
			for _, v := range views[1:] {
				if a, b := mustJSON(t, v), mustJSON(t, got); a != b {
					t.Fatalf("concurrent reads differ:\n%s\n%s", a, b)
				}
			}
			r := got.Results
			if got.Status.Phase != apitypes.TestPhaseSucceeded || r == nil || got.Status.FinalState == nil || got.Status.FinishedAt == "" {
				t.Fatalf("finished: %+v", got)
			}
			if len(r.Checks.Sandbox) != 1 || len(r.Checks.Sandbox[0].Errors) != 1 || r.Checks.Sandbox[0].Errors[0].SourcePosition.Line != 4 ||
				len(r.Checks.Baseline) != 1 || len(r.Checks.Baseline[0].Errors) != 0 || len(r.Runs) != 3 || r.Runs[0].Passed || !r.Runs[1].Passed {
				t.Fatalf("checks: %+v", r)
			}
			td := r.TrafficDiff
			if td == nil || td.Captures != 1 || td.Red.Replacements != 1 || td.Green.Replacements != 1 || td.Yellow.Captures != 0 || td.MaxRelevance < 0.8 {
				t.Fatalf("traffic diff summary: %+v", td)
			}
			if !strings.Contains(got.Status.FinalState.Message, "on the sandbox 0 passed, 1 failed") || !strings.Contains(got.Status.FinalState.Message, "1 red") {
				t.Fatalf("final state: %q", got.Status.FinalState.Message)
			}
			full, err := e.acme.GetTrafficDiff(ctx, "acme", ex.ID)
			if err != nil || full.Summary != *td || len(full.Points) != 1 || len(full.Findings) != 1 {
				t.Fatalf("full diff: %+v %v", full, err)
			}
			fs, err := e.acme.GetTrafficDiffFindings(ctx, "acme", ex.ID, "red", 5)
			if err != nil || len(fs) != 1 || fs[0].Path != "/response/body/eta" || fs[0].Category != diff.Red {
				t.Fatalf("red findings: %+v %v", fs, err)
			}
			if fs, err := e.acme.GetTrafficDiffFindings(ctx, "acme", ex.ID, "yellow", 0); err != nil || len(fs) != 0 {
				t.Fatalf("yellow findings: %+v %v", fs, err)
			}
			if _, err := e.acme.GetTrafficDiffFindings(ctx, "acme", ex.ID, "blue", 0); err == nil {
				t.Fatal("category blue accepted")
			} else {
				wantFields(t, err, 400, "category")
			}
			if raw, err := getWithKey(e.http.URL+"/api/v2/orgs/acme/tests/executions/"+ex.ID+"/traffic-diff-findings?maxFindings=-1", e.keyA); err != nil || raw.StatusCode != 400 {
				t.Fatalf("maxFindings=-1: %v %v", raw, err)
			} else {
				raw.Body.Close()
			}
			// Signadot's paths, under the test
			for _, tc := range []struct {
				method, path string
				code         int
			}{
				{"GET", "/tests/eta/executions/" + ex.ID, 200},
				{"GET", "/tests/eta/executions/" + ex.ID + "/traffic-diff", 200},
				{"POST", "/tests/eta/executions/" + ex.ID + "/cancel", 200},
				{"GET", "/tests/second/executions/" + ex.ID, 404},
				{"POST", "/tests/second/executions/" + ex.ID + "/cancel", 404},
				{"GET", "/tests/eta/executions/" + ex.ID + "/", 200},
			} {
				req, _ := http.NewRequest(tc.method, e.http.URL+"/api/v2/orgs/acme"+tc.path, nil)
				req.Header.Set(apitypes.HeaderSignadotAPIKey, e.keyA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != tc.code {
					t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
				}
			}
			// the results were stored once: they outlive the job and its report
			if err := e.acme.DeleteJob(ctx, "acme", rj.Name); err != nil {
				t.Fatal(err)
			}
			if again, err := e.acme.GetTestExecution(ctx, "acme", ex.ID); err != nil || again.Status.Phase != apitypes.TestPhaseSucceeded || again.Results.TrafficDiff.Red != td.Red {
				t.Fatalf("after the job's deletion: %+v %v", again, err)
			}

			// canceled while queued
			ex2, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
				ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "route-v2"}}})
			if err != nil {
				t.Fatal(err)
			}
			c2, err := e.acme.CancelTestExecution(ctx, "acme", ex2.ID)
			if err != nil || c2.Status.Phase != apitypes.TestPhaseCanceled || c2.Status.FinalState == nil || !strings.Contains(c2.Status.FinalState.Message, "apiRequest") {
				t.Fatalf("cancel: %+v %v", c2, err)
			}
			if _, err := e.acme.GetTrafficDiff(ctx, "acme", ex2.ID); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("diff of a canceled execution: %v", err)
			}

			// a report of another version: failed, nothing written
			ex3, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
				ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "route-v2"}}})
			if err != nil {
				t.Fatal(err)
			}
			rj3 := claimExecution(t, rc, ex3, etaScript)
			bad := report(ex3.ID, sb.RoutingKey)
			bad.Version = "smarttest.sandboxmesh.dev/v0"
			body, _ = json.Marshal(bad)
			upload(t, rc, rj3, body)
			finish(t, rc, rj3, 0)
			if g, err := e.acme.GetTestExecution(ctx, "acme", ex3.ID); err != nil || g.Status.Phase != apitypes.TestPhaseFailed || g.Results != nil ||
				!strings.Contains(g.Status.FinalState.Message, "malformed report: version") {
				t.Fatalf("bad version: %+v %v", g, err)
			}

			// no report, the job failed; autoDiff off
			ex4, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
				ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "route-v2"}, AutoDiff: &apitypes.SmartTestAutoDiff{}}})
			if err != nil {
				t.Fatal(err)
			}
			rj4 := claimExecution(t, rc, ex4, etaScript)
			finish(t, rc, rj4, 3)
			if g, err := e.acme.GetTestExecution(ctx, "acme", ex4.ID); err != nil || g.Status.Phase != apitypes.TestPhaseFailed ||
				!strings.Contains(g.Status.FinalState.Message, "exit code 3") || !strings.Contains(g.Status.FinalState.Message, "uploaded no report") {
				t.Fatalf("no report: %+v %v", g, err)
			}
			ex5, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
				ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "route-v2"}, AutoDiff: &apitypes.SmartTestAutoDiff{}}})
			if err != nil {
				t.Fatal(err)
			}
			rj5 := claimExecution(t, rc, ex5, etaScript)
			body, _ = json.Marshal(report(ex5.ID, sb.RoutingKey))
			upload(t, rc, rj5, body)
			finish(t, rc, rj5, 0)
			// concluded when its job finished, before anyone reads it
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				se, err := e.st.GetTestExecution(ctx, "acme", ex5.ID, false)
				if err != nil {
					t.Fatal(err)
				}
				if se.Phase == apitypes.TestPhaseSucceeded && len(se.Results) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not concluded by its job's end: %+v", se)
				}
			}
			if g, err := e.acme.GetTestExecution(ctx, "acme", ex5.ID); err != nil || g.Status.Phase != apitypes.TestPhaseSucceeded || g.Results == nil || g.Results.TrafficDiff != nil {
				t.Fatalf("autoDiff off: %+v %v", g, err)
			}
			if _, err := e.acme.GetTrafficDiff(ctx, "acme", ex5.ID); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("diff with autoDiff off: %v", err)
			}

			// lists
			all, err := e.acme.ListTestExecutions(ctx, "acme", client.TestExecutionFilter{})
			if err != nil || len(all) != 5 || all[0].ID != ex.ID || all[1].Status.Phase != apitypes.TestPhaseCanceled {
				t.Fatalf("list all: %d %v", len(all), err)
			}
			if l, err := e.acme.ListTestExecutions(ctx, "acme", client.TestExecutionFilter{Sandbox: "route-v2", Test: "second"}); err != nil || len(l) != 0 {
				t.Fatalf("list of test second: %+v %v", l, err)
			}
			if l, err := e.acme.ListTestExecutionsOf(ctx, "acme", "eta"); err != nil || len(l) != 5 {
				t.Fatalf("list of eta: %d %v", len(l), err)
			}
			pg, err := e.acme.ListTestExecutionsPage(ctx, "acme", client.TestExecutionFilter{Test: "eta"}, client.PageOptions{Limit: 2})
			if err != nil || len(pg.Items) != 2 || pg.Continue == "" {
				t.Fatalf("page: %+v %v", pg, err)
			}

			// the sandbox's status summarises its published executions (only the first was)
			sbNow, err := e.acme.GetSandbox(ctx, "acme", "route-v2")
			if err != nil {
				t.Fatal(err)
			}
			want := apitypes.SandboxTestExecutions{Executions: 1, Checks: apitypes.SandboxTestChecks{Failed: 1}, TrafficDiffs: apitypes.SandboxTrafficDiffs{Red: 1, Green: 1}}
			if got := sbNow.Status.TestExecutions; got == nil || *got != want {
				t.Fatalf("sandbox summary: %+v, want %+v", got, want)
			}

			// another org sees nothing
			if _, err := e.other.GetTestExecution(ctx, "acme", ex.ID); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("other org's key on acme: %v", err)
			}
			if _, err := e.other.GetTestExecution(ctx, "other", ex.ID); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("acme's execution through org other: %v", err)
			}
			if _, err := e.other.GetTest(ctx, "other", "eta"); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("acme's test through org other: %v", err)
			}
			if _, err := e.other.CancelTestExecution(ctx, "acme", ex.ID); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("cancel with another org's key: %v", err)
			}
			if _, err := e.other.CreateTestExecution(ctx, "other", "eta", apitypes.TestExecutionSpec{}); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("run acme's test through org other: %v", err)
			}

			// deleting a test keeps its executions
			if err := e.acme.DeleteTest(ctx, "acme", "eta"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.acme.GetTest(ctx, "acme", "eta"); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("deleted test: %v", err)
			}
			if _, err := e.acme.ListTestExecutionsOf(ctx, "acme", "eta"); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("executions of a deleted test by its path: %v", err)
			}
			if l, err := e.acme.ListTestExecutions(ctx, "acme", client.TestExecutionFilter{Test: "eta"}); err != nil || len(l) != 5 {
				t.Fatalf("executions of a deleted test: %d %v", len(l), err)
			}
			if g, err := e.acme.GetTestExecution(ctx, "acme", ex.ID); err != nil || g.Results == nil {
				t.Fatalf("execution of a deleted test: %+v %v", g, err)
			}
			if err := e.acme.DeleteTest(ctx, "acme", "eta"); !errors.Is(err, client.ErrNotFound) {
				t.Fatalf("delete twice: %v", err)
			}
		})
	}
}

// TestSmartTestsValidation: bad tests and executions are refused with the
// paths of the fields at fault and store nothing.
func TestSmartTestsValidation(t *testing.T) {
	e := newJobsEnv(t, storetest.Drivers[0])
	ctx := context.Background()
	e.applyGroup(t, "rg", "1h")
	if _, err := e.acme.ApplySandbox(ctx, "acme", sandbox("sb", nil)); err != nil {
		t.Fatal(err)
	}
	bad := smartTest("eta")
	bad.Spec.Script = "x = 1\ny = undefined_name + 1\n"
	ae := wantFields(t, mustFail(e.acme.ApplyTest(ctx, "acme", bad)), 400, "spec.script")
	if !strings.Contains(ae.Fields[0].Message, "eta.star:2:5") {
		t.Fatalf("script error without its position: %+v", ae.Fields)
	}
	bad.Spec.Script = "def f(:\n"
	wantFields(t, mustFail(e.acme.ApplyTest(ctx, "acme", bad)), 400, "spec.script")
	bad = smartTest("eta")
	bad.Spec.RunnerGroup, bad.Spec.DefaultTimeout = "", "forever"
	bad.Spec.Triggers = append(bad.Spec.Triggers, apitypes.SmartTestTrigger{ID: "trigger-0", ExecutionTemplate: apitypes.SmartTestExecutionTemplate{Timeout: "1ms", Cluster: "Bad"}})
	wantFields(t, mustFail(e.acme.ApplyTest(ctx, "acme", bad)), 400, "spec.runnerGroup", "spec.defaultTimeout", "spec.triggers[1].id",
		"spec.triggers[1].sandboxOf", "spec.triggers[1].executionTemplate.timeout", "spec.triggers[1].executionTemplate.cluster")
	bad = smartTest("eta")
	bad.Spec.Script = strings.Repeat("x = 1\n", apitypes.MaxSmartTestScriptBytes/6+1)
	wantFields(t, mustFail(e.acme.ApplyTest(ctx, "acme", bad)), 400, "spec.script")
	wantFields(t, mustFail(e.acme.ApplyTest(ctx, "acme", smartTest("executions"))), 400, "name")
	wantFields(t, mustFail(e.acme.ApplyTest(ctx, "acme", smartTest("Bad_Name"))), 400, "name")
	if ts, err := e.acme.ListTests(ctx, "acme"); err != nil || len(ts) != 0 {
		t.Fatalf("refused tests stored: %+v %v", ts, err)
	}
	// unknown fields of the body
	req, _ := http.NewRequest(http.MethodPut, e.http.URL+"/api/v2/orgs/acme/tests/eta", strings.NewReader(`{"spec":{"script":"x = 1","runnerGroup":"rg","scirpt":"x"}}`))
	req.Header.Set(apitypes.HeaderAPIKey, e.keyA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("unknown field: %d", resp.StatusCode)
	}

	noGroup := smartTest("nogroup")
	noGroup.Spec.RunnerGroup = "missing"
	for _, tt := range []*client.SmartTest{smartTest("eta"), noGroup} {
		if _, err := e.acme.ApplyTest(ctx, "acme", tt); err != nil {
			t.Fatal(err)
		}
	}
	run := func(test string, ec apitypes.TestExecutionContext) error {
		_, err := e.acme.CreateTestExecution(ctx, "acme", test, apitypes.TestExecutionSpec{ExecutionContext: ec})
		return err
	}
	wantFields(t, run("eta", apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "nope"}}), 400, "executionContext.routing.sandbox")
	wantFields(t, run("eta", apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "sb", RouteGroup: "rg"}}), 400, "executionContext.routing")
	wantFields(t, run("eta", apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{RouteGroup: "nope"}}), 400, "executionContext.routing.routegroup")
	sbr := &apitypes.TestExecutionRouting{Sandbox: "sb"}
	wantFields(t, run("eta", apitypes.TestExecutionContext{Cluster: "c2", Routing: sbr}), 400, "executionContext.cluster")
	wantFields(t, run("eta", apitypes.TestExecutionContext{Timeout: "10h0m0s0ms", Cluster: "-x", Routing: sbr}), 400, "executionContext.cluster")
	wantFields(t, run("eta", apitypes.TestExecutionContext{Timeout: "48h", Routing: sbr}), 400, "executionContext.timeout")
	wantFields(t, run("nogroup", apitypes.TestExecutionContext{Routing: sbr}), 400, "test.spec.runnerGroup")
	if err := run("missing", apitypes.TestExecutionContext{Routing: sbr}); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("execution of a missing test: %v", err)
	}
	if l, err := e.acme.ListTestExecutions(ctx, "acme", client.TestExecutionFilter{}); err != nil || len(l) != 0 {
		t.Fatalf("refused executions stored: %d %v", len(l), err)
	}
	if js, err := e.acme.ListJobs(ctx, "acme", client.JobFilter{}); err != nil || len(js) != 0 {
		t.Fatalf("refused executions made jobs: %d %v", len(js), err)
	}
	wantFields(t, run("eta", apitypes.TestExecutionContext{}), 400, "executionContext.routing")
	for _, u := range []string{"/tests/executions/NOT-AN-ID", "/tests/executions/abc/traffic-diff-findings?maxFindings=x", "/tests/executions?sandbox=Bad_", "/tests/Bad_Name"} {
		resp, err := getWithKey(e.http.URL+"/api/v2/orgs/acme"+u, e.keyA)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 400 {
			t.Errorf("%s: %d, want 400", u, resp.StatusCode)
		}
	}
	if _, err := e.acme.GetTestExecution(ctx, "acme", "0123456789abcdef"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("missing execution: %v", err)
	}
	if _, err := e.acme.GetTrafficDiff(ctx, "acme", "0123456789abcdef"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("diff of a missing execution: %v", err)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustFail[T any](_ T, err error) error {
	if err == nil {
		return fmt.Errorf("no error")
	}
	return err
}

func getWithKey(u, key string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(apitypes.HeaderAPIKey, key)
	return http.DefaultClient.Do(req)
}

// TestSmartTestTriggers: a trigger runs its test once per version of a
// sandbox forking its workload, when the agent first reports that version
// ready; other workloads, other clusters and repeated reports run nothing.
func TestSmartTestTriggers(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			e := newJobsEnv(t, d)
			ctx := context.Background()
			e.applyGroup(t, "rg", "1h")
			mk := func(name, ns, workload, cluster string) {
				tt := smartTest(name)
				tt.Spec.Triggers = []apitypes.SmartTestTrigger{{ID: "on-" + workload, SandboxOf: &v1alpha1.WorkloadRef{Namespace: ns, Name: workload},
					ExecutionTemplate: apitypes.SmartTestExecutionTemplate{Cluster: cluster, Timeout: "90s", AutoDiff: &apitypes.SmartTestAutoDiff{}}}}
				if _, err := e.acme.ApplyTest(ctx, "acme", tt); err != nil {
					t.Fatal(err)
				}
			}
			mk("cart-test", "shop", "cart", "")     // sandbox() forks shop/cart
			mk("route-test", "hotrod", "route", "") // another workload
			mk("elsewhere", "shop", "cart", "c9")   // another cluster
			sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("feature", nil))
			if err != nil {
				t.Fatal(err)
			}
			report := func(version int64, ready bool) {
				t.Helper()
				b, _ := json.Marshal(apitypes.AgentStatusReport{Items: []apitypes.AgentStatusItem{{Kind: "sandbox", Org: "acme", Name: "feature", Version: version,
					Status: apitypes.ObservedStatus{Ready: ready, RoutingKey: sb.RoutingKey}}}})
				req, _ := http.NewRequest("POST", e.http.URL+"/api/v2/agent/status", bytes.NewReader(b))
				req.Header.Set(apitypes.HeaderClusterToken, e.tokenA)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("status report: %d", resp.StatusCode)
				}
			}
			executions := func(want int) []client.TestExecution {
				t.Helper()
				deadline := time.Now().Add(5 * time.Second)
				for {
					l, err := e.acme.ListTestExecutions(ctx, "acme", client.TestExecutionFilter{Sandbox: "feature"})
					if err != nil {
						t.Fatal(err)
					}
					if len(l) == want {
						time.Sleep(200 * time.Millisecond) // and no more come
						if l2, _ := e.acme.ListTestExecutions(ctx, "acme", client.TestExecutionFilter{Sandbox: "feature"}); len(l2) != want {
							t.Fatalf("%d executions, want %d", len(l2), want)
						}
						return l
					}
					if len(l) > want || time.Now().After(deadline) {
						t.Fatalf("%d executions, want %d: %+v", len(l), want, l)
					}
					time.Sleep(25 * time.Millisecond)
				}
			}
			report(sb.Version, false)
			executions(0)
			report(sb.Version, true)
			l := executions(1)
			x := l[0]
			if x.TestName != "cart-test" || x.Status.TriggeredBy == nil || x.Status.TriggeredBy.Trigger != "on-cart" || x.Status.TriggeredBy.Sandbox != "feature" ||
				x.Status.RoutingKey != sb.RoutingKey || x.Spec.ExecutionContext.Timeout != "90s" || x.Spec.ExecutionContext.AutoDiff.Enabled {
				t.Fatalf("triggered execution: %+v", x)
			}
			report(sb.Version, true) // again: nothing new
			executions(1)
			up := sandbox("feature", nil)
			up.Spec.Description = "v2"
			sb2, err := e.acme.ApplySandbox(ctx, "acme", up)
			if err != nil || sb2.Version != sb.Version+1 {
				t.Fatalf("update: %+v %v", sb2, err)
			}
			report(sb2.Version, true)
			if l := executions(2); l[1].TestName != "cart-test" {
				t.Fatalf("second version: %+v", l[1])
			}
		})
	}
}

// TestSmartTestWithExecutor runs an execution with the real executor: the
// job claimed over the runner protocol, executor.ConfigFromEnv reading the
// job's environment as `sandboxmesh-runner smarttest` does, executor.Execute
// calling a loopback "cluster" whose route service answers the sandbox's
// routing key with eta as a string and a fresh timestamp every time, its
// report uploaded as the runner uploads it. The control plane's results
// then show the failed check on the sandbox side only and one red finding;
// the timestamp is green.
func TestSmartTestWithExecutor(t *testing.T) {
	e := newJobsEnv(t, storetest.Drivers[0])
	ctx := context.Background()
	e.applyGroup(t, "rg", "1h")
	sb, err := e.acme.ApplySandbox(ctx, "acme", sandbox("route-v2", nil))
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	cluster := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts := time.Unix(1_800_000_000+n.Add(1), 0).UTC().Format(time.RFC3339)
		eta := `5`
		if key, _ := routingkey.Default.Extract(r.Header); key == sb.RoutingKey {
			eta = `"5"`
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"eta":%s,"ts":%q,"route":["a","b"]}`, eta, ts)
	}))
	t.Cleanup(cluster.Close)
	if _, err := e.acme.ApplyTest(ctx, "acme", smartTest("eta")); err != nil {
		t.Fatal(err)
	}
	ex, err := e.acme.CreateTestExecution(ctx, "acme", "eta", apitypes.TestExecutionSpec{
		ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "route-v2"}}})
	if err != nil {
		t.Fatal(err)
	}
	rc := e.runner(t, "rg", e.runnerToken(t, "rg"), "p1")
	rj := claimExecution(t, rc, ex, etaScript)
	rep := executeJob(ctx, t, rj, "route.hotrod.svc:8083", cluster.Listener.Addr().String())
	body, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	upload(t, rc, rj, body)
	finish(t, rc, rj, 0)
	got, err := e.acme.GetTestExecution(ctx, "acme", ex.ID)
	if err != nil {
		t.Fatal(err)
	}
	r := got.Results
	if got.Status.Phase != apitypes.TestPhaseSucceeded || r == nil {
		t.Fatalf("execution: %+v", got)
	}
	if len(r.Checks.Sandbox) != 1 || len(r.Checks.Sandbox[0].Errors) != 1 || r.Checks.Sandbox[0].Errors[0].SourcePosition.File != "eta.star" ||
		len(r.Checks.Baseline) != 1 || len(r.Checks.Baseline[0].Errors) != 0 {
		t.Fatalf("checks: %+v", r.Checks)
	}
	if d := r.TrafficDiff; d == nil || d.Captures != 1 || d.Red.Replacements != 1 || d.Yellow.Additions+d.Yellow.Removals+d.Yellow.Replacements != 0 || d.Green.Replacements != 1 {
		t.Fatalf("traffic diff: %+v", r.TrafficDiff)
	}
	fs, err := e.acme.GetTrafficDiffFindings(ctx, "acme", ex.ID, "", 0)
	if err != nil || len(fs) != 1 || fs[0].Path != "/response/body/eta" || fs[0].Category != diff.Red || fs[0].Point.Kind != diff.KindJob {
		t.Fatalf("findings: %+v %v", fs, err)
	}
}

// executeJob runs the real executor as `sandboxmesh-runner smarttest` would for a claimed smart-test job
// (its config read from the job's environment), in a "cluster" of one service: host:port (the script's
// address) dials addr, anything else is refused.
func executeJob(ctx context.Context, t *testing.T, rj *apitypes.RunnerJob, hostPort, addr string) *executor.Report {
	t.Helper()
	env := map[string]string{}
	for _, v := range rj.Env {
		env[v.Name] = v.Value
	}
	cfg, err := executor.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the job's environment is not the executor's: %v", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, a string) (net.Conn, error) {
		if a != hostPort {
			return nil, fmt.Errorf("%s is not in the test cluster", a)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	cfg.Transport = tr
	rep, err := executor.Execute(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
