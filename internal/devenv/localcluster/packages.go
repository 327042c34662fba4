package localcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// debianPackages maps each Debian package the node needs to a file it installs.
var debianPackages = []struct{ pkg, file string }{
	{"etcd-server", "/usr/bin/etcd"},
	{"containerd", "/usr/bin/containerd"},
	{"runc", "/usr/sbin/runc"},
	{"containernetworking-plugins", "/usr/lib/cni/bridge"},
	{"iptables", "/usr/sbin/iptables"},
	{"nftables", "/usr/sbin/nft"},
	{"conntrack", "/usr/sbin/conntrack"},
	{"openssl", "/usr/bin/openssl"},
	{"iproute2", "/usr/sbin/ip"},
	// The sandboxmesh-runner image's /bin/sh and tools (images.HostTools).
	{"busybox-static", "/bin/busybox"},
}

// EnsurePackages installs the Debian packages the node needs when any is
// missing. Services the packages ship are never started: a policy-rc.d that
// denies starts is put in place for the install when the host has none.
func (c Config) EnsurePackages(ctx context.Context) error {
	c.setDefaults()
	var missing []string
	for _, p := range debianPackages {
		if _, err := os.Stat(p.file); err != nil {
			missing = append(missing, p.pkg)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	fmt.Fprintf(c.Progress, ">> installing Debian packages: %s\n", strings.Join(missing, " "))
	const policy = "/usr/sbin/policy-rc.d"
	if _, err := os.Stat(policy); os.IsNotExist(err) {
		if err := os.WriteFile(policy, []byte("#!/bin/sh\n# written by sandboxmesh sm-cluster during apt-get install\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("packages: write %s: %w", policy, err)
		}
		defer os.Remove(policy)
	}
	logPath := c.logPath("apt")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("packages: open log %s: %w", logPath, err)
	}
	defer lf.Close()
	aptRun := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", append([]string{"-o", "DPkg::Lock::Timeout=300", "-y"}, args...)...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "PATH="+systemPath)
		cmd.Stdout, cmd.Stderr = lf, lf
		if err := cmd.Run(); err != nil {
			return &ComponentError{Component: "apt-get " + args[0], Log: logPath, Err: err}
		}
		return nil
	}
	if err := aptRun("update"); err != nil {
		return fmt.Errorf("packages: %w", err)
	}
	if err := aptRun(append([]string{"install", "--no-install-recommends"}, missing...)...); err != nil {
		return fmt.Errorf("packages %v: %w", missing, err)
	}
	for _, p := range debianPackages {
		if _, err := os.Stat(p.file); err != nil {
			return fmt.Errorf("packages: %s installed but %s is missing", p.pkg, p.file)
		}
	}
	return nil
}
