package apitypes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Wire types of jobs (docs/jobs.md): runner groups, jobs, their logs and
// artifacts, with Signadot's v2 field names (JobRunnerGroup, Job).

// Job limits and defaults.
const (
	// DefaultRunnerNamespace is a runner group's namespace when none is given.
	DefaultRunnerNamespace = "sandboxmesh-jobs"
	// DefaultJobTimeout is a runner group's jobTimeout when none is given.
	DefaultJobTimeout = 30 * time.Minute
	// MaxJobTimeout bounds jobTimeout.
	MaxJobTimeout = 7 * 24 * time.Hour
	// MaxDesiredPods bounds scaling.manual.desiredPods.
	MaxDesiredPods = 100
	// MaxPodTemplateBytes bounds a runner group's podTemplate.
	MaxPodTemplateBytes = 64 << 10
	// MaxScriptBytes bounds a job's script.
	MaxScriptBytes = 1 << 20
	// MaxJobArtifacts bounds a job's uploadArtifact list.
	MaxJobArtifacts = 50
	// MaxArtifactPathLen bounds an artifact path.
	MaxArtifactPathLen = 1024
	// MaxNamePrefixLen bounds a job's namePrefix.
	MaxNamePrefixLen = 32
	// MaxJobEnv bounds a job's env list; MaxEnvValueBytes one value.
	MaxJobEnv        = 256
	MaxEnvValueBytes = 32 << 10
	// MaxCommandArgs bounds a job's command.
	MaxCommandArgs = 256

	// ArtifactSpaceUser holds the files a job's uploadArtifact names;
	// ArtifactSpaceSystem its stdout and stderr.
	ArtifactSpaceUser   = "user"
	ArtifactSpaceSystem = "system"

	// Job phases.
	JobPhaseQueued    = "queued"
	JobPhaseRunning   = "running"
	JobPhaseSucceeded = "succeeded"
	JobPhaseFailed    = "failed"
	JobPhaseCanceled  = "canceled"
)

// RunnerGroup is a job runner group: runner pods in a namespace of a cluster
// that claim and run the jobs submitted to it (Signadot's JobRunnerGroup).
type RunnerGroup struct {
	Name      string            `json:"name"`
	Spec      RunnerGroupSpec   `json:"spec"`
	Status    RunnerGroupStatus `json:"status"`
	CreatedAt string            `json:"createdAt,omitempty"`
	UpdatedAt string            `json:"updatedAt,omitempty"`
	// Version increases with every change of the spec (ETag, If-Match).
	Version int64 `json:"version,omitempty"`
}

// RunnerGroupSpec is the desired state of a runner group.
type RunnerGroupSpec struct {
	// Cluster runs the runner pods (immutable).
	Cluster string `json:"cluster"`
	// Namespace of the runner pods (default sandboxmesh-jobs, immutable; the
	// cluster's chart must allow it in jobs.namespaces).
	Namespace string `json:"namespace,omitempty"`
	// Image runs the jobs (set on the first container of podTemplate).
	Image string `json:"image,omitempty"`
	// JobTimeout bounds a job's run time, a Go duration (default 30m).
	JobTimeout string `json:"jobTimeout,omitempty"`
	// PodTemplate is a Kubernetes PodTemplateSpec (JSON object) for the
	// runner pods.
	PodTemplate json.RawMessage     `json:"podTemplate,omitempty"`
	Scaling     *RunnerGroupScaling `json:"scaling,omitempty"`
	Labels      map[string]string   `json:"labels,omitempty"`
}

// RunnerGroupScaling says how many runner pods run.
type RunnerGroupScaling struct {
	Manual *RunnerGroupManualScaling `json:"manual,omitempty"`
}

// RunnerGroupManualScaling is a fixed number of runner pods.
type RunnerGroupManualScaling struct {
	DesiredPods int32 `json:"desiredPods"`
}

// RunnerGroupStatus is a runner group's observed state: its pods as the
// cluster's agent reports them, its jobs from the control plane.
type RunnerGroupStatus struct {
	Pods       RunnerGroupPods       `json:"pods"`
	Executions RunnerGroupExecutions `json:"executions"`
}

