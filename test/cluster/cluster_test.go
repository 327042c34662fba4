//go:build e2e

// Package cluster_test is the end-to-end test of the local cluster: it brings
// the cluster up from upstream parts the way a user does (`make cluster-up`,
// with only the sm-echo image), checks the kubeconfig path it prints, runs a
// Deployment of our sm-echo image behind a Service, reaches it through its
// ClusterIP and DNS name from a pod and from the host, tears the cluster down
// with `make cluster-down` and checks the host is as before. (test/e2e drives
// the same cluster through the library, localcluster.Cluster.Up and Down.)
//
// Run as root: go test -tags e2e -v -timeout 40m ./test/cluster/
// Not root: skipped, except under CI=true, where it fails.
package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/images"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/localcluster"
)

const ns = "sm-e2e"

type tw struct{ t *testing.T }

func (w tw) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// repoRoot is the repository's root: go test runs a test in its package's
// folder, test/cluster (runtime.Caller would not do: make test-e2e builds with
// -trimpath, as the images are built).
func repoRoot(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

func TestLocalCluster(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 35*time.Minute)
	defer cancel()
	cfg := localcluster.Config{
		RepoDir:   repoRoot(t),
		StateDir:  os.Getenv("SM_CLUSTER_DIR"),
		K8sBinDir: os.Getenv("SM_K8S_BIN"),
		Progress:  tw{t},
		Log:       slog.New(slog.NewTextHandler(tw{t}, nil)),
	}
	cl, err := localcluster.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg = cl.Config()
	if cl.Running() {
		t.Fatalf("a local cluster already runs in %s; run `sm-cluster down` first", cfg.StateDir)
	}
	if err := os.MkdirAll(filepath.Join(cfg.StateDir, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := cfg.EnsurePackages(ctx); err != nil {
		t.Fatal(err)
	}
	// Build the Kubernetes binaries (cached) before timing the start-up.
	if cfg.K8sBinDir == "" {
		if out, err := runCmd(ctx, cfg.RepoDir, "bash", append([]string{"hack/k8s-build.sh"}, localcluster.K8sComponents...)...); err != nil {
			t.Fatalf("k8s-build: %v\n%s", err, out)
		} else {
			cfg.K8sBinDir = strings.TrimSpace(lastLine(out))
		}
		cl, _ = localcluster.New(cfg)
	}
	// The script behind `make cluster-up` builds cmd/sm-cluster (cached):
	// build it before timing the start-up.
	if out, err := runCmd(ctx, cfg.RepoDir, filepath.Join(cfg.RepoDir, "hack", "cluster", "sm-cluster.sh"), "--help"); err != nil {
		t.Fatalf("hack/cluster/sm-cluster.sh --help: %v\n%s", err, out)
	}
	// The user's path: make cluster-up / make cluster-down, with only the
	// image this test runs (SM_IMAGES; test/e2e builds all of them).
	env := append(os.Environ(), "SM_IMAGES=sm-echo", "SM_CLUSTER_DIR="+cfg.StateDir, "SM_K8S_BIN="+cfg.K8sBinDir,
		"SM_ALLOW_IMAGE_FAILURES=", "MAKEFLAGS=", "MAKELEVEL=")

	before, err := localcluster.SnapshotHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	downDone := false
	defer func() {
		if !downDone {
			if err := cl.Down(context.Background()); err != nil {
				t.Errorf("down: %v", err)
			}
		}
	}()

	start := time.Now()
	kubeconfig, upLog := makeTarget(ctx, t, cfg.RepoDir, env, "cluster-up")
	makeUpTime := time.Since(start)
	upTime := makeUpTime
	if m := regexp.MustCompile(`cluster up in (\S+);`).FindStringSubmatch(upLog); m != nil {
		if d, err := time.ParseDuration(m[1]); err == nil {
			upTime = d
		}
	}
	t.Logf("make cluster-up in %s (cluster up in %s), kubeconfig %s", makeUpTime.Round(10*time.Millisecond), upTime, kubeconfig)
	if kubeconfig != cfg.KubeconfigPath() {
		t.Errorf("make cluster-up printed %q as its last line, want the kubeconfig path %s", kubeconfig, cfg.KubeconfigPath())
	}
	// The printed path is a working admin kubeconfig.
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatalf("kubeconfig %q printed by make cluster-up: %v", kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := cs.Discovery().ServerVersion(); err != nil {
		t.Fatalf("kubeconfig %s: server version: %v", kubeconfig, err)
	} else {
		t.Logf("kubeconfig %s reaches Kubernetes %s", kubeconfig, v.GitVersion)
	}

	// A second up is a no-op: same path, nothing restarted.
	start2 := time.Now()
	kubeconfig2, upLog2 := makeTarget(ctx, t, cfg.RepoDir, env, "cluster-up")
	t.Logf("second make cluster-up in %s", time.Since(start2).Round(10*time.Millisecond))
	if kubeconfig2 != kubeconfig || !strings.Contains(upLog2, "cluster already running") {
		t.Errorf("second make cluster-up printed %q and did not say the cluster already runs:\n%s", kubeconfig2, upLog2)
	}

	// No traffic before the network guard is confirmed.
	if err := cfg.CheckGuard(ctx); err != nil {
		t.Fatalf("network guard: %v", err)
	}

	deployStart := time.Now()
	clusterIP := deployEcho(ctx, t, cs)
	t.Logf("echo Deployment available in %s; ClusterIP %s", time.Since(deployStart).Round(10*time.Millisecond), clusterIP)

	// From the host, through kube-proxy's rules.
	body := getWithRetry(ctx, t, fmt.Sprintf("http://%s/from-host", clusterIP))
	if !strings.Contains(body, `"path":"/from-host"`) {
		t.Errorf("host -> ClusterIP: unexpected body %s", body)
	}

	// From a pod, by DNS name (short, namespaced, fully qualified) and by ClusterIP.
	podStart := time.Now()
	logs := runClientPod(ctx, t, cs, []string{
		"http://echo/short",
		"http://echo." + ns + "/ns",
		"http://echo." + ns + ".svc.cluster.local/fqdn",
		"http://" + clusterIP + "/ip",
	})
	t.Logf("client pod succeeded in %s:\n%s", time.Since(podStart).Round(10*time.Millisecond), logs)
	for _, p := range []string{"/short", "/ns", "/fqdn", "/ip"} {
		if logs != "" && !strings.Contains(logs, `"path":"`+p+`"`) {
			t.Errorf("pod -> %s: not in client output", p)
		}
	}

	// Nothing leaves the machine: a pod's request to an outside address
	// (TEST-NET-3, never routed anywhere) must fail, stopped by the guard's
	// FORWARD DROP, and outside names must not resolve.
	dropsBefore := guardDrops(t)
	runFailingPod(ctx, t, cs, "egress", []string{"get", "--wait=3s", "http://203.0.113.1/"})
	if d := guardDrops(t); d <= dropsBefore {
		t.Errorf("guard FORWARD DROP counter did not move (%d -> %d)", dropsBefore, d)
	}
	runFailingPod(ctx, t, cs, "outside-dns", []string{"get", "--wait=1s", "http://example.com/"})

	comps, _, err := cl.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	var parts []string
	for _, c := range comps {
		if !c.Alive {
			t.Errorf("component %s is not running (log %s)", c.Name, c.Log)
		}
		total += c.RSS
		parts = append(parts, fmt.Sprintf("%s=%.0fMiB", c.Name, float64(c.RSS)/(1<<20)))
	}
	t.Logf("RESULT startup=%s rss_total=%.0fMiB %s", upTime.Round(10*time.Millisecond), float64(total)/(1<<20), strings.Join(parts, " "))

	downStart := time.Now()
	_, downLog := makeTarget(ctx, t, cfg.RepoDir, env, "cluster-down")
	downDone = true
	if !strings.Contains(downLog, "cluster down; host restored") {
		t.Errorf("make cluster-down did not report the host restored:\n%s", downLog)
	}
	t.Logf("make cluster-down in %s", time.Since(downStart).Round(10*time.Millisecond))
	after, err := localcluster.SnapshotHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(after); len(d) > 0 {
		t.Errorf("host not restored after down:\n%s", strings.Join(d, "\n"))
	}
	if _, err := os.Stat(cfg.StateDir); err == nil {
		t.Errorf("state dir %s still exists", cfg.StateDir)
	}
}

// makeTarget runs `make <target>` in the repository as a user does, its
// progress (stderr) passed to the test log. It returns the last line of
// stdout (cluster-up prints the kubeconfig path there) and stderr.
func makeTarget(ctx context.Context, t *testing.T, repo string, env []string, target string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "-C", repo, target)
	cmd.Env = env
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, tw{t})
	if err := cmd.Run(); err != nil {
		t.Fatalf("make %s: %v\nstdout:\n%s", target, err, stdout.String())
	}
	return strings.TrimSpace(lastLine(stdout.String())), stderr.String()
}

func deployEcho(ctx context.Context, t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	// The namespace's default ServiceAccount is created by the controller-manager.
	waitUntil(ctx, t, 30*time.Second, "default ServiceAccount", func() error {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	labels := map[string]string{"app": "echo"}
	replicas := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:            "echo",
					Image:           images.Ref("sm-echo"),
					ImagePullPolicy: corev1.PullNever,
					Args:            []string{"serve", "--listen=:8080"},
					Env:             []corev1.EnvVar{{Name: "VERSION", Value: "baseline"}},
					Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					ReadinessProbe: &corev1.Probe{
						ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
						PeriodSeconds: 1,
					},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create deployment: %v", err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "echo", Namespace: ns},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}},
		},
	}
	created, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	waitUntil(ctx, t, 120*time.Second, "echo Deployment available", func() error {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "echo", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if d.Status.AvailableReplicas != replicas {
			return fmt.Errorf("%d/%d available", d.Status.AvailableReplicas, replicas)
		}
		return nil
	})
	return created.Spec.ClusterIP
}

func runClientPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, urls []string) string {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "client", Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name:            "client",
				Image:           images.Ref("sm-echo"),
				ImagePullPolicy: corev1.PullNever,
				Args:            append([]string{"get", "--wait=60s"}, urls...),
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create client pod: %v", err)
	}
	var phase corev1.PodPhase
	waitUntil(ctx, t, 120*time.Second, "client pod finished", func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, "client", metav1.GetOptions{})
		if err != nil {
			return err
		}
		phase = p.Status.Phase
		if phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			return nil
		}
		return fmt.Errorf("phase %s", phase)
	})
	logs, err := cs.CoreV1().Pods(ns).GetLogs("client", &corev1.PodLogOptions{}).DoRaw(ctx)
	if err != nil {
		t.Errorf("client pod logs (apiserver -> kubelet): %v", err)
	}
	if phase != corev1.PodSucceeded {
		t.Fatalf("client pod %s:\n%s", phase, logs)
	}
	return string(logs)
}

