package localcluster

import (
	"context"
	"fmt"
	"os"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/debpkg"
)

// debianPackages are the Debian packages the node needs, each with a file it
// installs.
var debianPackages = []debpkg.Package{
	{Name: "etcd-server", File: "/usr/bin/etcd"},
	{Name: "containerd", File: "/usr/bin/containerd"},
	{Name: "runc", File: "/usr/sbin/runc"},
	{Name: "containernetworking-plugins", File: "/usr/lib/cni/bridge"},
	{Name: "iptables", File: "/usr/sbin/iptables"},
	{Name: "nftables", File: "/usr/sbin/nft"},
	{Name: "conntrack", File: "/usr/sbin/conntrack"},
	{Name: "openssl", File: "/usr/bin/openssl"},
	{Name: "iproute2", File: "/usr/sbin/ip"},
	// The sandboxmesh-runner image's /bin/sh and tools (images.HostTools).
	{Name: "busybox-static", File: "/bin/busybox"},
}

// EnsurePackages installs the Debian packages the node needs when any is
// missing (debpkg.Ensure: services the packages ship are never started).
func (c Config) EnsurePackages(ctx context.Context) error {
	c.setDefaults()
	if len(debpkg.Missing(debianPackages)) == 0 {
		return nil
	}
	logPath := c.logPath("apt")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("packages: open log %s: %w", logPath, err)
	}
	defer lf.Close()
	if _, err := debpkg.Ensure(ctx, debianPackages, debpkg.Options{Progress: c.Progress, Log: lf, Who: "sandboxmesh sm-cluster"}); err != nil {
		return fmt.Errorf("packages: %w", &ComponentError{Component: "apt-get", Log: logPath, Err: err})
	}
	return nil
}
