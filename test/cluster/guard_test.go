//go:build e2e

package cluster_test

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/localcluster"
)

// TestGuardRoundTrip sets up the network guard alone (on its own bridge and
// ranges), checks that CheckGuard notices a missing rule, and that Down leaves
// the host as it was.
func TestGuardRoundTrip(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("iptables"); err != nil {
		t.Skip("iptables not installed (sm-cluster deps)")
	}
	ctx := context.Background()
	cl, err := localcluster.New(localcluster.Config{
		StateDir:    t.TempDir(),
		Bridge:      "smbrt0",
		PodCIDR:     netip.MustParsePrefix("10.245.0.0/24"),
		ClusterCIDR: netip.MustParsePrefix("10.245.0.0/16"),
		ServiceCIDR: netip.MustParsePrefix("10.97.0.0/16"),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Down removes every KUBE-*/CNI-* rule and the kubepods cgroups: never run
	// this next to a live cluster.
	if def, _ := localcluster.New(localcluster.Config{StateDir: os.Getenv("SM_CLUSTER_DIR")}); def.Running() {
		t.Skip("a local cluster runs on this machine")
	}
	if _, err := os.Stat("/sys/class/net/" + localcluster.Defaults().Bridge); err == nil {
		t.Skip("the local cluster's bridge exists")
	}
	cfg := cl.Config()
	before, err := localcluster.SnapshotHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.CheckGuard(ctx); !errors.Is(err, localcluster.ErrGuardMissing) {
		t.Fatalf("CheckGuard before setup = %v, want ErrGuardMissing", err)
	}
	if err := cfg.SetupGuard(ctx); err != nil {
		t.Fatalf("SetupGuard: %v", err)
	}
	if err := cfg.SetupGuard(ctx); err != nil {
		t.Fatalf("SetupGuard twice: %v", err)
	}
	out, _ := exec.Command("ip", "route", "get", "10.97.0.10").CombinedOutput()
	if !strings.Contains(string(out), "dev smbrt0") {
		t.Errorf("service IP does not route onto the bridge: %s", out)
	}
	// Remove one DROP rule: the check must refuse.
	if out, err := exec.Command("iptables", "-w", "-t", "mangle", "-D", "SM-GUARD-FWD", "!", "-i", "smbrt0", "-o", "smbrt0", "-j", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("delete rule: %v %s", err, out)
	}
	if err := cfg.CheckGuard(ctx); !errors.Is(err, localcluster.ErrGuardMissing) {
		t.Errorf("CheckGuard with a rule missing = %v, want ErrGuardMissing", err)
	}
	if err := cl.Down(ctx); err != nil {
		t.Fatalf("Down: %v", err)
	}
	after, err := localcluster.SnapshotHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(after); len(d) > 0 {
		t.Errorf("host not restored:\n%s", strings.Join(d, "\n"))
	}
}
