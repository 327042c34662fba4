package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one supervised component, identified by PID and start time so a
// recycled PID is never mistaken for it.
type Process struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"startTime"`
	Log       string   `json:"log"`
	Args      []string `json:"args"`
}

// State is what Up records in <state>/state.json for Status and Down.
type State struct {
	Baseline   HostSnapshot `json:"baseline"`
	Processes  []Process    `json:"processes"`
	Ready      bool         `json:"ready"`
	StartedAt  time.Time    `json:"startedAt"`
	ReadyAfter string       `json:"readyAfter,omitempty"`
}

func (c Config) loadState() (*State, error) {
	b, err := os.ReadFile(c.path("state.json"))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", c.path("state.json"), err)
	}
	return &s, nil
}

func (c Config) saveState(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	tmp := c.path("state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return os.Rename(tmp, c.path("state.json"))
}

// procStartTime returns the start time (in clock ticks since boot) of pid, or 0 if it does not exist.
func procStartTime(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// comm may hold spaces: fields after the last ')' start at field 3.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0
	}
	if f[0] == "Z" {
		return 0
	}
	v, _ := strconv.ParseUint(f[19], 10, 64)
	return v
}

// Alive reports whether the recorded process still runs.
func (p Process) Alive() bool {
	return p.PID > 0 && procStartTime(p.PID) == p.StartTime && p.StartTime != 0
}

// RSS returns the resident set size in bytes of the process and its descendants.
func (p Process) RSS() int64 {
	if !p.Alive() {
		return 0
	}
	return treeRSS(p.PID)
}

func treeRSS(pid int) int64 {
	var total int64
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "VmRSS:") {
				f := strings.Fields(l)
				if len(f) >= 2 {
					kb, _ := strconv.ParseInt(f[1], 10, 64)
					total += kb * 1024
				}
			}
		}
	}
	for _, child := range children(pid) {
		total += treeRSS(child)
	}
	return total
}

func children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if v, err := strconv.Atoi(f); err == nil {
				out = append(out, v)
			}
		}
	}
	return out
}

// start launches a component detached from our session, its output appended to its log.
func (c Config) start(name, bin string, args []string, env []string) (Process, error) {
	logPath := c.logPath(name)
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return Process{}, fmt.Errorf("start %s: open log %s: %w", name, logPath, err)
	}
	defer lf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Dir = c.StateDir
	cmd.Env = append(append(os.Environ(), "PATH="+systemPath), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return Process{}, &ComponentError{Component: name, Log: logPath, Err: fmt.Errorf("start %s: %w", bin, err)}
	}
	p := Process{Name: name, PID: cmd.Process.Pid, Log: logPath, Args: append([]string{bin}, args...)}
	for i := 0; i < 50 && p.StartTime == 0; i++ {
		p.StartTime = procStartTime(p.PID)
		if p.StartTime == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	// Reap the child when it exits while we still run; afterwards init adopts it.
	go func() { _ = cmd.Wait() }()
	return p, nil
}

// stop sends SIGTERM, waits up to grace, then SIGKILL.
func stop(p Process, grace time.Duration) {
	if !p.Alive() {
		return
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !p.Alive() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	for i := 0; i < 100 && p.Alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// ComponentError names the component that failed and where its log is. Up
// returns it (wrapped) when a component cannot be started, exits during
// start-up or does not become healthy; find it with errors.As.
type ComponentError struct {
	// Component is the failing part, e.g. "kube-apiserver".
	Component string
	// Log is the path of the component's log file.
	Log string
	// Err is what went wrong.
	Err error
}

// Error names the component, the failure and the log path, followed by the
// log's last lines when the log can be read.
func (e *ComponentError) Error() string {
	tail := logTail(e.Log, 12)
	msg := fmt.Sprintf("%s failed: %v (log: %s)", e.Component, e.Err, e.Log)
	if tail != "" {
		msg += "\n--- last lines of " + e.Log + " ---\n" + tail
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *ComponentError) Unwrap() error { return e.Err }

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls check until it returns nil, the process dies or ctx/timeout ends.
func waitFor(ctx context.Context, p Process, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		if p.PID != 0 && !p.Alive() {
			return &ComponentError{Component: p.Name, Log: p.Log, Err: fmt.Errorf("exited during start-up (last check: %v)", last)}
		}
		select {
		case <-ctx.Done():
			return &ComponentError{Component: p.Name, Log: p.Log, Err: fmt.Errorf("not healthy after %s: %w", timeout, errors.Join(ctx.Err(), last))}
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// pidsWithArg finds processes whose command line contains arg (used for
// containerd shims, which carry our containerd socket address).
func pidsWithArg(arg string) []int {
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range bytes.Split(b, []byte{0}) {
			if string(a) == arg {
				out = append(out, pid)
				break
			}
		}
	}
	return out
}
