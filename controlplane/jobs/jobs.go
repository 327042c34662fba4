package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Submit validates a job, resolves its routing context to a routing key,
// names it <namePrefix>-<5 random characters> (job-… without a prefix) and
// queues it. Bad input is a *ValidationError and stores nothing.
func (s *Service) Submit(ctx context.Context, org string, req apitypes.Job) (apitypes.Job, error) {
	return s.submit(ctx, org, req, nil)
}

// MaxSystemEnvValueBytes bounds a value of SubmitSystem's systemEnv (Linux
// bounds one environment string at 128 KiB).
const MaxSystemEnvValueBytes = 120 << 10

// SubmitSystem submits a job that a service of the control plane makes for
// a user (smart-test executions): as Submit, and then systemEnv, variables
// in the reserved SANDBOXMESH_ space that a user's job cannot set, is added
// to the job's env (after the user's; the runner's own injected variables
// still win). A bad systemEnv is a programming error, not a field error.
func (s *Service) SubmitSystem(ctx context.Context, org string, req apitypes.Job, systemEnv []apitypes.EnvVar) (apitypes.Job, error) {
	for _, e := range systemEnv {
		if !strings.HasPrefix(e.Name, "SANDBOXMESH_") || len(e.Value) > MaxSystemEnvValueBytes || strings.IndexByte(e.Value, 0) >= 0 {
			return apitypes.Job{}, fmt.Errorf("submit job of org %s: system variable %q: want SANDBOXMESH_* with at most %d bytes without NUL", org, e.Name, MaxSystemEnvValueBytes)
		}
	}
	return s.submit(ctx, org, req, systemEnv)
}

func (s *Service) submit(ctx context.Context, org string, req apitypes.Job, systemEnv []apitypes.EnvVar) (apitypes.Job, error) {
	errs := apitypes.ValidateJobSpec(&req.Spec)
	if req.Name != "" {
		errs = append(apitypes.FieldErrors{{Path: "name", Message: "the server names jobs; set spec.namePrefix instead"}}, errs...)
	}
	if len(errs) > 0 {
		return apitypes.Job{}, invalid("invalid job", errs...)
	}
	rg, err := s.st.Get(ctx, store.KindRunnerGroup, org, req.Spec.RunnerGroup)
	if errors.Is(err, store.ErrNotFound) {
		return apitypes.Job{}, invalid("invalid job", apitypes.FieldError{Path: "spec.runnerGroup", Message: fmt.Sprintf("no runner group %q in this org", req.Spec.RunnerGroup)})
	}
	if err != nil {
		return apitypes.Job{}, err
	}
	j := store.Job{Org: org, RunnerGroup: rg.Name, Cluster: rg.Cluster, Labels: req.Spec.Labels}
	if rc := req.Spec.RoutingContext; rc != nil && (rc.Sandbox != "" || rc.RouteGroup != "") {
		kind, name, path := store.KindSandbox, rc.Sandbox, "spec.routingContext.sandbox"
		if rc.RouteGroup != "" {
			kind, name, path = store.KindRouteGroup, rc.RouteGroup, "spec.routingContext.routegroup"
		}
		o, err := s.st.Get(ctx, kind, org, name)
		if errors.Is(err, store.ErrNotFound) {
			return apitypes.Job{}, invalid("invalid job", apitypes.FieldError{Path: path, Message: fmt.Sprintf("no %s %q in this org", kind, name)})
		}
		if err != nil {
			return apitypes.Job{}, err
		}
		j.RoutingKey = o.RoutingKey
		if kind == store.KindSandbox {
			j.Sandbox = name
		} else {
			j.RouteGroup = name
		}
	}
	req.Spec.Env = append(req.Spec.Env, systemEnv...)
	if j.Spec, err = json.Marshal(req.Spec); err != nil {
		return apitypes.Job{}, wrap("job spec", err)
	}
	prefix := req.Spec.NamePrefix
	if prefix == "" {
		prefix = "job"
	}
	for range 5 {
		j.Name = prefix + "-" + randomSuffix(5)
		created, err := s.st.CreateJob(ctx, j)
		if errors.Is(err, store.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return apitypes.Job{}, err
		}
		return View(created), nil
	}
	return apitypes.Job{}, fmt.Errorf("submit job of org %s: no free name with prefix %q: %w", org, prefix, store.ErrAlreadyExists)
}

