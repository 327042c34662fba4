// Package testenv starts a real kube-apiserver and etcd (controller-runtime's
// envtest) with the SandboxMesh CRDs and the real Istio, Gateway API and Argo
// Rollout CRDs installed, for tests of everything that talks to Kubernetes.
//
// The binaries come from `make testbed`, which builds kube-apiserver from the
// k8s.io/kubernetes module and takes etcd from Debian. They are found through
// KUBEBUILDER_ASSETS or the test bed's cache folder. When they are missing, Start
// fails with a message saying to run `make testbed`; it never skips.
package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/yaml"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	smv1alpha1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// ErrAssetsMissing is returned when kube-apiserver or etcd cannot be found.
var ErrAssetsMissing = errors.New("envtest binaries (kube-apiserver, etcd) not found: run `make testbed` (it prints the KUBEBUILDER_ASSETS folder)")

// GatewayAPIChannel selects which Gateway API CRD bundle to install.
type GatewayAPIChannel string

const (
	// GatewayAPIStandard installs the standard channel CRDs (the default).
	GatewayAPIStandard GatewayAPIChannel = "standard"
	// GatewayAPIExperimental installs the experimental channel CRDs.
	GatewayAPIExperimental GatewayAPIChannel = "experimental"
)

// Options tune Start.
type Options struct {
	// GatewayAPIChannel defaults to GatewayAPIStandard.
	GatewayAPIChannel GatewayAPIChannel
	// WithoutMeshCRDs installs only the SandboxMesh CRDs (no Istio, Gateway API
	// or Argo Rollout CRD).
	WithoutMeshCRDs bool
	// ServiceCIDR overrides the API server's Service IP range (envtest's default
	// /24 holds about 250 Services; scale tests need more).
	ServiceCIDR string
	// Webhooks installs admission webhooks (see StartWithWebhooks).
	Webhooks *envtest.WebhookInstallOptions
}

// Env is a running test API server.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client is a controller-runtime client with Scheme.
	Client client.Client
	// Scheme knows the built-in, SandboxMesh, Istio networking and Gateway API types.
	Scheme *k8sruntime.Scheme

	env *envtest.Environment
}

