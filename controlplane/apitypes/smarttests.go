package apitypes

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// Wire types of smart tests (docs/smart-tests.md), with the field names of
// Signadot's Test, TestTrigger, TestExecution and TrafficDiff models. The
// traffic diff types are those of smarttest/diff (standard library only).

// Smart test limits and phases.
const (
	// MaxSmartTestScriptBytes bounds a test's script. The script reaches
	// the runner in an environment variable, and Linux bounds one at 128 KiB.
	MaxSmartTestScriptBytes = 64 << 10
	// MaxSmartTestNameLen bounds a test's name.
	MaxSmartTestNameLen = 63
	// MaxSmartTestTriggers bounds a test's triggers.
	MaxSmartTestTriggers = 32
	// MaxSmartTestTimeout bounds defaultTimeout and an execution's timeout.
	MaxSmartTestTimeout = 24 * time.Hour
	// ReservedSmartTestName cannot name a test: /tests/executions lists
	// the executions of every test.
	ReservedSmartTestName = "executions"

	// Execution phases.
	TestPhasePending    = "pending"
	TestPhaseInProgress = "in_progress"
	TestPhaseSucceeded  = "succeeded"
	TestPhaseFailed     = "failed"
	TestPhaseCanceled   = "canceled"
)

// SmartTest is a smart test: a Starlark script run against a sandbox and
// twice against the baseline (Signadot's Test).
type SmartTest struct {
	Name      string        `json:"name"`
	Spec      SmartTestSpec `json:"spec"`
	CreatedAt string        `json:"createdAt,omitempty"`
	UpdatedAt string        `json:"updatedAt,omitempty"`
	// Version increases with every change of the spec (ETag, If-Match).
	Version int64 `json:"version,omitempty"`
}

// SmartTestSpec is a smart test's definition.
type SmartTestSpec struct {
	// Script is the test's Starlark source (smarttest/script).
	Script string `json:"script"`
	// DefaultTimeout bounds each run of an execution that sets no timeout,
	// a Go duration (e.g. 2m; default: the runtime's, 5m).
	DefaultTimeout string `json:"defaultTimeout,omitempty"`
	// Triggers run the test when a version of a sandbox forking a workload
	// (a new or updated sandbox) is first reported ready.
	Triggers []SmartTestTrigger `json:"triggers,omitempty"`
	// RunnerGroup is the job runner group whose pods run the executions
	// (SandboxMesh's; Signadot uses its managed runner group).
	RunnerGroup string `json:"runnerGroup"`
}

// SmartTestTrigger runs a test for sandboxes that fork a workload
// (Signadot's TestTrigger).
type SmartTestTrigger struct {
	// ID names the trigger within the test (default trigger-<index>).
	ID                string                     `json:"id,omitempty"`
	SandboxOf         *v1alpha1.WorkloadRef      `json:"sandboxOf"`
	ExecutionTemplate SmartTestExecutionTemplate `json:"executionTemplate"`
}

// SmartTestExecutionTemplate is how a trigger runs the test.
type SmartTestExecutionTemplate struct {
	Cluster  string             `json:"cluster,omitempty"`
	AutoDiff *SmartTestAutoDiff `json:"autoDiff,omitempty"`
	Publish  bool               `json:"publish,omitempty"`
	Timeout  string             `json:"timeout,omitempty"`
}

// SmartTestAutoDiff turns the traffic diff of an execution on or off
// (default on).
type SmartTestAutoDiff struct {
	Enabled bool `json:"enabled"`
}

// SmartTestWireRules are the fields of a test answer clients send back.
var SmartTestWireRules = WireRules{
	"createdAt": {Kind: WireReadOnly},
	"updatedAt": {Kind: WireReadOnly},
	"version":   {Kind: WireReadOnly},
	"status":    {Kind: WireReadOnly},
}

// TestExecution is one run of a smart test (Signadot's TestExecution).
type TestExecution struct {
	ID string `json:"id"`
	// TestName is the test it ran (kept when the test is deleted).
	TestName  string               `json:"testName"`
	Spec      TestExecutionSpec    `json:"spec"`
	Status    TestExecutionStatus  `json:"status"`
	Results   *TestExecutionResult `json:"results,omitempty"`
	CreatedAt string               `json:"createdAt,omitempty"`
}

// TestExecutionSpec is what an execution runs against.
type TestExecutionSpec struct {
	ExecutionContext TestExecutionContext `json:"executionContext"`
	Labels           map[string]string    `json:"labels,omitempty"`
}

// TestExecutionContext is where and how an execution runs.
type TestExecutionContext struct {
	// Cluster, when set, must be the runner group's cluster.
	Cluster string `json:"cluster,omitempty"`
	// Routing names the sandbox or route group of the target run (required:
	// the executor refuses to run without a routing key).
	Routing *TestExecutionRouting `json:"routing,omitempty"`
	// AutoDiff: the traffic diff (default enabled).
	AutoDiff *SmartTestAutoDiff `json:"autoDiff,omitempty"`
	// Publish: the execution counts in the sandbox's status
	// (status.testExecutions of GET …/sandboxes/{name}).
	Publish bool `json:"publish,omitempty"`
	// Timeout bounds each run, a Go duration (default the test's defaultTimeout).
	Timeout string `json:"timeout,omitempty"`
}

