package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/cli"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// hotrodCluster answers frontend's /dispatch as examples/smarttests/eta.star
// expects: route's ETA is 5 for the baseline and "" for requests carrying
// key (a failed check and a red finding on the sandbox side); ts differs in
// every answer (noise, green).
func hotrodCluster(key string) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eta := `5`
		if k, _ := routingkey.Default.Extract(r.Header); k == key {
			eta = `""`
		}
		ts := time.Unix(1_800_000_000+n.Add(1), 0).UTC().Format(time.RFC3339)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"ts":%q,"calls":[{"service":"route","version":"v1","data":{"eta":%s}}]}`, ts, eta)
	})
}

var reJobName = regexp.MustCompile(`smarttest-[a-z0-9]{5}`)

// stable replaces execution ids (by placeholders as wide) and job names in
// an output compared with a golden file.
func stable(s string, ids ...string) string {
	for i, id := range ids {
		p := fmt.Sprintf("<id%d>", i+1)
		s = strings.ReplaceAll(s, id, p+strings.Repeat(".", max(0, len(id)-len(p))))
	}
	return reJobName.ReplaceAllString(s, "smarttest-xxxxx")
}

// TestSmartTests drives smart tests through the CLI against a real control
// plane whose runner pod runs the real executor in process against a
// loopback hotrod: apply (spec file, --script, errors with the script's
// position), get, list, run -f and --test (checks, findings, exit codes,
// -o json, --no-wait), execution get/list/cancel/diff, delete, bad flags.
func TestSmartTests(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.mustRun("jobrunnergroup", "apply", "-f", "testdata/jobs/runnergroup.yaml")
	sb, err := h.env.Client.ApplySandbox(ctx, cptest.Org, &client.Sandbox{Name: "route-v2", Spec: v1alpha1.SandboxSpec{Cluster: cptest.Cluster,
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "hotrod", Name: "route"},
			Customizations: &v1alpha1.Customizations{Images: []v1alpha1.ImageCustomization{{Image: "route:v2"}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	h.env.StartSmartTestRunner("e2e", hotrodCluster(sb.RoutingKey))

	// apply, get, list
	r := h.mustRun("smart-test", "apply", "-f", "testdata/smarttests/test.yaml", "--set", "rg=e2e")
	h.golden("smarttest-apply.txt", r.stdout)
	h.golden("smarttest-get.txt", h.mustRun("st", "get", "eta").stdout)
	h.golden("smarttest-list.txt", h.mustRun("st", "list").stdout)
	r = h.mustRun("st", "get", "eta", "-o", "yaml")
	if !strings.Contains(r.stdout, `route gives an ETA`) || !strings.Contains(r.stdout, "runnerGroup: e2e") {
		t.Fatalf("get -o yaml:\n%s", r.stdout)
	}
	// --script replaces the script; the control plane's error names the position.
	r = h.run("st", "apply", "-f", "testdata/smarttests/test.yaml", "--set", "rg=e2e", "--script", "testdata/smarttests/bad.star")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "spec.script") || !strings.Contains(r.stderr, ":2:5: undefined: z") {
		t.Fatalf("apply of a bad script: exit %d\n%s", r.code, r.stderr)
	}

	// run -f: the ad-hoc test, the checks, the red finding, exit code 8.
	// The exact command of the example's header: the org's only runner group runs it.
	r = h.run("smart-test", "run", "--sandbox", "route-v2", "-f", "../../examples/smarttests/eta.star", "--timeout", "1m")
	if r.code != cli.ExitTestFailed {
		t.Fatalf("run -f: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{"runner group e2e (the org's only one) runs the test adhoc-eta\n", "smart test adhoc-eta applied from ../../examples/smarttests/eta.star", " pending\n", " succeeded after ", "1 failed sandbox check(s), 1 red finding(s)"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("run -f: stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	id := strings.Fields(r.stderr[strings.Index(r.stderr, "\nexecution ")+len("\nexecution "):])[0]
	h.golden("smarttest-run.txt", stable(r.stdout, id))
	if !strings.Contains(r.stdout, "eta.star:") || !strings.Contains(r.stdout, `5 → ""`) {
		t.Fatalf("run -f: no check error position or change:\n%s", r.stdout)
	}

	// run --test with -o json and --no-fail: exit 0, the report decodes.
	r = h.run("st", "run", "--sandbox", "route-v2", "--test", "eta", "--publish", "--no-fail", "-o", "json")
	if r.code != 0 {
		t.Fatalf("run --test --no-fail: exit %d\n%s", r.code, r.stderr)
	}
	var rep struct {
		Execution client.TestExecution        `json:"execution"`
		Findings  []client.TrafficDiffFinding `json:"findings"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Execution.TestName != "eta" || rep.Execution.Status.Phase != "succeeded" ||
		len(rep.Findings) != 1 || rep.Findings[0].Path != "/response/body/calls/0/data/eta" || !rep.Execution.Spec.ExecutionContext.Publish {
		t.Fatalf("run -o json: %v\n%s", err, r.stdout)
	}
	id2 := rep.Execution.ID

	// A route group whose key the fork does not serve: the baseline's answers, exit 0.
	h.mustRun("routegroup", "apply", "-f", "testdata/routegroup.yaml")
	r = h.run("st", "run", "--route-group", "shop-team", "--test", "eta")
	if r.code != 0 || !strings.Contains(r.stdout, "routegroup/shop-team") || !strings.Contains(r.stdout, "No findings.") || strings.Contains(r.stdout, "   failed   ") {
		t.Fatalf("run --route-group: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}

	// execution get, list, diff
	r = h.run("st", "execution", "get", id)
	if r.code != 0 || !strings.Contains(r.stdout, "adhoc-eta") || !strings.Contains(r.stdout, "/response/body/calls/0/data/eta") {
		t.Fatalf("execution get: exit %d\n%s", r.code, r.stdout)
	}
	h.golden("smarttest-execution-list.txt", stable(h.mustRun("st", "execution", "list", "--sandbox", "route-v2").stdout, id, id2))
	if r := h.mustRun("st", "execution", "list", "--test", "eta"); strings.Count(r.stdout, "\n") != 3 || !strings.Contains(r.stdout, id2) {
		t.Fatalf("execution list --test eta:\n%s", r.stdout)
	}
	h.golden("smarttest-diff.txt", stable(h.mustRun("st", "execution", "diff", id, "--category", "red", "--max", "5").stdout))
	if r := h.mustRun("st", "execution", "diff", id, "--category", "yellow"); !strings.Contains(r.stdout, "No findings") {
		t.Fatalf("diff --category yellow:\n%s", r.stdout)
	}
	if r := h.mustRun("st", "execution", "diff", id, "-o", "json"); !strings.Contains(r.stdout, `"capturePoints"`) || !strings.Contains(r.stdout, `"summary"`) {
		t.Fatalf("diff -o json (the whole diff):\n%s", r.stdout)
	}

	// --no-wait, then cancel while queued (the runner group idle has no runner).
	h.mustRun("jrg", "apply", "-f", "testdata/smarttests/idle-runnergroup.yaml")
	r = h.mustRun("st", "run", "--sandbox", "route-v2", "-f", "testdata/smarttests/idle.star", "--runner-group", "idle", "--no-wait")
	if !strings.Contains(r.stdout, "execution ") || !strings.Contains(r.stdout, "smart-test execution get") {
		t.Fatalf("run --no-wait:\n%s", r.stdout)
	}
	id3 := strings.Fields(strings.TrimPrefix(r.stdout, "execution "))[0]
	if r := h.mustRun("st", "execution", "cancel", id3); !strings.Contains(r.stdout, "cancel requested") {
		t.Fatalf("cancel:\n%s", r.stdout)
	}
	if r := h.mustRun("st", "execution", "get", id3); !strings.Contains(r.stdout, "canceled") {
		t.Fatalf("get after cancel:\n%s", r.stdout)
	}
	// --timeout: exit 4, the execution keeps running.
	r = h.run("st", "run", "--sandbox", "route-v2", "--test", "adhoc-idle", "--timeout", "200ms")
	if r.code != cli.ExitTimeout || !strings.Contains(r.stderr, "is still pending after 200ms; it keeps running") || !strings.Contains(r.stderr, "smart-test execution cancel ") {
		t.Fatalf("run --timeout: exit %d\n%s", r.code, r.stderr)
	}
	if r := h.mustRun("st", "execution", "list", "--test", "adhoc-idle"); !strings.Contains(r.stdout, "canceled") || !strings.Contains(r.stdout, "pending") {
		t.Fatalf("executions of adhoc-idle:\n%s", r.stdout)
	}

	// Bad input: clear errors (exit 2), not found (exit 3).
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"st", "run", "--test", "eta"}, cli.ExitUsage, "--sandbox or --route-group is required"},
		{[]string{"st", "run", "--sandbox", "a", "--route-group", "b", "--test", "eta"}, cli.ExitUsage, "give one"},
		{[]string{"st", "run", "--sandbox", "route-v2"}, cli.ExitUsage, "-f FILE.star or --test NAME is required"},
		{[]string{"st", "run", "--sandbox", "route-v2", "--test", "eta", "-f", "x.star"}, cli.ExitUsage, "give one"},
		{[]string{"st", "run", "--sandbox", "route-v2", "--test", "eta", "--runner-group", "e2e"}, cli.ExitUsage, "--runner-group goes with -f"},
		{[]string{"st", "run", "--sandbox", "route-v2", "--test", "eta", "--run-timeout", "forever"}, cli.ExitUsage, "--run-timeout"},
		{[]string{"st", "run", "--sandbox", "route-v2", "-f", "testdata/smarttests/bad.star"}, cli.ExitUsage, "--runner-group is required with -f: the test adhoc-bad does not exist yet and org acme has 2 job runner groups"},
		{[]string{"st", "run", "--sandbox", "route-v2", "-f", "testdata/smarttests/bad.star", "--runner-group", "e2e"}, cli.ExitUsage, "undefined: z"},
		{[]string{"st", "run", "--sandbox", "route-v2", "-f", "testdata/smarttests/nosuch.star", "--runner-group", "e2e"}, cli.ExitUsage, "nosuch.star"},
		{[]string{"st", "run", "--sandbox", "nosuch", "--test", "eta"}, cli.ExitUsage, `executionContext.routing.sandbox: no sandbox "nosuch"`},
		{[]string{"st", "run", "--sandbox", "route-v2", "--test", "nosuch"}, cli.ExitNotFound, "nosuch"},
		{[]string{"st", "apply", "-f", "testdata/smarttests/test.yaml"}, cli.ExitUsage, "rg"},
		{[]string{"st", "apply", "-f", "testdata/jobs/runnergroup.yaml"}, cli.ExitUsage, "spec"},
		{[]string{"st", "execution", "diff", id, "--category", "green"}, cli.ExitUsage, "want red or yellow"},
		{[]string{"st", "execution", "diff", id, "--max", "-1"}, cli.ExitUsage, "--max"},
		{[]string{"st", "execution", "get", "nosuch"}, cli.ExitNotFound, "nosuch"},
		{[]string{"st", "get", "nosuch"}, cli.ExitNotFound, "nosuch"},
	} {
		if r := h.run(tc.args...); r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}

	// Shell completion of test names.
	if r := h.mustRun("__complete", "st", "get", ""); !strings.Contains(r.stdout, "adhoc-eta\nadhoc-idle\neta\n") {
		t.Fatalf("completion of test names:\n%s", r.stdout)
	}
	if r := h.mustRun("__complete", "st", "run", "--sandbox", ""); !strings.Contains(r.stdout, "route-v2") {
		t.Fatalf("completion of --sandbox:\n%s", r.stdout)
	}

	// delete keeps the executions.
	h.mustRun("st", "delete", "eta", "adhoc-eta")
	if r := h.mustRun("st", "list"); !strings.Contains(r.stdout, "adhoc-idle") || strings.Contains(r.stdout, "adhoc-eta") {
		t.Fatalf("list after delete:\n%s", r.stdout)
	}
	if r := h.mustRun("st", "execution", "get", id); !strings.Contains(r.stdout, "succeeded") {
		t.Fatalf("execution after its test's deletion:\n%s", r.stdout)
	}

	// The example spec file applies (its runner group replaced).
	if r := h.mustRun("st", "apply", "-f", "../../examples/smarttests/eta.yaml", "--runner-group", "e2e"); !strings.Contains(r.stdout, "smart test eta applied") {
		t.Fatalf("apply of the example:\n%s", r.stdout)
	}
}

func TestAdhocTestName(t *testing.T) {
	for in, want := range map[string]string{
		"examples/smarttests/eta.star": "adhoc-eta",
		"My Test_v2.star":              "adhoc-my-test-v2",
		"x/" + strings.Repeat("a", 80): "adhoc-" + strings.Repeat("a", 57),
		"--.star":                      "adhoc",
	} {
		if got := cli.AdhocTestName(in); got != want {
			t.Errorf("AdhocTestName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzAdhocTestName: any file name gives a valid test name.
func FuzzAdhocTestName(f *testing.F) {
	for _, s := range []string{"eta.star", "", ".star", "Ünïcödé.star", "a/b/c.d.star", strings.Repeat("-", 100), "9lives.star"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		name := cli.AdhocTestName(path)
		if fe := apitypes.ValidateSmartTestName("name", name); fe != nil {
			t.Fatalf("AdhocTestName(%q) = %q: %s", path, name, fe.Message)
		}
	})
}