// RunnerGroupPods counts the runner pods.
type RunnerGroupPods struct {
	Ready    int32 `json:"ready"`
	NotReady int32 `json:"notReady"`
	// Idle is the ready pods not running a job.
	Idle int32 `json:"idle"`
}

// RunnerGroupExecutions counts the runner group's jobs by phase.
type RunnerGroupExecutions struct {
	Queued  int64 `json:"queued"`
	Running int64 `json:"running"`
}

// Timeout returns the spec's job timeout (the default when unset).
func (s *RunnerGroupSpec) Timeout() time.Duration {
	if s.JobTimeout == "" {
		return DefaultJobTimeout
	}
	d, err := time.ParseDuration(s.JobTimeout)
	if err != nil || d <= 0 {
		return DefaultJobTimeout
	}
	return d
}

// Default fills in the defaults of a runner group spec.
func (s *RunnerGroupSpec) Default() {
	if s.Namespace == "" {
		s.Namespace = DefaultRunnerNamespace
	}
	if s.JobTimeout == "" {
		s.JobTimeout = DefaultJobTimeout.String()
	}
	if s.Scaling == nil || s.Scaling.Manual == nil {
		s.Scaling = &RunnerGroupScaling{Manual: &RunnerGroupManualScaling{DesiredPods: 1}}
	}
}

// RunnerGroupWireRules are the Signadot runner group fields SandboxMesh lacks.
var RunnerGroupWireRules = WireRules{
	"status":            {Kind: WireReadOnly},
	"createdAt":         {Kind: WireReadOnly},
	"updatedAt":         {Kind: WireReadOnly},
	"deletedAt":         {Kind: WireReadOnly},
	"spec.reusePods":    {Kind: WireUnsupported, Why: "runner pods are always reused; a job's working directory is fresh"},
	"spec.scaling.auto": {Kind: WireUnsupported, Why: "auto-scaling of runner pods; use scaling.manual.desiredPods"},
}

// ValidateRunnerGroupSpec checks a runner group spec (after Default).
func ValidateRunnerGroupSpec(s *RunnerGroupSpec) FieldErrors {
	c := &checker{}
	if fe := ValidateDNSName("spec.cluster", s.Cluster); fe != nil {
		c.add(fe.Path, "%s", fe.Message)
	}
	c.pattern("spec.namespace", s.Namespace, reNamespace, 63, "namespace")
	if s.Image != "" {
		if fe := ValidateText("spec.image", s.Image, 512, false); fe != nil || strings.ContainsRune(s.Image, ' ') {
			c.add("spec.image", "must be an image reference without spaces or control characters, at most 512 characters")
		}
	}
	if d, err := time.ParseDuration(s.JobTimeout); err != nil || d <= 0 || d > MaxJobTimeout || len(s.JobTimeout) > 32 || !reJobTimeout.MatchString(s.JobTimeout) {
		c.add("spec.jobTimeout", "%q must be a duration between 1s and %s, e.g. 30m", s.JobTimeout, MaxJobTimeout)
	}
	if len(s.PodTemplate) > 0 {
		t := bytes.TrimSpace(s.PodTemplate)
		var obj map[string]json.RawMessage
		switch {
		case len(t) > MaxPodTemplateBytes:
			c.add("spec.podTemplate", "must be at most %d bytes (got %d)", MaxPodTemplateBytes, len(t))
		case bytes.Equal(t, []byte("null")):
		case json.Unmarshal(t, &obj) != nil:
			c.add("spec.podTemplate", "must be a JSON object (a Kubernetes PodTemplateSpec: metadata, spec)")
		default:
			for k := range obj {
				if k != "metadata" && k != "spec" {
					c.add("spec.podTemplate."+k, "unknown field of a PodTemplateSpec (want metadata and spec)")
				}
			}
		}
	}
	if s.Scaling != nil && s.Scaling.Manual != nil {
		if n := s.Scaling.Manual.DesiredPods; n < 0 || n > MaxDesiredPods {
			c.add("spec.scaling.manual.desiredPods", "must be between 0 and %d (got %d)", MaxDesiredPods, n)
		}
	}
	c.labels("spec.labels", s.Labels)
	return c.errs
}

