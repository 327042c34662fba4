package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// Bounds of the smart-test tools.
const (
	// DefaultSmartTestWait is how long smarttest_run waits by default.
	DefaultSmartTestWait = 300 * time.Second
	// MaxSmartTestWait bounds wait_timeout_seconds of smarttest_run.
	MaxSmartTestWait = 1800 * time.Second
	// DefaultMaxFindings is how many findings the tools answer by default.
	DefaultMaxFindings = 20
	// AdhocTestName names the test smarttest_run applies from a script
	// when the call names none.
	AdhocTestName = "mcp-adhoc"
)

// SmartTestRunInput runs a smart test.
type SmartTestRunInput struct {
	Sandbox     string `json:"sandbox,omitempty" jsonschema:"the sandbox to test (give sandbox or routegroup): the test runs once with its routing key and twice against the baseline, and the answers are diffed"`
	RouteGroup  string `json:"routegroup,omitempty" jsonschema:"a route group to test instead of a sandbox"`
	Test        string `json:"test,omitempty" jsonschema:"an applied smart test to run (give test or script); with script, the name under which the script is applied (default mcp-adhoc)"`
	Script      string `json:"script,omitempty" jsonschema:"a Starlark smart-test script to apply and run: http.get/post(url, capture=True, name=...) calls services by their cluster names (http://frontend.hotrod.svc:8080), smart_test.check(name, ok, message) records checks"`
	RunnerGroup string `json:"runner_group,omitempty" jsonschema:"job runner group whose pods run the script (needed with script unless the test exists)"`
	Publish     bool   `json:"publish,omitempty" jsonschema:"count the execution in the sandbox's status"`
	WaitSeconds int    `json:"wait_timeout_seconds,omitempty" jsonschema:"how long to wait for the results (default 300, at most 1800); after it the answer has the execution id for smarttest_results"`
	MaxFindings int    `json:"max_findings,omitempty" jsonschema:"at most this many findings in the answer, most relevant first (default 20)"`
}

// SmartTestResultsInput asks for an execution's results.
type SmartTestResultsInput struct {
	ID          string `json:"id" jsonschema:"the execution id smarttest_run answered"`
	MaxFindings int    `json:"max_findings,omitempty" jsonschema:"at most this many findings, most relevant first (default 20)"`
}

// SmartTestResults is an execution as the smart-test tools answer it.
type SmartTestResults struct {
	ID         string `json:"id"`
	Test       string `json:"test"`
	Target     string `json:"target" jsonschema:"sandbox/NAME or routegroup/NAME"`
	Phase      string `json:"phase" jsonschema:"pending, in_progress, succeeded, failed or canceled"`
	Message    string `json:"message,omitempty"`
	RoutingKey string `json:"routing_key,omitempty"`
	Job        string `json:"job,omitempty"`
	// Verdict says in one sentence what changed (set once finished).
	Verdict  string            `json:"verdict,omitempty"`
	Checks   *SmartTestChecks  `json:"checks,omitempty"`
	Diff     *SmartTestDiff    `json:"diff,omitempty"`
	Findings []SmartTestChange `json:"findings,omitempty"`
	// FindingsTruncated: there are more findings than the answer holds.
	FindingsTruncated bool   `json:"findings_truncated,omitempty"`
	NextStep          string `json:"next_step,omitempty"`
}

// SmartTestChecks are the checks of both sides.
type SmartTestChecks struct {
	Sandbox  []SmartTestCheck `json:"sandbox"`
	Baseline []SmartTestCheck `json:"baseline"`
}

// SmartTestCheck is one check: passed, or its errors as file:line:col: message.
type SmartTestCheck struct {
	Name   string   `json:"name"`
	Passed bool     `json:"passed"`
	Errors []string `json:"errors,omitempty"`
}

// SmartTestDiff counts the traffic diff's ops by category.
type SmartTestDiff struct {
	Captures int `json:"captures"`
	Red      int `json:"red" jsonschema:"changes the baseline never shows: likely caused by the sandbox"`
	Yellow   int `json:"yellow" jsonschema:"changes of lower relevance"`
	Green    int `json:"green" jsonschema:"noise: changes that also differ between the two baseline runs"`
	Unpaired int `json:"unpaired_captures"`
}

// SmartTestChange is one finding of the traffic diff.
type SmartTestChange struct {
	Category string `json:"category"`
	Point    string `json:"point" jsonschema:"capture point kind/namespace/name/direction"`
	Capture  string `json:"capture" jsonschema:"the name the script gave the request"`
	Path     string `json:"path" jsonschema:"JSON pointer into the request or response, e.g. /response/body/eta"`
	Op       string `json:"op" jsonschema:"add, remove or replace"`
	OldValue string `json:"old_value,omitempty" jsonschema:"the baseline's value (JSON)"`
	Value    string `json:"value,omitempty" jsonschema:"the sandbox's value (JSON)"`
	From     string `json:"from,omitempty" jsonschema:"the capture point the same change comes from (a hop this one called, whose answer it echoes); empty when it shows first here"`
}

