package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// AdhocTestPrefix starts the name of the test `smart-test run -f FILE`
// applies: adhoc-<the file's base name without extension>.
const AdhocTestPrefix = "adhoc-"

// smartTestCommand is `sandboxmesh smart-test` (Signadot's `signadot
// smart-test`): tests, executions, their checks and traffic diffs.
func (a *App) smartTestCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "smart-test", Aliases: []string{"st", "smarttest", "smart-tests"},
		Short: "Apply, run and inspect smart tests (Starlark scripts run against a sandbox and the baseline, with a traffic diff)"})
	var (
		file, script, runnerGroup string
		sets                      []string
	)
	apply := &cobra.Command{
		Use:   "apply -f FILE [--script FILE.star] [--runner-group G] [--set var=value ...]",
		Short: "Create or update a smart test from a spec file ({name, spec{script, runnerGroup, defaultTimeout, triggers}})",
		Long: `Create or update a smart test from a spec file ({name, spec}, templated like
sandbox apply: @{var} from --set, @{embed: eta.star} for the script).
--script FILE fills spec.script from a Starlark file, --runner-group sets
spec.runnerGroup. The control plane checks the script: an error names its
position (eta.star:2:5: undefined: c).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			t, err := a.loadSmartTest(file, sets, script, runnerGroup)
			if err != nil {
				return err
			}
			out, err := c.ApplyTest(cmd.Context(), a.cfg.Org, t)
			if err != nil {
				return a.explain(err, "apply smart test "+t.Name)
			}
			if ok, err := a.structured(a.Stdout, out); ok {
				return err
			}
			fmt.Fprintf(a.Stdout, "smart test %s applied (version %d)\n\n", out.Name, out.Version)
			return a.printSmartTests(a.Stdout, []client.SmartTest{*out})
		},
	}
	apply.Flags().StringVarP(&file, "filename", "f", "", "spec file (YAML or JSON; - reads stdin)")
	apply.Flags().StringVar(&script, "script", "", "Starlark file whose content is spec.script")
	apply.Flags().StringVar(&runnerGroup, "runner-group", "", "set spec.runnerGroup")
	apply.Flags().StringArrayVar(&sets, "set", nil, "template variable, var=value (repeatable)")
	_ = apply.MarkFlagFilename("filename", "yaml", "yml", "json")
	_ = apply.MarkFlagFilename("script", "star")

	get := &cobra.Command{
		Use:   "get NAME",
		Short: "Show a smart test (-o yaml for its script)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			t, err := c.GetTest(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "smart test "+args[0])
			}
			if ok, err := a.structured(a.Stdout, t); ok {
				return err
			}
			if err := a.printSmartTests(a.Stdout, []client.SmartTest{*t}); err != nil {
				return err
			}
			if len(t.Spec.Triggers) > 0 {
				fmt.Fprintln(a.Stdout)
				tw := newTable(a.Stdout, "TRIGGER", "SANDBOX OF", "CLUSTER", "PUBLISH", "TIMEOUT")
				for _, tr := range t.Spec.Triggers {
					of := ""
					if tr.SandboxOf != nil {
						kind := tr.SandboxOf.Kind
						if kind == "" {
							kind = "Deployment"
						}
						of = string(kind) + "/" + tr.SandboxOf.Namespace + "/" + tr.SandboxOf.Name
					}
					et := tr.ExecutionTemplate
					row(tw, tr.ID, of, et.Cluster, fmt.Sprint(et.Publish), et.Timeout)
				}
				return tw.Flush()
			}
			return nil
		},
	}
	list := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List smart tests",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			ts, err := c.ListTests(cmd.Context(), a.cfg.Org)
			if err != nil {
				return a.explain(err, "list smart tests")
			}
			if ok, err := a.structured(a.Stdout, ts); ok {
				return err
			}
			if len(ts) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No smart tests in org %s.\n", a.cfg.Org)
				return err
			}
			return a.printSmartTests(a.Stdout, ts)
		},
	}
	del := a.deleteCommand("smart test", "Delete smart tests (their executions are kept)", func(ctx context.Context, c *client.Client, name string) error {
		return c.DeleteTest(ctx, a.cfg.Org, name)
	})
	get.ValidArgsFunction = a.completeSmartTests
	del.ValidArgsFunction = a.completeSmartTests
	cmd.AddCommand(apply, get, list, del, a.smartTestRunCommand(), a.smartTestExecutionCommand())
	return cmd
}

// completeSmartTests completes smart test names from the control plane.
func (a *App) completeSmartTests(cmd *cobra.Command, _ []string, _ string) ([]string, cobra.ShellCompDirective) {
	return complete(a, cmd, func(ctx context.Context, c *client.Client) ([]client.SmartTest, error) {
		return c.ListTests(ctx, a.cfg.Org)
	},
		func(t client.SmartTest) string { return t.Name })
}

// smartTestRunFlags are the flags of `smart-test run`.
type smartTestRunFlags struct {
	sandbox, routeGroup, file, test, runnerGroup, runTimeout string
	publish, noWait, noFail, noDiff                          bool
	timeout                                                  time.Duration
}

func (a *App) smartTestRunCommand() *cobra.Command {
	var f smartTestRunFlags
	run := &cobra.Command{
		Use:   "run (--sandbox NAME | --route-group NAME) (-f FILE.star | --test NAME) [--runner-group G] [--publish] [--timeout D] [--no-wait]",
		Short: "Run a smart test against a sandbox and the baseline; print its checks and traffic-diff findings",
		Long: `Run a smart test against a sandbox (or route group) and twice against the
baseline, wait until the execution finishes (its phase changes on stderr),
and print the checks of both sides and the findings of the traffic diff.

-f FILE.star applies the script as the test adhoc-<file name without
extension> first (lowercased, other characters than a-z, 0-9 and - made -),
in --runner-group (default: the existing test's runner group, else the
org's only job runner group). --test NAME runs an applied test.

Exit codes: 0 the sandbox's checks passed and there is no red finding;
8 a sandbox check failed or a red finding exists (--no-fail: 0);
1 the execution failed (its script or job) or was canceled;
4 --timeout passed (the execution keeps running; see smart-test execution
get ID); 2 bad flags or a request the control plane refused (e.g. no such
sandbox); 3 the test does not exist.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.smartTestRun(cmd.Context(), f) },
	}
	fl := run.Flags()
	fl.StringVar(&f.sandbox, "sandbox", "", "the sandbox to test (its routing key on the target run's requests)")
	fl.StringVar(&f.routeGroup, "route-group", "", "a route group to test instead of a sandbox")
	fl.StringVarP(&f.file, "filename", "f", "", "Starlark file to apply as the test adhoc-<name> and run")
	fl.StringVar(&f.test, "test", "", "an applied test to run")
	fl.StringVar(&f.runnerGroup, "runner-group", "", "the job runner group of the ad-hoc test of -f")
	fl.BoolVar(&f.publish, "publish", false, "count the execution in the sandbox's status (status.testExecutions)")
	fl.StringVar(&f.runTimeout, "run-timeout", "", "bound of each of the script's runs, e.g. 2m (default the test's defaultTimeout)")
	fl.BoolVar(&f.noDiff, "no-diff", false, "skip the traffic diff (executionContext.autoDiff.enabled=false)")
	fl.DurationVar(&f.timeout, "timeout", 30*time.Minute, "how long to wait for the execution to finish (exit code 4 after it)")
	fl.BoolVar(&f.noWait, "no-wait", false, "print the execution's id and return")
	fl.BoolVar(&f.noFail, "no-fail", false, "exit 0 when the execution finished even with failed checks or red findings")
	_ = run.MarkFlagFilename("filename", "star")
	_ = run.RegisterFlagCompletionFunc("test", a.completeSmartTests)
	_ = run.RegisterFlagCompletionFunc("sandbox", a.completeSandboxes)
	return run
}

