// Package helm_test tests the Helm chart deploy/helm/sandboxmesh with the real
// helm (hack/helm.sh builds it from the helm.sh/helm/v3 module on first use):
// lint, renders with several value sets decoded strictly into the real API
// types, bad values rejected by the schema, the copies of generated files kept
// identical, a golden render, and the default render accepted by a real API
// server.
package helm_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

var update = flag.Bool("update", false, "rewrite testdata/default.golden.yaml")

const ns = "sandboxmesh-system"

var env *testenv.Env

func TestMain(m *testing.M) {
	flag.Parse()
	if testenv.FuzzOnly() {
		os.Exit(m.Run())
	}
	// Build helm once before the tests (and before the API server starts).
	if out, err := exec.Command("bash", filepath.Join(root(), "hack", "helm.sh"), "--print-path").CombinedOutput(); err != nil {
		if _, lerr := exec.LookPath("go"); lerr != nil {
			// Only reachable when the test binary runs without the toolchain on PATH.
			fmt.Fprintf(os.Stderr, "SKIP deploy/helm: helm is not built yet and go is not on PATH (hack/helm.sh builds helm with it)\n")
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "hack/helm.sh: %v\n%s", err, out)
		os.Exit(1)
	}
	testenv.Main(m, testenv.Options{WithoutMeshCRDs: true}, func(e *testenv.Env) int {
		env = e
		return m.Run()
	})
}

func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

func chartDir() string { return filepath.Join(root(), "deploy", "helm", "sandboxmesh") }

func helm(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(root(), "hack", "helm.sh")}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.String(), nil
}

func render(t *testing.T, values ...string) string {
	t.Helper()
	args := []string{"template", "sandboxmesh", chartDir(), "--namespace", ns, "--include-crds"}
	for _, v := range values {
		args = append(args, "--set", v)
	}
	out, err := helm(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var scheme = func() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = apiextensionsv1.AddToScheme(s)
	return s
}()

// decode splits a render into objects and decodes each strictly into its
// Go type (unknown or duplicate fields are errors). cert-manager objects have
// no Go type here and come back unstructured.
func decode(t *testing.T, manifest string) []k8sruntime.Object {
	t.Helper()
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
	var objs []k8sruntime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(manifest)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		u := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			t.Fatalf("yaml: %v\n%s", err, doc)
		}
		if len(u.Object) == 0 {
			continue // comments only
		}
		if u.GroupVersionKind().Group == "cert-manager.io" {
			objs = append(objs, u)
			continue
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			t.Fatalf("strict decode %s %s: %v", u.GetKind(), u.GetName(), err)
		}
		objs = append(objs, obj)
	}
	return objs
}

func kinds(objs []k8sruntime.Object) map[string]int {
	m := map[string]int{}
	for _, o := range objs {
		m[o.GetObjectKind().GroupVersionKind().Kind]++
	}
	return m
}

func find[T client.Object](objs []k8sruntime.Object, name string) T {
	var zero T
	for _, o := range objs {
		if x, ok := o.(T); ok && (name == "" || x.GetName() == name) {
			return x
		}
	}
	return zero
}

