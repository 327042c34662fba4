package meshadapters

import (
	"flag"
	"fmt"
	"os"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/go-logr/logr"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

// testEnv is the envtest API server shared by the conformance suite.
type testEnv struct {
	cfg    *rest.Config
	client client.WithWatch
}

var env *testEnv

// TestMain starts a real kube-apiserver and etcd with the real Istio and
// Gateway API CRDs (from internal/devenv/testenv). Only the mesh CRDs are installed:
// this package does not use the SandboxMesh CRDs, so a CRD being edited
// elsewhere cannot block it. A start failure fails the package (never a skip).
func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard())
	flag.Parse()
	if testenv.FuzzOnly() {
		// Fuzz targets render objects in memory; no API server per fuzz worker.
		os.Exit(m.Run())
	}
	assets, err := testenv.AssetsDir()
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshadapters: %v\n", err)
		os.Exit(1)
	}
	all, err := testenv.CRDs(testenv.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshadapters: %v\n", err)
		os.Exit(1)
	}
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, c := range all {
		if c.Spec.Group != "sandboxmesh.dev" {
			crds = append(crds, c)
		}
	}
	scheme, err := testenv.NewScheme()
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshadapters: %v\n", err)
		os.Exit(1)
	}
	te := &envtest.Environment{BinaryAssetsDirectory: assets, CRDs: crds, ErrorIfCRDPathMissing: true,
		ControlPlaneStartTimeout: 90 * time.Second, ControlPlaneStopTimeout: 30 * time.Second, Scheme: scheme}
	cfg, err := te.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "meshadapters: start envtest: %v\n", err)
		os.Exit(1)
	}
	cfg.QPS, cfg.Burst = 500, 1000
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = te.Stop()
		fmt.Fprintf(os.Stderr, "meshadapters: client: %v\n", err)
		os.Exit(1)
	}
	env = &testEnv{cfg: cfg, client: c}
	code := m.Run()
	if err := te.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "meshadapters: stop envtest: %v\n", err)
	}
	os.Exit(code)
}