// Get returns a job.
func (s *Service) Get(ctx context.Context, org, name string) (apitypes.Job, error) {
	j, err := s.st.GetJob(ctx, org, name)
	if err != nil {
		return apitypes.Job{}, err
	}
	return View(j), nil
}

// List returns a page of an org's jobs, oldest first (view them with View).
func (s *Service) List(ctx context.Context, org string, f store.JobFilter, p store.PageRequest) (store.Page[store.Job], error) {
	return s.st.ListJobs(ctx, org, f, p)
}

// Cancel cancels a job: a queued one at once, a running one by telling its
// runner (its next heartbeat answers cancel) and, if the runner does not
// finish it within CancelGrace, by the sweeper. A finished job is unchanged.
func (s *Service) Cancel(ctx context.Context, org, name string) (apitypes.Job, error) {
	j, err := s.st.CancelJob(ctx, org, name, apitypes.CancelReasonAPIRequest)
	if err != nil {
		return apitypes.Job{}, err
	}
	return View(j), nil
}

// Delete deletes a job with its logs and artifacts. A running attempt's
// runner learns it from its next event (409) and stops the process.
func (s *Service) Delete(ctx context.Context, org, name string) error {
	if _, err := s.st.DeleteJob(ctx, org, name); err != nil {
		return err
	}
	if s.cfg.Artifacts != nil {
		if err := s.cfg.Artifacts.Delete(ctx, jobPrefix(org, name)); err != nil {
			s.log.WarnContext(ctx, "delete artifacts of deleted job", "org", org, "job", name, "err", err)
		}
	}
	return nil
}

// DeleteRunnerGroup deletes a runner group; its queued jobs are canceled
// (canceledBy internal), as no pod will claim them. Running attempts end
// when their pods go (the sweeper fails them).
func (s *Service) DeleteRunnerGroup(ctx context.Context, org, name string) error {
	if err := s.st.Delete(ctx, store.KindRunnerGroup, org, name); err != nil {
		return err
	}
	if _, err := s.st.CancelQueuedJobs(ctx, org, name, apitypes.CancelReasonInternal, fmt.Sprintf("runner group %q was deleted", name)); err != nil {
		return err
	}
	return nil
}

// View is a stored job as the API shows it.
func View(j store.Job) apitypes.Job {
	out := apitypes.Job{Name: j.Name, CreatedAt: ts(j.CreatedAt)}
	_ = json.Unmarshal(j.Spec, &out.Spec) // stored validated
	a := apitypes.JobAttempt{ID: j.Attempt, Phase: j.Phase, ExecutionCount: j.ExecutionCount, CreatedAt: ts(j.CreatedAt), StartedAt: ts(j.StartedAt), FinishedAt: ts(j.FinishedAt)}
	switch j.Phase {
	case store.JobQueued:
		a.State.Queued = &apitypes.JobStateQueued{Message: fmt.Sprintf("waiting for a pod of runner group %q", j.RunnerGroup)}
	case store.JobRunning:
		a.State.Running = &apitypes.JobStateRunning{PodName: j.Pod, PodNamespace: j.PodNamespace}
	case store.JobSucceeded:
		a.State.Succeeded = &apitypes.JobStateSucceeded{ExitCode: j.ExitCode}
	case store.JobFailed:
		a.State.Failed = &apitypes.JobStateFailed{ExitCode: j.ExitCode, Message: j.Message}
	case store.JobCanceled:
		a.State.Canceled = &apitypes.JobStateCanceled{CanceledBy: j.CanceledBy, Message: j.Message}
	}
	out.Status = apitypes.JobStatus{RoutingKey: j.RoutingKey, Phase: j.Phase, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt, Attempts: []apitypes.JobAttempt{a}}
	return out
}

// ---- runner side ----