// AdhocTestName is the name `smart-test run -f path` gives its test.
func AdhocTestName(path string) string {
	base := strings.ToLower(strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)))
	var b strings.Builder
	for _, r := range base {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	name := strings.Trim(AdhocTestPrefix+b.String(), "-")
	if len(name) > apitypes.MaxSmartTestNameLen {
		name = strings.TrimRight(name[:apitypes.MaxSmartTestNameLen], "-")
	}
	return name
}

func (a *App) smartTestRun(ctx context.Context, f smartTestRunFlags) error {
	switch {
	case f.sandbox == "" && f.routeGroup == "":
		return usageErrorf("--sandbox or --route-group is required: what the test runs against")
	case f.sandbox != "" && f.routeGroup != "":
		return usageErrorf("--sandbox %s and --route-group %s: give one", f.sandbox, f.routeGroup)
	case f.file == "" && f.test == "":
		return usageErrorf("-f FILE.star or --test NAME is required: the test to run")
	case f.file != "" && f.test != "":
		return usageErrorf("-f %s and --test %s: give one", f.file, f.test)
	case f.test != "" && f.runnerGroup != "":
		return usageErrorf("--runner-group goes with -f (the test %s has its runner group)", f.test)
	case f.timeout <= 0:
		return usageErrorf("--timeout %s: want a positive duration", f.timeout)
	}
	if fe := apitypes.ValidateTestTimeout("--run-timeout", f.runTimeout); fe != nil {
		return usageErrorf("%s %s", fe.Path, fe.Message)
	}
	c, err := a.setup(true)
	if err != nil {
		return err
	}
	name := f.test
	if f.file != "" {
		if name, err = a.applyAdhocTest(ctx, c, f.file, f.runnerGroup); err != nil {
			return err
		}
	}
	spec := apitypes.TestExecutionSpec{ExecutionContext: apitypes.TestExecutionContext{
		Routing: &apitypes.TestExecutionRouting{Sandbox: f.sandbox, RouteGroup: f.routeGroup},
		Publish: f.publish, Timeout: f.runTimeout,
	}}
	if f.noDiff {
		spec.ExecutionContext.AutoDiff = &apitypes.SmartTestAutoDiff{Enabled: false}
	}
	ex, err := c.CreateTestExecution(ctx, a.cfg.Org, name, spec)
	if err != nil {
		return a.explain(err, "run smart test "+name)
	}
	target := executionTarget(ex)
	if f.noWait {
		if ok, err := a.structured(a.Stdout, ex); ok {
			return err
		}
		fmt.Fprintf(a.Stdout, "execution %s of smart test %s created (%s)\n", ex.ID, name, target)
		fmt.Fprintf(a.Stdout, "check it with `sandboxmesh smart-test execution get %s`\n", ex.ID)
		return nil
	}
	fmt.Fprintf(a.Stderr, "execution %s of smart test %s created (%s, job %s)\n", ex.ID, name, target, ex.Status.Job)
	ex, err = a.waitExecution(ctx, c, ex, f.timeout)
	if err != nil {
		return err
	}
	findings, err := a.executionFindings(ctx, c, ex)
	if err != nil {
		return err
	}
	if ok, err := a.structured(a.Stdout, executionReport{Execution: ex, Findings: findings}); ok {
		if err != nil {
			return err
		}
	} else if err := a.printExecution(a.Stdout, ex, findings); err != nil {
		return err
	}
	return executionOutcome(ex, findings, f.noFail)
}

