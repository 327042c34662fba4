// Package hostnettest owns the precondition of the tests that change this machine's nat table and hosts
// file through hostnet (root mode of local workloads): root and iptables. Elsewhere such a test skips
// and says why; under CI=true it fails instead, so CI never passes by skipping them.
package hostnettest

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// RequireRoot skips (fails under CI=true) the test unless it runs as root with iptables and
// iptables-save on PATH (hack/testbed.sh installs them).
func RequireRoot(t testing.TB) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root (it changes the nat table)"
	} else {
		for _, p := range []string{"iptables", "iptables-save"} {
			if _, err := exec.LookPath(p); err != nil {
				why = "needs " + p + " (apt-get install iptables; hack/testbed.sh does)"
				break
			}
		}
	}
	if why == "" {
		return
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatal(why + "; CI=true, so it fails instead of skipping")
	}
	t.Skip(why + "; skipped (under CI=true it fails)")
}