func (s *server) registerSmartTests(srv *mcp.Server, ro *mcp.ToolAnnotations) {
	mcp.AddTool(srv, &mcp.Tool{Name: "smarttest_run", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
		Description: "Run a smart test (a Starlark script calling the cluster's services) against a sandbox and twice against the baseline, and answer what changed: " +
			"the checks of both sides and the traffic diff's findings (red: a change the baseline never shows; green noise is left out). " +
			"Give test (an applied test) or script (applied as a test first). It waits up to wait_timeout_seconds; if still running, call smarttest_results with the id."}, s.smartTestRun)
	mcp.AddTool(srv, &mcp.Tool{Name: "smarttest_results", Annotations: ro,
		Description: "Get a smart test execution's results by id: phase, a one-line verdict, the checks of the sandbox and baseline sides with errors at file:line:col, and the red and yellow findings of the traffic diff."}, s.smartTestResults)
}

func (s *server) smartTestRun(ctx context.Context, req *mcp.CallToolRequest, in SmartTestRunInput) (*mcp.CallToolResult, any, error) {
	var bad apitypes.FieldErrors
	switch {
	case in.Sandbox == "" && in.RouteGroup == "":
		bad = append(bad, apitypes.FieldError{Path: "sandbox", Message: "give sandbox or routegroup: what the test runs against"})
	case in.Sandbox != "" && in.RouteGroup != "":
		bad = append(bad, apitypes.FieldError{Path: "routegroup", Message: "give sandbox or routegroup, not both"})
	}
	if in.Test == "" && in.Script == "" {
		bad = append(bad, apitypes.FieldError{Path: "test", Message: "give test (an applied smart test) or script"})
	}
	if in.Script == "" && in.RunnerGroup != "" {
		bad = append(bad, apitypes.FieldError{Path: "runner_group", Message: "goes with script (an applied test has its runner group)"})
	}
	if in.WaitSeconds < 0 || time.Duration(in.WaitSeconds)*time.Second > MaxSmartTestWait {
		bad = append(bad, apitypes.FieldError{Path: "wait_timeout_seconds", Message: fmt.Sprintf("must be between 0 (default %d) and %d", int(DefaultSmartTestWait.Seconds()), int(MaxSmartTestWait.Seconds()))})
	}
	if in.MaxFindings < 0 {
		bad = append(bad, apitypes.FieldError{Path: "max_findings", Message: "must be 0 (default 20) or more"})
	}
	if len(bad) > 0 {
		return nil, nil, fmt.Errorf("invalid smarttest_run call:%s", fieldList(bad))
	}
	name := in.Test
	if in.Script != "" {
		if name == "" {
			name = AdhocTestName
		}
		t := &client.SmartTest{Name: name, Spec: apitypes.SmartTestSpec{Script: in.Script, RunnerGroup: in.RunnerGroup}}
		if in.RunnerGroup == "" {
			old, err := s.o.Client.GetTest(ctx, s.o.Org, name)
			if errors.Is(err, client.ErrNotFound) {
				return nil, nil, fmt.Errorf("invalid smarttest_run call:\n- runner_group: required with script: the test %s does not exist yet (name a job runner group of the sandbox's cluster)", name)
			}
			if err != nil {
				return nil, nil, s.agentError(err, "smart test "+name)
			}
			t.Spec = old.Spec
			t.Spec.Script = in.Script
		}
		if _, err := s.o.Client.ApplyTest(ctx, s.o.Org, t); err != nil {
			return nil, nil, s.agentError(err, "apply smart test "+name+" (spec.script is the script)")
		}
	}
	spec := apitypes.TestExecutionSpec{ExecutionContext: apitypes.TestExecutionContext{
		Routing: &apitypes.TestExecutionRouting{Sandbox: in.Sandbox, RouteGroup: in.RouteGroup}, Publish: in.Publish}}
	ex, err := s.o.Client.CreateTestExecution(ctx, s.o.Org, name, spec)
	if err != nil {
		return nil, nil, s.agentError(err, "run smart test "+name)
	}
	timeout := DefaultSmartTestWait
	if in.WaitSeconds > 0 {
		timeout = time.Duration(in.WaitSeconds) * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n, last := 0, ""
	for !testEnded(ex.Status.Phase) {
		if ex.Status.Phase != last {
			last = ex.Status.Phase
			n++
			notify(ctx, req, n, "execution "+ex.ID+": "+last)
		}
		select {
		case <-wctx.Done():
		case <-time.After(s.o.WaitInterval):
		}
		if wctx.Err() != nil {
			break
		}
		next, err := s.o.Client.GetTestExecution(wctx, s.o.Org, ex.ID)
		if err != nil {
			if wctx.Err() != nil {
				break
			}
			return nil, nil, s.agentError(err, "execution "+ex.ID)
		}
		ex = next
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err()
	}
	v, err := s.results(ctx, ex, in.MaxFindings)
	if err != nil {
		return nil, nil, err
	}
	if !testEnded(ex.Status.Phase) {
		v.NextStep = fmt.Sprintf("the execution is still %s after %s; call smarttest_results with id %s later", ex.Status.Phase, timeout, ex.ID)
	}
	return nil, v, nil
}

func (s *server) smartTestResults(ctx context.Context, _ *mcp.CallToolRequest, in SmartTestResultsInput) (*mcp.CallToolResult, any, error) {
	if in.ID == "" {
		return nil, nil, errors.New("invalid smarttest_results call:\n- id: required: the execution id smarttest_run answered")
	}
	if in.MaxFindings < 0 {
		return nil, nil, errors.New("invalid smarttest_results call:\n- max_findings: must be 0 (default 20) or more")
	}
	ex, err := s.o.Client.GetTestExecution(ctx, s.o.Org, in.ID)
	if err != nil {
		return nil, nil, s.agentError(err, "smart test execution "+in.ID)
	}
	v, err := s.results(ctx, ex, in.MaxFindings)
	if err != nil {
		return nil, nil, err
	}
	if !testEnded(ex.Status.Phase) {
		v.NextStep = "the execution is still " + ex.Status.Phase + "; call smarttest_results again later"
	}
	return nil, v, nil
}

func testEnded(phase string) bool {
	return phase == apitypes.TestPhaseSucceeded || phase == apitypes.TestPhaseFailed || phase == apitypes.TestPhaseCanceled
}

// results makes the tools' view of an execution, reading its findings once
// it finished with a diff.
func (s *server) results(ctx context.Context, ex *client.TestExecution, maxFindings int) (*SmartTestResults, error) {
	if maxFindings == 0 {
		maxFindings = DefaultMaxFindings
	}
	v := &SmartTestResults{ID: ex.ID, Test: ex.TestName, Phase: ex.Status.Phase, RoutingKey: ex.Status.RoutingKey, Job: ex.Status.Job}
	if r := ex.Spec.ExecutionContext.Routing; r != nil {
		if r.Sandbox != "" {
			v.Target = "sandbox/" + r.Sandbox
		} else {
			v.Target = "routegroup/" + r.RouteGroup
		}
	}
	if fs := ex.Status.FinalState; fs != nil {
		v.Message = fs.Message
	}
	r := ex.Results
	if r == nil {
		if testEnded(ex.Status.Phase) {
			v.Verdict = "the execution " + ex.Status.Phase + " without results: " + v.Message
		}
		return v, nil
	}
	v.Checks = &SmartTestChecks{Sandbox: checkViews(r.Checks.Sandbox), Baseline: checkViews(r.Checks.Baseline)}
	failed := 0
	for _, c := range v.Checks.Sandbox {
		if !c.Passed {
			failed++
		}
	}
	red := 0
	if d := r.TrafficDiff; d != nil {
		v.Diff = &SmartTestDiff{Captures: d.Captures, Unpaired: d.UnpairedCaptures,
			Red:    d.Red.Additions + d.Red.Removals + d.Red.Replacements,
			Yellow: d.Yellow.Additions + d.Yellow.Removals + d.Yellow.Replacements,
			Green:  d.Green.Additions + d.Green.Removals + d.Green.Replacements}
		red = v.Diff.Red
		fs, err := s.o.Client.GetTrafficDiffFindings(ctx, s.o.Org, ex.ID, "", maxFindings+1)
		if err != nil && !errors.Is(err, client.ErrNotFound) {
			return nil, s.agentError(err, "findings of execution "+ex.ID)
		}
		if len(fs) > maxFindings {
			fs, v.FindingsTruncated = fs[:maxFindings], true
		}
		for _, f := range fs {
			v.Findings = append(v.Findings, SmartTestChange{Category: string(f.Category), Point: f.Point.String(), Capture: f.Name,
				Path: f.Path, Op: string(f.Op), OldValue: string(f.OldValue), Value: string(f.Value)})
			if f.PropagatedFrom != nil {
				v.Findings[len(v.Findings)-1].From = f.PropagatedFrom.String()
			}
		}
	}
	switch {
	case ex.Status.Phase != apitypes.TestPhaseSucceeded:
		v.Verdict = "the execution " + ex.Status.Phase + ": " + v.Message
	case failed == 0 && red == 0:
		v.Verdict = fmt.Sprintf("no regression seen: the sandbox's %d checks passed and the traffic diff has no red finding", len(v.Checks.Sandbox))
	default:
		v.Verdict = fmt.Sprintf("the sandbox changed behavior: %d of its %d checks failed, %d red finding(s) in the traffic diff", failed, len(v.Checks.Sandbox), red)
	}
	if r.TrafficDiff == nil {
		v.Verdict += " (no traffic diff: autoDiff was off)"
	}
	return v, nil
}

func checkViews(cs []apitypes.TestCheck) []SmartTestCheck {
	out := make([]SmartTestCheck, 0, len(cs))
	for _, c := range cs {
		v := SmartTestCheck{Name: c.Name, Passed: len(c.Errors) == 0}
		for _, e := range c.Errors {
			p := e.SourcePosition
			v.Errors = append(v.Errors, fmt.Sprintf("%s:%d:%d: %s", p.File, p.Line, p.Col, e.Message))
		}
		out = append(out, v)
	}
	return out
}