func TestLint(t *testing.T) {
	out, err := helm("lint", chartDir(), "--strict", "--set", "agent.token=t", "--set", "agent.controlPlaneURL=https://cp.example.com")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func TestRenders(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		check  func(t *testing.T, objs []k8sruntime.Object)
	}{
		{"default with agent token", []string{"agent.token=tok", "agent.controlPlaneURL=https://cp.example.com"}, func(t *testing.T, objs []k8sruntime.Object) {
			k := kinds(objs)
			if k["Deployment"] != 2 || k["CustomResourceDefinition"] != 4 || k["MutatingWebhookConfiguration"] != 1 {
				t.Errorf("kinds: %v", k)
			}
			args := strings.Join(container(t, objs, "sandboxmesh-operator").Args, " ")
			for _, w := range []string{"--backends=devmesh", "--webhook ", "--sidecar-route-server=sandboxmesh-operator.sandboxmesh-system.svc:15010",
				"--sidecar-image=sandboxmesh.dev/devmesh:dev", "--sidecar-init-image=sandboxmesh.dev/devmesh-init:dev", "--inject-mode=iptables",
				"--runner-image=sandboxmesh.dev/sandboxmesh-runner:dev"} {
				if !strings.Contains(args+" ", w) {
					t.Errorf("operator args lack %q: %s", w, args)
				}
			}
			if u := envOf(container(t, objs, "sandboxmesh-agent"))["SANDBOXMESH_CONTROL_PLANE_URL"]; u != "https://cp.example.com" {
				t.Errorf("agent control plane URL %q", u)
			}
			if a := strings.Join(container(t, objs, "sandboxmesh-agent").Args, " "); !strings.Contains(a, "--token-file=/var/run/sandboxmesh/token") {
				t.Errorf("agent args: %s", a)
			}
			certs := find[*corev1.Secret](objs, "sandboxmesh-webhook-tls")
			mwc := find[*admissionv1.MutatingWebhookConfiguration](objs, "")
			if certs == nil || len(certs.Data["ca.crt"]) == 0 || !bytes.Equal(certs.Data["ca.crt"], mwc.Webhooks[0].ClientConfig.CABundle) {
				t.Error("webhook caBundle is not the CA of the serving certificate Secret")
			}
			verifyServingCert(t, certs.Data, "sandboxmesh-operator.sandboxmesh-system.svc")
			checkJobs(t, objs, []string{"sandboxmesh-jobs"}, true)
			agentRole := find[*rbacv1.Role](objs, "sandboxmesh-agent")
			if v := verbsOn(agentRole.Rules, "sandboxmesh.dev", "jobrunnergroups"); v != "get,list,watch,create,update,patch,delete" {
				t.Errorf("agent Role: verbs on jobrunnergroups %q", v)
			}
			if v := verbsOn(agentRole.Rules, "sandboxmesh.dev", "jobrunnergroups/status"); v != "get" {
				t.Errorf("agent Role: verbs on jobrunnergroups/status %q", v)
			}
			if v := verbsOn(agentRole.Rules, "sandboxmesh.dev", "resourceplugins"); v != "get,list,watch,create,update,patch,delete" {
				t.Errorf("agent Role: verbs on resourceplugins %q", v)
			}
			if v := verbsOn(agentRole.Rules, "events.k8s.io", "events"); v != "list" {
				t.Errorf("agent Role: verbs on events %q, want list only", v)
			}
			if v := verbsOn(agentRole.Rules, "", "events"); v != "" {
				t.Errorf("agent Role: verbs on core events %q, want none", v)
			}
			if p := find[*corev1.Namespace](objs, "sandboxmesh-plugins"); p == nil || p.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("the resource plugins' namespace is not created and kept: %+v", p)
			}
			// Argo Rollouts: the operator and the agent read them, never write them.
			for _, role := range []string{"sandboxmesh-operator", "sandboxmesh-agent"} {
				if v := rolloutVerbs(find[*rbacv1.ClusterRole](objs, role)); v != "get,list,watch" {
					t.Errorf("ClusterRole %s: verbs on rollouts.argoproj.io %q, want get,list,watch", role, v)
				}
			}
		}},
		{"control plane in cluster, no agent", []string{"controlplane.enabled=true", "controlplane.bootstrapKey=Zq8vX2mN4pR7tW1yB5cE9gJ3kL6oS0uA", "agent.enabled=false"}, func(t *testing.T, objs []k8sruntime.Object) {
			c := container(t, objs, "sandboxmesh-controlplane")
			var key *corev1.EnvVar
			for i := range c.Env {
				if c.Env[i].Name == "SANDBOXMESH_BOOTSTRAP_KEY" {
					key = &c.Env[i]
				}
			}
			if key == nil || key.ValueFrom == nil || key.ValueFrom.SecretKeyRef.Name != "sandboxmesh-controlplane" || key.ValueFrom.SecretKeyRef.Key != "apiKey" {
				t.Errorf("bootstrap key env: %+v", c.Env)
			}
			if u := envOf(c)["SANDBOXMESH_PREVIEW_URL"]; u != "/preview" {
				t.Errorf("preview URL %q", u)
			}
			if !hasPort(c, "metrics", 9090) || !hasPort(c, "http", 8080) {
				t.Errorf("control plane ports %+v: want http 8080 and metrics 9090 (--metrics-listen)", c.Ports)
			}
			if find[*corev1.Secret](objs, "sandboxmesh-controlplane") == nil {
				t.Error("no bootstrap key secret")
			}
			if find[*corev1.Secret](objs, "sandboxmesh-agent") != nil {
				t.Error("agent secret rendered with agent disabled")
			}
		}},
		{"control plane on PostgreSQL with replicas", []string{"controlplane.enabled=true", "controlplane.databaseURL=postgres://cp@db/cp", "controlplane.replicas=3", "agent.enabled=false",
			"controlplane.artifacts=s3://jobs/artifacts?endpoint=minio.storage:9000", "controlplane.artifactsSecret=artifact-creds"}, func(t *testing.T, objs []k8sruntime.Object) {
			c := container(t, objs, "sandboxmesh-controlplane")
			if !slices.Contains(c.Args, "--artifacts=s3://jobs/artifacts?endpoint=minio.storage:9000") || len(c.EnvFrom) != 1 || c.EnvFrom[0].SecretRef == nil || c.EnvFrom[0].SecretRef.Name != "artifact-creds" {
				t.Errorf("artifacts: args %v envFrom %+v", c.Args, c.EnvFrom)
			}
			env := envOf(c)
			if env["SANDBOXMESH_DATABASE_URL"] != "postgres://cp@db/cp" || env["SANDBOXMESH_ADVERTISE_URL"] != "http://$(POD_IP):8080" {
				t.Errorf("env: %v", env)
			}
			for _, o := range objs {
				if d, ok := o.(*appsv1.Deployment); ok && d.Name == "sandboxmesh-controlplane" && *d.Spec.Replicas != 3 {
					t.Errorf("replicas %d", *d.Spec.Replicas)
				}
			}
		}},
		{"control plane and agent default URL", []string{"controlplane.enabled=true", "agent.token=t"}, func(t *testing.T, objs []k8sruntime.Object) {
			if u := envOf(container(t, objs, "sandboxmesh-agent"))["SANDBOXMESH_CONTROL_PLANE_URL"]; u != "http://sandboxmesh-controlplane.sandboxmesh-system.svc:80" {
				t.Errorf("agent control plane URL %q", u)
			}
		}},
		{"every backend, two replicas, explicit mode", []string{"agent.enabled=false", "operator.backends={devmesh,istio,linkerd,gatewayapi}", "operator.replicas=2",
			"devmesh.injectMode=explicit", "routingKey.names={sm-routing-key,tenant}", "routingKey.customHeaders={x-sandbox}"}, func(t *testing.T, objs []k8sruntime.Object) {
			args := strings.Join(container(t, objs, "sandboxmesh-operator").Args, " ")
			for _, w := range []string{"--backends=devmesh,istio,linkerd,gatewayapi", "--leader-elect", "--inject-mode=explicit", "--routing-key-names=sm-routing-key,tenant", "--custom-headers=x-sandbox"} {
				if !strings.Contains(args, w) {
					t.Errorf("operator args lack %q: %s", w, args)
				}
			}
		}},
		{"job namespaces, runner image, operator limited to namespaces", []string{"agent.token=t", "agent.controlPlaneURL=https://cp", "jobs.namespaces={ci-jobs,e2e-jobs}",
			"jobs.createNamespace=false", "images.runner=registry.example.com/runner:1.2", "operator.namespaces={apps,ci-jobs}"}, func(t *testing.T, objs []k8sruntime.Object) {
			checkJobs(t, objs, []string{"ci-jobs", "e2e-jobs"}, false)
			args := strings.Join(container(t, objs, "sandboxmesh-operator").Args, " ")
			for _, w := range []string{"--runner-image=registry.example.com/runner:1.2", "--namespaces=apps,ci-jobs,e2e-jobs,sandboxmesh-plugins "} {
				if !strings.Contains(args+" ", w) {
					t.Errorf("operator args lack %q: %s", w, args)
				}
			}
		}},
		{"operator limited to namespaces, no agent", []string{"agent.enabled=false", "operator.namespaces={apps}"}, func(t *testing.T, objs []k8sruntime.Object) {
			if args := strings.Join(container(t, objs, "sandboxmesh-operator").Args, " ") + " "; !strings.Contains(args, "--namespaces=apps,sandboxmesh-plugins ") {
				t.Errorf("operator args: %s", args)
			}
			checkJobs(t, objs, nil, false)
		}},
		{"job namespace is the release namespace", []string{"agent.token=t", "agent.controlPlaneURL=https://cp", "jobs.namespaces={" + ns + "}"}, func(t *testing.T, objs []k8sruntime.Object) {
			checkJobs(t, objs, []string{ns}, false) // Helm owns the release namespace
		}},
		{"cert-manager", []string{"agent.enabled=false", "webhook.certManager.enabled=true"}, func(t *testing.T, objs []k8sruntime.Object) {
			mwc := find[*admissionv1.MutatingWebhookConfiguration](objs, "")
			if mwc.Annotations["cert-manager.io/inject-ca-from"] != "sandboxmesh-system/sandboxmesh-webhook" || len(mwc.Webhooks[0].ClientConfig.CABundle) != 0 {
				t.Errorf("webhook: %v %d", mwc.Annotations, len(mwc.Webhooks[0].ClientConfig.CABundle))
			}
			if kinds(objs)["Certificate"] != 1 || kinds(objs)["Issuer"] != 1 {
				t.Errorf("kinds: %v", kinds(objs))
			}
		}},
		{"webhook disabled", []string{"agent.enabled=false", "webhook.enabled=false"}, func(t *testing.T, objs []k8sruntime.Object) {
			if kinds(objs)["MutatingWebhookConfiguration"] != 0 || strings.Contains(strings.Join(container(t, objs, "sandboxmesh-operator").Args, " "), "--webhook") {
				t.Error("webhook rendered while disabled")
			}
			checkJobs(t, objs, nil, false) // no agent, no runner groups
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.check(t, decode(t, render(t, tc.values...)))
		})
	}
}

