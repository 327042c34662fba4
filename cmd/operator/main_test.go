package main

import (
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
		// run stops at the missing kubeconfig, after setting up its logger and
		// before the manager (which sets controller-runtime's logger too).
		os.Args = []string{"operator", "--log-format", "text"}
		_ = run()
		ctrllog.Log.WithName("probe").Info(ctrlLogProbe)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestRunSetsControllerRuntimeLogger: controller-runtime's global logger writes
// to the operator's logger from the start, so the operator never prints
// "log.SetLogger(...) was never called" with a stack trace. In a child
// process: controller-runtime takes only the first SetLogger.
func TestRunSetsControllerRuntimeLogger(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCtrlLogChild+"=1", "KUBECONFIG="+filepath.Join(t.TempDir(), "missing"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), ctrlLogProbe) {
		t.Fatalf("controller-runtime's logger does not write to the operator's log; child output:\n%s", out)
	}
}
