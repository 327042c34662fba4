package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/images"
)

// emptyRepo is a module without any cmd/ package: every image asked for is missing.
func emptyRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.test/empty\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestBuildUpImages(t *testing.T) {
	repo := emptyRepo(t)
	o := images.Options{RepoDir: repo, OutDir: t.TempDir(), Binaries: []string{"operator"}}

	err := buildUpImages(context.Background(), o, false)
	if !errors.Is(err, images.ErrNoPackage) {
		t.Fatalf("buildUpImages = %v, want ErrNoPackage", err)
	}
	for _, want := range []string{"up --images: cluster not started", "sandboxmesh.dev/operator:dev", "./cmd/operator", "--allow-image-failures"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q:\n%v", want, err)
		}
	}

	var progress, logs bytes.Buffer
	o.Progress, o.Log = &progress, slog.New(slog.NewTextHandler(&logs, nil))
	if err := buildUpImages(context.Background(), o, true); err != nil {
		t.Fatalf("buildUpImages with allowFailures = %v", err)
	}
	if !strings.Contains(progress.String(), "SKIPPED") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("the skip is not reported:\nprogress: %s\nlogs: %s", progress.String(), logs.String())
	}

}

// runCLI runs sm-cluster with args, with the state and images folders in a
// temporary directory, no package install and an empty Kubernetes binaries
// folder: up can never start anything (as root it stops at the missing
// binaries, otherwise at the root check).
func runCLI(t *testing.T, args ...string) error {
	t.Helper()
	t.Setenv("SM_ALLOW_IMAGE_FAILURES", "")
	t.Setenv("SM_IMAGES", "")
	tmp := t.TempDir()
	root := newRoot(newDemoRun)
	root.SetArgs(append(args, "--repo", emptyRepo(t), "--state-dir", filepath.Join(tmp, "state"), "--images-dir", filepath.Join(tmp, "images"),
		"--skip-packages", "--k8s-bin", t.TempDir()))
	root.SetOut(&bytes.Buffer{})
	root.SetErr(&bytes.Buffer{})
	err := root.ExecuteContext(context.Background())
	if _, serr := os.Stat(filepath.Join(tmp, "state", "state.json")); serr == nil {
		t.Errorf("up recorded a cluster in %s", filepath.Join(tmp, "state"))
	}
	return err
}

// TestUpImagesFailureStopsUp: `up --images` with an image that cannot be
// built fails before the cluster is touched, naming the image; with
// --allow-image-failures it goes on to Up.
func TestUpImagesFailureStopsUp(t *testing.T) {
	err := runCLI(t, "up", "--images", "--binaries", "devmesh")
	if err == nil {
		t.Fatal("up --images succeeded with an image that cannot be built")
	}
	if !strings.HasPrefix(err.Error(), "up --images: cluster not started") || !strings.Contains(err.Error(), "sandboxmesh.dev/devmesh:dev") {
		t.Errorf("error does not stop up and name the image: %v", err)
	}

	err = runCLI(t, "up", "--images", "--binaries", "devmesh", "--allow-image-failures")
	if err == nil || !strings.HasPrefix(err.Error(), "up: ") {
		t.Fatalf("with --allow-image-failures up must reach Up (and stop there: not root, or no Kubernetes binaries); got %v", err)
	}
	t.Logf("with --allow-image-failures up went on to Up, which stopped at: %v", err)
}