// checkJobs: the agent may write Secrets (create, patch, update, delete; never
// get, list or watch) in exactly the job namespaces, and nowhere else; they
// are created (and kept on uninstall) when wantNamespaces.
func checkJobs(t *testing.T, objs []k8sruntime.Object, jobNamespaces []string, wantNamespaces bool) {
	t.Helper()
	var secretNS, created []string
	for _, o := range objs {
		switch x := o.(type) {
		case *rbacv1.Role:
			if v := verbsOn(x.Rules, "", "secrets"); v != "" {
				secretNS = append(secretNS, x.Namespace)
				if v != "create,patch,update,delete" || len(x.Rules) != 1 {
					t.Errorf("Role %s/%s: secrets verbs %q (rules %d), want create,patch,update,delete only", x.Namespace, x.Name, v, len(x.Rules))
				}
				if !strings.HasSuffix(x.Name, "-agent-jobs") {
					t.Errorf("Role %s/%s grants secrets", x.Namespace, x.Name)
				}
			}
		case *rbacv1.RoleBinding:
			if strings.HasSuffix(x.Name, "-agent-jobs") && (x.Subjects[0].Name != "sandboxmesh-agent" || x.Subjects[0].Namespace != ns || x.RoleRef.Name != x.Name) {
				t.Errorf("RoleBinding %s/%s: %+v %+v", x.Namespace, x.Name, x.Subjects, x.RoleRef)
			}
		case *corev1.Namespace:
			if x.Labels["app.kubernetes.io/component"] == "resource-plugins" {
				continue // not a job namespace (the resource plugins' step pods)
			}
			created = append(created, x.Name)
			if x.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Errorf("Namespace %s is deleted on uninstall", x.Name)
			}
		case *rbacv1.ClusterRole:
			if v := verbsOn(x.Rules, "", "secrets"); v != "" && strings.Contains(x.Name, "agent") {
				t.Errorf("ClusterRole %s grants secrets %s", x.Name, v)
			}
		}
	}
	if fmt.Sprint(secretNS) != fmt.Sprint(jobNamespaces) {
		t.Errorf("Secrets writable in %v, want %v", secretNS, jobNamespaces)
	}
	want := []string(nil)
	if wantNamespaces {
		want = jobNamespaces
	}
	if fmt.Sprint(created) != fmt.Sprint(want) {
		t.Errorf("Namespaces created %v, want %v", created, want)
	}
}

