package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	envCtrlLogChild = "SANDBOXMESH_TEST_CTRLLOG_CHILD"
	ctrlLogProbe    = "controller-runtime says hello"
)

func TestMain(m *testing.M) {
	if os.Getenv(envCtrlLogChild) != "" {
		// run stops at the missing kubeconfig, after setting up its logger.
		_ = run(context.Background(), []string{"--control-plane-url", "http://127.0.0.1:1"}, os.Stderr)
		ctrllog.Log.WithName("probe").Info(ctrlLogProbe)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunSetsControllerRuntimeLogger: controller-runtime's global logger (its
// client logs through it) writes to the agent's logger, so the agent never
// prints "log.SetLogger(...) was never called" with a stack trace. In a child
// process: controller-runtime takes only the first SetLogger.
func TestRunSetsControllerRuntimeLogger(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCtrlLogChild+"=1", "SANDBOXMESH_CLUSTER_TOKEN=smc_x",
		"KUBECONFIG="+filepath.Join(t.TempDir(), "missing"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), ctrlLogProbe) {
		t.Fatalf("controller-runtime's logger does not write to the agent's log; child output:\n%s", out)
	}
}