// NewScheme returns a scheme with every type the tests use.
func NewScheme() (*k8sruntime.Scheme, error) {
	s := k8sruntime.NewScheme()
	for _, add := range []func(*k8sruntime.Scheme) error{
		clientgoscheme.AddToScheme,
		apiextensionsv1.AddToScheme,
		smv1alpha1.AddToScheme,
		istionetworkingv1.AddToScheme,
		gatewayv1.Install,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Start starts etcd and kube-apiserver and installs the CRDs.
func Start(opts Options) (*Env, error) {
	logOnce.Do(func() {
		// Tests see controller-runtime's warnings and errors; info logs would drown the output.
		logf.SetLogger(logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	})
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	crds, err := CRDs(opts)
	if err != nil {
		return nil, err
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory:    assets,
		CRDs:                     crds,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 90 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
		Scheme:                   scheme,
	}
	if opts.Webhooks != nil {
		te.WebhookInstallOptions = *opts.Webhooks
	}
	if opts.ServiceCIDR != "" {
		te.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", opts.ServiceCIDR)
	}
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest with assets in %s: %w", assets, err)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		return nil, fmt.Errorf("client for envtest: %w", err)
	}
	return &Env{Config: cfg, Client: c, Scheme: scheme, env: te}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error {
	if e == nil || e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// Main is a TestMain helper: it starts an Env, runs the tests with it and stops it.
// A start failure fails the whole package with the reason (never a skip).
func Main(m *testing.M, opts Options, run func(*Env) int) {
	flag.Parse()
	if FuzzOnly() {
		os.Exit(m.Run())
	}
	env, err := Start(opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		os.Exit(1)
	}
	code := run(env)
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stop: %v\n", err)
	}
	os.Exit(code)
}

// AssetsDir finds the folder holding kube-apiserver and etcd: KUBEBUILDER_ASSETS,
// else the test bed cache for the Kubernetes version in go.mod.
func AssetsDir() (string, error) {
	candidates := []string{}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		candidates = append(candidates, d)
	}
	if d, err := cacheBinDir(); err == nil {
		candidates = append(candidates, d)
	}
	for _, d := range candidates {
		if isExec(filepath.Join(d, "kube-apiserver")) && isExec(filepath.Join(d, "etcd")) {
			return d, nil
		}
	}
	return "", fmt.Errorf("%w (looked in %s)", ErrAssetsMissing, strings.Join(candidates, ", "))
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// cacheBinDir mirrors hack/k8s-build.sh: $SANDBOXMESH_CACHE or
// ${XDG_CACHE_HOME:-~/.cache}/sandboxmesh, then k8s/<v1.X.Y>/bin.
func cacheBinDir() (string, error) {
	base := os.Getenv("SANDBOXMESH_CACHE")
	if base == "" {
		xdg := os.Getenv("XDG_CACHE_HOME")
		if xdg == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", err
			}
			xdg = filepath.Join(home, ".cache")
		}
		base = filepath.Join(xdg, "sandboxmesh")
	}
	v, err := moduleVersion("k8s.io/api")
	if err != nil {
		return "", err
	}
	return filepath.Join(base, "k8s", "v1"+strings.TrimPrefix(v, "v0"), "bin"), nil
}

var logOnce sync.Once

var (
	modMu    sync.Mutex
	modCache = map[string][2]string{}
)

func goList(mod string) (dir, version string, err error) {
	modMu.Lock()
	defer modMu.Unlock()
	if v, ok := modCache[mod]; ok {
		return v[0], v[1], nil
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}\t{{.Version}}", mod)
	cmd.Dir = RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", "", fmt.Errorf("go list -m %s: %w: %s", mod, err, stderr.String())
	}
	parts := strings.SplitN(strings.TrimSpace(string(out)), "\t", 2)
	if len(parts) != 2 || parts[0] == "" {
		return "", "", fmt.Errorf("go list -m %s: unexpected output %q (is the module downloaded? run go mod download)", mod, out)
	}
	modCache[mod] = [2]string{parts[0], parts[1]}
	return parts[0], parts[1], nil
}

func moduleDir(mod string) (string, error) {
	d, _, err := goList(mod)
	return d, err
}

func moduleVersion(mod string) (string, error) {
	_, v, err := goList(mod)
	return v, err
}

// RepoRoot is the repository's root folder: found from this file's path, or,
// in a -trimpath build (make test-e2e builds so, as the images are built),
// from the working directory up to the folder holding go.mod.
func RepoRoot() string {
	if _, file, _, _ := runtime.Caller(0); filepath.IsAbs(file) {
		return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
	}
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if filepath.Dir(dir) == dir {
			return wd
		}
	}
}

// ArgoRolloutsModule and ArgoRolloutsVersion pin the module whose manifests
// hold the Argo Rollout CRD. It is a development dependency only: no product
// package imports it (its API packages would drag the Argo controller's
// dependencies in), and it is not in go.mod; RolloutCRDFile downloads it
// through the module proxy (v1.10.2 and later need Go 1.26.10).
const (
	ArgoRolloutsModule  = "github.com/argoproj/argo-rollouts"
	ArgoRolloutsVersion = "v1.10.1"
)

// RolloutCRDFile returns the path of the Argo Rollout CRD
// (manifests/crds/rollout-crd.yaml of ArgoRolloutsModule at
// ArgoRolloutsVersion), downloading the module into the module cache first.
func RolloutCRDFile() (string, error) {
	dir, err := downloadModule(ArgoRolloutsModule, ArgoRolloutsVersion)
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "manifests", "crds", "rollout-crd.yaml"), nil
}