// verbsOn returns the verbs rules grant on resource of group, joined with commas.
func verbsOn(rules []rbacv1.PolicyRule, group, resource string) string {
	var verbs []string
	for _, r := range rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) {
			verbs = append(verbs, r.Verbs...)
		}
	}
	return strings.Join(verbs, ",")
}

// rolloutVerbs returns the verbs role grants on rollouts.argoproj.io, joined with commas.
func rolloutVerbs(role *rbacv1.ClusterRole) string {
	if role == nil {
		return ""
	}
	var verbs []string
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, "argoproj.io") && slices.Contains(r.Resources, "rollouts") {
			verbs = append(verbs, r.Verbs...)
		}
	}
	return strings.Join(verbs, ",")
}

func container(t *testing.T, objs []k8sruntime.Object, deployment string) corev1.Container {
	t.Helper()
	for _, o := range objs {
		if d, ok := o.(interface{ GetName() string }); ok && d.GetName() == deployment && o.GetObjectKind().GroupVersionKind().Kind == "Deployment" {
			u, _ := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(o)
			cs, _, _ := unstructured.NestedSlice(u, "spec", "template", "spec", "containers")
			var c corev1.Container
			_ = k8sruntime.DefaultUnstructuredConverter.FromUnstructured(cs[0].(map[string]any), &c)
			return c
		}
	}
	t.Fatalf("no Deployment %s", deployment)
	return corev1.Container{}
}

