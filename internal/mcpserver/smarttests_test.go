package mcpserver_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/internal/mcpserver"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// TestSmartTestTools: an agent asks "what changed?" of a sandbox through
// smarttest_run and smarttest_results, with a real control plane whose
// runner pod runs the real executor in process against a loopback hotrod
// (route's ETA is "" for the sandbox, 5 for the baseline).
func TestSmartTestTools(t *testing.T) {
	e := cptest.Start(t)
	ctx := context.Background()
	for _, name := range []string{"e2e", "idle"} {
		if _, err := e.Client.ApplyRunnerGroup(ctx, cptest.Org, &client.RunnerGroup{Name: name,
			Spec: apitypes.RunnerGroupSpec{Cluster: cptest.Cluster, Namespace: "sandboxmesh-jobs", Image: "busybox"}}); err != nil {
			t.Fatal(err)
		}
	}
	sb, err := e.Client.ApplySandbox(ctx, cptest.Org, &client.Sandbox{Name: "route-v2", Spec: v1alpha1.SandboxSpec{Cluster: cptest.Cluster,
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "hotrod", Name: "route"},
			Customizations: &v1alpha1.Customizations{Images: []v1alpha1.ImageCustomization{{Image: "route:v2"}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	e.StartSmartTestRunner("e2e", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eta := `5`
		if k, _ := routingkey.Default.Extract(r.Header); k == sb.RoutingKey {
			eta = `""`
		}
		fmt.Fprintf(w, `{"ts":%d,"calls":[{"service":"route","data":{"eta":%s}}]}`, n.Add(1), eta)
	}))
	script, err := os.ReadFile("../../examples/smarttests/eta.star")
	if err != nil {
		t.Fatal(err)
	}
	s := connect(t, e.URL, e.Key)

	var v mcpserver.SmartTestResults
	s.mustCall("smarttest_run", map[string]any{"sandbox": "route-v2", "script": string(script), "runner_group": "e2e", "test": "eta"}, &v)
	if v.Phase != apitypes.TestPhaseSucceeded || v.Test != "eta" || v.Target != "sandbox/route-v2" || !strings.Contains(v.Verdict, "1 of its 2 checks failed, 1 red finding") {
		t.Fatalf("smarttest_run: %+v", v)
	}
	if c := v.Checks; c == nil || len(c.Sandbox) != 2 || c.Sandbox[1].Passed || len(c.Sandbox[1].Errors) != 1 || !strings.HasPrefix(c.Sandbox[1].Errors[0], "eta.star:22:") ||
		len(c.Baseline) != 2 || !c.Baseline[1].Passed {
		t.Fatalf("checks: %+v", v.Checks)
	}
	if v.Diff == nil || v.Diff.Red != 1 || v.Diff.Green != 1 || len(v.Findings) != 1 ||
		v.Findings[0] != (mcpserver.SmartTestChange{Category: "red", Point: v.Findings[0].Point, Capture: "dispatch", Path: "/response/body/calls/0/data/eta", Op: "replace", OldValue: "5", Value: `""`}) {
		t.Fatalf("diff: %+v findings %+v", v.Diff, v.Findings)
	}
	if !s.hasProgress("execution " + v.ID + ": pending") {
		t.Errorf("no progress notification: %v", s.progress)
	}
	var got mcpserver.SmartTestResults
	s.mustCall("smarttest_results", map[string]any{"id": v.ID}, &got)
	if got.Verdict != v.Verdict || len(got.Findings) != 1 {
		t.Fatalf("smarttest_results: %+v", got)
	}
	s.mustCall("smarttest_results", map[string]any{"id": v.ID, "max_findings": 1}, &got)
	if got.FindingsTruncated {
		t.Fatalf("one finding of one is not truncated: %+v", got)
	}

	// An applied test by name; a runner group without runner: the wait ends
	// with the id and the next step.
	s.mustCall("smarttest_run", map[string]any{"sandbox": "route-v2", "script": "smart_test.check(\"nothing\")\n", "runner_group": "idle", "wait_timeout_seconds": 1}, &v)
	if v.Phase != apitypes.TestPhasePending || v.Test != mcpserver.AdhocTestName || !strings.Contains(v.NextStep, "smarttest_results") || !strings.Contains(v.NextStep, v.ID) {
		t.Fatalf("smarttest_run of an idle runner group: %+v", v)
	}
	start := time.Now()
	s.mustCall("smarttest_run", map[string]any{"sandbox": "route-v2", "test": "eta"}, &v)
	if v.Phase != apitypes.TestPhaseSucceeded || v.Diff == nil || v.Diff.Red != 1 {
		t.Fatalf("smarttest_run test=eta: %+v (%s)", v, time.Since(start))
	}

	// Bad input: errors name the tool's own fields.
	for _, tc := range []struct {
		tool string
		args map[string]any
		want []string
	}{
		{"smarttest_run", map[string]any{"test": "eta"}, []string{"sandbox: give sandbox or routegroup"}},
		{"smarttest_run", map[string]any{"sandbox": "a", "routegroup": "b", "test": "eta"}, []string{"routegroup: give sandbox or routegroup, not both"}},
		{"smarttest_run", map[string]any{"sandbox": "route-v2"}, []string{"test: give test"}},
		{"smarttest_run", map[string]any{"sandbox": "route-v2", "test": "eta", "runner_group": "e2e"}, []string{"runner_group: goes with script"}},
		{"smarttest_run", map[string]any{"sandbox": "route-v2", "test": "eta", "wait_timeout_seconds": 99999}, []string{"wait_timeout_seconds"}},
		{"smarttest_run", map[string]any{"sandbox": "route-v2", "script": "x = z\n", "test": "new"}, []string{"runner_group: required with script: the test new does not exist"}},
		{"smarttest_run", map[string]any{"sandbox": "route-v2", "script": "x = z\n", "runner_group": "e2e"}, []string{"spec.script", "undefined: z"}},
		{"smarttest_run", map[string]any{"sandbox": "nosuch", "test": "eta"}, []string{`no sandbox "nosuch"`}},
		{"smarttest_run", map[string]any{"sandbox": "route-v2", "test": "nosuch"}, []string{"nosuch"}},
		{"smarttest_results", map[string]any{"id": "nosuch"}, []string{"nosuch"}},
		{"smarttest_results", map[string]any{"id": ""}, []string{"id: required"}},
	} {
		res := s.call(tc.tool, tc.args, nil)
		if !res.IsError {
			t.Errorf("%s %v: no error", tc.tool, tc.args)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(text(res), w) {
				t.Errorf("%s %v: %q lacks %q", tc.tool, tc.args, text(res), w)
			}
		}
	}
}

// hasProgress waits up to 2s for a progress notification with message msg.
func (s *session) hasProgress(msg string) bool {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		for _, p := range s.progress {
			if p == msg {
				s.mu.Unlock()
				return true
			}
		}
		s.mu.Unlock()
	}
	return false
}