// executionReport is `smart-test run -o json` and `execution get -o json`.
type executionReport struct {
	Execution *client.TestExecution       `json:"execution"`
	Findings  []client.TrafficDiffFinding `json:"findings"`
}

// applyAdhocTest applies the Starlark file path as the test adhoc-<name>.
func (a *App) applyAdhocTest(ctx context.Context, c *client.Client, path, runnerGroup string) (string, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return "", usageErrorf("read test script: %v", err)
	}
	name := AdhocTestName(path)
	if fe := apitypes.ValidateSmartTestName("name", name); fe != nil {
		return "", usageErrorf("-f %s: the test name %s derived from it: %s", path, name, fe.Message)
	}
	t := &client.SmartTest{Name: name, Spec: apitypes.SmartTestSpec{Script: string(src), RunnerGroup: runnerGroup}}
	if runnerGroup == "" {
		old, err := c.GetTest(ctx, a.cfg.Org, name)
		switch {
		case errors.Is(err, client.ErrNotFound):
			rgs, lerr := c.ListRunnerGroups(ctx, a.cfg.Org)
			if lerr != nil {
				return "", a.explain(lerr, "list job runner groups")
			}
			if len(rgs) != 1 {
				return "", usageErrorf("--runner-group is required with -f: the test %s does not exist yet and org %s has %d job runner groups (name the one whose pods run it; `sandboxmesh jobrunnergroup list`)", name, a.cfg.Org, len(rgs))
			}
			t.Spec.RunnerGroup = rgs[0].Name
			fmt.Fprintf(a.Stderr, "runner group %s (the org's only one) runs the test %s\n", rgs[0].Name, name)
		case err != nil:
			return "", a.explain(err, "smart test "+name)
		default:
			t.Spec = old.Spec
			t.Spec.Script = string(src)
		}
	}
	if errs := apitypes.ValidateSmartTestSpec(&t.Spec); len(errs) > 0 {
		return "", fieldErrors(path, errs)
	}
	out, err := c.ApplyTest(ctx, a.cfg.Org, t)
	if err != nil {
		return "", a.explain(err, "apply smart test "+name+" from "+path)
	}
	fmt.Fprintf(a.Stderr, "smart test %s applied from %s (version %d)\n", out.Name, path, out.Version)
	return out.Name, nil
}