// verifyServingCert checks the Secret's certificate chains to its ca.crt for
// the webhook Service's name and that tls.key is its key.
func verifyServingCert(t *testing.T, data map[string][]byte, dnsName string) {
	t.Helper()
	pair, err := tls.X509KeyPair(data["tls.crt"], data["tls.key"])
	if err != nil {
		t.Fatalf("serving certificate and key: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(data["ca.crt"]) {
		t.Fatal("ca.crt holds no certificate")
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{DNSName: dnsName, Roots: roots}); err != nil {
		t.Errorf("serving certificate for %s: %v", dnsName, err)
	}
}

// envOf maps a container's plain environment variables to their values.
func envOf(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestBadValues(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{"agent.enabled=false", "operator.backends={devmesh,consul}"}, "backends"},
		{[]string{"agent.enabled=false", "devmesh.injectMode=ebpf"}, "injectMode"},
		{[]string{"agent.enabled=false", "image.pullPolicy=Sometimes"}, "pullPolicy"},
		{[]string{"agent.enabled=false", "operator.replicas=0"}, "replicas"},
		{[]string{"agent.enabled=false", "operator.typo=1"}, "typo"},
		{[]string{"agent.enabled=false", "jobs.namespaces={Jobs_NS}"}, "namespaces"},
		{[]string{"agent.enabled=false", "jobs.createNamespace=yes"}, "createNamespace"},
		{[]string{"agent.enabled=false", "resourcePlugins.namespaces={Plugins_NS}"}, "namespaces"},
		{[]string{"agent.enabled=false", "images.typo=x"}, "typo"},
		{[]string{"agent.controlPlaneURL=https://cp"}, "agent.token"},
		{[]string{"agent.token=t"}, "agent.controlPlaneURL is required"},
		// The control plane refuses a weak bootstrap key at start-up; the chart says so before install.
		{[]string{"agent.enabled=false", "controlplane.enabled=true", "controlplane.bootstrapKey=changeme"}, "bootstrapKey"},
	} {
		t.Run(strings.Join(tc.values, ","), func(t *testing.T) {
			args := []string{"template", "sandboxmesh", chartDir(), "--namespace", ns}
			for _, v := range tc.values {
				args = append(args, "--set", v)
			}
			_, err := helm(args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error mentioning %q, got %v", tc.want, err)
			}
		})
	}
}

// TestGeneratedCopies keeps the chart's copies of generated files identical
// to their sources (make manifests writes both).
func TestGeneratedCopies(t *testing.T) {
	for src, dst := range map[string]string{
		"crds/manifests/sandboxmesh.dev_sandboxes.yaml":       "deploy/helm/sandboxmesh/crds/sandboxmesh.dev_sandboxes.yaml",
		"crds/manifests/sandboxmesh.dev_routegroups.yaml":     "deploy/helm/sandboxmesh/crds/sandboxmesh.dev_routegroups.yaml",
		"crds/manifests/sandboxmesh.dev_jobrunnergroups.yaml": "deploy/helm/sandboxmesh/crds/sandboxmesh.dev_jobrunnergroups.yaml",
		"crds/manifests/sandboxmesh.dev_resourceplugins.yaml": "deploy/helm/sandboxmesh/crds/sandboxmesh.dev_resourceplugins.yaml",
		"deploy/manifests/rbac/role.yaml":                     "deploy/helm/sandboxmesh/files/operator-role.yaml",
	} {
		a, err := os.ReadFile(filepath.Join(root(), src))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root(), dst))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s: run make manifests", dst, src)
		}
	}
}

