//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
)

// pythonQuickstart runs the Python SDK's quickstart (sdk/python/examples/quickstart.py)
// against the control plane of e: it forks hotrod's route in a new sandbox,
// waits until ready, calls frontend (frontendURL, the Service address this
// host reaches) with "baggage: sm-routing-key=<key>", prints the answer and
// deletes the sandbox. The answer must show the route hop served by that
// sandbox's fork (VERSION=python-sdk) and every other hop by the baseline.
func pythonQuickstart(ctx context.Context, t *testing.T, e *demo.Env, frontendURL string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("python3 not found; under CI it must be installed (hack/python-test.sh installs it from Debian)")
		}
		t.Skip("python3 not found: skipping the Python SDK quickstart (install python3)")
	}
	const name = "py-quickstart"
	cctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, py, filepath.Join(e.RepoDir, "sdk", "python", "examples", "quickstart.py"))
	cmd.Dir = e.RepoDir
	cmd.Env = append(os.Environ(),
		"SANDBOXMESH_API_URL="+e.ControlPlaneURL,
		"SANDBOXMESH_API_KEY="+e.APIKey,
		"SANDBOXMESH_ORG="+e.Org,
		"SANDBOXMESH_CLUSTER="+e.Cluster,
		"SANDBOXMESH_SANDBOX="+name,
		"SANDBOXMESH_TARGET_URL="+frontendURL+"/dispatch?customer=392",
		"SANDBOXMESH_WAIT_TIMEOUT=240",
		"SANDBOXMESH_ROUTE_TIMEOUT=60",
		"PYTHONDONTWRITEBYTECODE=1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("quickstart.py (%s) stderr:\n%s", time.Since(start).Round(time.Millisecond), stderr.String())
	if runErr != nil {
		t.Fatalf("quickstart.py: %v\nstdout: %s", runErr, stdout.String())
	}
	var tree app.Node
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &tree); err != nil {
		t.Fatalf("quickstart.py printed %q: %v", stdout.String(), err)
	}
	want := map[string]string{"frontend": "", "route": name, "driver": "", "customer": ""}
	if got := servedBy(&tree); !equal(got, want) {
		t.Errorf("served by %v, want %v", got, want)
	}
	if r := tree.Find("route"); r == nil || r.Version != "python-sdk" {
		t.Errorf("route hop: %+v, want VERSION python-sdk from the fork's customization", r)
	}
	// The quickstart deleted its sandbox.
	if _, err := e.API.GetSandbox(ctx, e.Org, name); !errors.Is(err, cpclient.ErrNotFound) {
		t.Errorf("sandbox %s after the quickstart: %v, want not found", name, err)
	}
}
