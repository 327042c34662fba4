package apitypes

// Wire types of the runner protocol: the in-cluster job runner
// (controlplane/runner) and the control plane (controlplane/jobs) speak it
// under /api/v2/runner with a runner-group token. docs/jobs.md describes it.

// Runner protocol headers and values.
const (
	// HeaderRunnerGroup names the runner group a runner token belongs to
	// (together with the org in HeaderRunnerOrg).
	HeaderRunnerGroup = "Sandboxmesh-Runner-Group"
	// HeaderRunnerOrg names the org of the runner group.
	HeaderRunnerOrg = "Sandboxmesh-Runner-Org"
	// HeaderRunnerPod names the runner pod making a request, as
	// "namespace/pod" (events, artifacts and finish; a claim names it in
	// its body).
	HeaderRunnerPod = "Sandboxmesh-Runner-Pod"
	// RunnerTokenPrefix starts every runner token.
	RunnerTokenPrefix = "smr_"

	// CancelReasonAPIRequest: a user canceled the job.
	CancelReasonAPIRequest = "apiRequest"
	// CancelReasonTimeout: the job ran longer than its runner group's jobTimeout.
	CancelReasonTimeout = "timeout"
	// CancelReasonInternal: the control plane gave the attempt up (job deleted…).
	CancelReasonInternal = "internal"

	// LogStreamStdout and LogStreamStderr name a job's output streams.
	LogStreamStdout = "stdout"
	LogStreamStderr = "stderr"
)

// RunnerClaim is the body of POST /api/v2/runner/claim: the pod asking for work.
type RunnerClaim struct {
	Pod       string `json:"pod"`
	Namespace string `json:"namespace"`
}

// RunnerClaimAnswer answers a claim with the job to run (the answer is 204
// without a body when nothing was queued before the wait ended).
type RunnerClaimAnswer struct {
	Job RunnerJob `json:"job"`
}

// RunnerJob is what a runner needs to run one attempt of a job.
type RunnerJob struct {
	Org     string `json:"org"`
	Name    string `json:"name"`
	Attempt int64  `json:"attempt"`
	// Script (starting with #!) or Command runs; exactly one is set.
	Script  string   `json:"script,omitempty"`
	Command []string `json:"command,omitempty"`
	// Env is the job's env followed by the injected SANDBOXMESH_*/SIGNADOT_*
	// variables, which win over the job's own.
	Env        []EnvVar `json:"env,omitempty"`
	RoutingKey string   `json:"routingKey,omitempty"`
	Sandbox    string   `json:"sandbox,omitempty"`
	RouteGroup string   `json:"routeGroup,omitempty"`
	// TimeoutSeconds is the runner group's job timeout (0: none).
	TimeoutSeconds int64              `json:"timeoutSeconds,omitempty"`
	UploadArtifact []ArtifactToUpload `json:"uploadArtifact,omitempty"`
}

// EnvVar is one environment variable of a job.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ArtifactToUpload is a file a job asks to keep: a path in the runner pod
// (relative paths are relative to the job's working directory) and metadata
// stored with it.
type ArtifactToUpload struct {
	Path string            `json:"path"`
	Meta map[string]string `json:"meta,omitempty"`
}

// RunnerEvents is the body of POST /api/v2/runner/jobs/{name}/attempts/{n}/events:
// output since the last report (empty: a heartbeat).
type RunnerEvents struct {
	Logs []LogChunk `json:"logs,omitempty"`
}

// LogChunk is a piece of one output stream (Data is base64 on the wire).
type LogChunk struct {
	Stream string `json:"stream"`
	Data   []byte `json:"data"`
}

// RunnerEventsAnswer tells the runner whether to stop the job.
type RunnerEventsAnswer struct {
	Cancel bool `json:"cancel"`
	// Reason is CancelReasonAPIRequest, CancelReasonTimeout or CancelReasonInternal.
	Reason string `json:"reason,omitempty"`
}

// RunnerFinish is the body of POST /api/v2/runner/jobs/{name}/attempts/{n}/finish.
type RunnerFinish struct {
	ExitCode int `json:"exitCode"`
	// Message explains a failure the runner saw itself (command not found,
	// artifact missing, killed after cancel…).
	Message string `json:"message,omitempty"`
	// Canceled is true when the runner stopped the process because the
	// control plane asked it to.
	Canceled bool `json:"canceled,omitempty"`
}
