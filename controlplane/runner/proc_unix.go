//go:build unix

package runner

import (
	"os"
	"os/exec"
	"syscall"
)

// newProcessGroup makes cmd the leader of a process group of its own, so
// that signals reach its children too.
func newProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to the process group led by pid.
func signalGroup(pid int, sig syscall.Signal) error {
	return syscall.Kill(-pid, sig)
}

// exitCode returns the exit code of a finished process, 128+signal when a
// signal ended it (as shells report it), and the signal's name.
func exitCode(ps *os.ProcessState) (int, string) {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), ws.Signal().String()
	}
	return ps.ExitCode(), ""
}

// reapOrphans collects exited processes a job left behind and that were
// re-parented to this process: as a container's PID 1 the runner is their
// init. Only as PID 1, and between jobs (no child of its own runs then).
func reapOrphans() {
	if os.Getpid() != 1 {
		return
	}
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
