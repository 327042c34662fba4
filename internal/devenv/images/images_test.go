package images

import (
	"bytes"
	"context"
	"errors"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// TestDefaultBinariesHavePackages: every default image is built from a main
// package of this repository, so Build never has a reason to skip one, and no
// two images share a reference or a tarball.
func TestDefaultBinariesHavePackages(t *testing.T) {
	root := repoRoot(t)
	refs, tars := map[string]bool{}, map[string]bool{}
	for _, b := range DefaultBinaries {
		files, _ := filepath.Glob(filepath.Join(root, Package(b), "*.go"))
		names := map[string]bool{}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			af, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.PackageClauseOnly)
			if err != nil {
				t.Errorf("image %s: %v", Ref(b), err)
				continue
			}
			names[af.Name.Name] = true
		}
		if len(names) != 1 || !names["main"] {
			t.Errorf("image %s: %s is not a main package of this repository (package names %v)", Ref(b), Package(b), names)
		}
		if refs[Ref(b)] || tars[TarballName(b)] {
			t.Errorf("image %s: reference or tarball %s used twice", Ref(b), TarballName(b))
		}
		refs[Ref(b)], tars[TarballName(b)] = true, true
	}
}

func TestPackage(t *testing.T) {
	for in, want := range map[string]string{
		"operator":  "./cmd/operator",
		"hotrod":    "./examples/hotrod",
		"hotrod:v2": "./examples/hotrod",
		" sm-echo ": "./cmd/sm-echo",
	} {
		if got := Package(in); got != want {
			t.Errorf("Package(%q) = %q, want %q", in, got, want)
		}
	}
}

// fakeRepo writes a module with a main package that does not build
// (cmd/broken: two package names, an error found before compiling anything).
func fakeRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	files := map[string]string{
		"go.mod":               "module example.test/fake\n\ngo 1.21\n",
		"cmd/broken/main.go":   "package main\n\nfunc main() {}\n",
		"cmd/broken/second.go": "package second\n",
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// TestBuildMissingPackage: a binary without a Go package is an error naming
// the image and the package, not a silent skip.
func TestBuildMissingPackage(t *testing.T) {
	repo := fakeRepo(t)
	var progress bytes.Buffer
	res, err := Build(context.Background(), Options{RepoDir: repo, OutDir: t.TempDir(), Binaries: []string{"controlplane"}, Progress: &progress})
	if !errors.Is(err, ErrNoPackage) {
		t.Fatalf("Build = %v, want ErrNoPackage", err)
	}
	for _, want := range []string{"sandboxmesh.dev/controlplane:dev", "./cmd/controlplane", repo} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %q: %v", want, err)
		}
	}
	if len(res) != 0 {
		t.Errorf("results %v", res)
	}
	if !strings.Contains(progress.String(), "image sandboxmesh.dev/controlplane:dev: FAILED") {
		t.Errorf("no FAILED progress line:\n%s", progress.String())
	}
}

// TestBuildSkipMissing: with SkipMissing the skip is explicit: a progress
// line and a warning log, and no error.
func TestBuildSkipMissing(t *testing.T) {
	repo := fakeRepo(t)
	var progress, logs bytes.Buffer
	res, err := Build(context.Background(), Options{RepoDir: repo, OutDir: t.TempDir(), Binaries: []string{"agent"}, SkipMissing: true,
		Progress: &progress, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil || len(res) != 0 {
		t.Fatalf("Build = %v, %v; want no results and no error", res, err)
	}
	if !strings.Contains(progress.String(), "image sandboxmesh.dev/agent:dev: SKIPPED") {
		t.Errorf("no SKIPPED progress line:\n%s", progress.String())
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "image=sandboxmesh.dev/agent:dev") {
		t.Errorf("no warning log:\n%s", logs.String())
	}
}

// TestBuildFailureNamesEveryImage: a package that does not build and a
// missing one are both reported, each with its image and its reason, and
// SkipMissing does not hide a build failure.
func TestBuildFailureNamesEveryImage(t *testing.T) {
	repo := fakeRepo(t)
	for _, skip := range []bool{false, true} {
		var progress bytes.Buffer
		_, err := Build(context.Background(), Options{RepoDir: repo, OutDir: t.TempDir(), Binaries: []string{"broken", "nope"}, SkipMissing: skip, Progress: &progress})
		if err == nil {
			t.Fatalf("SkipMissing=%v: Build succeeded", skip)
		}
		msg := err.Error()
		if !strings.Contains(msg, "image sandboxmesh.dev/broken:dev: go build ./cmd/broken") || !strings.Contains(msg, "found packages") {
			t.Errorf("SkipMissing=%v: error does not name the broken image and why:\n%s", skip, msg)
		}
		if got := errors.Is(err, ErrNoPackage); got == skip {
			t.Errorf("SkipMissing=%v: errors.Is(err, ErrNoPackage) = %v", skip, got)
		}
		want := "2 image(s) not built (sandboxmesh.dev/broken:dev, sandboxmesh.dev/nope:dev)"
		if skip {
			want = "1 image(s) not built (sandboxmesh.dev/broken:dev)"
		}
		if !strings.HasPrefix(msg, want) {
			t.Errorf("SkipMissing=%v: error starts %q, want %q", skip, firstLine(err), want)
		}
	}
}
