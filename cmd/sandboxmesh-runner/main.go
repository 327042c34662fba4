// Command sandboxmesh-runner is the in-cluster job runner of a
// JobRunnerGroup (package controlplane/runner does the work):
//
//	sandboxmesh-runner install DIR   copy this binary to DIR/sandboxmesh-runner (init container)
//	sandboxmesh-runner run           claim and run the group's jobs (configured by environment)
//	sandboxmesh-runner step          run one step of a resource plugin (SANDBOXMESH_STEP)
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
)

// exitError makes the process exit with a step's exit code.
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
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}
