//go:build e2e

package cluster_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// requireRoot skips the test when not run as root, except under CI (env CI
// true), where a skipped cluster test would pass unseen: there it fails.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s needs root (the local cluster: containerd, kubelet, bridge, iptables); CI=%s, so it fails instead of skipping", t.Name(), os.Getenv("CI"))
	}
	t.Skipf("%s needs root (the local cluster); skipped (under CI=true it fails)", t.Name())
}

func runCmd(ctx context.Context, dir, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return string(out), err
}
