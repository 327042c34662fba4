// Package images builds container images of the project's binaries without a
// Docker engine: each binary is compiled statically (CGO_ENABLED=0), packed into
// a single-layer image with go-containerregistry and written as a docker-archive
// tarball that `ctr images import`, `docker load` and `podman load` accept. It
// also builds the local cluster's pause image and imports tarballs into a
// containerd.
package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry and Tag name every image we build: <Registry>/<binary>:<Tag>.
const (
	Registry = "sandboxmesh.dev"
	Tag      = "dev"
)

// DefaultBinaries are the programs packed as images by default: the cmd/
// packages plus the example app (see Packages).
var DefaultBinaries = []string{"operator", "devmesh", "devmesh-init", "controlplane", "agent", "sandboxmesh-runner", "sm-echo", "hotrod", "hotrod:v2"}

// TarballName is the file name of a binary's image tarball in Options.OutDir.
func TarballName(binary string) string { return strings.ReplaceAll(binary, ":", "_") + ".tar" }

// BuildVars maps a binary to the string variable set to the image tag at link
// time when the tag is not Tag: "hotrod:v2" is hotrod built with
// app.Build=v2, so an image change shows in its answers.
var BuildVars = map[string]string{"hotrod": "github.com/sandboxmesh/sandboxmesh/examples/hotrod/app.Build"}

// Packages maps the binaries that do not live at cmd/<binary> to their Go
// package, relative to the repository root.
var Packages = map[string]string{"hotrod": "./examples/hotrod"}

// HostTools lists, per binary, host programs copied into its image together
// with the shared libraries they load (ldd) and the extra folders they dlopen
// from. devmesh-init runs iptables-save/iptables-restore: its image carries the
// host's Debian iptables (nft and, when installed, legacy variants), which the
// local cluster's set-up installs. Each entry is image name -> host path; the
// image name may differ (e.g. iptables-save -> xtables-nft-multi by argv[0]).
var HostTools = map[string]HostToolSet{
	"devmesh-init": {
		Programs: map[string][]string{
			"/usr/sbin/xtables-nft-multi": {"iptables-save", "iptables-restore", "ip6tables-save", "ip6tables-restore",
				"iptables-nft-save", "iptables-nft-restore", "ip6tables-nft-save", "ip6tables-nft-restore", "iptables", "ip6tables"},
			"/usr/sbin/xtables-legacy-multi": {"iptables-legacy-save", "iptables-legacy-restore", "ip6tables-legacy-save", "ip6tables-legacy-restore"},
		},
		Required: []string{"/usr/sbin/xtables-nft-multi"},
		Dirs:     []string{"xtables"},
		Files:    []string{"/etc/protocols", "/etc/services", "/etc/ethertypes"},
		Package:  "iptables",
	},
	// The job runner's image is also the default image of runner pods: job
	// scripts (#!/bin/sh) need a shell and the usual tools. Debian's static
	// busybox provides both as one binary linked under /bin.
	"sandboxmesh-runner": {
		Programs: map[string][]string{
			"/bin/busybox": append([]string{"busybox", "usr/bin/env"}, RunnerApplets...),
		},
		Dir:      "bin",
		Required: []string{"/bin/busybox"},
		Package:  "busybox-static",
	},
}

// TagHostTools adds host programs to one tag of an image ("binary:tag"),
// after HostTools of the binary. sandboxmesh-runner:db is the runner image
// of the shipped resource plugins (examples/plugins): busybox plus the
// PostgreSQL and MariaDB clients.
var TagHostTools = map[string]func() HostToolSet{
	"sandboxmesh-runner:db": func() HostToolSet {
		// Debian's /usr/bin/psql is a Perl wrapper; the real client is versioned.
		psql, _ := filepath.Glob("/usr/lib/postgresql/*/bin/psql")
		slices.Sort(psql)
		set := HostToolSet{Programs: map[string][]string{"/usr/bin/mariadb": {"mariadb", "mysql"}}, Dir: "usr/bin",
			Required: []string{"/usr/bin/mariadb"}, Package: "postgresql-client mariadb-client"}
		if len(psql) == 0 {
			set.Required = append(set.Required, "/usr/lib/postgresql/<version>/bin/psql")
		} else {
			set.Programs[psql[len(psql)-1]] = []string{"psql"}
		}
		return set
	},
}

// RunnerApplets are the busybox applets linked under /bin of the
// sandboxmesh-runner image.
var RunnerApplets = []string{"sh", "wget", "grep", "cat", "echo", "sleep", "test", "[", "printf", "sed", "head", "tail", "wc",
	"env", "ls", "mkdir", "rm", "cp", "mv", "touch", "tr", "cut", "date", "true", "false", "awk", "sort", "uniq", "tee",
	"xargs", "find", "basename", "dirname", "chmod", "kill", "ps", "id", "nslookup", "sha256sum", "md5sum", "gzip", "tar", "diff", "expr", "seq", "stat", "pwd", "hostname"}

