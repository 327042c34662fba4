package mcpserver_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/internal/mcpserver"
)

// TestJobTools: an agent runs a check as a job through the MCP server, with
// a real control plane and a real runner.
func TestJobTools(t *testing.T) {
	e := cptest.Start(t)
	ctx := context.Background()
	if _, err := e.Client.ApplyRunnerGroup(ctx, cptest.Org, &client.RunnerGroup{Name: "e2e",
		Spec: apitypes.RunnerGroupSpec{Cluster: cptest.Cluster, Namespace: "sandboxmesh-jobs", Image: "busybox"}}); err != nil {
		t.Fatal(err)
	}
	e.StartRunner("e2e")
	s := connect(t, e.URL, e.Key)

	var v mcpserver.JobView
	s.mustCall("job_submit", map[string]any{"runner_group": "e2e", "name_prefix": "check", "wait": true, "env": map[string]string{"WHO": "agent"},
		"script": "#!/bin/sh\necho hello $WHO\necho bad >&2\necho r > r.txt\nexit 4\n", "upload_artifacts": []string{"r.txt"}}, &v)
	if v.Phase != apitypes.JobPhaseFailed || v.ExitCode == nil || *v.ExitCode != 4 || v.Stdout != "hello agent\n" || v.Stderr != "bad\n" {
		t.Fatalf("job_submit wait=true: %+v", v)
	}
	if len(v.Artifacts) != 1 || v.Artifacts[0].Path != "r.txt" {
		t.Fatalf("artifacts: %+v", v.Artifacts)
	}
	var logs mcpserver.JobLogs
	s.mustCall("job_logs", map[string]any{"name": v.Name, "stream": "stderr"}, &logs)
	if logs.Output != "bad\n" || logs.Running {
		t.Fatalf("job_logs: %+v", logs)
	}
	var got mcpserver.JobView
	s.mustCall("job_get", map[string]any{"name": v.Name}, &got)
	if got.Phase != apitypes.JobPhaseFailed || *got.ExitCode != 4 {
		t.Fatalf("job_get: %+v", got)
	}

	// A long job without wait, then canceled.
	s.mustCall("job_submit", map[string]any{"runner_group": "e2e", "script": "#!/bin/sh\nsleep 60\n"}, &v)
	if !strings.Contains(v.NextStep, v.Name) {
		t.Fatalf("next step: %+v", v)
	}
	s.mustCall("job_cancel", map[string]any{"name": v.Name}, &got)

	// Bad input: errors name the tool's own fields.
	for _, tc := range []struct {
		args map[string]any
		want []string
	}{
		{map[string]any{"runner_group": "e2e"}, []string{"script: a job needs a script or a command"}},
		{map[string]any{"runner_group": "e2e", "script": "echo hi"}, []string{"script:", "#!/bin/sh"}},
		{map[string]any{"runner_group": "nosuch", "script": "#!/bin/sh\ntrue\n"}, []string{"nosuch"}},
	} {
		res := s.call("job_submit", tc.args, nil)
		if !res.IsError {
			t.Errorf("%v: no error", tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(text(res), w) {
				t.Errorf("%v: %q lacks %q", tc.args, text(res), w)
			}
		}
	}
	if res := s.call("job_logs", map[string]any{"name": "nosuch"}, nil); !res.IsError {
		t.Error("job_logs of a missing job: no error")
	}
}
