package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
	"github.com/sandboxmesh/sandboxmesh/controlplane/runner"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestAgainstControlPlane runs the real runner against the real control plane
// (SQLite, filesystem artifacts): a job's output, exit code, artifact and the
// routing key reach the user's API; a cancel stops a running job.
func TestAgainstControlPlane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st := storetest.Open(t, store.DriverSQLite)
	arts, err := artifacts.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(ctx, api.Config{Store: st, Jobs: jobs.Config{Artifacts: arts, SweepInterval: 100 * time.Millisecond,
		ClaimPoll: 100 * time.Millisecond, LogPoll: 50 * time.Millisecond, CancelGrace: 2 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	key, _, err := api.Bootstrap(ctx, st, "", "")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(hs.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.CreateOrg(ctx, "acme", 5)
	must(err)
	_, err = c.RegisterCluster(ctx, "acme", "c1")
	must(err)
	_, err = c.ApplyRunnerGroup(ctx, "acme", &client.RunnerGroup{Name: "e2e", Spec: apitypes.RunnerGroupSpec{Cluster: "c1", Namespace: "jobs", Image: "busybox", JobTimeout: "2s"}})
	must(err)
	_, err = c.ApplySandbox(ctx, "acme", &client.Sandbox{Name: "feat", Spec: v1alpha1.SandboxSpec{Cluster: "c1",
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "hotrod", Name: "route"}}}}})
	must(err)

	// The runner token, as the agent gets it.
	ctok, err := c.CreateClusterToken(ctx, "acme", "c1")
	must(err)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, hs.URL+"/api/v2/agent/state?wait=0s", nil)
	req.Header.Set(apitypes.HeaderClusterToken, ctok.Token)
	resp, err := http.DefaultClient.Do(req)
	must(err)
	var state apitypes.AgentState
	must(json.NewDecoder(resp.Body).Decode(&state))
	resp.Body.Close()
	var token string
	for _, o := range state.Objects {
		if o.Kind == "runnergroup" && o.Name == "e2e" {
			token = o.RunnerToken
		}
	}
	if token == "" {
		t.Fatal("no runner token in the agent's state")
	}

	r, err := runner.New(runner.Config{ControlPlaneURL: hs.URL, Org: "acme", RunnerGroup: "e2e", Token: token, Pod: "runner-0", Namespace: "jobs",
		WorkRoot: t.TempDir(), Log: slog.New(slog.DiscardHandler), ClaimWait: 500 * time.Millisecond, FlushInterval: 50 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond, KillGrace: time.Second})
	must(err)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(rctx) }()
	defer func() {
		stop()
		<-done
	}()

	wait := func(t *testing.T, name string, phases ...string) *client.Job {
		t.Helper()
		for {
			j, err := c.GetJob(ctx, "acme", name)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range phases {
				if j.Status.Phase == p {
					return j
				}
			}
			if ctx.Err() != nil {
				t.Fatalf("job %s: phase %s, want %v", name, j.Status.Phase, phases)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("output, exit code, artifact, routing key", func(t *testing.T) {
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		job, err := c.SubmitJob(ctx, "acme", apitypes.JobSpec{NamePrefix: "check", RunnerGroup: "e2e",
			RoutingContext: &apitypes.JobRoutingContext{Sandbox: "feat"},
			Script:         "#!/bin/sh\necho \"key=$SIGNADOT_ROUTING_KEY sandbox=$SIGNADOT_SANDBOX_NAME\"\nprintf 'report' > out.txt\necho oops >&2\nexit 3\n",
			UploadArtifact: []apitypes.ArtifactToUpload{{Path: "out.txt", Meta: map[string]string{"kind": "report"}}}})
		must(err)
		j := wait(t, job.Name, apitypes.JobPhaseFailed, apitypes.JobPhaseSucceeded, apitypes.JobPhaseCanceled)
		if j.Status.Phase != apitypes.JobPhaseFailed || j.Status.Attempts[0].State.Failed == nil || j.Status.Attempts[0].State.Failed.ExitCode != 3 {
			t.Fatalf("job %+v; want failed with exit code 3", j.Status)
		}
		var out strings.Builder
		must(c.StreamJobLogs(ctx, "acme", job.Name, client.LogStreamOptions{}, func(m client.JobLogMessage) error {
			out.WriteString(m.Message)
			return nil
		}))
		if want := "key=" + job.Status.RoutingKey + " sandbox=feat\n"; job.Status.RoutingKey == "" || out.String() != want {
			t.Fatalf("stdout %q; want %q", out.String(), want)
		}
		var body strings.Builder
		_, err = c.DownloadArtifact(ctx, "acme", job.Name, 0, "", "out.txt", &body)
		must(err)
		info, err := c.ArtifactInfo(ctx, "acme", job.Name, 0, "", "out.txt")
		must(err)
		h := sha256.Sum256([]byte("report"))
		if body.String() != "report" || info.ChecksumSHA256 != hex.EncodeToString(h[:]) || info.Metadata["kind"] != "report" {
			t.Fatalf("artifact %q %+v", body.String(), info)
		}
		var stderr strings.Builder
		_, err = c.DownloadArtifact(ctx, "acme", job.Name, 0, "system", "stderr", &stderr)
		must(err)
		if stderr.String() != "oops\n" {
			t.Fatalf("system artifact stderr %q", stderr.String())
		}
	})

	t.Run("jobTimeout: the control plane has the runner stop the job", func(t *testing.T) {
		job, err := c.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "e2e", Script: "#!/bin/sh\necho started\nsleep 60\n"})
		if err != nil {
			t.Fatal(err)
		}
		j := wait(t, job.Name, apitypes.JobPhaseCanceled, apitypes.JobPhaseFailed, apitypes.JobPhaseSucceeded)
		if st := j.Status.Attempts[0].State.Canceled; st == nil || st.CanceledBy != apitypes.CancelReasonTimeout {
			t.Fatalf("job %+v; want canceled by timeout", j.Status)
		}
	})

	t.Run("cancel stops a running job", func(t *testing.T) {
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		job, err := c.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "e2e", Script: "#!/bin/sh\necho started\nsleep 60\n"})
		must(err)
		wait(t, job.Name, apitypes.JobPhaseRunning)
		start := time.Now()
		_, err = c.CancelJob(ctx, "acme", job.Name)
		must(err)
		j := wait(t, job.Name, apitypes.JobPhaseCanceled, apitypes.JobPhaseFailed, apitypes.JobPhaseSucceeded)
		if j.Status.Phase != apitypes.JobPhaseCanceled {
			t.Fatalf("job %+v; want canceled", j.Status)
		}
		t.Logf("canceled after %v", time.Since(start).Round(time.Millisecond))
	})
}
