package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// maxToolLog bounds the output a job tool answers (the end of each stream
// is kept: that is where test suites report).
const maxToolLog = 64 << 10

// JobSubmitInput submits a job.
type JobSubmitInput struct {
	RunnerGroup string            `json:"runner_group" jsonschema:"job runner group whose pods run the job (see the cluster's runner groups; created with sandboxmesh jobrunnergroup apply)"`
	Script      string            `json:"script,omitempty" jsonschema:"the script to run, starting with an interpreter line such as #!/bin/sh (give script or command)"`
	Command     []string          `json:"command,omitempty" jsonschema:"a command and its arguments instead of a script"`
	Sandbox     string            `json:"sandbox,omitempty" jsonschema:"sandbox whose routing key the job gets (SANDBOXMESH_ROUTING_KEY, SIGNADOT_ROUTING_KEY): put it in requests as 'baggage: sm-routing-key=<key>' to reach the sandbox's forks"`
	RouteGroup  string            `json:"routegroup,omitempty" jsonschema:"route group whose routing key the job gets, instead of a sandbox"`
	Env         map[string]string `json:"env,omitempty" jsonschema:"environment variables of the job"`
	Artifacts   []string          `json:"upload_artifacts,omitempty" jsonschema:"files (paths in the job's working folder, or absolute) uploaded when it ends"`
	NamePrefix  string            `json:"name_prefix,omitempty" jsonschema:"prefix of the job's name (the control plane adds 5 random characters)"`
	Wait        bool              `json:"wait,omitempty" jsonschema:"wait until the job ends and answer its exit code and output"`
	WaitSeconds int               `json:"wait_timeout_seconds,omitempty" jsonschema:"how long to wait when wait is true (default 600)"`
}

// JobLogsInput asks for a job's output.
type JobLogsInput struct {
	Name      string `json:"name" jsonschema:"job name"`
	Stream    string `json:"stream,omitempty" jsonschema:"stdout (default) or stderr"`
	TailLines int    `json:"tail_lines,omitempty" jsonschema:"only the last N lines (default: all, at most 64 KiB from the end)"`
}

// JobView is a job as the job tools answer it.
type JobView struct {
	Name        string `json:"name"`
	RunnerGroup string `json:"runner_group"`
	Phase       string `json:"phase" jsonschema:"queued, running, succeeded, failed or canceled"`
	// ExitCode is set once the job succeeded or failed.
	ExitCode   *int64              `json:"exit_code,omitempty"`
	Message    string              `json:"message,omitempty"`
	RoutingKey string              `json:"routing_key,omitempty"`
	Pod        string              `json:"pod,omitempty"`
	Stdout     string              `json:"stdout,omitempty"`
	Stderr     string              `json:"stderr,omitempty"`
	Artifacts  []apitypes.Artifact `json:"artifacts,omitempty"`
	NextStep   string              `json:"next_step,omitempty"`
}

