//go:build unix

package cli_test

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/sandboxmesh/sandboxmesh/internal/cli"
)

// envExecCLI makes the test binary act as the sandboxmesh CLI, so `local
// connect`'s re-exec of itself (os.Executable) starts a real daemon process.
const envExecCLI = "SANDBOXMESH_CLI_TEST_EXEC"

func TestMain(m *testing.M) {
	if os.Getenv(envExecCLI) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := (&cli.App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}).Execute(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// TestLocalConnectReexec starts the daemon the way users get it: a detached
// re-exec of this binary, logging to daemon.log.
func TestLocalConnectReexec(t *testing.T) {
	t.Setenv(envExecCLI, "1")
	r := newLocalRig(t)
	app := r.app("", nil, nil)
	app.SpawnDaemon = nil // the real re-exec
	var out, errb lockedBuffer
	app.Stdout, app.Stderr = &out, &errb
	if code := app.Execute(context.Background(), []string{"local", "connect", "--proxy-address", "127.0.0.1:0"}); code != 0 {
		t.Fatalf("connect: exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	st := r.status()
	if st.Phase != "Connected" || st.PID == os.Getpid() || st.PID == 0 {
		t.Fatalf("status: %+v", st)
	}
	if sid, err := unix.Getsid(st.PID); err != nil || sid != st.PID {
		t.Errorf("daemon session id %d (%v), want its own session %d", sid, err, st.PID)
	}
	r.mustRun("local", "disconnect")
	// The daemon is reaped by connect's own Wait here; a user's shell exits first.
	waitFor(t, func() bool { return syscall.Kill(st.PID, 0) != nil })
	log := mustRead(t, filepath.Join(r.home, ".sandboxmesh", "local", "daemon.log"))
	for _, want := range []string{"local daemon started", "local tunnel connected", "disconnect requested", "local daemon stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("daemon.log lacks %q:\n%s", want, log)
		}
	}
}
