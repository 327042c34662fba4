package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testConfig returns a Config whose state folder (with its logs folder) is a
// temporary directory: enough to start and supervise processes without root.
func testConfig(t *testing.T) Config {
	t.Helper()
	c := Config{StateDir: t.TempDir()}
	c.setDefaults()
	if err := os.MkdirAll(c.path("logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return c
}

// script writes an executable shell script named name into a temporary folder.
func script(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantComponentError checks that err holds a ComponentError for component
// whose log is logPath, and that the message names both.
func wantComponentError(t *testing.T, err error, component, logPath string) *ComponentError {
	t.Helper()
	var ce *ComponentError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) holds no *ComponentError", err, err)
	}
	if ce.Component != component || ce.Log != logPath {
		t.Errorf("ComponentError{Component: %q, Log: %q}, want %q, %q", ce.Component, ce.Log, component, logPath)
	}
	msg := err.Error()
	for _, want := range []string{component + " failed", "(log: " + logPath + ")"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not contain %q:\n%s", want, msg)
		}
	}
	return ce
}

// TestComponentExitsDuringStartup: a component that writes an error to its
// log and exits 1 is reported, as Up reports it, with its name, its log path
// and the log's last lines.
func TestComponentExitsDuringStartup(t *testing.T) {
	c := testConfig(t)
	bin := script(t, "kube-apiserver", "echo 'E0101 run.go:72] failed to listen on 10.244.0.1:6443: bind: address already in use' >&2\nexit 1\n")
	p, err := c.start("kube-apiserver", bin, []string{"--secure-port=6443"}, nil)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	if p.Log != c.logPath("kube-apiserver") {
		t.Errorf("Process.Log = %q, want %q", p.Log, c.logPath("kube-apiserver"))
	}
	never := func(context.Context) error { return errors.New("connection refused") }
	err = waitFor(context.Background(), p, 30*time.Second, never)
	if err == nil {
		t.Fatal("waitFor = nil for a component that exited")
	}
	err = fmt.Errorf("up: %w", err) // as Up returns it
	wantComponentError(t, err, "kube-apiserver", c.logPath("kube-apiserver"))
	for _, want := range []string{"exited during start-up", "connection refused", "--- last lines of " + c.logPath("kube-apiserver") + " ---", "bind: address already in use"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%s", want, err)
		}
	}
}

// TestComponentBinaryMissing: a component whose binary does not exist fails
// at start with a ComponentError that names it and keeps the cause.
func TestComponentBinaryMissing(t *testing.T) {
	c := testConfig(t)
	bin := filepath.Join(t.TempDir(), "kubelet")
	_, err := c.start("kubelet", bin, nil, nil)
	if err == nil {
		t.Fatal("start of a missing binary succeeded")
	}
	wantComponentError(t, err, "kubelet", c.logPath("kubelet"))
	if !strings.Contains(err.Error(), bin) {
		t.Errorf("error does not name the binary %s: %v", bin, err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
	}
}

// TestComponentNotHealthy: a component that runs but never passes its check
// is reported with the timeout and the last check error.
func TestComponentNotHealthy(t *testing.T) {
	c := testConfig(t)
	bin := script(t, "kube-scheduler", "echo starting\nexec sleep 60\n")
	p, err := c.start("kube-scheduler", bin, nil, nil)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { stop(p, time.Second) })
	err = waitFor(context.Background(), p, 300*time.Millisecond, func(context.Context) error { return errors.New("GET /healthz: 503") })
	wantComponentError(t, err, "kube-scheduler", c.logPath("kube-scheduler"))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "GET /healthz: 503") {
		t.Errorf("error lacks the timeout or the last check: %v", err)
	}
	if !p.Alive() {
		t.Error("waitFor must not stop a component that is still running")
	}
}

// TestComponentErrorLogTail: only the log's last 12 lines are quoted, and a
// missing log leaves the message without a tail.
func TestComponentErrorLogTail(t *testing.T) {
	dir := t.TempDir()
	logPath := filepath.Join(dir, "etcd.log")
	var b strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(logPath, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	msg := (&ComponentError{Component: "etcd", Log: logPath, Err: errors.New("boom")}).Error()
	if !strings.Contains(msg, "line 9\nline 10") || !strings.HasSuffix(msg, "line 20") || strings.Contains(msg, "line 8\n") {
		t.Errorf("tail is not the last 12 lines:\n%s", msg)
	}
	msg = (&ComponentError{Component: "etcd", Log: filepath.Join(dir, "none.log"), Err: errors.New("boom")}).Error()
	if want := "etcd failed: boom (log: " + filepath.Join(dir, "none.log") + ")"; msg != want {
		t.Errorf("Error() = %q, want %q", msg, want)
	}
}

// TestK8sBuildFailure: a failing hack/k8s-build.sh is reported as a
// ComponentError naming the script and its log, which holds the script's output.
func TestK8sBuildFailure(t *testing.T) {
	c := testConfig(t)
	c.RepoDir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(c.RepoDir, "hack"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.RepoDir, "hack", "k8s-build.sh"), []byte(">&2 echo '>> building kube-apiserver'\n>&2 echo 'go: k8s.io/kubernetes@v1.37.2: missing go.sum entry'\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cl, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.k8sBinaries(context.Background())
	ce := wantComponentError(t, err, "hack/k8s-build.sh", c.logPath("k8s-build"))
	if ce != nil && !strings.Contains(err.Error(), "missing go.sum entry") {
		t.Errorf("error does not quote the build log:\n%s", err)
	}
}