func testPhaseEnded(p string) bool {
	return p == apitypes.TestPhaseSucceeded || p == apitypes.TestPhaseFailed || p == apitypes.TestPhaseCanceled
}

// waitExecution polls an execution until it finished, printing its phase
// changes on stderr.
func (a *App) waitExecution(ctx context.Context, c *client.Client, ex *client.TestExecution, timeout time.Duration) (*client.TestExecution, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	interval := a.WaitInterval
	if interval <= 0 {
		interval = time.Second
	}
	start := a.now()
	last := ex.Status.Phase
	fmt.Fprintf(a.Stderr, "execution %s %s\n", ex.ID, last)
	for !testPhaseEnded(ex.Status.Phase) {
		select {
		case <-wctx.Done():
		case <-time.After(interval):
		}
		if wctx.Err() != nil {
			if errors.Is(wctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				return nil, withCode(ExitTimeout, fmt.Errorf("execution %s is still %s after %s; it keeps running: check it with `sandboxmesh smart-test execution get %s`, stop it with `sandboxmesh smart-test execution cancel %s`",
					ex.ID, ex.Status.Phase, timeout, ex.ID, ex.ID))
			}
			return nil, withCode(ExitError, fmt.Errorf("wait for execution %s: %w (it keeps running)", ex.ID, errInterrupted))
		}
		next, err := c.GetTestExecution(wctx, a.cfg.Org, ex.ID)
		if err != nil {
			if wctx.Err() != nil {
				continue
			}
			return nil, a.explain(err, "execution "+ex.ID)
		}
		ex = next
		if ex.Status.Phase != last {
			last = ex.Status.Phase
			fmt.Fprintf(a.Stderr, "execution %s %s after %s\n", ex.ID, last, humanDuration(a.now().Sub(start)))
		}
	}
	if fs := ex.Status.FinalState; fs != nil && fs.Message != "" {
		fmt.Fprintf(a.Stderr, "%s\n", fs.Message)
	}
	return ex, nil
}

// executionFindings reads the red and yellow findings of a finished
// execution with a traffic diff (none otherwise).
func (a *App) executionFindings(ctx context.Context, c *client.Client, ex *client.TestExecution) ([]client.TrafficDiffFinding, error) {
	if ex.Results == nil || ex.Results.TrafficDiff == nil || !testPhaseEnded(ex.Status.Phase) {
		return []client.TrafficDiffFinding{}, nil
	}
	fs, err := c.GetTrafficDiffFindings(ctx, a.cfg.Org, ex.ID, "", 0)
	if errors.Is(err, client.ErrNotFound) {
		return []client.TrafficDiffFinding{}, nil
	}
	if err != nil {
		return nil, a.explain(err, "findings of execution "+ex.ID)
	}
	if fs == nil {
		fs = []client.TrafficDiffFinding{}
	}
	return fs, nil
}

// ExitTestFailed is the exit code of `smart-test run` when a check of the
// sandbox side failed or the traffic diff has a red finding.
const ExitTestFailed = 8

