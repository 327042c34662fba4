// Package smarttests owns the control plane's side of smart tests
// (docs/smart-tests.md): tests (a Starlark script, checked with
// smarttest/script when applied, its triggers and the runner group its
// executions run in), and their executions. An execution is a job of the
// test's runner group (controlplane/jobs) that runs `sandboxmesh-runner
// smarttest` (smarttest/executor) once against the sandbox and twice against
// the baseline and uploads an executor.Report as the artifact
// executor.ReportFile. When the job has finished, the execution is
// concluded (by Run as the job's change is seen, or by the first read that
// finds the job finished): the report is read once and validated, and the
// checks of both sides and the traffic diff (smarttest/diff.Compare) are
// stored in one write with the final phase; later reads serve what was
// stored. The REST
// handlers in controlplane/api are thin wrappers around Service.
//
// Triggers fire when a version of a sandbox forking their workload is
// first reported ready (triggers.go). The capture points of the cluster
// (devmesh sidecars, relayed by the agent) send the captures they record at
// every hop (captures.go); they are kept with their execution and join the
// runner's own in the diff when it is concluded, CaptureGrace after its job
// finished (the last batches are on their way then).
package smarttests

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
	"github.com/sandboxmesh/sandboxmesh/smarttest/script"
)

// Environment of a smart-test job: the names smarttest/executor reads (declared there); the job runner adds
// SANDBOXMESH_ROUTING_KEY itself.
const (
	EnvScript    = executor.EnvScript
	EnvExecution = executor.EnvExecution
	EnvFilename  = executor.EnvFilename
	EnvTimeout   = executor.EnvTimeout
)

// RunnerCommand is the command of a smart-test job (the job runner runs
// itself for argv[0] sandboxmesh-runner).
var RunnerCommand = []string{"sandboxmesh-runner", "smarttest"}

// Labels set on the job of an execution.
const (
	LabelTest      = "sandboxmesh.dev/smart-test"
	LabelExecution = "sandboxmesh.dev/test-execution"
)

// DefaultMaxReportBytes bounds the report read from a job (Config.MaxReportBytes).
const DefaultMaxReportBytes = 32 << 20

// Config configures a Service.
type Config struct {
	// Store and Jobs are required.
	Store *store.Store
	Jobs  *jobs.Service
	// Logger; nil discards.
	Logger *slog.Logger
	// MaxReportBytes bounds a report (default 32 MiB); a larger one fails
	// the execution.
	MaxReportBytes int64
	// Diff configures the traffic diff.
	Diff diff.Options
	// MaxCaptureBytes bounds the captures kept for one execution from the
	// capture points (default DefaultMaxCaptureBytes); more are dropped.
	MaxCaptureBytes int64
	// CaptureGrace is how long after its job finished an auto-diffed
	// execution is concluded (default DefaultCaptureGrace): the capture
	// points' last batches arrive meanwhile; negative: at once.
	CaptureGrace time.Duration
}

// Service is the smart tests service.
type Service struct {
	cfg  Config
	st   *store.Store
	jobs *jobs.Service
	log  *slog.Logger

	// orgs caches for orgCacheTTL whether an org has executions at all, so
	// that a sandbox GET of an org without any costs no query.
	orgsMu sync.Mutex
	orgs   map[string]orgEntry
}

type orgEntry struct {
	has     bool
	expires time.Time
}

// orgCacheTTL: an execution created through another replica shows in this
// replica's sandbox summaries after at most this long.
const orgCacheTTL = 2 * time.Second

