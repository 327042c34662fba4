package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/sandboxmesh/sandboxmesh/internal/cli"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

var (
	kubeOnce sync.Once
	kubeEnv  *envtest.Environment
	kubeRC   *rest.Config
	kubeErr  error
)

// startKube starts one envtest API server for the package's tests (TestMain
// stops it); it skips the test when the envtest binaries are missing.
func startKube(t *testing.T) (*envtest.Environment, *rest.Config) {
	t.Helper()
	kubeOnce.Do(func() {
		assets, err := testenv.AssetsDir()
		if err != nil {
			kubeErr = fmt.Errorf("no envtest binaries: %w", err)
			return
		}
		te := &envtest.Environment{BinaryAssetsDirectory: assets, ControlPlaneStartTimeout: 90 * time.Second, ControlPlaneStopTimeout: 30 * time.Second}
		kubeRC, kubeErr = te.Start()
		if kubeErr == nil {
			kubeEnv = te
		}
	})
	if kubeErr != nil {
		t.Skip(kubeErr)
	}
	return kubeEnv, kubeRC
}

func stopKube() {
	if kubeEnv != nil {
		_ = kubeEnv.Stop()
	}
}

// TestSandboxGetEnv reads a local workload's baseline Deployment from a real
// API server (envtest) and prints its env so that a shell's eval gets it.
func TestSandboxGetEnv(t *testing.T) {
	te, rc := startKube(t)
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) { // -count=N shares the API server
			t.Fatal(err)
		}
	}
	optional := true
	must(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "hotrod"}}, metav1.CreateOptions{}))
	must(cs.CoreV1().ConfigMaps("hotrod").Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "route-cfg"},
		Data: map[string]string{"LOG_LEVEL": "debug", "REGION": "eu west"}}, metav1.CreateOptions{}))
	must(cs.CoreV1().Secrets("hotrod").Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "route-db"},
		Data: map[string][]byte{"password": []byte(`it's "secret" $HOME`)}}, metav1.CreateOptions{}))
	labels := map[string]string{"app": "route"}
	must(cs.AppsV1().Deployments("hotrod").Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "route"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "route", Image: "route:v1",
				EnvFrom: []corev1.EnvFromSource{{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "route-cfg"}}}},
				Env: []corev1.EnvVar{
					{Name: "PORT", Value: "8083"},
					{Name: "ADDR", Value: "0.0.0.0:$(PORT) $$(PORT)"},
					{Name: "REGION", ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "route-cfg"}, Key: "REGION"}}},
					{Name: "DB_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "route-db"}, Key: "password"}}},
					{Name: "MAYBE", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Key: "k", Optional: &optional}}},
					{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
					{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
				}}, {Name: "sidecar", Image: "side:v1", Env: []corev1.EnvVar{{Name: "SIDE", Value: "1"}}}}},
		}}}, metav1.CreateOptions{}))

	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, te.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	r := newLocalRig(t)
	r.vars = h.vars
	r.vars["KUBECONFIG"] = kc
	r.mustRun("local", "connect", "--proxy-address", "127.0.0.1:0")
	r.mustRun("sandbox", "apply", "-f", "testdata/sandbox-local.yaml", "--set", "name=mine", "--set", "toLocal=localhost:8083")

	out := r.mustRun("sandbox", "get-env", "mine").stdout
	want := `export CFG_LOG_LEVEL='debug'
export CFG_REGION='eu west'
export PORT='8083'
export ADDR='0.0.0.0:8083 $(PORT)'
export REGION='eu west'
export DB_PASSWORD='it'\''s "secret" $HOME'
export NS='hotrod'
# POD_IP (field status.podIP): a pod's own field; set it by hand
`
	if out != want {
		t.Errorf("get-env:\n%s\nwant:\n%s", out, want)
	}
	// eval gets the values back byte for byte.
	sh, err := exec.Command("/bin/sh", "-c", out+`printf '%s|%s|%s' "$DB_PASSWORD" "$ADDR" "$CFG_REGION"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(sh); got != `it's "secret" $HOME|0.0.0.0:8083 $(PORT)|eu west` {
		t.Errorf("eval: %q", got)
	}
	var env []cli.EnvEntry
	if err := json.Unmarshal([]byte(r.mustRun("sandbox", "get-env", "mine", "-o", "json").stdout), &env); err != nil {
		t.Fatal(err)
	}
	if len(env) != 8 || env[5].Source != "secret hotrod/route-db key password" || env[7].Unresolved == "" {
		t.Errorf("get-env -o json: %+v", env)
	}
	if out := r.mustRun("sandbox", "get-env", "mine", "-c", "sidecar").stdout; out != "export SIDE='1'\n" {
		t.Errorf("get-env -c sidecar: %q", out)
	}
	if res := r.run("sandbox", "get-env", "mine", "--local", "nope"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "route") {
		t.Errorf("unknown local: %+v", res)
	}
	if res := r.run("sandbox", "get-env", "mine", "-c", "nope"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "route, sidecar") {
		t.Errorf("unknown container: %+v", res)
	}
}

var pfRuns int

// TestLocalConnectPortForward: with type PortForward the daemon finds the
// operator's leader pod through a real API server (labels, readiness, the
// Lease) and asks it for a port-forward. envtest has no kubelet, so the
// forward itself fails; the daemon's last error names the pod it chose.
func TestLocalConnectPortForward(t *testing.T) {
	te, rc := startKube(t)
	cs := kubernetes.NewForConfigOrDie(rc)
	ctx := context.Background()
	pfRuns++
	ns := fmt.Sprintf("sbm-pf-%d", pfRuns) // -count=N shares the API server
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app.kubernetes.io/part-of": "sandboxmesh", "app.kubernetes.io/component": "operator"}
	for _, name := range []string{"op-a", "op-b", "op-c"} {
		p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "operator", Image: "op:v1",
				Ports: []corev1.ContainerPort{{Name: "local-gateway", ContainerPort: 15013}}}}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if name == "op-c" {
			continue // never ready
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	holder := "op-b_0f1e2d3c"
	if _, err := cs.CoordinationV1().Leases(ns).Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "sandboxmesh-operator.sandboxmesh.dev"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, te.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	r := newLocalRig(t)
	r.vars["KUBECONFIG"] = kc
	r.vars["SANDBOXMESH_OPERATOR_NAMESPACE"] = ns
	r.writeConfig("local:\n  connections:\n    - cluster: dev\n")
	res := r.run("local", "connect", "--proxy-address", "127.0.0.1:0", "--wait-timeout", "3s")
	if res.code != cli.ExitTimeout || !strings.Contains(res.stderr, "port-forward to "+ns+"/op-b") {
		t.Errorf("connect with PortForward: exit %d\n%s\ndaemon log: %s", res.code, res.stderr, r.logs.String())
	}
	r.vars["SANDBOXMESH_OPERATOR_NAMESPACE"] = "nowhere"
	r.mustRun("local", "disconnect")
	res = r.run("local", "connect", "--proxy-address", "127.0.0.1:0", "--wait-timeout", "1s")
	if res.code != cli.ExitTimeout || !strings.Contains(res.stderr, "namespace nowhere: no ready operator pod") {
		t.Errorf("connect with no operator: exit %d\n%s", res.code, res.stderr)
	}
}