// executionOutcome is a finished execution's exit status for the CLI.
func executionOutcome(ex *client.TestExecution, fs []client.TrafficDiffFinding, noFail bool) error {
	msg := ""
	if ex.Status.FinalState != nil {
		msg = ": " + ex.Status.FinalState.Message
	}
	if ex.Status.Phase != apitypes.TestPhaseSucceeded {
		return withCode(ExitError, fmt.Errorf("execution %s %s%s", ex.ID, ex.Status.Phase, msg))
	}
	if ex.Results == nil {
		return withCode(ExitError, fmt.Errorf("execution %s succeeded without results%s", ex.ID, msg))
	}
	failed, _ := countChecks(ex.Results.Checks.Sandbox)
	red := 0
	for _, f := range fs {
		if f.Category == diff.Red {
			red++
		}
	}
	if (failed > 0 || red > 0) && !noFail {
		return withCode(ExitTestFailed, fmt.Errorf("execution %s: %d failed sandbox check(s), %d red finding(s)", ex.ID, failed, red))
	}
	return nil
}

func countChecks(cs []apitypes.TestCheck) (failed, passed int) {
	for _, c := range cs {
		if len(c.Errors) > 0 {
			failed++
		} else {
			passed++
		}
	}
	return failed, passed
}

func executionTarget(ex *client.TestExecution) string {
	if r := ex.Spec.ExecutionContext.Routing; r != nil {
		if r.Sandbox != "" {
			return "sandbox " + r.Sandbox
		}
		if r.RouteGroup != "" {
			return "route group " + r.RouteGroup
		}
	}
	return ""
}

func (a *App) smartTestExecutionCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "execution", Aliases: []string{"executions", "exec", "ex"}, Short: "Inspect, list, cancel smart test executions and read their traffic diffs"})
	get := &cobra.Command{
		Use:   "get ID",
		Short: "Show an execution: phase, checks of both sides, findings",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			ex, err := c.GetTestExecution(cmd.Context(), a.cfg.Org, args[0])
			if err != nil {
				return a.explain(err, "execution "+args[0])
			}
			fs, err := a.executionFindings(cmd.Context(), c, ex)
			if err != nil {
				return err
			}
			if ok, err := a.structured(a.Stdout, executionReport{Execution: ex, Findings: fs}); ok {
				return err
			}
			return a.printExecution(a.Stdout, ex, fs)
		},
	}
	var (
		pages  pageFlags
		filter client.TestExecutionFilter
	)
	list := &cobra.Command{
		Use:     "list [--test NAME] [--sandbox NAME]",
		Aliases: []string{"ls"},
		Short:   "List executions, oldest first",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			exs, err := listItems(a, cmd, pages, func() ([]client.TestExecution, error) {
				return c.ListTestExecutions(cmd.Context(), a.cfg.Org, filter)
			}, func(p client.PageOptions) (*client.Page[client.TestExecution], error) {
				return c.ListTestExecutionsPage(cmd.Context(), a.cfg.Org, filter, p)
			})
			if err != nil {
				return a.explain(err, "list executions")
			}
			if ok, err := a.structured(a.Stdout, exs); ok {
				return err
			}
			if len(exs) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No smart test executions in org %s.\n", a.cfg.Org)
				return err
			}
			return a.printExecutions(a.Stdout, exs)
		},
	}
	list.Flags().StringVar(&filter.Test, "test", "", "only executions of this test (also of a deleted one)")
	_ = list.RegisterFlagCompletionFunc("test", a.completeSmartTests)
	list.Flags().StringVar(&filter.Sandbox, "sandbox", "", "only executions against this sandbox")
	pages.add(list)

	cancel := cancelCommand(a, "cancel ID...", "execution", "Cancel executions (their jobs are canceled)",
		func(ctx context.Context, c *client.Client, id string) (*client.TestExecution, string, error) {
			ex, err := c.CancelTestExecution(ctx, a.cfg.Org, id)
			if err != nil {
				return nil, "", err
			}
			return ex, ex.Status.Phase, nil
		})
	var (
		category string
		max      int
	)
	diffCmd := &cobra.Command{
		Use:   "diff ID [--category red|yellow] [--max N]",
		Short: "Show the findings of an execution's traffic diff, most relevant first (-o json: the whole diff)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if category != "" && category != string(diff.Red) && category != string(diff.Yellow) {
				return usageErrorf("--category %q: want red or yellow", category)
			}
			if max < 0 {
				return usageErrorf("--max %d: want 0 (all) or more", max)
			}
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			if a.flags.output == outJSON || a.flags.output == outYAML {
				if category == "" && max == 0 {
					d, err := c.GetTrafficDiff(cmd.Context(), a.cfg.Org, args[0])
					if err != nil {
						return a.explain(err, "traffic diff of execution "+args[0])
					}
					_, err = a.structured(a.Stdout, d)
					return err
				}
			}
			fs, err := c.GetTrafficDiffFindings(cmd.Context(), a.cfg.Org, args[0], category, max)
			if err != nil {
				return a.explain(err, "traffic diff of execution "+args[0])
			}
			if fs == nil {
				fs = []client.TrafficDiffFinding{}
			}
			if ok, err := a.structured(a.Stdout, fs); ok {
				return err
			}
			if len(fs) == 0 {
				_, err := fmt.Fprintf(a.Stdout, "No findings in the traffic diff of execution %s.\n", args[0])
				return err
			}
			return printFindings(a.Stdout, fs)
		},
	}
	diffCmd.Flags().StringVar(&category, "category", "", "only red or yellow findings (default both)")
	diffCmd.Flags().IntVar(&max, "max", 0, "at most N findings (0: all)")
	cmd.AddCommand(get, list, cancel, diffCmd)
	return cmd
}