// hasExecutions reports whether org has executions (cached for orgCacheTTL).
func (s *Service) hasExecutions(ctx context.Context, org string) (bool, error) {
	now := time.Now()
	s.orgsMu.Lock()
	e, ok := s.orgs[org]
	s.orgsMu.Unlock()
	if ok && now.Before(e.expires) {
		return e.has, nil
	}
	has, err := s.st.HasTestExecutions(ctx, org)
	if err != nil {
		return false, err
	}
	s.orgsMu.Lock()
	if len(s.orgs) > 10000 { // bound the cache: start over
		s.orgs = map[string]orgEntry{}
	}
	s.orgs[org] = orgEntry{has: has, expires: now.Add(orgCacheTTL)}
	s.orgsMu.Unlock()
	return has, nil
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Jobs == nil {
		return nil, errors.New("smarttests: Config.Store and Config.Jobs are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxReportBytes <= 0 {
		cfg.MaxReportBytes = DefaultMaxReportBytes
	}
	if cfg.MaxCaptureBytes <= 0 {
		cfg.MaxCaptureBytes = DefaultMaxCaptureBytes
	}
	if cfg.CaptureGrace == 0 {
		cfg.CaptureGrace = DefaultCaptureGrace
	}
	return &Service{cfg: cfg, st: cfg.Store, jobs: cfg.Jobs, log: cfg.Logger, orgs: map[string]orgEntry{}}, nil
}

// ValidationError is a request the service refused: HTTP 400 with field paths.
type ValidationError struct {
	Msg    string
	Fields apitypes.FieldErrors
}

// Error formats the error.
func (e *ValidationError) Error() string {
	if len(e.Fields) > 0 {
		return e.Msg + ": " + e.Fields.Error()
	}
	return e.Msg
}

func invalid(msg string, fields ...apitypes.FieldError) error {
	return &ValidationError{Msg: msg, Fields: fields}
}

// Sentinel errors of the service (besides the store's).
var (
	// ErrNotFinished: the execution has not finished, so it has no traffic diff yet.
	ErrNotFinished = errors.New("the execution has not finished")
	// ErrNoDiff: the execution finished without a traffic diff (autoDiff
	// off, no routing, or it failed before a report).
	ErrNoDiff = errors.New("the execution has no traffic diff")
)

// ---- tests ----

// Validate checks a test as Apply does, without storing it: its name,
// spec and script (syntax and names, with the script's line and column).
func Validate(name string, t *apitypes.SmartTest) apitypes.FieldErrors {
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateSmartTestName("name", name); fe != nil {
		errs = append(errs, *fe)
	}
	if t.Name != "" && t.Name != name {
		errs = append(errs, apitypes.FieldError{Path: "name", Message: fmt.Sprintf("%q differs from the name in the path (%q)", t.Name, name)})
	}
	specErrs := apitypes.ValidateSmartTestSpec(&t.Spec)
	errs = append(errs, specErrs...)
	scriptOK := true
	for _, fe := range specErrs {
		if fe.Path == "spec.script" {
			scriptOK = false
		}
	}
	if scriptOK {
		if err := script.Validate(scriptFile(name), t.Spec.Script); err != nil {
			var se *script.Error
			if !errors.As(err, &se) {
				return append(errs, apitypes.FieldError{Path: "spec.script", Message: err.Error()})
			}
			errs = append(errs, apitypes.FieldError{Path: "spec.script", Message: se.Error()})
			for i, m := range se.More {
				if i == 9 {
					errs = append(errs, apitypes.FieldError{Path: "spec.script", Message: fmt.Sprintf("%d more errors not shown", len(se.More)-i)})
					break
				}
				errs = append(errs, apitypes.FieldError{Path: "spec.script", Message: m.Error()})
			}
		}
	}
	return errs
}

// scriptFile names a test's script in positions.
func scriptFile(test string) string { return test + ".star" }

// Apply creates or updates a test; the same spec again changes nothing.
// ifVersion is as in store.PutSmartTest. Its runner group need not exist
// yet (an execution needs it).
func (s *Service) Apply(ctx context.Context, org, name string, t apitypes.SmartTest, ifVersion int64) (apitypes.SmartTest, bool, error) {
	t.Spec.Default()
	if errs := Validate(name, &t); len(errs) > 0 {
		return apitypes.SmartTest{}, false, &ValidationError{Msg: "invalid smart test", Fields: errs}
	}
	raw, err := json.Marshal(t.Spec)
	if err != nil {
		return apitypes.SmartTest{}, false, fmt.Errorf("smart test %s/%s: %w", org, name, err)
	}
	st, created, err := s.st.PutSmartTest(ctx, org, name, raw, ifVersion)
	if err != nil {
		return apitypes.SmartTest{}, false, err
	}
	return TestView(st), created, nil
}

// Get returns a test.
func (s *Service) Get(ctx context.Context, org, name string) (apitypes.SmartTest, error) {
	t, err := s.st.GetSmartTest(ctx, org, name)
	if err != nil {
		return apitypes.SmartTest{}, err
	}
	return TestView(t), nil
}

// List returns a page of an org's tests by name (view them with TestView).
func (s *Service) List(ctx context.Context, org string, p store.PageRequest) (store.Page[store.SmartTest], error) {
	return s.st.ListSmartTests(ctx, org, p)
}

// Delete deletes a test. Its executions stay (with their results; the
// ones still running finish), listed by GET …/tests/executions?test=name.
func (s *Service) Delete(ctx context.Context, org, name string) error {
	return s.st.DeleteSmartTest(ctx, org, name)
}

// TestView is a stored test as the API shows it.
func TestView(t store.SmartTest) apitypes.SmartTest {
	out := apitypes.SmartTest{Name: t.Name, CreatedAt: ts(t.CreatedAt), UpdatedAt: ts(t.UpdatedAt), Version: t.Version}
	_ = json.Unmarshal(t.Spec, &out.Spec) // stored validated
	return out
}

// ---- executions ----

// CreateExecution starts an execution of a test: it checks the request
// against the test's runner group and the routing object, submits the job
// and stores the execution. Bad input is a *ValidationError and stores
// nothing.
func (s *Service) CreateExecution(ctx context.Context, org, test string, spec apitypes.TestExecutionSpec) (apitypes.TestExecution, error) {
	return s.createExecution(ctx, org, test, spec, nil)
}

func (s *Service) createExecution(ctx context.Context, org, test string, spec apitypes.TestExecutionSpec, trig *apitypes.TestExecutionTrigger) (apitypes.TestExecution, error) {
	t, err := s.st.GetSmartTest(ctx, org, test)
	if err != nil {
		return apitypes.TestExecution{}, err
	}
	var tspec apitypes.SmartTestSpec
	if err := json.Unmarshal(t.Spec, &tspec); err != nil {
		return apitypes.TestExecution{}, fmt.Errorf("smart test %s/%s: stored spec: %w", org, test, err)
	}
	if errs := apitypes.ValidateTestExecutionSpec(&spec); len(errs) > 0 {
		return apitypes.TestExecution{}, &ValidationError{Msg: "invalid test execution", Fields: errs}
	}
	ec := &spec.ExecutionContext
	if ec.AutoDiff == nil {
		ec.AutoDiff = &apitypes.SmartTestAutoDiff{Enabled: true}
	}
	if ec.Timeout == "" {
		ec.Timeout = tspec.DefaultTimeout
	}
	rg, err := s.st.Get(ctx, store.KindRunnerGroup, org, tspec.RunnerGroup)
	if errors.Is(err, store.ErrNotFound) {
		return apitypes.TestExecution{}, invalid("cannot run the test", apitypes.FieldError{Path: "test.spec.runnerGroup",
			Message: fmt.Sprintf("the test's runner group %q does not exist in this org: apply it, or change the test's spec.runnerGroup", tspec.RunnerGroup)})
	}
	if err != nil {
		return apitypes.TestExecution{}, err
	}
	if ec.Cluster != "" && ec.Cluster != rg.Cluster {
		return apitypes.TestExecution{}, invalid("invalid test execution", apitypes.FieldError{Path: "executionContext.cluster",
			Message: fmt.Sprintf("%q is not the cluster of the test's runner group %q (%q)", ec.Cluster, rg.Name, rg.Cluster)})
	}
	ec.Cluster = rg.Cluster
	var sandbox, routeGroup string
	if r := ec.Routing; r != nil {
		kind, name, path := store.KindSandbox, r.Sandbox, "executionContext.routing.sandbox"
		if r.RouteGroup != "" {
			kind, name, path = store.KindRouteGroup, r.RouteGroup, "executionContext.routing.routegroup"
		}
		o, err := s.st.Get(ctx, kind, org, name)
		if errors.Is(err, store.ErrNotFound) {
			return apitypes.TestExecution{}, invalid("invalid test execution", apitypes.FieldError{Path: path, Message: fmt.Sprintf("no %s %q in this org", kind, name)})
		}
		if err != nil {
			return apitypes.TestExecution{}, err
		}
		if o.Cluster != "" && o.Cluster != rg.Cluster {
			return apitypes.TestExecution{}, invalid("invalid test execution", apitypes.FieldError{Path: path,
				Message: fmt.Sprintf("%s %q is in cluster %q, but the test's runner group %q runs in cluster %q", kind, name, o.Cluster, rg.Name, rg.Cluster)})
		}
		if kind == store.KindSandbox {
			sandbox = name
		} else {
			routeGroup = name
		}
	}

	id := store.NewID(8)
	js := apitypes.JobSpec{RunnerGroup: rg.Name, NamePrefix: "smarttest", Command: RunnerCommand,
		Labels:         map[string]string{LabelTest: test, LabelExecution: id},
		UploadArtifact: []apitypes.ArtifactToUpload{{Path: executor.ReportFile}}}
	if sandbox != "" || routeGroup != "" {
		js.RoutingContext = &apitypes.JobRoutingContext{Sandbox: sandbox, RouteGroup: routeGroup}
	}
	sys := []apitypes.EnvVar{{Name: EnvScript, Value: tspec.Script}, {Name: EnvExecution, Value: id}, {Name: EnvFilename, Value: scriptFile(test)}}
	if ec.Timeout != "" {
		sys = append(sys, apitypes.EnvVar{Name: EnvTimeout, Value: ec.Timeout})
	}
	job, err := s.jobs.SubmitSystem(ctx, org, apitypes.Job{Spec: js}, sys)
	if err != nil {
		var ve *jobs.ValidationError
		if errors.As(err, &ve) { // the checks above make this unlikely (a runner group deleted meanwhile)
			return apitypes.TestExecution{}, &ValidationError{Msg: "cannot run the test: " + ve.Msg, Fields: ve.Fields}
		}
		return apitypes.TestExecution{}, err
	}
	rawSpec, err := json.Marshal(spec)
	if err != nil {
		return apitypes.TestExecution{}, fmt.Errorf("test execution of %s/%s: %w", org, test, err)
	}
	var rawTrig json.RawMessage
	if trig != nil {
		if rawTrig, err = json.Marshal(trig); err != nil {
			return apitypes.TestExecution{}, fmt.Errorf("test execution of %s/%s: %w", org, test, err)
		}
	}
	e, err := s.st.CreateTestExecution(ctx, store.TestExecution{Org: org, ID: id, Test: test, Spec: rawSpec, Job: job.Name,
		Sandbox: sandbox, RouteGroup: routeGroup, RoutingKey: job.Status.RoutingKey, TriggeredBy: rawTrig})
	if err != nil {
		if derr := s.jobs.Delete(context.WithoutCancel(ctx), org, job.Name); derr != nil {
			s.log.WarnContext(ctx, "delete the job of an execution that was not stored", "org", org, "job", job.Name, "err", derr)
		}
		return apitypes.TestExecution{}, err
	}
	s.orgsMu.Lock()
	s.orgs[org] = orgEntry{has: true, expires: time.Now().Add(orgCacheTTL)}
	s.orgsMu.Unlock()
	return s.view(e, phaseOfJob(job.Status.Phase)), nil
}

// GetExecution returns an execution; the first read after its job finished
// concludes it (reads the report, stores the results).
func (s *Service) GetExecution(ctx context.Context, org, id string) (apitypes.TestExecution, error) {
	e, err := s.st.GetTestExecution(ctx, org, id, false)
	if err != nil {
		return apitypes.TestExecution{}, err
	}
	return s.refresh(ctx, e)
}

// maxSummarised bounds the executions SandboxSummary reads.
const maxSummarised = 200

// SandboxSummary summarises a sandbox's published executions (those with
// executionContext.publish): the latest finished one of each test, among
// the last 200 finished against the sandbox. nil: none.
func (s *Service) SandboxSummary(ctx context.Context, org, sandbox string) (*apitypes.SandboxTestExecutions, error) {
	if has, err := s.hasExecutions(ctx, org); err != nil || !has {
		return nil, err
	}
	es, err := s.st.FinishedTestExecutionsOfSandbox(ctx, org, sandbox, maxSummarised)
	if err != nil {
		return nil, err
	}
	var out *apitypes.SandboxTestExecutions
	seen := map[string]bool{}
	for _, e := range es {
		var spec apitypes.TestExecutionSpec
		if seen[e.Test] || json.Unmarshal(e.Spec, &spec) != nil || !spec.ExecutionContext.Publish {
			continue
		}
		seen[e.Test] = true
		if out == nil {
			out = &apitypes.SandboxTestExecutions{}
		}
		out.Executions++
		var r apitypes.TestExecutionResult
		if len(e.Results) == 0 || json.Unmarshal(e.Results, &r) != nil {
			continue
		}
		for _, c := range r.Checks.Sandbox {
			if len(c.Errors) == 0 {
				out.Checks.Passed++
			} else {
				out.Checks.Failed++
			}
		}
		if d := r.TrafficDiff; d != nil {
			out.TrafficDiffs.Red += d.Red.Additions + d.Red.Removals + d.Red.Replacements
			out.TrafficDiffs.Yellow += d.Yellow.Additions + d.Yellow.Removals + d.Yellow.Replacements
			out.TrafficDiffs.Green += d.Green.Additions + d.Green.Removals + d.Green.Replacements
		}
	}
	return out, nil
}

// ExecutionOf checks that execution id is one of test's (store.ErrNotFound otherwise).
func (s *Service) ExecutionOf(ctx context.Context, org, test, id string) error {
	e, err := s.st.GetTestExecution(ctx, org, id, false)
	if err != nil {
		return err
	}
	if e.Test != test {
		return fmt.Errorf("test execution %s/%s of test %s: %w", org, id, test, store.ErrNotFound)
	}
	return nil
}

// ListExecutions returns a page of an org's executions, oldest first (view
// them with View).
func (s *Service) ListExecutions(ctx context.Context, org string, f store.TestExecutionFilter, p store.PageRequest) (store.Page[store.TestExecution], error) {
	return s.st.ListTestExecutions(ctx, org, f, p)
}

// View shows a listed execution as GetExecution does; an error concluding
// it is logged and the execution shown as it was stored.
func (s *Service) View(ctx context.Context, e store.TestExecution) apitypes.TestExecution {
	v, err := s.refresh(ctx, e)
	if err != nil {
		s.log.ErrorContext(ctx, "test execution view", "org", e.Org, "id", e.ID, "err", err)
		phase := e.Phase
		if phase == "" { // the job could not be read, or its report not concluded: try again on the next read
			phase = apitypes.TestPhaseInProgress
		}
		return s.view(e, phase)
	}
	return v
}

// CancelExecution cancels an execution's job (a running one through its
// runner); a finished execution is unchanged.
func (s *Service) CancelExecution(ctx context.Context, org, id string) (apitypes.TestExecution, error) {
	e, err := s.st.GetTestExecution(ctx, org, id, false)
	if err != nil {
		return apitypes.TestExecution{}, err
	}
	if e.Phase == "" {
		if _, err := s.jobs.Cancel(ctx, org, e.Job); err != nil && !errors.Is(err, store.ErrNotFound) {
			return apitypes.TestExecution{}, err
		}
	}
	return s.refresh(ctx, e)
}

// TrafficDiff returns the whole traffic diff of a finished execution (the
// JSON of a diff.Result). ErrNotFinished, ErrNoDiff.
func (s *Service) TrafficDiff(ctx context.Context, org, id string) (json.RawMessage, error) {
	e, err := s.st.GetTestExecution(ctx, org, id, false)
	if err != nil {
		return nil, err
	}
	if e.Phase == "" {
		v, err := s.refresh(ctx, e)
		if err != nil {
			return nil, err
		}
		if !finalPhase(v.Status.Phase) {
			return nil, fmt.Errorf("test execution %s/%s is %s: %w", org, id, v.Status.Phase, ErrNotFinished)
		}
	}
	e, err = s.st.GetTestExecution(ctx, org, id, true)
	if err != nil {
		return nil, err
	}
	if len(e.TrafficDiff) == 0 {
		return nil, fmt.Errorf("test execution %s/%s (%s: %s): %w", org, id, e.Phase, e.Message, ErrNoDiff)
	}
	return e.TrafficDiff, nil
}

// TrafficDiffFindings returns the findings of an execution's traffic diff
// of category (red, yellow; empty: both), at most max (0: all), most
// relevant first.
func (s *Service) TrafficDiffFindings(ctx context.Context, org, id, category string, max int) ([]diff.Finding, error) {
	if category != "" && category != string(diff.Red) && category != string(diff.Yellow) {
		return nil, invalid("invalid category", apitypes.FieldError{Path: "category", Message: fmt.Sprintf("%q: want red or yellow (or none for both)", category)})
	}
	raw, err := s.TrafficDiff(ctx, org, id)
	if err != nil {
		return nil, err
	}
	var r diff.Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("traffic diff of test execution %s/%s: %w", org, id, err)
	}
	return r.FilterFindings(diff.Category(category), max)
}