// TestExecutionRouting names the sandbox or route group (one).
type TestExecutionRouting struct {
	Sandbox    string `json:"sandbox,omitempty"`
	RouteGroup string `json:"routegroup,omitempty"`
}

// TestExecutionStatus is an execution's state.
type TestExecutionStatus struct {
	// Phase is pending, in_progress, succeeded, failed or canceled.
	Phase string `json:"phase"`
	// TriggeredBy says what started the execution (nil: the API).
	TriggeredBy *TestExecutionTrigger `json:"triggeredBy,omitempty"`
	// FinalState explains a finished execution.
	FinalState *TestExecutionFinalState `json:"finalState,omitempty"`
	// Job is the job running the execution (GET /jobs/{job} for its logs).
	Job        string `json:"job"`
	RoutingKey string `json:"routingKey,omitempty"`
	FinishedAt string `json:"finishedAt,omitempty"`
}

// TestExecutionTrigger is the trigger that started an execution.
type TestExecutionTrigger struct {
	Trigger string `json:"trigger"`
	Sandbox string `json:"sandbox,omitempty"`
}

// TestExecutionFinalState says how an execution ended.
type TestExecutionFinalState struct {
	Message string `json:"message"`
}

// TestExecutionResult is what a finished execution found: the checks of
// the run against the sandbox and of the (first) run against the baseline,
// and the summary of the traffic diff (GET …/traffic-diff for all of it).
type TestExecutionResult struct {
	Checks      TestExecutionChecks `json:"checks"`
	TrafficDiff *diff.TrafficDiff   `json:"trafficDiff,omitempty"`
	// Runs are the script's runs (target, baseline-a, baseline-b).
	Runs []TestRunSummary `json:"runs,omitempty"`
}

// TestExecutionChecks are the check results by side.
type TestExecutionChecks struct {
	Sandbox  []TestCheck `json:"sandbox"`
	Baseline []TestCheck `json:"baseline"`
}

// TestCheck is a named check with its failures (none: passed).
type TestCheck struct {
	Name   string           `json:"name"`
	Errors []TestCheckError `json:"errors"`
}

// TestCheckError is one failure of a check.
type TestCheckError struct {
	Message        string             `json:"message"`
	SourcePosition TestSourcePosition `json:"sourcePosition"`
}

// TestSourcePosition is a position in the script (counting from 1).
type TestSourcePosition struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Col  int    `json:"col"`
}

// TestRunSummary is one run of the script.
type TestRunSummary struct {
	Name string `json:"name"`
	// Error is the script's error with its position (empty: it ran to the end).
	Error    string `json:"error,omitempty"`
	Requests int    `json:"requests"`
	Captures int    `json:"captures"`
	Passed   bool   `json:"passed"`
}

// SandboxTestExecutions summarises, in a sandbox's status, the latest
// finished execution of each test that ran against the sandbox with
// executionContext.publish (Signadot's testExecutions).
type SandboxTestExecutions struct {
	// Executions is the number of executions summarised (one per test).
	Executions int `json:"executions"`
	// Checks counts their checks on the sandbox side.
	Checks SandboxTestChecks `json:"checks"`
	// TrafficDiffs counts the ops of their traffic diffs by category.
	TrafficDiffs SandboxTrafficDiffs `json:"trafficDiffs"`
}

// SandboxTestChecks counts checks.
type SandboxTestChecks struct {
	Passed int `json:"passed"`
	Failed int `json:"failed"`
}

// SandboxTrafficDiffs counts diff ops by category.
type SandboxTrafficDiffs struct {
	Red    int `json:"red"`
	Yellow int `json:"yellow"`
	Green  int `json:"green"`
}

// TrafficDiffFindings is the answer of …/traffic-diff-findings.
type TrafficDiffFindings struct {
	Findings []diff.Finding `json:"findings"`
}

// TestExecutionWireRules are the Signadot fields of an execution request
// (a TestExecutionSpec) SandboxMesh lacks.
var TestExecutionWireRules = WireRules{
	"executionContext.runID": {Kind: WireUnsupported, Why: "run ids of the CLI's directory runs"},
	"hosted":                 {Kind: WireUnsupported, Why: "executions always run in the test's runner group"},
	"external":               {Kind: WireUnsupported, Why: "executions always run in the test's runner group"},
}

