package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/internal/cli"
)

// TestJobs drives runner groups, jobs, logs and artifacts through the CLI
// against a real control plane and a real runner.
func TestJobs(t *testing.T) {
	h := newHarness(t)
	r := h.mustRun("jobrunnergroup", "apply", "-f", "testdata/jobs/runnergroup.yaml")
	if !strings.Contains(r.stdout, "job runner group e2e applied") || !strings.Contains(r.stdout, "PODS READY") {
		t.Fatalf("apply:\n%s", r.stdout)
	}
	h.env.StartRunner("e2e")
	if r := h.mustRun("jrg", "list"); !strings.Contains(r.stdout, "e2e") || !strings.Contains(r.stdout, "sandboxmesh-jobs") {
		t.Fatalf("list:\n%s", r.stdout)
	}

	// --attach: the output streams, the exit code is the job's.
	r = h.run("job", "submit", "-f", "testdata/jobs/job.yaml", "--set", "want=pass", "--attach")
	if r.code != 0 || r.stdout != "checking pass\nPASS\n" || !strings.Contains(r.stderr, "a warning\n") || !strings.Contains(r.stderr, "succeeded") {
		t.Fatalf("attach: exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}
	name := strings.Fields(strings.TrimPrefix(r.stderr, "job "))[0]
	r = h.run("job", "submit", "-f", "testdata/jobs/job.yaml", "--set", "want=fail", "--attach")
	if r.code != 7 || !strings.Contains(r.stderr, "failed (exit code 7)") {
		t.Fatalf("attach of a failing job: exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
	}

	// get, list, logs, artifacts of the first job.
	if r := h.mustRun("job", "get", name); !strings.Contains(r.stdout, "succeeded") || !strings.Contains(r.stdout, "out/report.txt") {
		t.Fatalf("get:\n%s", r.stdout)
	}
	if r := h.mustRun("job", "list", "--phase", "failed"); strings.Count(r.stdout, "\n") != 2 || !strings.Contains(r.stdout, " 7 ") {
		t.Fatalf("list --phase failed:\n%s", r.stdout)
	}
	if r := h.mustRun("logs", "--job", name); r.stdout != "checking pass\nPASS\n" {
		t.Fatalf("logs: %q", r.stdout)
	}
	if r := h.mustRun("logs", "--job", name, "--stream", "stderr"); r.stderr != "a warning\n" {
		t.Fatalf("logs --stream stderr: %q", r.stderr)
	}
	dest := filepath.Join(t.TempDir(), "report.txt")
	h.mustRun("artifact", "download", "--job", name, "out/report.txt", "-o", dest)
	if b, err := os.ReadFile(dest); err != nil || string(b) != "report of pass\n" {
		t.Fatalf("download: %q %v", b, err)
	}
	if r := h.mustRun("artifact", "download", "--job", name, "--space", "system", "stdout", "--output-file", "-"); r.stdout != "checking pass\nPASS\n" {
		t.Fatalf("system stdout: %q", r.stdout)
	}
	if r := h.run("artifact", "download", "--job", name, "nope.txt", "--output-file", filepath.Join(t.TempDir(), "x")); r.code != cli.ExitNotFound {
		t.Fatalf("missing artifact: exit %d %s", r.code, r.stderr)
	}

	// Bad input: clear errors, nothing submitted.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "submit", "-f", "testdata/jobs/runnergroup.yaml"}, "name"},
		{[]string{"job", "submit", "-f", "testdata/jobs/job.yaml"}, "want"},
		{[]string{"logs"}, "--job is required"},
		{[]string{"logs", "--job", name, "--stream", "both"}, "want stdout or stderr"},
	} {
		if r := h.run(tc.args...); r.code != cli.ExitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with %q", tc.args, r.code, r.stderr, tc.want)
		}
	}

	// The example files decode and pass the CLI's checks (the control plane
	// then looks the sandbox up).
	h.mustRun("jrg", "apply", "-f", "../../examples/jobs/runnergroup.yaml", "--cluster", "c1")

	r = h.run("job", "submit", "-f", "../../examples/jobs/job-hotrod-e2e.yaml", "--set", "sandbox=nosuch")
	if r.code == 0 || !strings.Contains(r.stderr, "nosuch") || strings.Contains(r.stderr, "hotrod-e2e.yaml:") {
		t.Fatalf("example job: exit %d\n%s", r.code, r.stderr)
	}
	// cancel and delete
	r = h.mustRun("job", "submit", "-f", "testdata/jobs/job.yaml", "--set", "want=pass", "-o", "json")
	if !strings.Contains(r.stdout, `"name": "check-`) {
		t.Fatalf("submit -o json:\n%s", r.stdout)
	}
	h.mustRun("job", "delete", name)
	if r := h.run("job", "get", name); r.code != cli.ExitNotFound {
		t.Fatalf("get after delete: exit %d", r.code)
	}
	h.mustRun("jrg", "delete", "e2e")
}
