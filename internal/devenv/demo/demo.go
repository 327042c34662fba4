// Package demo installs SandboxMesh and its example app on a cluster the way a
// user would: the Helm chart (deploy/helm/sandboxmesh, rendered and installed
// by the real helm), the control plane in the cluster, a registered cluster
// with its agent, the hotrod example and a first sandbox created over the REST
// API. `make demo` (sm-cluster demo) and the end-to-end tests (test/e2e) share
// it, so what the tests prove is what the demo shows.
package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/devmesh/inject"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

// Defaults of Options.
const (
	DefaultNamespace = "sandboxmesh-system"
	DefaultRelease   = "sandboxmesh"
	DefaultOrg       = "default"
	DefaultCluster   = "local"
	// ExampleNamespace is the namespace of the hotrod example (examples/hotrod/k8s).
	ExampleNamespace = "hotrod"
	fieldOwner       = "sandboxmesh-demo"
)

// Options configure Install.
type Options struct {
	// RepoDir is the repository root (chart, example manifests, hack/helm.sh).
	RepoDir string
	// Kubeconfig is the cluster's kubeconfig file.
	Kubeconfig string
	// Namespace and Release of the Helm release (defaults above).
	Namespace, Release string
	// Org and Cluster name the control-plane org and the registered cluster.
	Org, Cluster string
	// Values are extra `--set` values for the chart (key=value).
	Values []string
	// Helm is the helm command (default: bash <RepoDir>/hack/helm.sh).
	Helm []string
	// Progress receives one line per step; nil discards.
	Progress io.Writer
	// Log receives debug logs; nil discards.
	Log *slog.Logger
}