var (
	reTimeout   = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`)
	reTriggerID = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
)

// ValidateSmartTestName checks a test's name.
func ValidateSmartTestName(path, name string) *FieldError {
	switch {
	case name == "":
		return &FieldError{path, "required"}
	case len(name) > MaxSmartTestNameLen:
		return &FieldError{path, fmt.Sprintf("must be at most %d characters (got %d)", MaxSmartTestNameLen, len(name))}
	case !reObjectName.MatchString(name):
		return &FieldError{path, fmt.Sprintf("%q must be a DNS label starting with a letter: lowercase letters, digits and '-'", name)}
	case name == ReservedSmartTestName:
		return &FieldError{path, fmt.Sprintf("%q is reserved (GET …/tests/executions lists every test's executions)", name)}
	}
	return nil
}

// ValidateTestTimeout checks a run timeout (a Go duration between 1s and
// MaxSmartTestTimeout); empty is valid.
func ValidateTestTimeout(path, v string) *FieldError {
	if v == "" {
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || len(v) > 32 || !reTimeout.MatchString(v) || d < time.Second || d > MaxSmartTestTimeout {
		return &FieldError{path, fmt.Sprintf("%q must be a duration between 1s and %s, e.g. 2m", v, MaxSmartTestTimeout)}
	}
	return nil
}

// Default fills in trigger ids (trigger-<index>).
func (s *SmartTestSpec) Default() {
	for i := range s.Triggers {
		if s.Triggers[i].ID == "" {
			s.Triggers[i].ID = fmt.Sprintf("trigger-%d", i)
		}
	}
}

// ValidateSmartTestSpec checks a test spec (after Default) except its
// script's syntax, which the service checks with smarttest/script.
func ValidateSmartTestSpec(s *SmartTestSpec) FieldErrors {
	c := &checker{}
	switch {
	case strings.TrimSpace(s.Script) == "":
		c.add("spec.script", "required")
	case len(s.Script) > MaxSmartTestScriptBytes:
		c.add("spec.script", "must be at most %d bytes (got %d)", MaxSmartTestScriptBytes, len(s.Script))
	case strings.IndexByte(s.Script, 0) >= 0:
		c.add("spec.script", "must not contain NUL bytes")
	}
	if fe := ValidateTestTimeout("spec.defaultTimeout", s.DefaultTimeout); fe != nil {
		c.add(fe.Path, "%s", fe.Message)
	}
	if fe := ValidateObjectName("spec.runnerGroup", s.RunnerGroup); fe != nil {
		c.add(fe.Path, "%s", fe.Message)
	}
	c.maxItems("spec.triggers", len(s.Triggers), MaxSmartTestTriggers)
	ids := map[string]bool{}
	for i, t := range s.Triggers {
		if i >= MaxSmartTestTriggers || c.full() {
			break
		}
		p := fmt.Sprintf("spec.triggers[%d]", i)
		switch {
		case len(t.ID) > 63 || !reTriggerID.MatchString(t.ID):
			c.add(p+".id", "%q must be a DNS label: lowercase letters, digits and '-'", t.ID)
		case ids[t.ID]:
			c.add(p+".id", "duplicate trigger id %q", t.ID)
		}
		ids[t.ID] = true
		if t.SandboxOf == nil {
			c.add(p+".sandboxOf", "required: the workload whose sandboxes run the test")
		} else {
			c.workload(p+".sandboxOf", *t.SandboxOf)
		}
		et := t.ExecutionTemplate
		if et.Cluster != "" {
			if fe := ValidateDNSName(p+".executionTemplate.cluster", et.Cluster); fe != nil {
				c.add(fe.Path, "%s", fe.Message)
			}
		}
		if fe := ValidateTestTimeout(p+".executionTemplate.timeout", et.Timeout); fe != nil {
			c.add(fe.Path, "%s", fe.Message)
		}
	}
	return c.errs
}

// ValidateTestExecutionSpec checks an execution request (the body of POST
// …/executions, so paths start at executionContext); the objects it names
// are checked against the store by the service.
func ValidateTestExecutionSpec(s *TestExecutionSpec) FieldErrors {
	c := &checker{}
	ec := s.ExecutionContext
	if ec.Cluster != "" {
		if fe := ValidateDNSName("executionContext.cluster", ec.Cluster); fe != nil {
			c.add(fe.Path, "%s", fe.Message)
		}
	}
	if r := ec.Routing; r == nil || (r.Sandbox == "" && r.RouteGroup == "") {
		c.add("executionContext.routing", "required: the sandbox (or routegroup) whose routing key the target run carries")
	} else {
		switch {
		case r.Sandbox != "" && r.RouteGroup != "":
			c.add("executionContext.routing", "set either sandbox or routegroup, not both")
		case r.Sandbox != "":
			if fe := ValidateObjectName("executionContext.routing.sandbox", r.Sandbox); fe != nil {
				c.add(fe.Path, "%s", fe.Message)
			}
		case r.RouteGroup != "":
			if fe := ValidateObjectName("executionContext.routing.routegroup", r.RouteGroup); fe != nil {
				c.add(fe.Path, "%s", fe.Message)
			}
		}
	}
	if fe := ValidateTestTimeout("executionContext.timeout", ec.Timeout); fe != nil {
		c.add(fe.Path, "%s", fe.Message)
	}
	c.labels("labels", s.Labels)
	return c.errs
}
