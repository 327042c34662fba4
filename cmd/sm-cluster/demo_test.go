package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Environment of the demo child process (TestMain runs it instead of the tests).
const (
	envDemoChild = "SM_CLUSTER_TEST_DEMO_CHILD" // the folder the fake cluster records its steps in
	envDownFail  = "SM_CLUSTER_TEST_DOWN_FAIL"  // the fake Down fails
	readyLine    = "Press Ctrl-C to stop"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envDemoChild); dir != "" {
		os.Exit(demoChild(dir))
	}
	if os.Getenv(envCtrlLogChild) != "" {
		os.Exit(ctrlLogChild())
	}
	os.Exit(m.Run())
}

// fakeCluster records Up and Down as files in dir. Down writes progress to
// stdout and stderr (as a real tear-down's logs and progress lines do) before
// it finishes.
type fakeCluster struct {
	dir  string
	fail bool
}

func (c fakeCluster) Up(context.Context) (string, error) {
	return filepath.Join(c.dir, "kubeconfig"), os.WriteFile(filepath.Join(c.dir, "up"), nil, 0o644)
}

func (c fakeCluster) Down(context.Context) error {
	for i := range 50 {
		fmt.Fprintf(os.Stdout, "down: step %d\n", i)
		fmt.Fprintf(os.Stderr, "down: step %d\n", i)
		time.Sleep(2 * time.Millisecond)
	}
	if c.fail {
		return errors.New("bridge smbr0 still there")
	}
	return os.WriteFile(filepath.Join(c.dir, "down-complete"), nil, 0o644)
}

// demoChild runs `sm-cluster demo` through execute (signals, SIGPIPE, exit
// code) with a fake cluster and an install step that prints what to try.
func demoChild(dir string) int {
	newRun := func(f *flags, _ []string, keep bool) (demoRun, error) {
		return demoRun{
			cluster: fakeCluster{dir: dir, fail: os.Getenv(envDownFail) != ""}, keep: keep, progress: os.Stderr,
			teardownLog: filepath.Join(f.stateDir, "logs", "demo-teardown.log"),
			install: func(_ context.Context, kubeconfig string) error {
				fmt.Fprintln(os.Stderr, ">> installed into", kubeconfig)
				fmt.Fprintln(os.Stdout, readyLine)
				return nil
			},
		}, nil
	}
	return execute(newRoot(newRun), []string{"demo", "--state-dir", filepath.Join(dir, "state")}, os.Stderr)
}

// TestDemoTeardownSurvivesClosedPipes is `make demo 2>&1 | tee demo.log` and
// Ctrl-C, which kills tee too: the demo's stdout and stderr are pipes whose
// reader is gone when the tear-down writes its progress. The tear-down must
// still run to the end; when it cannot complete, the demo exits non-zero and
// the tear-down log names the clean-up command.
func TestDemoTeardownSurvivesClosedPipes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		downFail bool
		wantCode int
	}{
		{"down succeeds", false, 0},
		{"down fails", true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), envDemoChild+"="+dir)
			if tc.downFail {
				cmd.Env = append(cmd.Env, envDownFail+"=1")
			}
			outR, outW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			errR, errW, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout, cmd.Stderr = outW, errW
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			outW.Close()
			errW.Close()
			var stderr bytes.Buffer
			errDone := make(chan struct{})
			go func() { // like tee: read until killed
				defer close(errDone)
				_, _ = io.Copy(&stderr, errR)
			}()
			sc := bufio.NewScanner(outR)
			for sc.Scan() && !strings.Contains(sc.Text(), readyLine) {
			}
			if sc.Err() != nil {
				t.Fatalf("reading the demo's stdout: %v", sc.Err())
			}
			// Ctrl-C: tee dies (both pipes lose their reader), the demo gets SIGINT.
			outR.Close()
			errR.Close()
			<-errDone
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			waitErr := make(chan error, 1)
			go func() { waitErr <- cmd.Wait() }()
			select {
			case err = <-waitErr:
			case <-time.After(2 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("demo did not exit after SIGINT; stderr so far:\n%s", stderr.String())
			}
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				t.Fatalf("demo killed by %v during the tear-down (stderr before the pipe closed:\n%s)", ws.Signal(), stderr.String())
			}
			if code := cmd.ProcessState.ExitCode(); code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			if _, err := os.Stat(filepath.Join(dir, "up")); err != nil {
				t.Errorf("fake cluster not brought up: %v", err)
			}
			logFile := filepath.Join(dir, "state", "logs", "demo-teardown.log")
			log, _ := os.ReadFile(logFile)
			if !tc.downFail {
				if _, err := os.Stat(filepath.Join(dir, "down-complete")); err != nil {
					t.Errorf("tear-down did not run to the end: %v\nteardown log:\n%s", err, log)
				}
				return
			}
			for _, want := range []string{"tearing down", "tear-down incomplete", "bridge smbr0 still there", "`" + cleanupCommand + "`"} {
				if !strings.Contains(string(log), want) {
					t.Errorf("teardown log %s does not contain %q:\n%s", logFile, want, log)
				}
			}
		})
	}
}