func (o *Options) defaults() {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Release == "" {
		o.Release = DefaultRelease
	}
	if o.Org == "" {
		o.Org = DefaultOrg
	}
	if o.Cluster == "" {
		o.Cluster = DefaultCluster
	}
	if len(o.Helm) == 0 {
		o.Helm = []string{"bash", filepath.Join(o.RepoDir, "hack", "helm.sh")}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// Env is an installed SandboxMesh: clients for the cluster and the control plane.
type Env struct {
	Options
	Config *rest.Config
	Kube   kubernetes.Interface
	Client client.Client
	// ControlPlaneURL is the control plane's in-cluster Service address,
	// reachable from the host of the local cluster (kube-proxy routes Service
	// IPs there).
	ControlPlaneURL string
	// APIKey is the bootstrap admin key of Org.
	APIKey string
	API    *cpclient.Client
}

// Step prints one progress line.
func (e *Env) Step(format string, args ...any) {
	fmt.Fprintf(e.Progress, ">> "+format+"\n", args...)
}

// Connect builds an Env for the cluster of o.Kubeconfig without installing
// anything.
func Connect(o Options) (*Env, error) {
	o.defaults()
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", o.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &Env{Options: o, Config: cfg, Kube: kube, Client: c}, nil
}

// Install installs (or upgrades) the chart with the control plane enabled,
// registers the cluster over the REST API, creates its agent token and
// upgrades the release with the agent enabled, waiting for each Deployment.
// It is idempotent: a second run reuses the bootstrap key and registration.
func Install(ctx context.Context, o Options) (*Env, error) {
	e, err := Connect(o)
	if err != nil {
		return nil, err
	}
	key, err := e.bootstrapKey(ctx)
	if err != nil {
		return nil, err
	}
	e.APIKey = key
	rolloutCRDNew, err := e.installRolloutCRD(ctx)
	if err != nil {
		return nil, err
	}
	base := []string{
		"controlplane.enabled=true",
		"controlplane.bootstrapKey=" + key,
		"image.pullPolicy=Never",
	}
	e.Step("helm upgrade --install %s deploy/helm/sandboxmesh (operator, webhook, route server, control plane)", e.Release)
	if err := e.helmInstall(ctx, append(base, "agent.enabled=false")); err != nil {
		return nil, err
	}
	if rolloutCRDNew {
		// An operator of an earlier install looked for Rollouts before the CRD existed.
		if err := e.restartDeployment(ctx, e.Namespace, e.Release+"-operator"); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{e.Release + "-operator", e.Release + "-controlplane"} {
		if err := e.WaitDeployment(ctx, e.Namespace, d, 3*time.Minute); err != nil {
			return nil, err
		}
	}
	svc, err := e.Kube.CoreV1().Services(e.Namespace).Get(ctx, e.Release+"-controlplane", metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("control plane Service: %w", err)
	}
	port := int32(80)
	if len(svc.Spec.Ports) > 0 {
		port = svc.Spec.Ports[0].Port
	}
	e.ControlPlaneURL = "http://" + net.JoinHostPort(svc.Spec.ClusterIP, fmt.Sprint(port))
	if e.API, err = cpclient.New(e.ControlPlaneURL, key); err != nil {
		return nil, err
	}
	if err := e.waitControlPlane(ctx); err != nil {
		return nil, err
	}
	token, err := e.clusterToken(ctx)
	if err != nil {
		return nil, err
	}
	e.Step("registered cluster %q in org %q; enabling its agent", e.Cluster, e.Org)
	vals := append(base, "agent.enabled=true", "agent.clusterName="+e.Cluster, "agent.token="+token)
	if err := e.helmInstall(ctx, vals); err != nil {
		return nil, err
	}
	// The operator changes with the agent too (the jobs namespaces, the sidecars' capture URL): pods
	// created before its new version serves the webhook would miss them.
	for _, d := range []string{e.Release + "-agent", e.Release + "-operator"} {
		if err := e.WaitDeployment(ctx, e.Namespace, d, 3*time.Minute); err != nil {
			return nil, err
		}
	}
	if err := e.waitClusterConnected(ctx, time.Minute); err != nil {
		return nil, err
	}
	return e, nil
}

// installRolloutCRD installs the Argo Rollout CRD (from the argo-rollouts
// module, testenv.RolloutCRD; no Argo controller runs) and waits until it is
// established, so the operator, which discovers Rollouts when it starts, forks
// them. It reports whether the CRD was new.
func (e *Env) installRolloutCRD(ctx context.Context) (bool, error) {
	crd, err := testenv.RolloutCRD()
	if err != nil {
		return false, fmt.Errorf("Argo Rollout CRD: %w", err)
	}
	created := true
	if err := e.Client.Create(ctx, crd); apierrors.IsAlreadyExists(err) {
		created = false
	} else if err != nil {
		return false, fmt.Errorf("create CRD %s: %w", crd.Name, err)
	}
	if created {
		e.Step("installed the Argo Rollout CRD %s (%s %s)", crd.Name, testenv.ArgoRolloutsModule, testenv.ArgoRolloutsVersion)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		var cur apiextensionsv1.CustomResourceDefinition
		if err := e.Client.Get(ctx, client.ObjectKey{Name: crd.Name}, &cur); err != nil {
			return false, fmt.Errorf("get CRD %s: %w", crd.Name, err)
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return created, nil
			}
		}
		if time.Now().After(deadline) {
			return false, fmt.Errorf("CRD %s not established after a minute", crd.Name)
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// restartDeployment restarts the pods of Deployment ns/name if it exists
// (the kubectl rollout restart annotation).
func (e *Env) restartDeployment(ctx context.Context, ns, name string) error {
	patch := fmt.Sprintf(`{"spec":{"template":{"metadata":{"annotations":{"kubectl.kubernetes.io/restartedAt":%q}}}}}`, time.Now().UTC().Format(time.RFC3339))
	_, err := e.Kube.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("restart Deployment %s/%s: %w", ns, name, err)
	}
	return nil
}

// bootstrapKey returns the admin key kept in a Secret of the release's
// namespace, generating it on first install.
func (e *Env) bootstrapKey(ctx context.Context) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.Namespace}}
	if _, err := e.Kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("namespace %s: %w", e.Namespace, err)
	}
	name := e.Release + "-demo-admin"
	s, err := e.Kube.CoreV1().Secrets(e.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return string(s.Data["apiKey"]), nil
	}
	if !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("secret %s/%s: %w", e.Namespace, name, err)
	}
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	key := "smk_demo_" + hex.EncodeToString(b)
	s = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.Namespace}, StringData: map[string]string{"apiKey": key}}
	if _, err := e.Kube.CoreV1().Secrets(e.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("secret %s/%s: %w", e.Namespace, name, err)
	}
	return key, nil
}

// clusterToken registers the cluster and returns a new token, or the token
// of the release's agent Secret when the cluster was registered before.
func (e *Env) clusterToken(ctx context.Context) (string, error) {
	_, err := e.API.GetCluster(ctx, e.Org, e.Cluster)
	if err == nil {
		if s, err := e.Kube.CoreV1().Secrets(e.Namespace).Get(ctx, e.Release+"-agent", metav1.GetOptions{}); err == nil && len(s.Data["token"]) > 0 {
			return string(s.Data["token"]), nil
		}
	} else {
		if !errors.Is(err, cpclient.ErrNotFound) {
			return "", fmt.Errorf("get cluster %s: %w", e.Cluster, err)
		}
		if _, err := e.API.RegisterCluster(ctx, e.Org, e.Cluster); err != nil {
			return "", fmt.Errorf("register cluster %s: %w", e.Cluster, err)
		}
	}
	tok, err := e.API.CreateClusterToken(ctx, e.Org, e.Cluster)
	if err != nil {
		return "", fmt.Errorf("cluster token for %s: %w", e.Cluster, err)
	}
	return tok.Token, nil
}