// JobLogs is the answer of job_logs.
type JobLogs struct {
	Name   string `json:"name"`
	Stream string `json:"stream"`
	Output string `json:"output"`
	// Running says the job still runs: more output may follow.
	Running   bool `json:"running,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
}

func (s *server) registerJobs(srv *mcp.Server) {
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true}
	mcp.AddTool(srv, &mcp.Tool{Name: "job_submit", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), OpenWorldHint: ptr(true)},
		Description: "Run a script or command inside the cluster on a job runner group's pod, with a sandbox's routing key in its environment — to run a test suite against the sandbox. " +
			"With wait=true it answers when the job ends: phase, exit code, the end of stdout and stderr, and the uploaded artifacts."}, s.jobSubmit)
	mcp.AddTool(srv, &mcp.Tool{Name: "job_get", Annotations: ro,
		Description: "Get a job: phase, exit code or failure message, the pod that ran it, its artifacts."}, s.jobGet)
	mcp.AddTool(srv, &mcp.Tool{Name: "job_logs", Annotations: ro,
		Description: "Read a job's output (stdout or stderr); it is kept after the job's pod is gone. For a running job it answers what was written so far."}, s.jobLogs)
	mcp.AddTool(srv, &mcp.Tool{Name: "job_cancel", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true},
		Description: "Cancel a job: a queued job never runs, a running job's processes are stopped."}, s.jobCancel)
}

func (s *server) jobSubmit(ctx context.Context, req *mcp.CallToolRequest, in JobSubmitInput) (*mcp.CallToolResult, any, error) {
	spec := apitypes.JobSpec{NamePrefix: in.NamePrefix, RunnerGroup: in.RunnerGroup, Script: in.Script, Command: in.Command}
	if in.Sandbox != "" || in.RouteGroup != "" {
		spec.RoutingContext = &apitypes.JobRoutingContext{Sandbox: in.Sandbox, RouteGroup: in.RouteGroup}
	}
	for _, k := range slices.Sorted(maps.Keys(in.Env)) {
		spec.Env = append(spec.Env, apitypes.EnvVar{Name: k, Value: in.Env[k]})
	}
	for _, p := range in.Artifacts {
		spec.UploadArtifact = append(spec.UploadArtifact, apitypes.ArtifactToUpload{Path: p})
	}
	if errs := apitypes.ValidateJobSpec(&spec); len(errs) > 0 {
		return nil, nil, fmt.Errorf("invalid job:%s", fieldList(renameJobFields(errs)))
	}
	job, err := s.o.Client.SubmitJob(ctx, s.o.Org, spec)
	if err != nil {
		return nil, nil, s.agentError(err, "submit job")
	}
	if !in.Wait {
		v := s.jobView(ctx, job, false)
		v.NextStep = "call job_get or job_logs with name " + job.Name + " (or submit with wait=true)"
		return nil, v, nil
	}
	timeout := 600 * time.Second
	if in.WaitSeconds > 0 {
		timeout = time.Duration(in.WaitSeconds) * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n := 0
	interval := s.o.WaitInterval
	if interval <= 0 {
		interval = time.Second
	}
	last := ""
	for {
		j, err := s.o.Client.GetJob(wctx, s.o.Org, job.Name)
		if err != nil {
			if wctx.Err() != nil {
				break
			}
			return nil, nil, s.agentError(err, "job "+job.Name)
		}
		job = j
		if ended(j.Status.Phase) {
			return nil, s.jobView(ctx, j, true), nil
		}
		if j.Status.Phase != last {
			last = j.Status.Phase
			n++
			notify(ctx, req, n, job.Name+": "+j.Status.Phase)
		}
		select {
		case <-wctx.Done():
		case <-time.After(interval):
		}
		if wctx.Err() != nil {
			break
		}
	}
	return nil, nil, fmt.Errorf("job %s is still %s after %s; it keeps running: call job_get or job_logs with its name, or job_cancel", job.Name, job.Status.Phase, timeout)
}

func (s *server) jobGet(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
	job, err := s.o.Client.GetJob(ctx, s.o.Org, in.Name)
	if err != nil {
		return nil, nil, s.agentError(err, "get job "+in.Name)
	}
	return nil, s.jobView(ctx, job, false), nil
}

func (s *server) jobCancel(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
	job, err := s.o.Client.CancelJob(ctx, s.o.Org, in.Name)
	if err != nil {
		return nil, nil, s.agentError(err, "cancel job "+in.Name)
	}
	return nil, s.jobView(ctx, job, false), nil
}

func (s *server) jobLogs(ctx context.Context, _ *mcp.CallToolRequest, in JobLogsInput) (*mcp.CallToolResult, any, error) {
	stream := in.Stream
	if stream == "" {
		stream = "stdout"
	}
	if stream != "stdout" && stream != "stderr" {
		return nil, nil, fmt.Errorf("stream %q: want stdout or stderr", in.Stream)
	}
	job, err := s.o.Client.GetJob(ctx, s.o.Org, in.Name)
	if err != nil {
		return nil, nil, s.agentError(err, "job "+in.Name)
	}
	out, truncated, err := s.readLog(ctx, job, stream, in.TailLines)
	if err != nil {
		return nil, nil, s.agentError(err, "logs of job "+in.Name)
	}
	return nil, JobLogs{Name: job.Name, Stream: stream, Output: out, Running: !ended(job.Status.Phase), Truncated: truncated}, nil
}

// readLog reads what a job's stream holds now: a finished job's whole
// stream, a running job's output so far (the stream is cut after a short
// wait). It keeps the last maxToolLog bytes.
func (s *server) readLog(ctx context.Context, job *client.Job, stream string, tail int) (string, bool, error) {
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if ended(job.Status.Phase) {
		rctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	var b strings.Builder
	truncated := false
	err := s.o.Client.StreamJobLogs(rctx, s.o.Org, job.Name, client.LogStreamOptions{Attempt: lastAttempt(job), Type: stream, TailLines: tail, MaxReconnects: -1},
		func(m client.JobLogMessage) error {
			b.WriteString(m.Message)
			if b.Len() > 2*maxToolLog {
				rest := b.String()[b.Len()-maxToolLog:]
				b.Reset()
				b.WriteString(rest)
				truncated = true
			}
			return nil
		})
	if err != nil && !(errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil) {
		return "", false, err
	}
	out := b.String()
	if len(out) > maxToolLog {
		out, truncated = out[len(out)-maxToolLog:], true
	}
	return out, truncated, nil
}

func (s *server) jobView(ctx context.Context, j *client.Job, withOutput bool) *JobView {
	v := &JobView{Name: j.Name, RunnerGroup: j.Spec.RunnerGroup, Phase: j.Status.Phase, RoutingKey: j.Status.RoutingKey}
	if n := len(j.Status.Attempts); n > 0 {
		st := j.Status.Attempts[n-1].State
		switch {
		case st.Queued != nil:
			v.Message = st.Queued.Message
		case st.Running != nil:
			v.Pod = st.Running.PodNamespace + "/" + st.Running.PodName
		case st.Succeeded != nil:
			v.ExitCode = &st.Succeeded.ExitCode
		case st.Failed != nil:
			v.ExitCode, v.Message = &st.Failed.ExitCode, st.Failed.Message
		case st.Canceled != nil:
			v.Message = "canceled by " + st.Canceled.CanceledBy
			if st.Canceled.Message != "" {
				v.Message += ": " + st.Canceled.Message
			}
		}
	}
	if !ended(j.Status.Phase) {
		return v
	}
	if arts, err := s.o.Client.ListArtifacts(ctx, s.o.Org, j.Name, lastAttempt(j), ""); err == nil {
		v.Artifacts = arts
	}
	if withOutput {
		v.Stdout, _, _ = s.readLog(ctx, j, "stdout", 0)
		v.Stderr, _, _ = s.readLog(ctx, j, "stderr", 0)
	}
	return v
}

func ended(phase string) bool {
	return phase == apitypes.JobPhaseSucceeded || phase == apitypes.JobPhaseFailed || phase == apitypes.JobPhaseCanceled
}

func lastAttempt(j *client.Job) int64 {
	if n := len(j.Status.Attempts); n > 0 {
		return j.Status.Attempts[n-1].ID
	}
	return 0
}

// renameJobFields words the API's field paths as this tool's inputs.
func renameJobFields(errs apitypes.FieldErrors) apitypes.FieldErrors {
	names := map[string]string{"spec.runnerGroup": "runner_group", "spec.namePrefix": "name_prefix", "spec.script": "script", "spec.command": "command"}
	out := make(apitypes.FieldErrors, 0, len(errs))
	for _, e := range errs {
		for from, to := range names {
			if e.Path == from || strings.HasPrefix(e.Path, from+"[") {
				e.Path = to + strings.TrimPrefix(e.Path, from)
			}
		}
		out = append(out, e)
	}
	return out
}

func fieldList(errs apitypes.FieldErrors) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n- %s: %s", e.Path, e.Message)
	}
	return b.String()
}