func (a *App) printSmartTests(w io.Writer, ts []client.SmartTest) error {
	tw := newTable(w, "NAME", "RUNNER GROUP", "DEFAULT TIMEOUT", "TRIGGERS", "VERSION", "AGE")
	for _, t := range ts {
		row(tw, t.Name, t.Spec.RunnerGroup, t.Spec.DefaultTimeout, fmt.Sprint(len(t.Spec.Triggers)), fmt.Sprint(t.Version), a.age(t.CreatedAt))
	}
	return tw.Flush()
}

func (a *App) printExecutions(w io.Writer, exs []client.TestExecution) error {
	tw := newTable(w, "ID", "TEST", "TARGET", "PHASE", "CHECKS", "RED", "YELLOW", "AGE")
	for i := range exs {
		ex := &exs[i]
		checks, red, yellow := "", "", ""
		if r := ex.Results; r != nil {
			failed, passed := countChecks(r.Checks.Sandbox)
			checks = fmt.Sprintf("%d/%d passed", passed, passed+failed)
			if d := r.TrafficDiff; d != nil {
				red = fmt.Sprint(d.Red.Additions + d.Red.Removals + d.Red.Replacements)
				yellow = fmt.Sprint(d.Yellow.Additions + d.Yellow.Removals + d.Yellow.Replacements)
			}
		}
		row(tw, ex.ID, ex.TestName, strings.Replace(strings.Replace(executionTarget(ex), "route group ", "routegroup/", 1), "sandbox ", "sandbox/", 1), ex.Status.Phase, checks, red, yellow, a.age(ex.CreatedAt))
	}
	return tw.Flush()
}