func (e *Env) helmInstall(ctx context.Context, values []string) error {
	args := append([]string{}, e.Helm[1:]...)
	args = append(args, "upgrade", "--install", e.Release, filepath.Join(e.RepoDir, "deploy", "helm", "sandboxmesh"),
		"--namespace", e.Namespace, "--kubeconfig", e.Kubeconfig)
	for _, v := range append(values, e.Values...) {
		args = append(args, "--set", v)
	}
	cmd := exec.CommandContext(ctx, e.Helm[0], args...)
	cmd.Dir = e.RepoDir
	cmd.Env = append(os.Environ(), "KUBECONFIG="+e.Kubeconfig)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("helm upgrade --install %s: %w\n%s", e.Release, err, redact(out.String(), e.APIKey))
	}
	e.Log.Debug("helm", "output", redact(out.String(), e.APIKey), "took", time.Since(start))
	return nil
}

func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "<redacted>")
}

// WaitDeployment waits until the Deployment's current generation is rolled
// out and every replica is available, printing progress every 10 s.
func (e *Env) WaitDeployment(ctx context.Context, ns, name string, timeout time.Duration) error {
	start := time.Now()
	last := time.Now()
	var why string
	for {
		d, err := e.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case err != nil:
			why = err.Error()
		case deploymentDone(d):
			e.Step("deployment %s/%s available (%s)", ns, name, time.Since(start).Round(100*time.Millisecond))
			return nil
		default:
			why = fmt.Sprintf("%d/%d replicas updated and available", d.Status.UpdatedReplicas, want(d))
			if p := e.podProblem(ctx, ns, d); p != "" {
				why += "; " + p
			}
		}
		if time.Since(start) > timeout {
			return fmt.Errorf("deployment %s/%s not available after %s: %s", ns, name, timeout, why)
		}
		if time.Since(last) > 10*time.Second {
			e.Step("waiting for deployment %s/%s: %s (%s)", ns, name, why, time.Since(start).Round(time.Second))
			last = time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func want(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func deploymentDone(d *appsv1.Deployment) bool {
	n := want(d)
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == n &&
		d.Status.AvailableReplicas == n && d.Status.Replicas == n
}

// podProblem names the first waiting reason of the Deployment's pods, e.g.
// "pod x: container y: CrashLoopBackOff".
func (e *Env) podProblem(ctx context.Context, ns string, d *appsv1.Deployment) string {
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil {
		return ""
	}
	pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" && w.Reason != "ContainerCreating" {
				return fmt.Sprintf("pod %s: container %s: %s %s", p.Name, cs.Name, w.Reason, w.Message)
			}
			if t := cs.LastTerminationState.Terminated; t != nil && !cs.Ready {
				return fmt.Sprintf("pod %s: container %s exited %d: %s", p.Name, cs.Name, t.ExitCode, lastLines(t.Message, 2))
			}
		}
	}
	return ""
}

// lastLines returns the last n non-empty lines of s, joined with " | ".
func lastLines(s string, n int) string {
	var out []string
	lines := strings.Split(s, "\n")
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		if l := strings.TrimSpace(lines[i]); l != "" {
			out = append([]string{l}, out...)
		}
	}
	return strings.Join(out, " | ")
}

