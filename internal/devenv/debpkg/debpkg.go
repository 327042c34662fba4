// Package debpkg installs missing Debian packages for the development tooling
// (the local cluster's node programs, the database servers of the plugin
// tests): apt-get with a lock timeout, without recommends, and without
// starting the services the packages ship.
package debpkg

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Package is a Debian package and a file it installs (a filepath.Glob
// pattern: "/usr/lib/postgresql/*/bin/initdb" accepts any version).
type Package struct {
	Name, File string
}

// Installed reports whether p's file is present.
func (p Package) Installed() bool {
	m, err := filepath.Glob(p.File)
	return err == nil && len(m) > 0
}

// Missing returns the names of the packages whose file is absent.
func Missing(pkgs []Package) []string {
	var out []string
	for _, p := range pkgs {
		if !p.Installed() {
			out = append(out, p.Name)
		}
	}
	return out
}

// PolicyRCD is the path of the script that tells a package's postinst
// whether it may start its service; exit code 101 means no.
const PolicyRCD = "/usr/sbin/policy-rc.d"

// systemPath is the PATH apt-get and the maintainer scripts run with.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options configures Ensure.
type Options struct {
	// Progress receives one line naming what is installed (nil: none).
	Progress io.Writer
	// Log receives apt-get's output (nil: discarded).
	Log io.Writer
	// Who is written into the temporary policy-rc.d, naming the tool.
	Who string
}

// Ensure installs the packages of pkgs whose file is missing (apt-get update,
// then install --no-install-recommends, DPkg::Lock::Timeout=300 so that
// concurrent installs wait for each other) and checks the files are there
// afterwards. Services are never started: while it installs, a policy-rc.d
// that denies every start is put in place when the host has none. It returns
// the names of the packages it installed (none when nothing was missing).
func Ensure(ctx context.Context, pkgs []Package, opt Options) ([]string, error) {
	if len(Missing(pkgs)) == 0 {
		return nil, nil
	}
	// One install at a time across processes (go test runs packages in
	// parallel; `apt-get update` does not wait for the lists lock): the
	// second one finds the packages installed.
	unlock, err := lockFile(ctx, LockPath)
	if err != nil {
		return nil, err
	}
	defer unlock()
	missing := Missing(pkgs)
	if len(missing) == 0 {
		return nil, nil
	}
	if opt.Progress != nil {
		fmt.Fprintf(opt.Progress, ">> installing Debian packages: %s\n", strings.Join(missing, " "))
	}
	if opt.Log == nil {
		opt.Log = io.Discard
	}
	if _, err := os.Stat(PolicyRCD); os.IsNotExist(err) {
		who := opt.Who
		if who == "" {
			who = "sandboxmesh"
		}
		if err := os.WriteFile(PolicyRCD, []byte("#!/bin/sh\n# written by "+who+" during apt-get install\nexit 101\n"), 0o755); err != nil {
			return nil, fmt.Errorf("write %s: %w", PolicyRCD, err)
		}
		defer os.Remove(PolicyRCD)
	}
	aptRun := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "-y"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "PATH="+systemPath)
		tail := &tailBuffer{}
		out := io.MultiWriter(opt.Log, tail)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %s: %w; its last lines:\n%s", args[0], err, tail.lines(12))
		}
		return nil
	}
	if err := aptRun("update"); err != nil {
		return nil, err
	}
	if err := aptRun(append([]string{"install", "--no-install-recommends"}, missing...)...); err != nil {
		return nil, fmt.Errorf("packages %v: %w", missing, err)
	}
	for _, p := range pkgs {
		if !p.Installed() {
			return missing, fmt.Errorf("package %s installed but %s is missing", p.Name, p.File)
		}
	}
	return missing, nil
}

// LockPath is the file Ensure holds a lock on while it installs.
const LockPath = "/run/lock/sandboxmesh-debpkg.lock"

// lockFile takes an exclusive flock on path (waiting while ctx lasts) and
// returns its release.
func lockFile(ctx context.Context, path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for another install to finish (lock %s): %w", path, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// tailBuffer keeps the last 8 KiB written to it.
type tailBuffer struct{ b []byte }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 16<<10 {
		t.b = append([]byte(nil), t.b[len(t.b)-8<<10:]...)
	}
	return len(p), nil
}

// lines returns the last n lines.
func (t *tailBuffer) lines(n int) string {
	l := strings.Split(strings.TrimRight(string(t.b), "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