// Pod identifies the runner pod making a request; the zero Pod (a runner
// that does not name itself) stands for whichever pod of the group runs
// the attempt: a runner token is the group's, so its pods trust each other.
type Pod struct{ Namespace, Name string }

func (p Pod) String() string { return p.Namespace + "/" + p.Name }

// Claim gives the oldest queued job of the runner's group to pod, waiting
// up to wait (bounded by MaxClaimWait) for one to be submitted. nil: none.
func (s *Service) Claim(ctx context.Context, r Runner, pod Pod, wait time.Duration) (*apitypes.RunnerJob, error) {
	if fe := apitypes.ValidateDNSName("namespace", pod.Namespace); fe != nil {
		return nil, invalid("invalid claim", *fe)
	}
	if fe := apitypes.ValidateText("pod", pod.Name, 253, true); fe != nil {
		return nil, invalid("invalid claim", *fe)
	}
	wait = min(max(wait, 0), s.cfg.MaxClaimWait)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(s.cfg.ClaimPoll)
	defer tick.Stop()
	for {
		woken := s.queue.wait() // before reading, so no submit slips through
		j, err := s.st.ClaimJob(ctx, r.Org, r.Group, pod.Namespace, pod.Name, r.Spec.Timeout())
		if err == nil {
			if ctx.Err() != nil { // the runner is gone: the answer would be lost
				if rerr := s.st.ReleaseJob(context.WithoutCancel(ctx), r.Org, j.Name, pod.Namespace, pod.Name); rerr != nil {
					s.log.WarnContext(ctx, "release job of a vanished claim", "org", r.Org, "job", j.Name, "err", rerr)
				}
				return nil, ctx.Err()
			}
			rj := runnerJob(j)
			return &rj, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		select {
		case <-woken:
		case <-tick.C:
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// runnerJob is what a runner needs to run the job's attempt, with the
// injected variables after (and winning over) the job's own.
func runnerJob(j store.Job) apitypes.RunnerJob {
	var spec apitypes.JobSpec
	_ = json.Unmarshal(j.Spec, &spec)
	out := apitypes.RunnerJob{Org: j.Org, Name: j.Name, Attempt: j.Attempt, Script: spec.Script, Command: spec.Command,
		RoutingKey: j.RoutingKey, Sandbox: j.Sandbox, RouteGroup: j.RouteGroup, TimeoutSeconds: int64(j.Timeout / time.Second),
		UploadArtifact: spec.UploadArtifact}
	out.Env = append(out.Env, spec.Env...)
	att := strconv.FormatInt(j.Attempt, 10)
	out.Env = append(out.Env,
		apitypes.EnvVar{Name: "SANDBOXMESH_ROUTING_KEY", Value: j.RoutingKey},
		apitypes.EnvVar{Name: "SANDBOXMESH_SANDBOX_NAME", Value: j.Sandbox},
		apitypes.EnvVar{Name: "SANDBOXMESH_ROUTEGROUP_NAME", Value: j.RouteGroup},
		apitypes.EnvVar{Name: "SANDBOXMESH_JOB_NAME", Value: j.Name},
		apitypes.EnvVar{Name: "SANDBOXMESH_JOB_ATTEMPT", Value: att},
		apitypes.EnvVar{Name: "SANDBOXMESH_ORG", Value: j.Org},
		apitypes.EnvVar{Name: "SIGNADOT_ROUTING_KEY", Value: j.RoutingKey},
		apitypes.EnvVar{Name: "SIGNADOT_SANDBOX_NAME", Value: j.Sandbox},
		apitypes.EnvVar{Name: "SIGNADOT_JOB_NAME", Value: j.Name},
		apitypes.EnvVar{Name: "SIGNADOT_CONTROL_JOB_NAME", Value: j.Name},
		apitypes.EnvVar{Name: "SIGNADOT_CONTROL_ORG_NAME", Value: j.Org},
		apitypes.EnvVar{Name: "SIGNADOT_CONTROL_JOB_ATTEMPT_ID", Value: att},
	)
	return out
}

// runnerJobOf loads a job for a runner request: it must exist and belong to
// the runner's group (ErrForbidden, which the API shows as not found).
func (s *Service) runnerJobOf(ctx context.Context, r Runner, name string) (store.Job, error) {
	j, err := s.st.GetJob(ctx, r.Org, name)
	if err != nil {
		return store.Job{}, err
	}
	if j.RunnerGroup != r.Group {
		return store.Job{}, fmt.Errorf("job %s/%s: %w", r.Org, name, ErrForbidden)
	}
	return j, nil
}

// maxEventBytes bounds the output of one events request (the API's body limit is larger than this after base64).
const maxEventBytes = 4 << 20

// Events records a heartbeat with output of the attempt running on pod and
// answers whether to cancel. store.ErrConflict: the attempt is not running
// on that pod any more (the runner kills the process).
func (s *Service) Events(ctx context.Context, r Runner, pod Pod, name string, attempt int64, ev apitypes.RunnerEvents) (apitypes.RunnerEventsAnswer, error) {
	if _, err := s.runnerJobOf(ctx, r, name); err != nil {
		return apitypes.RunnerEventsAnswer{}, err
	}
	chunks := make([]store.LogChunk, 0, len(ev.Logs))
	total := 0
	for i, l := range ev.Logs {
		if l.Stream != apitypes.LogStreamStdout && l.Stream != apitypes.LogStreamStderr {
			return apitypes.RunnerEventsAnswer{}, invalid("invalid events", apitypes.FieldError{Path: fmt.Sprintf("logs[%d].stream", i), Message: "want stdout or stderr"})
		}
		if len(l.Data) == 0 {
			continue
		}
		total += len(l.Data)
		chunks = append(chunks, store.LogChunk{Stream: l.Stream, Data: l.Data})
	}
	if total > maxEventBytes {
		return apitypes.RunnerEventsAnswer{}, invalid("invalid events", apitypes.FieldError{Path: "logs", Message: fmt.Sprintf("at most %d bytes of output per request", maxEventBytes)})
	}
	reason, err := s.st.AddJobEvents(ctx, r.Org, name, attempt, pod.Namespace, pod.Name, chunks, s.cfg.MaxLogBytes)
	if errors.Is(err, store.ErrLogCapReached) {
		s.log.DebugContext(ctx, "job output over the cap dropped", "org", r.Org, "job", name, "err", err)
		err = nil
	}
	if err != nil {
		return apitypes.RunnerEventsAnswer{}, err
	}
	return apitypes.RunnerEventsAnswer{Cancel: reason != "", Reason: reason}, nil
}

// Finish ends the attempt running on pod with the runner's result and keeps
// its stdout and stderr as system artifacts.
func (s *Service) Finish(ctx context.Context, r Runner, pod Pod, name string, attempt int64, fin apitypes.RunnerFinish) (apitypes.Job, error) {
	cur, err := s.runnerJobOf(ctx, r, name)
	if err != nil {
		return apitypes.Job{}, err
	}
	if fe := apitypes.ValidateText("message", fin.Message, 4096, false); fe != nil {
		return apitypes.Job{}, invalid("invalid finish", *fe)
	}
	// The output is kept before the job shows finished, so that whoever sees it finished finds its
	// stdout and stderr (the output is complete: the runner sends its last events before Finish).
	if cur.Phase == store.JobRunning && cur.Attempt == attempt && (pod.Name == "" || cur.Pod == pod.Name && cur.PodNamespace == pod.Namespace) {
		s.keepOutput(ctx, cur)
	}
	j, err := s.st.FinishJob(ctx, r.Org, name, attempt, pod.Namespace, pod.Name, int64(fin.ExitCode), fin.Message, fin.Canceled)
	if err != nil {
		return apitypes.Job{}, err
	}
	return View(j), nil
}

// keepOutput stores a finished attempt's stdout and stderr in the system
// space (when an artifact store is configured).
func (s *Service) keepOutput(ctx context.Context, j store.Job) {
	if s.cfg.Artifacts == nil {
		return
	}
	for _, stream := range []string{apitypes.LogStreamStdout, apitypes.LogStreamStderr} {
		var buf bytes.Buffer
		var after int64
		for {
			chunks, err := s.st.ReadJobLogs(ctx, j.Org, j.Name, j.Attempt, stream, after, 1000)
			if err != nil {
				s.log.ErrorContext(ctx, "keep job output", "org", j.Org, "job", j.Name, "stream", stream, "err", err)
				return
			}
			for _, c := range chunks {
				buf.Write(c.Data)
				after = c.Seq
			}
			if len(chunks) < 1000 {
				break
			}
		}
		if _, err := s.putArtifact(ctx, j, apitypes.ArtifactSpaceSystem, stream, "text/plain; charset=utf-8", nil, &buf); err != nil {
			s.log.ErrorContext(ctx, "keep job output", "org", j.Org, "job", j.Name, "stream", stream, "err", err)
		}
	}
}

// jobPrefix is the key folder of a job's artifacts (artifacts.Prefix; org
// and job names are DNS labels, which it never refuses).
func jobPrefix(org, name string) string {
	p, err := artifacts.Prefix(org, name)
	if err != nil {
		panic(fmt.Sprintf("artifact prefix of job %s/%s: %v", org, name, err))
	}
	return p
}

// UploadArtifact stores a file of the attempt running on pod. path must be
// one of the job's uploadArtifact paths; body is limited to MaxArtifactBytes
// (ErrTooLarge).
func (s *Service) UploadArtifact(ctx context.Context, r Runner, pod Pod, name string, attempt int64, path, contentType string, body io.Reader) (apitypes.Artifact, error) {
	if s.cfg.Artifacts == nil {
		return apitypes.Artifact{}, ErrNoArtifactStore
	}
	if _, err := apitypes.ParseArtifactPath(path); err != nil {
		return apitypes.Artifact{}, invalid("invalid artifact path", apitypes.FieldError{Path: "path", Message: err.Error()})
	}
	if fe := apitypes.ValidateText("Content-Type", contentType, 256, false); fe != nil {
		return apitypes.Artifact{}, invalid("invalid content type", *fe)
	}
	j, err := s.runnerJobOf(ctx, r, name)
	if err != nil {
		return apitypes.Artifact{}, err
	}
	if j.Attempt != attempt || j.Phase != store.JobRunning || (pod.Name != "" && (j.Pod != pod.Name || j.PodNamespace != pod.Namespace)) {
		return apitypes.Artifact{}, fmt.Errorf("artifact of job %s/%s attempt %d: not running on pod %s: %w", r.Org, name, attempt, pod, store.ErrConflict)
	}
	var spec apitypes.JobSpec
	_ = json.Unmarshal(j.Spec, &spec)
	var meta map[string]string
	found := false
	for _, a := range spec.UploadArtifact {
		if a.Path == path {
			found, meta = true, a.Meta
		}
	}
	if !found {
		return apitypes.Artifact{}, invalid("invalid artifact path", apitypes.FieldError{Path: "path", Message: fmt.Sprintf("%q is not in the job's spec.uploadArtifact", path)})
	}
	return s.putArtifact(ctx, j, apitypes.ArtifactSpaceUser, path, contentType, meta, body)
}

func (s *Service) putArtifact(ctx context.Context, j store.Job, space, path, contentType string, meta map[string]string, body io.Reader) (apitypes.Artifact, error) {
	key, err := artifacts.Key(j.Org, j.Name, j.Attempt, space, path)
	if err != nil {
		return apitypes.Artifact{}, invalid("invalid artifact path", apitypes.FieldError{Path: "path", Message: err.Error()})
	}
	cr := &countingReader{r: body, max: s.cfg.MaxArtifactBytes}
	info, err := s.cfg.Artifacts.Put(ctx, key, cr, -1, contentType)
	if err != nil {
		if cr.n > s.cfg.MaxArtifactBytes || errors.Is(err, ErrTooLarge) {
			return apitypes.Artifact{}, fmt.Errorf("artifact %s of job %s/%s: more than %d bytes: %w", path, j.Org, j.Name, s.cfg.MaxArtifactBytes, ErrTooLarge)
		}
		return apitypes.Artifact{}, fmt.Errorf("artifact %s of job %s/%s: store: %w", path, j.Org, j.Name, err)
	}
	a := store.Artifact{Org: j.Org, Job: j.Name, Attempt: j.Attempt, Space: space, Path: path, StorageKey: key, Size: info.Size,
		ContentType: contentType, SHA256: info.SHA256, Meta: meta}
	if err := s.st.PutArtifact(ctx, a); err != nil {
		if errors.Is(err, store.ErrNotFound) { // the job was deleted meanwhile: drop what is left of it
			_ = s.cfg.Artifacts.Delete(ctx, jobPrefix(j.Org, j.Name))
		}
		return apitypes.Artifact{}, err
	}
	return artifactView(a), nil
}

// countingReader counts what it reads and fails with ErrTooLarge past max
// bytes (the store's own limit may be larger).
type countingReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, ErrTooLarge
	}
	if int64(len(p)) > c.max-c.n+1 {
		p = p[:c.max-c.n+1]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.max {
		return n, ErrTooLarge
	}
	return n, err
}

func artifactView(a store.Artifact) apitypes.Artifact {
	return apitypes.Artifact{Path: a.Path, Space: a.Space, ContentLength: a.Size, ContentType: a.ContentType, ChecksumSHA256: a.SHA256, Metadata: a.Meta, CreatedAt: ts(a.CreatedAt)}
}

// ---- user side of artifacts ----

func validSpace(space string) (string, error) {
	switch space {
	case "", apitypes.ArtifactSpaceUser:
		return apitypes.ArtifactSpaceUser, nil
	case apitypes.ArtifactSpaceSystem:
		return space, nil
	}
	return "", invalid("invalid space", apitypes.FieldError{Path: "space", Message: fmt.Sprintf("%q: want user or system", space)})
}

// ListArtifacts lists the artifacts of a job's attempt in a space (user by default).
func (s *Service) ListArtifacts(ctx context.Context, org, name string, attempt int64, space string) ([]apitypes.Artifact, error) {
	space, err := validSpace(space)
	if err != nil {
		return nil, err
	}
	if _, err := s.st.GetJob(ctx, org, name); err != nil {
		return nil, err
	}
	as, err := s.st.ListArtifacts(ctx, org, name, attempt, space)
	if err != nil {
		return nil, err
	}
	out := make([]apitypes.Artifact, 0, len(as))
	for _, a := range as {
		out = append(out, artifactView(a))
	}
	return out, nil
}

// ArtifactInfo returns the metadata of one artifact.
func (s *Service) ArtifactInfo(ctx context.Context, org, name string, attempt int64, space, path string) (apitypes.Artifact, error) {
	a, err := s.artifact(ctx, org, name, attempt, space, path)
	if err != nil {
		return apitypes.Artifact{}, err
	}
	return artifactView(a), nil
}

func (s *Service) artifact(ctx context.Context, org, name string, attempt int64, space, path string) (store.Artifact, error) {
	space, err := validSpace(space)
	if err != nil {
		return store.Artifact{}, err
	}
	if _, err := apitypes.ParseArtifactPath(path); err != nil {
		return store.Artifact{}, invalid("invalid artifact path", apitypes.FieldError{Path: "path", Message: err.Error()})
	}
	return s.st.GetArtifact(ctx, org, name, attempt, space, path)
}

// OpenArtifact opens an artifact's bytes with its metadata; the caller closes it.
func (s *Service) OpenArtifact(ctx context.Context, org, name string, attempt int64, space, path string) (apitypes.Artifact, io.ReadCloser, error) {
	if s.cfg.Artifacts == nil {
		return apitypes.Artifact{}, nil, ErrNoArtifactStore
	}
	a, err := s.artifact(ctx, org, name, attempt, space, path)
	if err != nil {
		return apitypes.Artifact{}, nil, err
	}
	rc, _, err := s.cfg.Artifacts.Get(ctx, a.StorageKey)
	if err != nil {
		return apitypes.Artifact{}, nil, fmt.Errorf("artifact %s of job %s/%s: %w", path, org, name, err)
	}
	return artifactView(a), rc, nil
}
