//go:build e2e

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"
	"github.com/sandboxmesh/sandboxmesh/internal/cli"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// smartTestInCluster is a smart test end to end, as a user runs it: a sandbox forks route with ETA_ALGO=v2
// (route answers etaSeconds instead of eta); `sandboxmesh smart-test run --sandbox … -f
// examples/smarttests/eta.star` runs the script in the runner group's pod against the sandbox and twice
// against the baseline; every hop's sidecar records the requests (relayed by the agent); the diff shows the
// removed eta as the only red finding that shows first where it is, at route's hop (frontend and the edge
// echo it, with route's hop as origin), the values that vary per request (event ids) as noise; the
// sandbox's ETA check fails, the baseline's passes.
func smartTestInCluster(ctx context.Context, t *testing.T, e *demo.Env, home, runnerGroup string) {
	sb := &cpclient.Sandbox{Name: "route-eta-v2", Spec: v1alpha1.SandboxSpec{Cluster: e.Cluster, Forks: []v1alpha1.Fork{{
		ForkOf:         v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: demo.ExampleNamespace, Name: "route"},
		Customizations: &v1alpha1.Customizations{Env: []v1alpha1.EnvCustomization{{Name: "ETA_ALGO", Value: ptr("v2")}}},
	}}}}
	if _, err := e.API.ApplySandbox(ctx, e.Org, sb); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.API.DeleteSandbox(context.Background(), e.Org, sb.Name) }()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if _, err := e.API.WaitForReady(wctx, e.Org, sb.Name, &cpclient.WaitOptions{Interval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("sandbox %s not ready: %v", sb.Name, err)
	}

	// Ready says the routes are applied; wait until the fork really takes the key's requests (the node's
	// Service rules for the fork may lag a moment behind on a loaded machine).
	h := &hitter{t: t, url: serviceURL(ctx, t, e, demo.ExampleNamespace, "frontend") + "/dispatch?customer=392"}
	waitFor(ctx, t, time.Minute, "a keyed request served by the fork", func() error {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+sbRoutingKey(ctx, t, e, sb.Name))
		if err != nil {
			return err
		}
		if got := servedBy(tree)["route"]; got != sb.Name {
			return fmt.Errorf("route served by %q", got)
		}
		return nil
	})
	start := time.Now()
	script := filepath.Join(testenv.RepoRoot(), "examples", "smarttests", "eta.star")
	out, errOut, code := cliRun(ctx, e, home, "", "smart-test", "run", "--sandbox", sb.Name, "-f", script,
		"--runner-group", runnerGroup, "--timeout", "3m", "--publish", "-o", "json")
	record(t, "smarttest_run", time.Since(start))
	if code != cli.ExitTestFailed {
		t.Fatalf("smart-test run: exit %d, want %d (a sandbox check fails, a red finding)\nstdout: %s\nstderr: %s", code, cli.ExitTestFailed, out, errOut)
	}
	var res struct {
		Execution *cpclient.TestExecution `json:"execution"`
		Findings  []diff.Finding          `json:"findings"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Execution == nil || res.Execution.Results == nil {
		t.Fatalf("smart-test run -o json: %v\n%s", err, out)
	}
	t.Logf("execution %s: phase %s, diff %+v", res.Execution.ID, res.Execution.Status.Phase, res.Execution.Results.TrafficDiff)
	// Every capture point records the request (the runner's edge, frontend's and route's sidecars, …): the
	// change shows first at route's hop; the hops that echo route's answer (frontend, the edge) show it
	// too, with route's hop as its origin.
	var origins []diff.Finding
	routeHop := diff.CapturePoint{Kind: diff.KindDeployment, Namespace: demo.ExampleNamespace, Name: "route", Direction: diff.Inbound}
	for _, f := range res.Findings {
		from := "-"
		if f.PropagatedFrom != nil {
			from = f.PropagatedFrom.String()
		}
		t.Logf("finding %s %s %s %s: %s -> %s (from %s)", f.Category, f.Point, f.Op, f.Path, f.OldValue, f.Value, from)
		switch {
		case f.Category != diff.Red:
		case f.PropagatedFrom == nil:
			origins = append(origins, f)
		case *f.PropagatedFrom != routeHop:
			t.Errorf("red finding at %s %s comes from %s, want route's hop", f.Point, f.Path, f.PropagatedFrom)
		}
	}
	if len(origins) != 1 || origins[0].Point != routeHop || origins[0].Op != diff.OpRemove || !strings.HasSuffix(origins[0].Path, "/eta") {
		t.Errorf("red findings that show first where they are: %+v, want exactly one: route's hop removed eta", origins)
	}
	// Only route's answer changed: the routing key and the sandbox's name that the apps echo are expected
	// differences (green), so every finding is at route's data.
	for _, f := range res.Findings {
		if !strings.Contains(f.Path, "/data/eta") {
			t.Errorf("finding %s %s %s (%s -> %s) outside route's ETA", f.Category, f.Op, f.Path, f.OldValue, f.Value)
		}
	}
	if td := res.Execution.Results.TrafficDiff; td == nil || td.CapturePoints < 4 {
		t.Errorf("traffic diff %+v: want the captures of the hops' sidecars (frontend, customer, driver, route) besides the runner's", td)
	}
	if td := res.Execution.Results.TrafficDiff; td == nil || td.Green.Replacements == 0 {
		t.Errorf("traffic diff %+v: want the per-request values (event ids, trace ids) learned as noise", td)
	}
	// The sandbox's status summarises the published execution.
	waitFor(ctx, t, 30*time.Second, "the sandbox's status.testExecutions", func() error {
		got, err := e.API.GetSandbox(ctx, e.Org, sb.Name)
		if err != nil {
			return err
		}
		te := got.Status.TestExecutions
		if te == nil || te.Executions != 1 || te.Checks.Failed == 0 || te.TrafficDiffs.Red == 0 {
			return fmt.Errorf("status.testExecutions %+v", te)
		}
		return nil
	})
	// Capture ids never leak into requests that did not carry one: a keyed request after the execution
	// reaches every hop without sm-capture in its baggage or the capture header.
	tree, err := h.get(ctx, "baggage", "sm-routing-key="+sbRoutingKey(ctx, t, e, sb.Name))
	if err != nil {
		t.Fatal(err)
	}
	tree.Walk(func(n *app.Node) {
		for k, v := range n.Headers {
			if strings.Contains(v, "sm-capture") || strings.EqualFold(k, "x-sandboxmesh-capture") {
				t.Errorf("hop %s saw a capture id in a request without one: %s: %s", n.Service, k, v)
			}
		}
		if strings.Contains(n.Baggage, "sm-capture") {
			t.Errorf("hop %s saw a capture id in its baggage: %s", n.Service, n.Baggage)
		}
	})
	failed := func(checks []apitypes.TestCheck, name string) bool {
		for _, c := range checks {
			if c.Name == name {
				return len(c.Errors) > 0
			}
		}
		t.Errorf("no check %q in %+v", name, checks)
		return false
	}
	checks := res.Execution.Results.Checks
	if !failed(checks.Sandbox, "route gives an ETA") || failed(checks.Baseline, "route gives an ETA") || failed(checks.Sandbox, "dispatch answers 200") {
		t.Errorf("checks: sandbox %+v baseline %+v; want only the sandbox's ETA check failed", checks.Sandbox, checks.Baseline)
	}
}

func sbRoutingKey(ctx context.Context, t *testing.T, e *demo.Env, name string) string {
	t.Helper()
	sb, err := e.API.GetSandbox(ctx, e.Org, name)
	if err != nil {
		t.Fatal(err)
	}
	return sb.RoutingKey
}