// Job is a job: a script or command run once by a pod of a runner group
// with a sandbox's (or route group's) routing key (Signadot's Job).
type Job struct {
	// Name is chosen by the server: <namePrefix>-<5 random characters>.
	Name      string    `json:"name"`
	Spec      JobSpec   `json:"spec"`
	Status    JobStatus `json:"status"`
	CreatedAt string    `json:"createdAt,omitempty"`
}

// JobSpec is what a job runs (immutable).
type JobSpec struct {
	NamePrefix  string `json:"namePrefix,omitempty"`
	RunnerGroup string `json:"runnerGroup"`
	// Script starts with #! and is run as an executable file; Command is
	// an argv. Exactly one is set.
	Script         string             `json:"script,omitempty"`
	Command        []string           `json:"command,omitempty"`
	Env            []EnvVar           `json:"env,omitempty"`
	Labels         map[string]string  `json:"labels,omitempty"`
	RoutingContext *JobRoutingContext `json:"routingContext,omitempty"`
	UploadArtifact []ArtifactToUpload `json:"uploadArtifact,omitempty"`
}

// JobRoutingContext names the sandbox or route group whose routing key the
// job gets (at most one).
type JobRoutingContext struct {
	Sandbox    string `json:"sandbox,omitempty"`
	RouteGroup string `json:"routegroup,omitempty"`
}

// JobStatus is a job's state.
type JobStatus struct {
	RoutingKey string       `json:"routingKey,omitempty"`
	Phase      string       `json:"phase,omitempty"`
	StartedAt  string       `json:"startedAt,omitempty"`
	FinishedAt string       `json:"finishedAt,omitempty"`
	Attempts   []JobAttempt `json:"attempts"`
}

// JobAttempt is one run of a job.
type JobAttempt struct {
	ID             int64           `json:"id"`
	Phase          string          `json:"phase"`
	ExecutionCount int64           `json:"executionCount,omitempty"`
	CreatedAt      string          `json:"createdAt,omitempty"`
	StartedAt      string          `json:"startedAt,omitempty"`
	FinishedAt     string          `json:"finishedAt,omitempty"`
	State          JobAttemptState `json:"state"`
}

// JobAttemptState holds the details of the attempt's phase (one is set).
type JobAttemptState struct {
	Queued    *JobStateQueued    `json:"queued,omitempty"`
	Running   *JobStateRunning   `json:"running,omitempty"`
	Succeeded *JobStateSucceeded `json:"succeeded,omitempty"`
	Failed    *JobStateFailed    `json:"failed,omitempty"`
	Canceled  *JobStateCanceled  `json:"canceled,omitempty"`
}

// JobStateQueued: waiting for a runner pod.
type JobStateQueued struct {
	Message string `json:"message,omitempty"`
}

// JobStateRunning: a runner pod runs the job.
type JobStateRunning struct {
	PodName      string `json:"podName"`
	PodNamespace string `json:"podNamespace"`
}

// JobStateSucceeded: the job exited with 0.
type JobStateSucceeded struct {
	ExitCode int64 `json:"exitCode"`
}

// JobStateFailed: the job exited with another code, or its runner failed.
type JobStateFailed struct {
	ExitCode int64  `json:"exitCode"`
	Message  string `json:"message,omitempty"`
}

// JobStateCanceled: the job was canceled (canceledBy apiRequest, timeout or internal).
type JobStateCanceled struct {
	CanceledBy string `json:"canceledBy"`
	Message    string `json:"message,omitempty"`
}

