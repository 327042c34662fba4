// Package runner owns the in-cluster job runner: the loop a runner pod of a
// JobRunnerGroup runs (cmd/sandboxmesh-runner run). It claims a queued job
// attempt from the control plane, runs its script or command in a fresh work
// folder and its own process group, streams stdout and stderr back as events
// (which double as heartbeats and carry cancel requests), uploads the
// artifacts the job names and reports the exit code. It speaks the runner
// protocol of docs/jobs.md with the wire types of controlplane/apitypes
// (runner.go) and a runner-group token. Install copies the runner binary into
// a shared volume (the runner pod's init container).
package runner

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Environment variables of `sandboxmesh-runner run` (the operator sets them
// on runner pods).
const (
	EnvControlPlaneURL = "SANDBOXMESH_CONTROL_PLANE_URL"
	EnvOrg             = "SANDBOXMESH_ORG"
	EnvRunnerGroup     = "SANDBOXMESH_RUNNER_GROUP"
	EnvRunnerToken     = "SANDBOXMESH_RUNNER_TOKEN"
	EnvPodName         = "POD_NAME"
	EnvPodNamespace    = "POD_NAMESPACE"
	// EnvWorkDir optionally sets the folder holding the jobs' work folders
	// (default: $TMPDIR/sandboxmesh-jobs).
	EnvWorkDir = "SANDBOXMESH_RUNNER_WORK_DIR"
)

// SelfCommand, as a job's argv[0], names the runner's own executable
// (Config.Self), so the control plane can submit a job such as
// ["sandboxmesh-runner", "smarttest"] without knowing where the runner is
// installed in the pod.
const SelfCommand = "sandboxmesh-runner"

// Defaults of Config's timings (the protocol's numbers).
const (
	DefaultClaimWait         = 25 * time.Second
	DefaultFlushInterval     = 200 * time.Millisecond
	DefaultFlushBytes        = 64 << 10
	DefaultHeartbeatInterval = 2 * time.Second
	DefaultKillGrace         = 10 * time.Second
	// DefaultTimeoutBackstop: the runner stops a job this long after its
	// timeout when the control plane did not cancel it (it could not be
	// reached).
	DefaultTimeoutBackstop = 30 * time.Second
	DefaultBackoffMin      = 500 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
)

// Config configures a Runner. The timing fields are zero for their defaults
// (tests shorten them).
type Config struct {
	// ControlPlaneURL is the control plane's base URL (http or https).
	ControlPlaneURL string
	// Org and RunnerGroup name the runner group; Token is its runner token
	// (smr_…), sent only in the Authorization header.
	Org         string
	RunnerGroup string
	Token       string
	// Pod and Namespace name this runner pod in its claims.
	Pod       string
	Namespace string
	// WorkRoot holds one work folder per attempt (default
	// $TMPDIR/sandboxmesh-jobs).
	WorkRoot string
	// Log receives the runner's state changes; nil discards.
	Log *slog.Logger
	// Transport sends the requests (nil: a transport with dial, TLS and
	// response-header timeouts).
	Transport http.RoundTripper
	// Self is the runner's own executable, which a job's Command whose
	// argv[0] is exactly SelfCommand runs (e.g. ["sandboxmesh-runner",
	// "smarttest"]) wherever the runner is installed in the pod (default:
	// os.Executable()).
	Self string

	ClaimWait         time.Duration
	FlushInterval     time.Duration
	FlushBytes        int
	HeartbeatInterval time.Duration
	KillGrace         time.Duration
	TimeoutBackstop   time.Duration
	BackoffMin        time.Duration
	BackoffMax        time.Duration
}

// ConfigFromEnv reads a Config from the environment variables of a runner
// pod; every missing variable is named in the error.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		ControlPlaneURL: getenv(EnvControlPlaneURL),
		Org:             getenv(EnvOrg),
		RunnerGroup:     getenv(EnvRunnerGroup),
		Token:           getenv(EnvRunnerToken),
		Pod:             getenv(EnvPodName),
		Namespace:       getenv(EnvPodNamespace),
		WorkRoot:        getenv(EnvWorkDir),
	}
	var missing []string
	for _, v := range []struct{ name, val string }{
		{EnvControlPlaneURL, c.ControlPlaneURL}, {EnvOrg, c.Org}, {EnvRunnerGroup, c.RunnerGroup},
		{EnvRunnerToken, c.Token}, {EnvPodName, c.Pod}, {EnvPodNamespace, c.Namespace},
	} {
		if strings.TrimSpace(v.val) == "" {
			missing = append(missing, v.name)
		}
	}
	if len(missing) > 0 {
		return Config{}, fmt.Errorf("runner: missing environment variable(s) %s (the operator sets them on the pods of a JobRunnerGroup)", strings.Join(missing, ", "))
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	u, err := url.Parse(c.ControlPlaneURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		shown := c.ControlPlaneURL
		if strings.Contains(shown, "@") {
			shown = "<redacted: holds @>" // may hold credentials
		}
		return fmt.Errorf("runner: %s %q is not an http(s) URL without credentials", EnvControlPlaneURL, shown)
	}
	if !strings.HasPrefix(c.Token, apitypes.RunnerTokenPrefix) {
		return fmt.Errorf("runner: %s does not start with %q (is it a runner group token?)", EnvRunnerToken, apitypes.RunnerTokenPrefix)
	}
	if strings.ContainsAny(c.Token, " \t\r\n") {
		return errors.New("runner: " + EnvRunnerToken + " holds white space")
	}
	for _, v := range []struct{ name, val string }{{"org", c.Org}, {"runner group", c.RunnerGroup}, {"pod", c.Pod}, {"namespace", c.Namespace}} {
		if v.val == "" || strings.ContainsAny(v.val, "\r\n") {
			return fmt.Errorf("runner: %s %q is empty or holds a line break", v.name, v.val)
		}
	}
	return nil
}

func (c *Config) defaults() {
	if c.WorkRoot == "" {
		c.WorkRoot = filepath.Join(os.TempDir(), "sandboxmesh-jobs")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.Self == "" {
		if exe, err := os.Executable(); err == nil {
			c.Self = exe
		}
	}
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.ClaimWait, DefaultClaimWait)
	set(&c.FlushInterval, DefaultFlushInterval)
	set(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	set(&c.KillGrace, DefaultKillGrace)
	set(&c.TimeoutBackstop, DefaultTimeoutBackstop)
	set(&c.BackoffMin, DefaultBackoffMin)
	set(&c.BackoffMax, DefaultBackoffMax)
	if c.FlushBytes <= 0 {
		c.FlushBytes = DefaultFlushBytes
	}
}