func finalPhase(p string) bool {
	return p == apitypes.TestPhaseSucceeded || p == apitypes.TestPhaseFailed || p == apitypes.TestPhaseCanceled
}

// phaseOfJob is the phase of an execution whose job is in phase p and that
// has not been concluded.
func phaseOfJob(p string) string {
	if p == store.JobQueued {
		return apitypes.TestPhasePending
	}
	return apitypes.TestPhaseInProgress
}

// refresh shows an execution; an unfinished one whose job has finished is
// concluded first.
func (s *Service) refresh(ctx context.Context, e store.TestExecution) (apitypes.TestExecution, error) {
	if e.Phase != "" {
		return s.view(e, e.Phase), nil
	}
	j, err := s.st.GetJob(ctx, e.Org, e.Job)
	var c conclusion
	switch {
	case errors.Is(err, store.ErrNotFound):
		c = conclusion{phase: apitypes.TestPhaseFailed, message: fmt.Sprintf("the execution's job %s was deleted before its report was read", e.Job)}
	case err != nil:
		return apitypes.TestExecution{}, err
	case !j.Finished():
		return s.view(e, phaseOfJob(j.Phase)), nil
	case j.Phase != store.JobCanceled && e.RoutingKey != "" && time.Since(j.FinishedAt) < s.cfg.CaptureGrace:
		return s.view(e, apitypes.TestPhaseInProgress), nil // the capture points' last batches are on their way
	default:
		if c, err = s.conclude(ctx, e, j); err != nil {
			return apitypes.TestExecution{}, err
		}
	}
	err = s.st.FinishTestExecution(ctx, e.Org, e.ID, c.phase, c.message, c.results, c.trafficDiff)
	if err != nil && !errors.Is(err, store.ErrConflict) { // ErrConflict: another request concluded it first
		return apitypes.TestExecution{}, err
	}
	if err := s.st.DeleteTestCaptures(ctx, e.Org, e.ID); err != nil { // the diff holds what matters now
		s.log.WarnContext(ctx, "delete the captures of a concluded test execution", "org", e.Org, "id", e.ID, "err", err)
	}
	if e, err = s.st.GetTestExecution(ctx, e.Org, e.ID, false); err != nil {
		return apitypes.TestExecution{}, err
	}
	return s.view(e, e.Phase), nil
}