// TestDemoRunTearsDownAfterFailures: a failing or interrupted start tears
// down too; --keep and a KUBECONFIG cluster (no local cluster) do not.
func TestDemoRunTearsDownAfterFailures(t *testing.T) {
	failInstall := func(context.Context, string) error { return errors.New("helm: boom") }
	okInstall := func(context.Context, string) error { return nil }
	for _, tc := range []struct {
		name      string
		local     bool
		keep      bool
		install   func(context.Context, string) error
		cancel    bool
		wantErr   string
		wantDown  bool
		downFails bool
	}{
		{name: "install fails", local: true, install: failInstall, wantErr: "helm: boom", wantDown: true},
		{name: "Ctrl-C after start", local: true, install: okInstall, cancel: true, wantDown: true},
		{name: "Ctrl-C during install", local: true, cancel: true, install: func(ctx context.Context, _ string) error { return ctx.Err() }, wantDown: true},
		{name: "down fails", local: true, install: okInstall, cancel: true, wantDown: false, downFails: true, wantErr: cleanupCommand},
		{name: "keep", local: true, keep: true, install: okInstall, cancel: true},
		{name: "KUBECONFIG cluster", install: okInstall, cancel: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			var progress bytes.Buffer
			r := demoRun{keep: tc.keep, install: tc.install, progress: &progress, teardownLog: filepath.Join(dir, "logs", "demo-teardown.log"), kubeconfig: "kc"}
			if tc.local {
				r.cluster = fakeClusterQuiet{dir: dir, fail: tc.downFails}
			}
			err := r.run(ctx)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("run = %v, want error containing %q", err, tc.wantErr)
			}
			_, statErr := os.Stat(filepath.Join(dir, "down-complete"))
			if got := statErr == nil; got != tc.wantDown {
				t.Errorf("torn down = %v, want %v; progress:\n%s", got, tc.wantDown, progress.String())
			}
		})
	}
}

// fakeClusterQuiet is fakeCluster without output (for in-process tests).
type fakeClusterQuiet struct {
	dir  string
	fail bool
}

func (c fakeClusterQuiet) Up(context.Context) (string, error) { return "kc", nil }

func (c fakeClusterQuiet) Down(context.Context) error {
	if c.fail {
		return errors.New("iptables: busy")
	}
	return os.WriteFile(filepath.Join(c.dir, "down-complete"), nil, 0o644)
}

// TestConfigSetsControllerRuntimeLogger: controller-runtime's global logger
// writes to sm-cluster's logger once the flags are read, so the client the demo
// uses never prints "log.SetLogger(...) was never called" with a stack trace.
// In a child process: controller-runtime takes only the first SetLogger.
func TestConfigSetsControllerRuntimeLogger(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCtrlLogChild+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), ctrlLogProbe) {
		t.Fatalf("controller-runtime's logger does not write to sm-cluster's log; child output:\n%s", out)
	}
	if strings.Contains(string(out), "log.SetLogger") {
		t.Fatalf("controller-runtime complains about its logger:\n%s", out)
	}
}

const (
	envCtrlLogChild = "SM_CLUSTER_TEST_CTRLLOG_CHILD"
	ctrlLogProbe    = "controller-runtime says hello"
)

// ctrlLogChild reads the flags as every command does, then logs through
// controller-runtime's global logger.
func ctrlLogChild() int {
	f := &flags{stateDir: os.TempDir()}
	if _, _, err := f.config(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctrllog.Log.WithName("probe").Info(ctrlLogProbe)
	return 0
}
