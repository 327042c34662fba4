//go:build unix

package cli_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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

// envFetch makes the test binary a program that honours HTTP_PROXY: it
// fetches the URL and prints the body (for `local run`).
const envFetch = "SANDBOXMESH_CLI_TEST_FETCH"

func TestMain(m *testing.M) {
	if u := os.Getenv(envFetch); u != "" { // a child of `local run`: fetch u through $HTTP_PROXY
		resp, err := http.Get(u)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(9)
		}
		_, _ = io.Copy(os.Stdout, resp.Body)
		resp.Body.Close()
		os.Exit(0)
	}
	if os.Getenv(envExecCLI) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := (&cli.App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}).Execute(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	code := m.Run()
	stopKube()
	os.Exit(code)
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
	// SIGTERM (a shutdown, `kill`) stops it as cleanly as disconnect.
	var out2, errb2 lockedBuffer
	app.Stdout, app.Stderr = &out2, &errb2
	if code := app.Execute(context.Background(), []string{"local", "connect", "--proxy-address", "127.0.0.1:0"}); code != 0 {
		t.Fatalf("connect again: exit %d\n%s", code, errb2.String())
	}
	pid := r.status().PID
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return syscall.Kill(pid, 0) != nil })
	for _, f := range []string{"daemon.sock", "daemon.pid"} {
		if _, err := os.Stat(filepath.Join(r.home, ".sandboxmesh", "local", f)); !os.IsNotExist(err) {
			t.Errorf("%s left after SIGTERM: %v", f, err)
		}
	}
	log := mustRead(t, filepath.Join(r.home, ".sandboxmesh", "local", "daemon.log"))
	for _, want := range []string{"local daemon started", "local tunnel connected", "disconnect requested", "local daemon stopped"} {
		if !strings.Contains(log, want) {
			t.Errorf("daemon.log lacks %q:\n%s", want, log)
		}
	}
}

// TestLocalRun runs real child processes with the daemon's proxy in their
// environment: a shell shows the variables and its exit code passes through;
// a Go program that honours HTTP_PROXY reaches a cluster name through the tunnel.
func TestLocalRun(t *testing.T) {
	r := newLocalRig(t)
	if res := r.run("local", "run", "--", "/bin/sh", "-c", "true"); res.code != cli.ExitUnavailable || !strings.Contains(res.stderr, "local connect") {
		t.Errorf("run without a daemon: %+v", res)
	}
	r.mustRun("local", "connect", "--proxy-address", "127.0.0.1:0")
	proxy := r.status().ProxyAddress
	res := r.run("local", "run", "--", "/bin/sh", "-c", `echo "$ALL_PROXY $all_proxy $HTTP_PROXY $https_proxy $NO_PROXY"; exit 7`)
	want := fmt.Sprintf("socks5h://%s socks5h://%s http://%s http://%s localhost,127.0.0.1,::1\n", proxy, proxy, proxy, proxy)
	if res.code != 7 || res.stdout != want || res.stderr != "" {
		t.Errorf("run sh: exit %d stdout %q stderr %q; want exit 7 and %q", res.code, res.stdout, res.stderr, want)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(r.web)
	t.Setenv(envFetch, "http://web.shop:"+port+"/from-run")
	res = r.run("local", "run", exe, "-test.run=^$") // no --: CMD's flags stay CMD's
	if res.code != 0 || res.stdout != "cluster web saw GET /from-run" {
		t.Errorf("run a Go program: %+v", res)
	}
	if curl, err := exec.LookPath("curl"); err == nil {
		res = r.run("local", "run", "--", curl, "-sS", "--max-time", "10", "http://web.shop:"+port+"/from-curl")
		if res.code != 0 || res.stdout != "cluster web saw GET /from-curl" {
			t.Errorf("run curl: %+v", res)
		}
	}
	if res := r.run("local", "run", "--", "/nonexistent/cmd"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "/nonexistent/cmd") {
		t.Errorf("run a missing command: %+v", res)
	}
}