// HostToolSet describes host programs added to an image (see HostTools).
type HostToolSet struct {
	// Programs maps a host binary to the names it gets in Dir of the image; a
	// name with a slash is a path from the image root (e.g. usr/bin/env).
	Programs map[string][]string
	// Dir is the image folder of the Programs names (default usr/sbin).
	Dir string
	// Required are the Programs keys that must exist on the host.
	Required []string
	// Dirs are folders beside the programs' libraries (e.g. xtables, the
	// iptables extensions) copied whole.
	Dirs []string
	// Files are copied when they exist.
	Files []string
	// Package is the Debian package that provides Required.
	Package string
}

// PauseImage is the pod sandbox image of the local cluster.
var PauseImage = Ref("pause")

// pausePackage is the Go package of the pause program, relative to the repo root.
const pausePackage = "./internal/devenv/images/pause"

// Ref returns the image reference of a binary.
// A binary written "name:tag" names that tag of the image (see BuildVars).
func Ref(binary string) string {
	if _, _, ok := strings.Cut(binary, ":"); ok {
		return Registry + "/" + binary
	}
	return Registry + "/" + binary + ":" + Tag
}

// ErrNoPackage is returned (wrapped, with the image and the package path) by
// Build for a binary whose Go package does not exist in Options.RepoDir,
// unless Options.SkipMissing is set.
var ErrNoPackage = errors.New("no Go package")

// Package returns the Go package a binary (or "binary:tag") is built from,
// relative to the repository root: cmd/<binary> unless Packages says otherwise.
func Package(binary string) string {
	prog, _, _ := strings.Cut(strings.TrimSpace(binary), ":")
	if p, ok := Packages[prog]; ok {
		return p
	}
	return "./cmd/" + prog
}

// Options control Build.
type Options struct {
	// RepoDir is the module root holding cmd/<binary>.
	RepoDir string
	// OutDir receives <binary>.tar files.
	OutDir string
	// Binaries are the cmd/ package names to build; nil means DefaultBinaries.
	Binaries []string
	// SkipMissing skips a binary whose Go package does not exist in RepoDir,
	// with a progress line and a warning log, instead of failing with
	// ErrNoPackage. Off by default: every image asked for must be built.
	SkipMissing bool
	// Progress receives one line per image; nil discards.
	Progress io.Writer
	// Log receives debug logs; nil discards.
	Log *slog.Logger
}

// Result is one image written.
type Result struct {
	Binary  string
	Ref     string
	Tarball string
	Size    int64
}

func (o *Options) defaults() {
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Binaries == nil {
		o.Binaries = DefaultBinaries
	}
}