// JobWireRules are the Signadot job fields SandboxMesh lacks.
var JobWireRules = WireRules{
	"status":              {Kind: WireReadOnly},
	"createdAt":           {Kind: WireReadOnly},
	"deletedAt":           {Kind: WireReadOnly},
	"spec.trafficManager": {Kind: WireUnsupported, Why: "there is no traffic manager; the job gets the routing key in its environment (SANDBOXMESH_ROUTING_KEY, SIGNADOT_ROUTING_KEY)"},
}

// ReservedEnvPrefixes start the variables the runner injects; a job's env
// cannot set them.
var ReservedEnvPrefixes = []string{"SANDBOXMESH_", "SIGNADOT_"}

var (
	reEnvVarName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	reJobTimeout  = regexp.MustCompile(`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`) // the JobRunnerGroup CRD's pattern
	reNamePrefix  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	errBadArtPath = errors.New("invalid artifact path")
)

// ValidateJobSpec checks a submitted job spec. The runner group and the
// routing context's objects are checked against the store by the caller.
func ValidateJobSpec(s *JobSpec) FieldErrors {
	c := &checker{}
	if fe := ValidateObjectName("spec.runnerGroup", s.RunnerGroup); fe != nil {
		c.add(fe.Path, "%s", fe.Message)
	}
	if s.NamePrefix != "" {
		switch {
		case len(s.NamePrefix) > MaxNamePrefixLen:
			c.add("spec.namePrefix", "must be at most %d characters (got %d)", MaxNamePrefixLen, len(s.NamePrefix))
		case !reNamePrefix.MatchString(s.NamePrefix):
			c.add("spec.namePrefix", "%q must be a DNS label: lowercase letters, digits and '-'", s.NamePrefix)
		}
	}
	switch {
	case s.Script == "" && len(s.Command) == 0:
		c.add("spec.script", "a job needs a script or a command")
	case s.Script != "" && len(s.Command) > 0:
		c.add("spec.command", "set either script or command, not both")
	case s.Script != "":
		switch {
		case len(s.Script) > MaxScriptBytes:
			c.add("spec.script", "must be at most %d bytes (got %d)", MaxScriptBytes, len(s.Script))
		case !strings.HasPrefix(s.Script, "#!"):
			c.add("spec.script", "must start with an interpreter line, e.g. #!/bin/sh")
		case strings.IndexByte(s.Script, 0) >= 0:
			c.add("spec.script", "must not contain NUL bytes")
		}
	default:
		c.maxItems("spec.command", len(s.Command), MaxCommandArgs)
		if s.Command[0] == "" {
			c.add("spec.command[0]", "the program to run is required")
		}
		for i, a := range s.Command {
			if len(a) > 1<<16 || strings.IndexByte(a, 0) >= 0 {
				c.add(fmt.Sprintf("spec.command[%d]", i), "must be at most 65536 bytes without NUL")
			}
		}
	}
	c.maxItems("spec.env", len(s.Env), MaxJobEnv)
	seen := map[string]bool{}
	for i, e := range s.Env {
		p := fmt.Sprintf("spec.env[%d]", i)
		switch {
		case !reEnvVarName.MatchString(e.Name) || len(e.Name) > 256:
			c.add(p+".name", "%q must be an environment variable name: letters, digits and _, not starting with a digit", e.Name)
		case seen[e.Name]:
			c.add(p+".name", "duplicate variable %q", e.Name)
		default:
			for _, r := range ReservedEnvPrefixes {
				if strings.HasPrefix(e.Name, r) {
					c.add(p+".name", "%q is reserved: the runner sets the %s* variables", e.Name, r)
				}
			}
		}
		seen[e.Name] = true
		if len(e.Value) > MaxEnvValueBytes || strings.IndexByte(e.Value, 0) >= 0 {
			c.add(p+".value", "must be at most %d bytes without NUL", MaxEnvValueBytes)
		}
		if c.full() {
			return c.errs
		}
	}
	c.labels("spec.labels", s.Labels)
	if rc := s.RoutingContext; rc != nil {
		switch {
		case rc.Sandbox != "" && rc.RouteGroup != "":
			c.add("spec.routingContext", "set either sandbox or routegroup, not both")
		case rc.Sandbox != "":
			if fe := ValidateObjectName("spec.routingContext.sandbox", rc.Sandbox); fe != nil {
				c.add(fe.Path, "%s", fe.Message)
			}
		case rc.RouteGroup != "":
			if fe := ValidateObjectName("spec.routingContext.routegroup", rc.RouteGroup); fe != nil {
				c.add(fe.Path, "%s", fe.Message)
			}
		}
	}
	c.maxItems("spec.uploadArtifact", len(s.UploadArtifact), MaxJobArtifacts)
	paths := map[string]bool{}
	for i, a := range s.UploadArtifact {
		if i >= MaxJobArtifacts || c.full() {
			break
		}
		p := fmt.Sprintf("spec.uploadArtifact[%d]", i)
		clean, err := ParseArtifactPath(a.Path)
		if err != nil {
			c.add(p+".path", "%s", strings.TrimPrefix(err.Error(), errBadArtPath.Error()+": "))
			continue
		}
		if paths[clean] {
			c.add(p+".path", "duplicate artifact path %q", a.Path)
		}
		paths[clean] = true
		if len(a.Meta) > 32 {
			c.add(p+".meta", "must have at most 32 entries")
		}
		for k, v := range a.Meta {
			if fe := ValidateText(fmt.Sprintf("%s.meta[%q]", p, k), k, 128, true); fe != nil {
				c.add(fe.Path, "key %s", fe.Message)
			}
			if fe := ValidateText(fmt.Sprintf("%s.meta[%q]", p, k), v, 1024, false); fe != nil {
				c.add(fe.Path, "value %s", fe.Message)
			}
		}
	}
	return c.errs
}

