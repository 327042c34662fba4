package runner

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// StepConfig configures RunStep: one step of a resource plugin in its pod
// (`sandboxmesh-runner step`; docs/design/resource-plugins.md).
type StepConfig struct {
	// Spec is the step.
	Spec v1alpha1.StepSpec
	// InputsDir holds one file per input key (default v1alpha1.StepInputsDir).
	InputsDir string
	// WorkDir is the script's working folder (default a new temporary one).
	WorkDir string
	// Env is the script's environment before its inputs (default the
	// process's, without EnvStepSpec).
	Env []string
	// Stdout and Stderr receive the script's output as it comes (the pod's
	// log); nil discards.
	Stdout, Stderr io.Writer
	// KillGrace is the wait between SIGTERM and SIGKILL when ctx ends
	// (default DefaultKillGrace).
	KillGrace time.Duration
}

// stepTailLines and stepTailBytes bound the log tail a failed step reports.
const (
	stepTailLines = 20
	stepTailBytes = 2048
)

// StepSpecFromEnv reads the StepSpec in EnvStepSpec.
func StepSpecFromEnv(getenv func(string) string) (v1alpha1.StepSpec, error) {
	var s v1alpha1.StepSpec
	raw := getenv(v1alpha1.EnvStepSpec)
	if raw == "" {
		return s, fmt.Errorf("%s is not set: the operator gives the step to run there", v1alpha1.EnvStepSpec)
	}
	if err := jsonUnmarshalStrict([]byte(raw), &s); err != nil {
		return s, fmt.Errorf("%s: %w", v1alpha1.EnvStepSpec, err)
	}
	if !strings.HasPrefix(s.Script, "#!") {
		return s, fmt.Errorf("%s: the script must start with an interpreter line such as #!/bin/sh", v1alpha1.EnvStepSpec)
	}
	for i, in := range s.Inputs {
		switch {
		case in.Key == "" || strings.ContainsAny(in.Key, "/\x00") || in.Key == "." || in.Key == "..":
			return s, fmt.Errorf("%s: inputs[%d].key %q is not a file name", v1alpha1.EnvStepSpec, i, in.Key)
		case in.Env == "" && in.Path == "":
			return s, fmt.Errorf("%s: inputs[%d] (%s) has neither env nor path", v1alpha1.EnvStepSpec, i, in.Key)
		case in.Path != "" && !filepath.IsAbs(in.Path):
			return s, fmt.Errorf("%s: inputs[%d].path %q is not absolute", v1alpha1.EnvStepSpec, i, in.Path)
		case strings.ContainsAny(in.Env, "=\x00"):
			return s, fmt.Errorf("%s: inputs[%d].env %q is not a variable name", v1alpha1.EnvStepSpec, i, in.Env)
		}
	}
	for i, out := range s.Outputs {
		if out.Name == "" || !filepath.IsAbs(out.Path) {
			return s, fmt.Errorf("%s: outputs[%d] needs a name and an absolute path", v1alpha1.EnvStepSpec, i)
		}
	}
	return s, nil
}