func getWithRetry(ctx context.Context, t *testing.T, url string) string {
	t.Helper()
	var body string
	c := &http.Client{Timeout: 3 * time.Second}
	waitUntil(ctx, t, 30*time.Second, "GET "+url, func() error {
		resp, err := c.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		body = string(b)
		return nil
	})
	return body
}

func waitUntil(ctx context.Context, t *testing.T, timeout time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if err = f(); err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not reached in %s: %v", what, timeout, err)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// guardDrops sums the packet counters of the guard's FORWARD DROP rules in the mangle table.
func guardDrops(t *testing.T) int64 {
	t.Helper()
	out, err := runCmd(context.Background(), "/", "iptables", "-w", "-t", "mangle", "-L", "SM-GUARD-FWD", "-v", "-x", "-n")
	if err != nil {
		t.Fatalf("iptables -L SM-GUARD-FWD: %v", err)
	}
	var total int64
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) > 2 && f[2] == "DROP" {
			var n int64
			fmt.Sscan(f[0], &n)
			total += n
		}
	}
	return total
}

// runFailingPod runs sm-echo with args in a pod that must end Failed.
func runFailingPod(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, args []string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{
				Name: name, Image: images.Ref("sm-echo"), ImagePullPolicy: corev1.PullNever, Args: args,
			}},
		},
	}
	if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s: %v", name, err)
	}
	var phase corev1.PodPhase
	waitUntil(ctx, t, 60*time.Second, "pod "+name+" finished", func() error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if phase = p.Status.Phase; phase == corev1.PodSucceeded || phase == corev1.PodFailed {
			return nil
		}
		return fmt.Errorf("phase %s", phase)
	})
	logs, _ := cs.CoreV1().Pods(ns).GetLogs(name, &corev1.PodLogOptions{}).DoRaw(ctx)
	if phase != corev1.PodFailed {
		t.Errorf("pod %s: phase %s, want Failed:\n%s", name, phase, logs)
		return
	}
	t.Logf("pod %s failed as it must: %s", name, strings.TrimSpace(string(logs)))
}