// printExecution prints an execution, the checks of both sides and the findings.
func (a *App) printExecution(w io.Writer, ex *client.TestExecution, fs []client.TrafficDiffFinding) error {
	if err := a.printExecutions(w, []client.TestExecution{*ex}); err != nil {
		return err
	}
	if fs := ex.Status.FinalState; fs != nil && fs.Message != "" {
		fmt.Fprintf(w, "\nFinal state: %s\n", fs.Message)
	}
	r := ex.Results
	if r == nil {
		return nil
	}
	if len(r.Runs) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w, "RUN", "REQUESTS", "CAPTURES", "PASSED", "ERROR")
		for _, run := range r.Runs {
			row(tw, run.Name, fmt.Sprint(run.Requests), fmt.Sprint(run.Captures), fmt.Sprint(run.Passed), firstLineOf(run.Error))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	tw := newTable(w, "SIDE", "CHECK", "STATUS", "ERRORS")
	for _, side := range []struct {
		name   string
		checks []apitypes.TestCheck
	}{{"sandbox", r.Checks.Sandbox}, {"baseline", r.Checks.Baseline}} {
		for _, c := range side.checks {
			if len(c.Errors) == 0 {
				row(tw, side.name, c.Name, "passed", "")
				continue
			}
			for i, e := range c.Errors {
				status := "failed"
				if i > 0 {
					status = ""
				}
				p := e.SourcePosition
				row(tw, side.name, c.Name, status, fmt.Sprintf("%s:%d: %s", p.File, p.Line, firstLineOf(e.Message)))
			}
		}
	}
	if len(r.Checks.Sandbox)+len(r.Checks.Baseline) == 0 {
		row(tw, "", "(no checks)", "", "")
	}
	tw.Flush()
	fmt.Fprintln(w)
	if r.TrafficDiff == nil {
		_, err := fmt.Fprintln(w, "No traffic diff (autoDiff disabled).")
		return err
	}
	d := r.TrafficDiff
	fmt.Fprintf(w, "Traffic diff: %d captures, %d red, %d yellow, %d green (noise) ops, %d unpaired captures\n", d.Captures,
		d.Red.Additions+d.Red.Removals+d.Red.Replacements, d.Yellow.Additions+d.Yellow.Removals+d.Yellow.Replacements,
		d.Green.Additions+d.Green.Removals+d.Green.Replacements, d.UnpairedCaptures)
	if len(fs) == 0 {
		_, err := fmt.Fprintln(w, "No findings.")
		return err
	}
	fmt.Fprintln(w)
	return printFindings(w, fs)
}

// maxValueWidth bounds a value in the findings table (-o json shows all).
const maxValueWidth = 40

func printFindings(w io.Writer, fs []client.TrafficDiffFinding) error {
	tw := newTable(w, "CATEGORY", "POINT", "CAPTURE", "PATH", "OP", "CHANGE", "FROM")
	for _, f := range fs {
		change := ""
		switch f.Op {
		case diff.OpAdd:
			change = "+ " + clip(string(f.Value))
		case diff.OpRemove:
			change = "- " + clip(string(f.OldValue))
		default:
			change = clip(string(f.OldValue)) + " → " + clip(string(f.Value))
		}
		capture := f.Name
		if f.Occurrence > 0 {
			capture = fmt.Sprintf("%s#%d", f.Name, f.Occurrence)
		}
		from := "-" // the change shows first here
		if f.PropagatedFrom != nil {
			from = f.PropagatedFrom.String()
		}
		row(tw, string(f.Category), f.Point.String(), capture, f.Path, string(f.Op), change, from)
	}
	return tw.Flush()
}

func clip(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxValueWidth {
		return string(r[:maxValueWidth-1]) + "…"
	}
	return s
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// loadSmartTest reads, renders, decodes and validates a smart test spec
// file ({name, spec}); script (a .star file) fills spec.script and
// runnerGroup spec.runnerGroup.
func (a *App) loadSmartTest(path string, sets []string, script, runnerGroup string) (*client.SmartTest, error) {
	data, name, err := a.readSpec(path, sets)
	if err != nil {
		return nil, err
	}
	var t apitypes.SmartTest
	if _, err := decodeSpec(data, name, &t, apitypes.SmartTestWireRules); err != nil {
		return nil, err
	}
	if script != "" {
		src, err := os.ReadFile(script)
		if err != nil {
			return nil, usageErrorf("read --script: %v", err)
		}
		t.Spec.Script = string(src)
	}
	if runnerGroup != "" {
		t.Spec.RunnerGroup = runnerGroup
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateSmartTestName("name", t.Name); fe != nil {
		errs = append(errs, *fe)
	}
	spec := t.Spec
	spec.Triggers = append([]apitypes.SmartTestTrigger(nil), t.Spec.Triggers...)
	spec.Default()
	errs = append(errs, apitypes.ValidateSmartTestSpec(&spec)...)
	if len(errs) > 0 {
		return nil, fieldErrors(name, errs)
	}
	return &client.SmartTest{Name: t.Name, Spec: t.Spec}, nil
}
