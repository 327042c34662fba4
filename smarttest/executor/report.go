// Package executor runs a smart test the way an execution does (docs: issue 15): the script once against
// the sandbox (its routing key on every request) and twice against the baseline (no key), each run's
// capture=True requests recorded at the edge as diff.Captures, and writes a Report that the control plane
// turns into the execution's results and traffic diff. It is pure (no Kubernetes, no control plane): the
// job runner calls it in the cluster (`sandboxmesh-runner smarttest`, configured by the Env* variables of
// ConfigFromEnv, writing ReportFile with WriteReport and a table with WriteSummary), tests call Execute in
// process.
package executor

import (
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// ReportVersion is the version of the Report format; a reader refuses another.
const ReportVersion = "smarttest.sandboxmesh.dev/v1"

// ReportFile is the artifact name under which a smart-test job uploads its Report (JSON).
const ReportFile = "smarttest-report.json"

// CaptureHeader carries the capture id of a capture=True request ("<execution>.<run>.<index>"); capture
// points record only requests that carry it, and the diff ignores it.
const CaptureHeader = "X-Sandboxmesh-Capture"

// CaptureBaggageKey is the W3C baggage member that also carries the capture id of a capture=True request
// ("sm-capture=<id>"): apps propagate OpenTelemetry context but not CaptureHeader, so the capture points
// of the hops behind the first read the id from baggage.
const CaptureBaggageKey = "sm-capture"

// Run names of a Report.
const (
	// RunTarget is the run against the sandbox.
	RunTarget = "target"
	// RunBaselineA and RunBaselineB are the two runs against the baseline; their differences are noise.
	RunBaselineA = "baseline-a"
	RunBaselineB = "baseline-b"
)

// Report is what one execution of a smart test produced.
type Report struct {
	// Version is ReportVersion.
	Version string `json:"version"`
	// Execution is the execution's id (the prefix of every capture id).
	Execution string `json:"execution"`
	// RoutingKey is the sandbox's (or route group's) routing key the target run carried.
	RoutingKey string `json:"routingKey"`
	// Runs are the target run and the two baseline runs, in that order.
	Runs []Run `json:"runs"`
}

// Run is one run of the script.
type Run struct {
	// Name is RunTarget, RunBaselineA or RunBaselineB.
	Name string `json:"name"`
	// Result is the script's result (checks, logs, captured requests); nil when the script could not start.
	Result *script.Result `json:"result,omitempty"`
	// Error is the script's error (syntax, runtime, limit), with its position; empty when it ran to the end.
	Error string `json:"error,omitempty"`
	// ErrorKind is the kind of Error ("syntax" or "runtime"; empty when Error is not a script error).
	ErrorKind script.ErrorKind `json:"errorKind,omitempty"`
	// ErrorPosition is the script position of Error, when known.
	ErrorPosition *script.SourcePosition `json:"errorPosition,omitempty"`
	// Backtrace is the Starlark call stack of a runtime error.
	Backtrace string `json:"backtrace,omitempty"`
	// Captures are the capture=True requests and responses as the script's HTTP client saw them (capture
	// point kind Job, direction Outbound); the sidecars' captures of the same ids are added by the control
	// plane.
	Captures []diff.Capture `json:"captures,omitempty"`
}