// conclusion is what a finished execution stores, all at once.
type conclusion struct {
	phase, message       string
	results, trafficDiff json.RawMessage
}

// conclude reads the report of an execution's finished job and makes the
// execution's results. A missing or malformed report is a failed
// execution without results; an error is returned only for what may pass
// (the database or the artifact store failing), and nothing is stored then.
func (s *Service) conclude(ctx context.Context, e store.TestExecution, j store.Job) (conclusion, error) {
	if j.Phase == store.JobCanceled {
		msg := "canceled (" + j.CanceledBy + ")"
		if j.Message != "" {
			msg += ": " + j.Message
		}
		return conclusion{phase: apitypes.TestPhaseCanceled, message: msg}, nil
	}
	jobFailed := ""
	if j.Phase == store.JobFailed {
		jobFailed = fmt.Sprintf("the job %s failed (exit code %d)", j.Name, j.ExitCode)
		if j.Message != "" {
			jobFailed += ": " + j.Message
		}
	}
	failed := func(msg string) (conclusion, error) {
		if jobFailed != "" {
			msg = jobFailed + "; " + msg
		}
		return conclusion{phase: apitypes.TestPhaseFailed, message: msg}, nil
	}
	_, rc, err := s.jobs.OpenArtifact(ctx, e.Org, j.Name, j.Attempt, apitypes.ArtifactSpaceUser, executor.ReportFile)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return failed(fmt.Sprintf("the job uploaded no report (%s); see its logs: GET /api/v2/orgs/%s/jobs/%s/attempts/%d/logs/stream", executor.ReportFile, e.Org, j.Name, j.Attempt))
	case errors.Is(err, jobs.ErrNoArtifactStore):
		return failed("the control plane has no artifact storage, so the job could not upload its report")
	case err != nil:
		return conclusion{}, fmt.Errorf("report of test execution %s/%s: %w", e.Org, e.ID, err)
	}
	data, err := io.ReadAll(io.LimitReader(rc, s.cfg.MaxReportBytes+1))
	rc.Close()
	if err != nil {
		return conclusion{}, fmt.Errorf("report of test execution %s/%s: read: %w", e.Org, e.ID, err)
	}
	if int64(len(data)) > s.cfg.MaxReportBytes {
		return failed(fmt.Sprintf("the job's report is larger than %d bytes", s.cfg.MaxReportBytes))
	}
	rep, err := ParseReport(data, e.ID, e.RoutingKey)
	if err != nil {
		return failed("malformed report: " + err.Error())
	}
	var spec apitypes.TestExecutionSpec
	_ = json.Unmarshal(e.Spec, &spec)
	autoDiff := spec.ExecutionContext.AutoDiff == nil || spec.ExecutionContext.AutoDiff.Enabled
	// The target run differs from the baseline by its routing key and the sandbox (or route group) it
	// reaches; apps echo both (baggage, a fork's pod name): not findings.
	dopts := s.cfg.Diff
	dopts.Expected = append(slices.Clone(dopts.Expected), e.RoutingKey)
	if r := spec.ExecutionContext.Routing; r != nil {
		dopts.Expected = append(dopts.Expected, r.Sandbox, r.RouteGroup)
	}
	withDiff := autoDiff && e.RoutingKey != ""
	if withDiff {
		hops, err := s.hopCaptures(ctx, e)
		if err != nil {
			return conclusion{}, err
		}
		for i := range rep.Runs {
			rep.Runs[i].Captures = append(rep.Runs[i].Captures, hops[rep.Runs[i].Name]...)
		}
	}
	res, full := Results(rep, withDiff, dopts)
	c := conclusion{phase: apitypes.TestPhaseSucceeded}
	if c.results, err = json.Marshal(res); err != nil {
		return conclusion{}, fmt.Errorf("results of test execution %s/%s: %w", e.Org, e.ID, err)
	}
	if full != nil {
		if c.trafficDiff, err = json.Marshal(full); err != nil {
			return conclusion{}, fmt.Errorf("traffic diff of test execution %s/%s: %w", e.Org, e.ID, err)
		}
	}
	var runErrs []string
	for _, r := range res.Runs {
		if r.Error != "" {
			runErrs = append(runErrs, fmt.Sprintf("run %s: %s", r.Name, r.Error))
		}
	}
	switch {
	case jobFailed != "":
		c.phase, c.message = apitypes.TestPhaseFailed, jobFailed
		if len(runErrs) > 0 {
			c.message += "; " + strings.Join(runErrs, "; ")
		}
	case len(runErrs) > 0:
		c.phase, c.message = apitypes.TestPhaseFailed, "the script failed: "+strings.Join(runErrs, "; ")
	default:
		c.message = summary(res)
	}
	return c, nil
}