// ParseArtifactPath checks the path of an artifact (a file in the runner
// pod, relative to the job's working directory or absolute) and returns it
// unchanged: not empty, at most MaxArtifactPathLen bytes of valid UTF-8
// without control characters or backslashes, no "." or ".." segments and
// no empty segments. The path only names the artifact: storage keys never
// contain it.
func ParseArtifactPath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("%w: required", errBadArtPath)
	case len(p) > MaxArtifactPathLen:
		return "", fmt.Errorf("%w: must be at most %d bytes (got %d)", errBadArtPath, MaxArtifactPathLen, len(p))
	case !utf8.ValidString(p):
		return "", fmt.Errorf("%w: must be valid UTF-8", errBadArtPath)
	case strings.ContainsRune(p, '\\'):
		return "", fmt.Errorf("%w: must not contain backslashes", errBadArtPath)
	}
	for _, r := range p {
		if unicode.IsControl(r) || (r != ' ' && !unicode.IsPrint(r)) {
			return "", fmt.Errorf("%w: must not contain control characters (%U)", errBadArtPath, r)
		}
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for i, s := range segs {
		switch {
		case s == "..":
			return "", fmt.Errorf("%w: %q must not contain .. segments", errBadArtPath, p)
		case s == ".":
			return "", fmt.Errorf("%w: %q must not contain . segments", errBadArtPath, p)
		case s == "" && i < len(segs)-1, s == "" && len(segs) == 1:
			return "", fmt.Errorf("%w: %q must not contain empty segments", errBadArtPath, p)
		case s == "":
			return "", fmt.Errorf("%w: %q must name a file, not a directory", errBadArtPath, p)
		}
	}
	return p, nil
}

// JobLogMessage is the data of a log stream's "message" event.
type JobLogMessage struct {
	Message string `json:"message"`
	// Cursor resumes the stream after this message.
	Cursor string `json:"cursor"`
}

// JobLogError is the data of a log stream's "error" event.
type JobLogError struct {
	Error string `json:"error"`
}

// Artifact describes a stored artifact of a job attempt.
type Artifact struct {
	Path           string            `json:"path"`
	Space          string            `json:"space"`
	ContentLength  int64             `json:"contentLength"`
	ContentType    string            `json:"contentType,omitempty"`
	ChecksumSHA256 string            `json:"checksumSHA256"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	CreatedAt      string            `json:"createdAt,omitempty"`
}