func (e *Env) waitControlPlane(ctx context.Context) error {
	deadline := time.Now().Add(time.Minute)
	c := &http.Client{Timeout: 3 * time.Second}
	var last error
	for time.Now().Before(deadline) {
		resp, err := c.Get(e.ControlPlaneURL + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
	return fmt.Errorf("control plane %s not reachable from this host: %w", e.ControlPlaneURL, last)
}

func (e *Env) waitClusterConnected(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		cl, err := e.API.GetCluster(ctx, e.Org, e.Cluster)
		if err == nil && cl.LastSeenAt != "" {
			e.Step("agent of cluster %q connected", e.Cluster)
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the agent of cluster %s did not connect in %s (last: %+v, %v)", e.Cluster, timeout, cl, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// DeployExample applies the hotrod manifests (examples/hotrod/k8s, the files
// its kustomization lists) with server-side apply and waits for every
// Deployment.
func (e *Env) DeployExample(ctx context.Context) error {
	dir := filepath.Join(e.RepoDir, "examples", "hotrod", "k8s")
	e.Step("applying the hotrod example (%s)", dir)
	objs, err := ReadManifests(dir)
	if err != nil {
		return err
	}
	var deps []string
	for _, u := range objs {
		if err := e.Client.Patch(ctx, u, client.Apply, client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", u.GetKind(), u.GetNamespace(), u.GetName(), err)
		}
		if u.GetKind() == "Namespace" {
			if err := e.waitServiceAccount(ctx, u.GetName()); err != nil {
				return err
			}
			if err := e.waitInjector(ctx, u.GetName()); err != nil {
				return err
			}
		}
		if u.GetKind() == "Deployment" {
			deps = append(deps, u.GetName())
		}
	}
	for _, d := range deps {
		if err := e.WaitDeployment(ctx, ExampleNamespace, d, 3*time.Minute); err != nil {
			return err
		}
	}
	return e.repairInjection(ctx, ExampleNamespace, deps)
}

// waitInjector waits until the sidecar injection webhook answers for namespace ns: the webhook fails
// open (failurePolicy Ignore), so a pod created while its Service has no ready endpoint yet would run
// without a sidecar. A server-side dry run of a pod asking for injection comes back with the webhook's
// status annotation once it answers.
func (e *Env) waitInjector(ctx context.Context, ns string) error {
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "injection-probe-", Namespace: ns,
			Annotations: map[string]string{inject.AnnotationInject: "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Image: "probe",
			Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, err := e.Kube.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && got.Annotations[inject.AnnotationStatus] != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sidecar injection webhook does not answer for namespace %s (a dry-run pod came back without %s): %v", ns, inject.AnnotationStatus, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// repairInjection deletes the pods of deployments deps in ns that asked for the sidecar and were
// created without it (the webhook failed open on them), and waits for their replacements: twice at most.
func (e *Env) repairInjection(ctx context.Context, ns string, deps []string) error {
	for attempt := 0; ; attempt++ {
		pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return fmt.Errorf("list pods of %s: %w", ns, err)
		}
		var missed []string
		for _, p := range pods.Items {
			if p.DeletionTimestamp == nil && p.Annotations[inject.AnnotationInject] == "true" && p.Annotations[inject.AnnotationStatus] == "" {
				missed = append(missed, p.Name)
			}
		}
		if len(missed) == 0 {
			return nil
		}
		if attempt == 2 {
			return fmt.Errorf("pods created without their sidecar (the injection webhook failed open): %s", strings.Join(missed, ", "))
		}
		e.Step("recreating %d pod(s) the injection webhook missed: %s", len(missed), strings.Join(missed, ", "))
		for _, name := range missed {
			if err := e.Kube.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
			}
		}
		for _, name := range missed {
			for gone := time.Now().Add(time.Minute); ; {
				_, err := e.Kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				if apierrors.IsNotFound(err) || time.Now().After(gone) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		for _, d := range deps {
			if err := e.WaitDeployment(ctx, ns, d, 3*time.Minute); err != nil {
				return err
			}
		}
	}
}

func (e *Env) waitServiceAccount(ctx context.Context, ns string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := e.Kube.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s has no default ServiceAccount: %w", ns, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ReadManifests reads the objects of the files a kustomization.yaml in dir
// lists under resources, in order.
func ReadManifests(dir string) ([]*unstructured.Unstructured, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k struct {
		Resources []string `json:"resources"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range k.Resources {
		f, err := os.Open(filepath.Join(dir, r))
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(f, 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); err != nil {
				f.Close()
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", r, err)
			}
			if len(u.Object) > 0 {
				objs = append(objs, u)
			}
		}
	}
	return objs, nil
}

// ReadSandbox reads a control-plane form sandbox spec (examples/specs/cli).
func ReadSandbox(file string) (*cpclient.Sandbox, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var sb cpclient.Sandbox
	if err := yaml.UnmarshalStrict(b, &sb); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &sb, nil
}

// ReadRouteGroup reads a control-plane form route group spec (examples/specs/cli).
func ReadRouteGroup(file string) (*cpclient.RouteGroup, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var rg cpclient.RouteGroup
	if err := yaml.UnmarshalStrict(b, &rg); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return &rg, nil
}

// ImageBinaries are the images the demo needs in the cluster.
var ImageBinaries = []string{"operator", "devmesh", "devmesh-init", "controlplane", "agent", "sandboxmesh-runner", "hotrod", "hotrod:v2", "sm-echo"}