// summary says in one line what a successful execution found.
func summary(r apitypes.TestExecutionResult) string {
	count := func(cs []apitypes.TestCheck) (pass, fail int) {
		for _, c := range cs {
			if len(c.Errors) == 0 {
				pass++
			} else {
				fail++
			}
		}
		return
	}
	sp, sf := count(r.Checks.Sandbox)
	bp, bf := count(r.Checks.Baseline)
	msg := fmt.Sprintf("completed: checks on the sandbox %d passed, %d failed; on the baseline %d passed, %d failed", sp, sf, bp, bf)
	if d := r.TrafficDiff; d != nil {
		msg += fmt.Sprintf("; traffic diff: %d red, %d yellow, %d green ops in %d captures", d.Red.Additions+d.Red.Removals+d.Red.Replacements,
			d.Yellow.Additions+d.Yellow.Removals+d.Yellow.Replacements, d.Green.Additions+d.Green.Removals+d.Green.Replacements, d.Captures)
	}
	return msg
}

// view is a stored execution as the API shows it, in phase.
func (s *Service) view(e store.TestExecution, phase string) apitypes.TestExecution {
	out := apitypes.TestExecution{ID: e.ID, TestName: e.Test, CreatedAt: ts(e.CreatedAt)}
	_ = json.Unmarshal(e.Spec, &out.Spec) // stored validated
	out.Status = apitypes.TestExecutionStatus{Phase: phase, Job: e.Job, RoutingKey: e.RoutingKey, FinishedAt: ts(e.FinishedAt)}
	if e.Message != "" {
		out.Status.FinalState = &apitypes.TestExecutionFinalState{Message: e.Message}
	}
	if len(e.TriggeredBy) > 0 {
		var tb apitypes.TestExecutionTrigger
		if json.Unmarshal(e.TriggeredBy, &tb) == nil {
			out.Status.TriggeredBy = &tb
		}
	}
	if len(e.Results) > 0 {
		var r apitypes.TestExecutionResult
		if err := json.Unmarshal(e.Results, &r); err != nil {
			s.log.Error("stored results of a test execution", "org", e.Org, "id", e.ID, "err", err)
		} else {
			out.Results = &r
		}
	}
	return out
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// ---- reports ----

// ParseReport decodes and checks a smart-test job's report: its version,
// that it is the report of execution with routingKey, and its runs (target,
// baseline-a and baseline-b, once each) with valid captures.
func ParseReport(data []byte, execution, routingKey string) (*executor.Report, error) {
	var rep executor.Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("not a JSON report: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON report")
	}
	switch {
	case rep.Version != executor.ReportVersion:
		return nil, fmt.Errorf("version: %q, want %q", rep.Version, executor.ReportVersion)
	case rep.Execution != execution:
		return nil, fmt.Errorf("execution: %q, want %q (the report of another execution)", rep.Execution, execution)
	case rep.RoutingKey != routingKey:
		return nil, fmt.Errorf("routingKey: %q, want the execution's %q", rep.RoutingKey, routingKey)
	}
	seen := map[string]bool{}
	for i, r := range rep.Runs {
		switch r.Name {
		case executor.RunTarget, executor.RunBaselineA, executor.RunBaselineB:
		default:
			return nil, fmt.Errorf("runs[%d].name: %q, want %s, %s or %s", i, r.Name, executor.RunTarget, executor.RunBaselineA, executor.RunBaselineB)
		}
		if seen[r.Name] {
			return nil, fmt.Errorf("runs[%d].name: run %q appears twice", i, r.Name)
		}
		seen[r.Name] = true
		for k := range r.Captures {
			if err := r.Captures[k].Validate(); err != nil {
				return nil, fmt.Errorf("runs[%d].captures[%d]: %w", i, k, err)
			}
		}
	}
	for _, n := range []string{executor.RunTarget, executor.RunBaselineA, executor.RunBaselineB} {
		if !seen[n] {
			return nil, fmt.Errorf("runs: no run %q", n)
		}
	}
	return &rep, nil
}