// RolloutCRD reads the Argo Rollout CRD of RolloutCRDFile.
func RolloutCRD() (*apiextensionsv1.CustomResourceDefinition, error) {
	f, err := RolloutCRDFile()
	if err != nil {
		return nil, err
	}
	crds, err := readCRDs(f)
	if err != nil {
		return nil, err
	}
	if len(crds) != 1 {
		return nil, fmt.Errorf("%s: want one CRD, found %d", f, len(crds))
	}
	return crds[0], nil
}

// downloadModule runs `go mod download -json mod@version` (which leaves go.mod
// alone) and returns the module's folder in the module cache.
func downloadModule(mod, version string) (string, error) {
	key := mod + "@" + version
	modMu.Lock()
	defer modMu.Unlock()
	if v, ok := modCache[key]; ok {
		return v[0], nil
	}
	cmd := exec.Command("go", "mod", "download", "-json", key)
	cmd.Dir = RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct{ Dir, Error string }
	if jerr := json.Unmarshal(out, &info); jerr != nil && err == nil {
		err = jerr
	}
	if info.Error != "" {
		err = errors.New(info.Error)
	}
	if err != nil || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: %v: %s", key, err, stderr.String())
	}
	modCache[key] = [2]string{info.Dir, version}
	return info.Dir, nil
}

// CRDs reads the CRDs Start installs: ours, Istio's, Gateway API's and Argo's Rollout.
func CRDs(opts Options) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := filepath.Glob(filepath.Join(RepoRoot(), "crds", "manifests", "*.yaml"))
	if err != nil {
		return nil, err
	}
	if !opts.WithoutMeshCRDs {
		istio, err := moduleDir("istio.io/api")
		if err != nil {
			return nil, err
		}
		files = append(files, filepath.Join(istio, "kubernetes", "customresourcedefinitions.gen.yaml"))
		gw, err := moduleDir("sigs.k8s.io/gateway-api")
		if err != nil {
			return nil, err
		}
		channel := opts.GatewayAPIChannel
		if channel == "" {
			channel = GatewayAPIStandard
		}
		gwFiles, err := filepath.Glob(filepath.Join(gw, "config", "crd", string(channel), "*.yaml"))
		if err != nil {
			return nil, err
		}
		files = append(files, gwFiles...)
		rollout, err := RolloutCRDFile()
		if err != nil {
			return nil, err
		}
		files = append(files, rollout)
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		crds, err := readCRDs(f)
		if err != nil {
			return nil, err
		}
		out = append(out, crds...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no CRDs found (run make manifests)")
	}
	return out, nil
}

var crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}

// readCRDs decodes every CustomResourceDefinition of a multi-document YAML file,
// ignoring other kinds (Gateway API ships a ValidatingAdmissionPolicy beside its CRDs).
func readCRDs(path string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReaderSize(f, 1<<20))
	var out []*apiextensionsv1.CustomResourceDefinition
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return nil, fmt.Errorf("decode %s: %w", path, err)
		}
		if meta.Kind != crdGVK.Kind || meta.APIVersion != crdGVK.GroupVersion().String() {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.UnmarshalStrict(doc, crd); err != nil {
			// Istio's generated file carries fields newer than our apiextensions types in some releases.
			if err2 := yaml.Unmarshal(doc, crd); err2 != nil {
				return nil, fmt.Errorf("decode CRD in %s: %w", path, err2)
			}
		}
		out = append(out, crd)
	}
}

// FuzzOnly reports whether the test binary runs only a fuzz target (the
// coordinator with -test.fuzz or one of its workers), which needs no API
// server: TestMain can then skip starting one in every worker process.
// Call it after flag.Parse.
func FuzzOnly() bool {
	for _, name := range []string{"test.fuzzworker", "test.fuzz"} {
		if f := flag.Lookup(name); f != nil && f.Value.String() != "" && f.Value.String() != "false" {
			return true
		}
	}
	return false
}