// TestRBACAndWebhookMatchGenerated: the rendered ClusterRole has exactly the
// generated rules, and the webhook equals the generated one except where it
// points (Service, CA bundle) and that it also skips the release namespace.
func TestRBACAndWebhookMatchGenerated(t *testing.T) {
	objs := decode(t, render(t, "agent.enabled=false"))
	genRole := &rbacv1.ClusterRole{}
	readYAML(t, "deploy/manifests/rbac/role.yaml", genRole)
	role := find[*rbacv1.ClusterRole](objs, "sandboxmesh-operator")
	if role == nil || !equality.Semantic.DeepEqual(role.Rules, genRole.Rules) {
		t.Errorf("operator ClusterRole rules differ from the generated ones")
	}
	gen := &admissionv1.MutatingWebhookConfiguration{}
	readYAML(t, "deploy/manifests/webhook/devmesh-injector.yaml", gen)
	mwc := find[*admissionv1.MutatingWebhookConfiguration](objs, "")
	if mwc == nil || len(mwc.Webhooks) != 1 {
		t.Fatal("no webhook")
	}
	got, want := mwc.Webhooks[0].DeepCopy(), gen.Webhooks[0].DeepCopy()
	if len(got.ClientConfig.CABundle) == 0 || got.ClientConfig.Service.Name != "sandboxmesh-operator" || got.ClientConfig.Service.Namespace != ns {
		t.Errorf("clientConfig: %+v", got.ClientConfig.Service)
	}
	got.ClientConfig, want.ClientConfig = admissionv1.WebhookClientConfig{}, admissionv1.WebhookClientConfig{}
	ex := &got.NamespaceSelector.MatchExpressions[1]
	if ex.Values[len(ex.Values)-1] != ns {
		t.Errorf("release namespace not excluded: %v", ex.Values)
	} else {
		ex.Values = ex.Values[:len(ex.Values)-1]
	}
	if !equality.Semantic.DeepEqual(got, want) {
		a, _ := yaml.Marshal(got)
		b, _ := yaml.Marshal(want)
		t.Errorf("webhook differs from the generated one:\nchart:\n%s\ngenerated:\n%s", a, b)
	}
}

func readYAML(t *testing.T, rel string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root(), rel))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(b, into); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

var masked = regexp.MustCompile(`(?m)^(\s*(?:tls\.crt|tls\.key|ca\.crt|caBundle|checksum/webhook-tls|checksum/token):) .*$`)

func TestGolden(t *testing.T) {
	got := masked.ReplaceAllString(render(t, "agent.token=tok", "agent.controlPlaneURL=https://cp.example.com"), "$1 <masked>")
	path := filepath.Join("testdata", "default.golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./deploy/helm -update)", err)
	}
	if got != string(want) {
		t.Errorf("render differs from %s (go test ./deploy/helm -update, then review the diff)", path)
	}
}

// TestAPIServerAccepts creates every object of two renders (default, and
// with the control plane on a PVC) on a real API server with server-side dry
// run (the namespaces for real first; the chart's CRDs are the ones testenv
// installed), so that every schema, defaulting and validation of the API
// server sees them.
func TestAPIServerAccepts(t *testing.T) {
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	for _, values := range [][]string{{"agent.token=tok", "agent.controlPlaneURL=https://cp.example.com"}, {"controlplane.enabled=true", "controlplane.bootstrapKey=Zq8vX2mN4pR7tW1yB5cE9gJ3kL6oS0uA", "agent.token=t", "controlplane.persistence.enabled=true"}} {
		for _, o := range decode(t, render(t, values...)) {
			u := &unstructured.Unstructured{}
			m, err := k8sruntime.DefaultUnstructuredConverter.ToUnstructured(o)
			if err != nil {
				t.Fatal(err)
			}
			u.Object = m
			if u.GetKind() == "" {
				gvks, _, _ := scheme.ObjectKinds(o)
				u.SetGroupVersionKind(gvks[0])
			}
			opts := []client.CreateOption{client.DryRunAll}
			if u.GetKind() == "Namespace" {
				opts = nil // for real: the objects in it come after
			}
			err = env.Client.Create(ctx, u, opts...)
			if u.GetKind() == "Namespace" && client.IgnoreAlreadyExists(err) == nil {
				continue
			}
			if u.GetKind() == "CustomResourceDefinition" && client.IgnoreAlreadyExists(err) == nil {
				continue // testenv installed the same CRDs
			}
			if err != nil {
				t.Errorf("%s %s/%s: %v", u.GetKind(), u.GetNamespace(), u.GetName(), err)
			}
		}
	}
}

