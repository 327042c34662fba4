//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/cli"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

// cliRun runs the sandboxmesh CLI in-process against the control plane of e.
func cliRun(ctx context.Context, e *demo.Env, home, stdin string, args ...string) (stdout, stderr string, code int) {
	vars := map[string]string{cli.EnvAPIURL: e.ControlPlaneURL, cli.EnvAPIKey: e.APIKey, cli.EnvOrg: e.Org}
	var out, errb bytes.Buffer
	app := &cli.App{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return vars[k] }, Home: home}
	code = app.Execute(ctx, args)
	return out.String(), errb.String(), code
}

// jobsInCluster is the jobs feature end to end, as a user drives it with the
// CLI and the examples/jobs files: a runner group becomes a runner pod (agent
// → JobRunnerGroup → operator → Deployment), the hotrod check runs in it with
// the sandbox's routing key and passes only when the route hop is the
// sandbox's fork, its artifact downloads with the checksum the job printed;
// a cancel stops a running job; a runner pod deleted under a job fails the
// attempt (no hang) and its output stays readable.
func jobsInCluster(ctx context.Context, t *testing.T, e *demo.Env, sandbox string) {
	home := t.TempDir()
	run := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, code := cliRun(ctx, e, home, stdin, args...)
		if code != 0 {
			t.Fatalf("sandboxmesh %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
		}
		return out, errOut
	}
	examples := filepath.Join(testenv.RepoRoot(), "examples", "jobs")
	start := time.Now()
	run("", "jobrunnergroup", "apply", "-f", filepath.Join(examples, "runnergroup.yaml"))
	defer func() {
		_, _, _ = cliRun(context.Background(), e, home, "", "jobrunnergroup", "delete", "hotrod-e2e")
	}()
	waitFor(ctx, t, 3*time.Minute, "runner group hotrod-e2e has a ready pod", func() error {
		rg, err := e.API.GetRunnerGroup(ctx, e.Org, "hotrod-e2e")
		if err != nil {
			return err
		}
		if rg.Status.Pods.Ready < 1 {
			return fmt.Errorf("pods %+v", rg.Status.Pods)
		}
		return nil
	})
	record(t, "jobs_runner_group_ready", time.Since(start))

	t.Run("the hotrod check passes against the sandbox", func(t *testing.T) {
		start := time.Now()
		out, errOut, code := cliRun(ctx, e, home, "", "job", "submit", "-f", filepath.Join(examples, "job-hotrod-e2e.yaml"),
			"--set", "sandbox="+sandbox, "--attach", "--timeout", "3m")
		if code != 0 || !strings.Contains(out, "PASS: route served by the fork") {
			t.Fatalf("job: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		record(t, "jobs_submit_to_end", time.Since(start))
		t.Logf("the job's output:\n%s", out)
		m := regexp.MustCompile(`sha256 ([0-9a-f]{64})`).FindStringSubmatch(out)
		name := regexp.MustCompile(`job (hotrod-e2e-[a-z0-9]+) submitted`).FindStringSubmatch(errOut)
		if m == nil || name == nil {
			t.Fatalf("no checksum or job name in the output:\n%s\n%s", out, errOut)
		}
		dest := filepath.Join(t.TempDir(), "response.json")
		run("", "artifact", "download", "--job", name[1], "response.json", "--output-file", dest)
		b, err := os.ReadFile(dest)
		if err != nil {
			t.Fatal(err)
		}
		if h := sha256.Sum256(b); hex.EncodeToString(h[:]) != m[1] {
			t.Fatalf("artifact sha256 %x, the job printed %s", h, m[1])
		}
	})

	sleeper := func(t *testing.T) *cpclient.Job {
		t.Helper()
		job, err := e.API.SubmitJob(ctx, e.Org, apitypes.JobSpec{NamePrefix: "sleeper", RunnerGroup: "hotrod-e2e",
			Script: "#!/bin/sh\necho started\nsleep 300\n"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, 2*time.Minute, "job "+job.Name+" running", func() error {
			j, err := e.API.GetJob(ctx, e.Org, job.Name)
			if err != nil {
				return err
			}
			if j.Status.Phase != apitypes.JobPhaseRunning {
				return fmt.Errorf("phase %s", j.Status.Phase)
			}
			job = j
			return nil
		})
		return job
	}
	ended := func(t *testing.T, name string, within time.Duration) *cpclient.Job {
		t.Helper()
		var job *cpclient.Job
		waitFor(ctx, t, within, "job "+name+" ended", func() error {
			j, err := e.API.GetJob(ctx, e.Org, name)
			if err != nil {
				return err
			}
			if j.Status.Phase == apitypes.JobPhaseQueued || j.Status.Phase == apitypes.JobPhaseRunning {
				return fmt.Errorf("phase %s", j.Status.Phase)
			}
			job = j
			return nil
		})
		return job
	}

	t.Run("a smart test finds the fork's change (one red finding, noise green)", func(t *testing.T) {
		smartTestInCluster(ctx, t, e, home, "hotrod-e2e")
	})
	t.Run("cancel stops a running job", func(t *testing.T) {
		job := sleeper(t)
		start := time.Now()
		run("", "job", "cancel", job.Name)
		if j := ended(t, job.Name, time.Minute); j.Status.Phase != apitypes.JobPhaseCanceled {
			t.Fatalf("after cancel: %+v", j.Status)
		}
		record(t, "jobs_cancel_to_end", time.Since(start))
	})

	t.Run("a runner pod deleted under a job fails the attempt; its output stays", func(t *testing.T) {
		job := sleeper(t)
		pod := job.Status.Attempts[len(job.Status.Attempts)-1].State.Running
		if pod == nil {
			t.Fatalf("running job without a pod: %+v", job.Status)
		}
		zero := int64(0)
		if err := e.Kube.CoreV1().Pods(pod.PodNamespace).Delete(ctx, pod.PodName, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		j := ended(t, job.Name, time.Minute)
		if j.Status.Phase != apitypes.JobPhaseFailed {
			t.Fatalf("after the pod was deleted: %+v", j.Status)
		}
		record(t, "jobs_pod_lost_to_failed", time.Since(start))
		out, _ := run("", "logs", "--job", job.Name)
		if out != "started\n" {
			t.Fatalf("logs after the pod is gone: %q", out)
		}
	})

	t.Run("deleting the runner group removes its pods", func(t *testing.T) {
		run("", "jobrunnergroup", "delete", "hotrod-e2e")
		waitFor(ctx, t, time.Minute, "runner Deployment gone", func() error {
			_, err := e.Kube.AppsV1().Deployments(apitypes.DefaultRunnerNamespace).Get(ctx, v1alpha1.RunnerObjectName("hotrod-e2e"), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("still there (%v)", err)
		})
	})
}