// RunStep runs one step: it gives the script its inputs (environment
// variables and files), runs it in a process group of its own with its
// output passed through, and reads its outputs once it exited 0. The
// returned StepTermination is what the pod's termination message carries:
// the exit code, the outputs, and on failure why and the end of the log.
func RunStep(ctx context.Context, cfg StepConfig) v1alpha1.StepTermination {
	if cfg.InputsDir == "" {
		cfg.InputsDir = v1alpha1.StepInputsDir
	}
	if cfg.KillGrace <= 0 {
		cfg.KillGrace = DefaultKillGrace
	}
	if cfg.Env == nil {
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, v1alpha1.EnvStepSpec+"=") {
				cfg.Env = append(cfg.Env, kv)
			}
		}
	}
	tail := &tailWriter{}
	stdout, stderr := io.MultiWriter(orDiscard(cfg.Stdout), tail), io.MultiWriter(orDiscard(cfg.Stderr), tail)
	fail := func(code int, format string, a ...any) v1alpha1.StepTermination {
		msg := fmt.Sprintf(format, a...)
		fmt.Fprintln(stderr, "sandboxmesh-runner:", msg)
		return v1alpha1.StepTermination{ExitCode: code, Error: msg, LogTail: tail.String()}
	}

	work := cfg.WorkDir
	if work == "" {
		d, err := os.MkdirTemp("", "sandboxmesh-step-")
		if err != nil {
			return fail(1, "work folder: %v", err)
		}
		defer os.RemoveAll(d)
		work = d
	}
	env := append([]string(nil), cfg.Env...)
	for _, in := range cfg.Spec.Inputs {
		v, err := os.ReadFile(filepath.Join(cfg.InputsDir, in.Key))
		if errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(stderr, "sandboxmesh-runner: input %s has no value\n", in.Key)
			continue
		}
		if err != nil {
			return fail(1, "input %s: %v", in.Key, err)
		}
		if in.Env != "" {
			if strings.IndexByte(string(v), 0) >= 0 {
				return fail(1, "input %s holds a NUL byte: it cannot be the environment variable %s (give it as a path)", in.Key, in.Env)
			}
			env = append(env, in.Env+"="+string(v))
		}
		if in.Path != "" {
			if err := os.MkdirAll(filepath.Dir(in.Path), 0o700); err != nil {
				return fail(1, "input %s: %v", in.Key, err)
			}
			if err := os.WriteFile(in.Path, v, 0o600); err != nil {
				return fail(1, "input %s: %v", in.Key, err)
			}
		}
	}
	script := filepath.Join(work, ".sandboxmesh-step")
	if err := os.WriteFile(script, []byte(cfg.Spec.Script), 0o700); err != nil {
		return fail(1, "write the script: %v", err)
	}
	cmd := exec.Command(script)
	cmd.Dir, cmd.Env, cmd.Stdout, cmd.Stderr = work, env, stdout, stderr
	newProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return fail(127, "cannot run the script: %v", err)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_ = signalGroup(cmd.Process.Pid, syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(cfg.KillGrace):
				_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL)
			}
		case <-done:
		}
	}()
	werr := cmd.Wait()
	close(done)
	_ = signalGroup(cmd.Process.Pid, syscall.SIGKILL) // what the script left running goes with it
	if cmd.ProcessState == nil {
		return fail(1, "wait for the script: %v", werr)
	}
	code, sig := exitCode(cmd.ProcessState)
	if code != 0 {
		t := v1alpha1.StepTermination{ExitCode: code, LogTail: tail.String()}
		if sig != "" {
			t.Error = "the script was ended by a signal (" + sig + ")"
		}
		if ctx.Err() != nil {
			t.Error = "the step was stopped (its pod was deleted or timed out)"
		}
		return t
	}
	t := v1alpha1.StepTermination{Outputs: map[string]string{}}
	for _, out := range cfg.Spec.Outputs {
		v, err := os.ReadFile(out.Path)
		if err != nil {
			return fail(1, "output %s: %s was not written: %v", out.Name, out.Path, errors.Unwrap(err))
		}
		s := strings.TrimSuffix(string(v), "\n")
		if !utf8.ValidString(s) {
			s = base64.StdEncoding.EncodeToString([]byte(s))
			t.Binary = append(t.Binary, out.Name)
		}
		t.Outputs[out.Name] = s
	}
	if _, err := v1alpha1.EncodeStepTermination(t); err != nil {
		return fail(1, "outputs: %v", err)
	}
	return t
}

// WriteStepTermination writes t to the termination log (path; default
// /dev/termination-log). A message too large becomes a failure that says so.
func WriteStepTermination(path string, t v1alpha1.StepTermination) error {
	if path == "" {
		path = "/dev/termination-log"
	}
	b, err := v1alpha1.EncodeStepTermination(t)
	for err != nil && len(t.LogTail) > 0 { // keep the verdict, shorten the tail
		t.LogTail = t.LogTail[len(t.LogTail)/2:]
		b, err = v1alpha1.EncodeStepTermination(t)
	}
	if err != nil {
		b, _ = v1alpha1.EncodeStepTermination(v1alpha1.StepTermination{ExitCode: max(t.ExitCode, 1), Error: "the step's outputs do not fit the termination message: " + err.Error()})
	}
	return os.WriteFile(path, b, 0o644)
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// tailWriter keeps the last stepTailLines lines (at most stepTailBytes) of
// what is written to it.
type tailWriter struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4*stepTailBytes {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-stepTailBytes:]...)
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.ToValidUTF8(string(t.buf), "?")
	if len(s) > stepTailBytes {
		s = s[len(s)-stepTailBytes:]
	}
	lines := strings.SplitAfter(s, "\n")
	if n := len(lines); n > stepTailLines+1 {
		lines = lines[n-stepTailLines-1:]
	}
	return strings.ToValidUTF8(strings.Join(lines, ""), "?")
}

// jsonUnmarshalStrict decodes one JSON value into v, refusing unknown
// fields and trailing data.
func jsonUnmarshalStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
