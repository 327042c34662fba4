// Command sandboxmesh-runner is the in-cluster job runner of a
// JobRunnerGroup (package controlplane/runner does the work):
//
//	sandboxmesh-runner install DIR   copy this binary to DIR/sandboxmesh-runner (init container)
//	sandboxmesh-runner run           claim and run the group's jobs (configured by environment)
//	sandboxmesh-runner step          run one step of a resource plugin (SANDBOXMESH_STEP)
//	sandboxmesh-runner smarttest     run a smart test against the sandbox and twice against the baseline
//
// It is a static binary so that it runs in any job image.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sandboxmesh/sandboxmesh/controlplane/runner"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
)

// exitError makes the process exit with this code (a step's exit code, or smarttest's 1 and 2).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("the step failed (exit code %d)", int(e)) }

const usage = `usage:
  sandboxmesh-runner install DIR   copy this binary to DIR/sandboxmesh-runner (mode 0755)
  sandboxmesh-runner run           claim and run jobs; environment:
      SANDBOXMESH_CONTROL_PLANE_URL, SANDBOXMESH_ORG, SANDBOXMESH_RUNNER_GROUP,
      SANDBOXMESH_RUNNER_TOKEN, POD_NAME, POD_NAMESPACE
      (optional: SANDBOXMESH_RUNNER_WORK_DIR, SANDBOXMESH_LOG_LEVEL)
  sandboxmesh-runner step          run one step of a resource plugin: the step (JSON) in
      SANDBOXMESH_STEP, inputs in /sandboxmesh/inputs, outputs to the termination log
      (SANDBOXMESH_TERMINATION_LOG, default /dev/termination-log); exits with the script's code
  sandboxmesh-runner smarttest     run a smart test (Starlark) once against the sandbox and twice against
      the baseline; environment: SANDBOXMESH_SMARTTEST_SCRIPT (the script, at most 256 KiB),
      SANDBOXMESH_SMARTTEST_EXECUTION (the execution id), SANDBOXMESH_ROUTING_KEY
      (optional: SANDBOXMESH_SMARTTEST_FILENAME, default test.star; SANDBOXMESH_SMARTTEST_TIMEOUT per run,
      e.g. 2m; SANDBOXMESH_JOB_NAME and POD_NAMESPACE name the capture point).
      Writes smarttest-report.json (0600) in the working folder and prints a summary; exits 0 when
      every run ran to its end (failed checks are results), 1 on a script error, 2 on bad configuration
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	var code exitError
	if errors.As(err, &code) {
		os.Exit(int(code))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sandboxmesh-runner:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no subcommand")
	}
	switch args[0] {
	case "install":
		if len(args) != 2 || args[1] == "" {
			fmt.Fprint(stderr, usage)
			return fmt.Errorf("install takes one folder")
		}
		dst, err := runner.Install(args[1])
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "installed", dst)
		return nil
	case "run":
		if len(args) != 1 {
			fmt.Fprint(stderr, usage)
			return fmt.Errorf("run takes no arguments")
		}
		var lvl slog.Level
		if v := getenv("SANDBOXMESH_LOG_LEVEL"); v != "" {
			if err := lvl.UnmarshalText([]byte(v)); err != nil {
				return fmt.Errorf("SANDBOXMESH_LOG_LEVEL: %w", err)
			}
		}
		cfg, err := runner.ConfigFromEnv(getenv)
		if err != nil {
			return err
		}
		cfg.Log = slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lvl}))
		r, err := runner.New(cfg)
		if err != nil {
			return err
		}
		return r.Run(ctx)
	case "step":
		if len(args) != 1 {
			fmt.Fprint(stderr, usage)
			return fmt.Errorf("step takes no arguments")
		}
		spec, err := runner.StepSpecFromEnv(getenv)
		if err != nil {
			return err
		}
		t := runner.RunStep(ctx, runner.StepConfig{Spec: spec, Stdout: stdout, Stderr: stderr})
		if err := runner.WriteStepTermination(getenv(v1alpha1.EnvTerminationLog), t); err != nil {
			return fmt.Errorf("termination log: %w", err)
		}
		if t.ExitCode != 0 {
			return exitError(t.ExitCode)
		}
		return nil
	case "smarttest":
		if len(args) != 1 {
			fmt.Fprint(stderr, usage)
			return exitWith(2, stderr, fmt.Errorf("smarttest takes no arguments"))
		}
		return smartTest(ctx, stdout, stderr, getenv)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}

// exitWith prints err and exits with code.
func exitWith(code int, stderr io.Writer, err error) error {
	fmt.Fprintln(stderr, "sandboxmesh-runner:", err)
	return exitError(code)
}

// smartTest is `sandboxmesh-runner smarttest`: exit 0 when all runs ran to their end, 1 on a script error
// (or when the report cannot be written), 2 on bad configuration.
func smartTest(ctx context.Context, stdout, stderr io.Writer, getenv func(string) string) error {
	cfg, err := executor.ConfigFromEnv(getenv)
	if err != nil {
		return exitWith(2, stderr, err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, execErr := executor.Execute(ctx, cfg)
	if rep == nil { // only for an invalid Config, which ConfigFromEnv already refused
		return exitWith(2, stderr, execErr)
	}
	if err := executor.WriteSummary(stdout, rep); err != nil {
		return exitWith(1, stderr, err)
	}
	path, err := executor.WriteReport(".", rep)
	if err != nil {
		return exitWith(1, stderr, err)
	}
	fmt.Fprintln(stdout, "report written to", path)
	switch {
	case execErr != nil:
		return exitWith(1, stderr, execErr)
	case rep.HasErrors():
		return exitWith(1, stderr, errors.New("the script failed in at least one run (see above)"))
	}
	return nil
}