// TestInstallUpgradeUninstall installs the chart for real with helm on the
// API server, upgrades it and checks the Helm-generated webhook certificate
// is kept (lookup) and matches the webhook's caBundle, then uninstalls it
// and checks Helm keeps the CRDs.
func TestInstallUpgradeUninstall(t *testing.T) {
	ctx := context.Background()
	const release, relNS = "smtest", "sm-install"
	kubeconfig := writeKubeconfig(t)
	base := []string{"--namespace", relNS, "--kubeconfig", kubeconfig, "--set", "agent.token=tok", "--set", "agent.controlPlaneURL=https://cp.example.com"}
	if out, err := helm(append([]string{"install", release, chartDir(), "--create-namespace"}, base...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() { _, _ = helm("uninstall", release, "--namespace", relNS, "--kubeconfig", kubeconfig) })
	fullname := release + "-sandboxmesh"
	state := func() (ca, crt []byte, bundle []byte, checksum string) {
		t.Helper()
		var s corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: relNS, Name: fullname + "-webhook-tls"}, &s); err != nil {
			t.Fatal(err)
		}
		var mwc admissionv1.MutatingWebhookConfiguration
		if err := env.Client.Get(ctx, client.ObjectKey{Name: fullname + "-devmesh-injector"}, &mwc); err != nil {
			t.Fatal(err)
		}
		var d appsv1.Deployment
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: relNS, Name: fullname + "-operator"}, &d); err != nil {
			t.Fatal(err)
		}
		return s.Data["ca.crt"], s.Data["tls.crt"], mwc.Webhooks[0].ClientConfig.CABundle, d.Spec.Template.Annotations["checksum/webhook-tls"]
	}
	// Whether the job namespace existed (TestAPIServerAccepts makes it, not this release) or not, the agent gets its Role there.
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: "sandboxmesh-jobs", Name: fullname + "-agent-jobs"}, &rbacv1.Role{}); err != nil {
		t.Errorf("agent's Role in the job namespace: %v", err)
	}
	ca1, crt1, bundle1, sum1 := state()
	if len(ca1) == 0 || !bytes.Equal(ca1, bundle1) {
		t.Fatalf("caBundle of the webhook differs from the Secret's ca.crt")
	}
	var s corev1.Secret
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: relNS, Name: fullname + "-webhook-tls"}, &s); err != nil {
		t.Fatal(err)
	}
	verifyServingCert(t, s.Data, fullname+"-operator."+relNS+".svc")
	if out, err := helm(append([]string{"upgrade", release, chartDir(), "--set", "operator.workers=4"}, base...)...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	ca2, crt2, bundle2, sum2 := state()
	if !bytes.Equal(ca1, ca2) || !bytes.Equal(crt1, crt2) || !bytes.Equal(bundle1, bundle2) || sum1 != sum2 {
		t.Errorf("upgrade changed the webhook certificate (ca %v, cert %v, caBundle %v, checksum %v)",
			!bytes.Equal(ca1, ca2), !bytes.Equal(crt1, crt2), !bytes.Equal(bundle1, bundle2), sum1 != sum2)
	}
	if out, err := helm("uninstall", release, "--namespace", relNS, "--kubeconfig", kubeconfig); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := env.Client.Get(ctx, client.ObjectKey{Name: "sandboxes.sandboxmesh.dev"}, &crd); err != nil {
		t.Errorf("CRD gone after uninstall: %v", err)
	}
	var mwc admissionv1.MutatingWebhookConfiguration
	if err := env.Client.Get(ctx, client.ObjectKey{Name: fullname + "-devmesh-injector"}, &mwc); err == nil {
		t.Error("webhook configuration left after uninstall")
	}
}

// writeKubeconfig writes a kubeconfig for the test API server.
func writeKubeconfig(t *testing.T) string {
	t.Helper()
	c := env.Config
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["envtest"] = &clientcmdapi.Cluster{Server: c.Host, CertificateAuthorityData: c.CAData}
	cfg.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: c.CertData, ClientKeyData: c.KeyData, Token: c.BearerToken}
	cfg.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	cfg.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func hasPort(c corev1.Container, name string, port int32) bool {
	for _, p := range c.Ports {
		if p.Name == name && p.ContainerPort == port {
			return true
		}
	}
	return false
}