// Build compiles each binary of o.Binaries (its Package) and writes its image
// tarball. A binary whose package does not exist is an error wrapping
// ErrNoPackage, unless o.SkipMissing: then it is skipped with a progress line
// and a warning log. A binary that fails to compile does not stop the others;
// the returned error names every image that was not built and why, and the
// results list what was written.
func Build(ctx context.Context, o Options) ([]Result, error) {
	o.defaults()
	var res []Result
	var errs []error
	var failed []string
	for _, b := range o.Binaries {
		b = strings.TrimSpace(b)
		if b == "" {
			continue
		}
		pkg := Package(b)
		if !hasGoFiles(filepath.Join(o.RepoDir, pkg)) {
			if o.SkipMissing {
				fmt.Fprintf(o.Progress, ">> image %s: SKIPPED (asked to skip missing packages): no Go package at %s\n", Ref(b), pkg)
				o.Log.Warn("image skipped: no Go package", "image", Ref(b), "package", pkg, "repo", o.RepoDir)
				continue
			}
			err := fmt.Errorf("image %s: %w at %s in %s", Ref(b), ErrNoPackage, pkg, o.RepoDir)
			fmt.Fprintf(o.Progress, ">> image %s: FAILED (the others are still built): %v\n", Ref(b), err)
			errs, failed = append(errs, err), append(failed, Ref(b))
			continue
		}
		r, err := buildOne(ctx, o, b, pkg)
		if err != nil {
			if ctx.Err() != nil {
				return res, err
			}
			fmt.Fprintf(o.Progress, ">> image %s: FAILED (the others are still built): %v\n", Ref(b), firstLine(err))
			errs, failed = append(errs, err), append(failed, Ref(b))
			continue
		}
		res = append(res, r)
	}
	if len(errs) > 0 {
		return res, fmt.Errorf("%d image(s) not built (%s): %w", len(failed), strings.Join(failed, ", "), errors.Join(errs...))
	}
	return res, nil
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// BuildPause writes the pause image tarball (pause.tar) into o.OutDir.
func BuildPause(ctx context.Context, o Options) (Result, error) {
	o.defaults()
	return buildOne(ctx, o, "pause", pausePackage)
}

func hasGoFiles(dir string) bool {
	m, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	return len(m) > 0
}

// GoBuild is `go build -trimpath <args>` in dir with CGO_ENABLED=0: the one
// build configuration of the project's own binaries (images, the local
// cluster's sm-cluster, the layering test's cmd/ builds), and the one
// hack/test.sh vets and verifies with, so on a cold machine each of these
// builds finds every package compiled already and only links.
func GoBuild(ctx context.Context, dir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-trimpath"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd
}

func buildOne(ctx context.Context, o Options, binary, pkg string) (Result, error) {
	start := time.Now()
	ref := Ref(binary)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return Result{}, fmt.Errorf("image %s: create %s: %w", ref, o.OutDir, err)
	}
	tmp, err := os.MkdirTemp("", "sm-image-")
	if err != nil {
		return Result{}, fmt.Errorf("image %s: %w", ref, err)
	}
	defer os.RemoveAll(tmp)
	prog, tag, _ := strings.Cut(binary, ":")
	ldflags := "-s -w"
	if v, ok := BuildVars[prog]; ok && tag != "" {
		ldflags += " -X " + v + "=" + tag
	}
	bin := filepath.Join(tmp, prog)
	cmd := GoBuild(ctx, o.RepoDir, "-ldflags", ldflags, "-o", bin, pkg)
	cmd.Env = append(cmd.Env, "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Result{}, fmt.Errorf("image %s: go build %s: %w\n%s", ref, pkg, err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return Result{}, fmt.Errorf("image %s: read binary: %w", ref, err)
	}
	var extra []File
	if set, ok := HostTools[prog]; ok {
		if extra, err = set.collect(); err != nil {
			return Result{}, fmt.Errorf("image %s: %w", ref, err)
		}
	}
	if tagSet, ok := TagHostTools[binary]; ok {
		more, err := tagSet().collect()
		if err != nil {
			return Result{}, fmt.Errorf("image %s: %w", ref, err)
		}
		have := map[string]bool{}
		for _, f := range extra {
			have[f.Name] = true
		}
		for _, f := range more {
			if !have[f.Name] {
				extra = append(extra, f)
			}
		}
	}
	img, err := Image(prog, data, extra...)
	if err != nil {
		return Result{}, fmt.Errorf("image %s: %w", ref, err)
	}
	imgTag, err := name.NewTag(ref)
	if err != nil {
		return Result{}, fmt.Errorf("image %s: parse ref: %w", ref, err)
	}
	out := filepath.Join(o.OutDir, TarballName(binary))
	if err := tarball.WriteToFile(out+".tmp", imgTag, img); err != nil {
		return Result{}, fmt.Errorf("image %s: write %s: %w", ref, out, err)
	}
	if err := os.Rename(out+".tmp", out); err != nil {
		return Result{}, fmt.Errorf("image %s: %w", ref, err)
	}
	st, _ := os.Stat(out)
	var size int64
	if st != nil {
		size = st.Size()
	}
	fmt.Fprintf(o.Progress, ">> image %s -> %s (%.1f MiB, %s)\n", ref, out, float64(size)/(1<<20), time.Since(start).Round(100*time.Millisecond))
	return Result{Binary: binary, Ref: ref, Tarball: out, Size: size}, nil
}

// File is one extra entry of an image layer: a regular file (Data) or a
// symbolic link (Link). Name is relative to the image root.
type File struct {
	Name string
	Mode int64
	Data []byte
	Link string
}

// Image packs one static binary as a single-layer image: the binary at
// /usr/local/bin/<binary> as entrypoint, plus /etc/passwd, /etc/group,
// /etc/nsswitch.conf, /tmp and the extra files (their folders are created).
// Timestamps are zero so equal inputs give equal images.
func Image(binary string, data []byte, extra ...File) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := []string{"etc/", "tmp/", "usr/", "usr/local/", "usr/local/bin/"}
	for _, d := range dirs {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: mode, Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("layer: %w", err)
		}
	}
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{"etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")},
		{"etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n")},
		{"usr/local/bin/" + binary, 0o755, data},
	}
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: f.name, Mode: f.mode, Size: int64(len(f.data)), Format: tar.FormatPAX}); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("layer %s: %w", f.name, err)
		}
	}
	if err := writeExtra(tw, dirs, extra); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	raw := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(raw)), nil
	}, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = "linux"
	cf.Architecture = runtime.GOARCH
	cf.Config.Entrypoint = []string{"/usr/local/bin/" + binary}
	cf.Config.Env = []string{"PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": binary, "org.opencontainers.image.source": "github.com/sandboxmesh/sandboxmesh"}
	return mutate.ConfigFile(img, cf)
}

// Import loads image tarballs into the k8s.io namespace of the containerd
// listening on socket, with ctr.
func Import(ctx context.Context, socket string, tarballs ...string) error {
	for _, t := range tarballs {
		cmd := exec.CommandContext(ctx, "ctr", "--address", socket, "-n", "k8s.io", "images", "import", t)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("import %s into containerd %s: %w: %s", t, socket, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