// Results makes an execution's results from its report: the checks of the
// target run (sandbox) and of baseline-a (baseline), a summary of each run,
// and with withDiff the traffic diff of the runs' captures (its summary in
// the results, the whole of it returned).
func Results(rep *executor.Report, withDiff bool, opts diff.Options) (apitypes.TestExecutionResult, *diff.Result) {
	runs := map[string]*executor.Run{}
	for i := range rep.Runs {
		runs[rep.Runs[i].Name] = &rep.Runs[i]
	}
	out := apitypes.TestExecutionResult{Checks: apitypes.TestExecutionChecks{
		Sandbox: checks(runs[executor.RunTarget]), Baseline: checks(runs[executor.RunBaselineA])}}
	for _, n := range []string{executor.RunTarget, executor.RunBaselineA, executor.RunBaselineB} {
		r := runs[n]
		if r == nil {
			continue
		}
		sum := apitypes.TestRunSummary{Name: n, Error: r.Error, Captures: len(r.Captures), Passed: r.Error == "" && r.Result != nil && r.Result.Passed()}
		if r.Result != nil {
			sum.Requests = r.Result.Requests
		}
		out.Runs = append(out.Runs, sum)
	}
	if !withDiff {
		return out, nil
	}
	capt := func(n string) []diff.Capture {
		if r := runs[n]; r != nil {
			return r.Captures
		}
		return nil
	}
	d := diff.Compare(capt(executor.RunTarget), capt(executor.RunBaselineA), capt(executor.RunBaselineB), opts)
	out.TrafficDiff = &d.Summary
	return out, d
}

func checks(r *executor.Run) []apitypes.TestCheck {
	out := []apitypes.TestCheck{}
	if r == nil || r.Result == nil {
		return out
	}
	for _, c := range r.Result.Checks {
		tc := apitypes.TestCheck{Name: c.Name, Errors: []apitypes.TestCheckError{}}
		for _, e := range c.Errors {
			tc.Errors = append(tc.Errors, apitypes.TestCheckError{Message: e.Message,
				SourcePosition: apitypes.TestSourcePosition{File: e.SourcePosition.File, Line: e.SourcePosition.Line, Col: e.SourcePosition.Col}})
		}
		out = append(out, tc)
	}
	return out
}
