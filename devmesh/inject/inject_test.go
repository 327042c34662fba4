package inject

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/go-logr/logr"
	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func testConfig() Config {
	return Config{
		Image:         "sandboxmesh.dev/devmesh:dev",
		InitImage:     "sandboxmesh.dev/devmesh-init:dev",
		RouteServer:   "sandboxmesh-routes.sandboxmesh-system.svc:15010",
		KeyNames:      []string{"sm-routing-key", "sd-routing-key"},
		CustomHeaders: []string{"x-sandbox"},
		RoutesURL:     "http://sandboxmesh-operator.sandboxmesh-system.svc:15011",
	}
}

// podRequest wraps a pod's JSON in a Pod CREATE admission request for namespace shop.
func podRequest(raw []byte) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       types.UID("0b6f9c1e-0000-4000-8000-00000000000a"),
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: "shop",
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func labels(l map[string]string) NamespaceLabeler {
	return NamespaceLabelerFunc(func(context.Context, string) (map[string]string, error) { return l, nil })
}

// TestGolden runs every testdata/<case>.in.yaml through the handler and compares the JSON patch with
// testdata/<case>.patch.json (rewrite with -update). The patch is then applied; the result must be a
// valid pod that the handler leaves alone (idempotence).
func TestGolden(t *testing.T) {
	optedOut := map[string]string{DefaultNamespaceOptOutLabel: NamespaceOptOutValue}
	tests := []struct {
		name       string
		nsLabels   map[string]string
		config     func(*Config)
		wantStatus string // AnnotationStatus after the patch; "" means no patch at all
		wantMode   Mode
	}{
		{name: "plain", wantStatus: StatusInjected, wantMode: ModeIPTables},
		{name: "consumer-env", wantStatus: StatusInjected, wantMode: ModeIPTables},
		{name: "multi-container", wantStatus: StatusInjected, wantMode: ModeIPTables},
		{name: "named-ports", wantStatus: StatusInjected, wantMode: ModeIPTables},
		{name: "already-injected"},
		{name: "host-network", wantStatus: "skipped: hostNetwork"},
		{name: "windows", wantStatus: "skipped: windows pod"},
		{name: "no-annotation"},
		{name: "annotation-false"},
		{name: "namespace-opted-out", nsLabels: optedOut, wantStatus: "skipped: namespace shop opted out (sandboxmesh.dev/injection=disabled)"},
		{name: "explicit-mode", wantStatus: StatusInjected, wantMode: ModeExplicit},
		{name: "no-ports", wantStatus: "skipped: no TCP container ports to intercept (declare containerPorts or set annotation sidecar.sandboxmesh.dev/ports)"},
		{name: "ports-annotation", wantStatus: StatusInjected, wantMode: ModeIPTables},
		{name: "legacy-sidecar", config: func(c *Config) { c.LegacySidecar = true }, wantStatus: StatusInjected, wantMode: ModeIPTables},
		{name: "port-conflict", wantStatus: "skipped: port conflict: container app uses port 15020, which is the sidecar's admin port"},
		{name: "no-workload", wantStatus: "skipped: no workload: the pod has no controller owner; set annotation sidecar.sandboxmesh.dev/workload"},
		{name: "invalid-annotation", wantStatus: `skipped: annotation sidecar.sandboxmesh.dev/ports="8080:15080": [0] "8080:15080": a sidecar port is only valid in explicit mode`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.config != nil {
				tt.config(&cfg)
			}
			h, err := NewHandler(cfg, labels(tt.nsLabels), logr.Discard())
			if err != nil {
				t.Fatal(err)
			}
			in, err := os.ReadFile(filepath.Join("testdata", tt.name+".in.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := yaml.YAMLToJSON(in)
			if err != nil {
				t.Fatal(err)
			}
			resp := h(context.Background(), podRequest(raw))
			if !resp.Allowed {
				t.Fatalf("denied: %+v", resp.Result)
			}
			if len(resp.Patches) != 0 {
				t.Fatalf("Patches set; the handler must set the raw Patch")
			}
			compareGolden(t, filepath.Join("testdata", tt.name+".patch.json"), resp.Patch)

			if tt.wantStatus == "" {
				if resp.Patch != nil || resp.PatchType != nil {
					t.Fatalf("want no patch, got %s", resp.Patch)
				}
				if len(resp.Warnings) != 0 {
					t.Errorf("want no warnings, got %q", resp.Warnings)
				}
				return
			}
			if resp.PatchType == nil || *resp.PatchType != admissionv1.PatchTypeJSONPatch {
				t.Fatalf("PatchType = %v, want JSONPatch", resp.PatchType)
			}
			pod, patched := applyPatch(t, raw, resp.Patch)
			if got := pod.Annotations[AnnotationStatus]; got != tt.wantStatus {
				t.Errorf("status annotation = %q, want %q", got, tt.wantStatus)
			}
			if tt.wantStatus != StatusInjected {
				if len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], strings.TrimPrefix(tt.wantStatus, StatusSkippedPrefix)) {
					t.Errorf("warnings = %q, want the skip reason", resp.Warnings)
				}
				if !strings.Contains(resp.Result.Message, strings.TrimPrefix(tt.wantStatus, StatusSkippedPrefix)) {
					t.Errorf("message = %q, want the skip reason", resp.Result.Message)
				}
				if alreadyInjected(pod) {
					t.Errorf("skipped pod has a sidecar")
				}
				return
			}
			if err := cfg.Validate(); err != nil { // the handler validated its own copy
				t.Fatal(err)
			}
			checkInjectedPod(t, &cfg, pod, tt.wantMode)
			again := h(context.Background(), podRequest(patched))
			if again.Patch != nil || !again.Allowed {
				t.Errorf("second pass patched again: %s", again.Patch)
			}
		})
	}
}

func compareGolden(t *testing.T, path string, patch []byte) {
	t.Helper()
	got := []byte("null\n")
	if patch != nil {
		var buf bytes.Buffer
		if err := json.Indent(&buf, patch, "", "  "); err != nil {
			t.Fatalf("patch is not JSON: %v: %s", err, patch)
		}
		buf.WriteByte('\n')
		got = buf.Bytes()
	}
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("patch differs from %s (run go test -update and review the diff):\n%s", path, got)
	}
}

// applyPatch applies a JSON patch and decodes the result strictly into a Pod.
func applyPatch(t *testing.T, raw, patch []byte) (*corev1.Pod, []byte) {
	t.Helper()
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decode patch: %v", err)
	}
	out, err := p.Apply(raw)
	if err != nil {
		t.Fatalf("apply patch: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	pod := &corev1.Pod{}
	if err := dec.Decode(pod); err != nil {
		t.Fatalf("patched pod does not decode: %v\n%s", err, out)
	}
	return pod, out
}

// checkInjectedPod checks what the API server would reject (the envtest test checks the real thing)
// and the injection's own invariants.
func checkInjectedPod(t *testing.T, cfg *Config, pod *corev1.Pod, mode Mode) {
	t.Helper()
	names := map[string]bool{}
	var sidecar, init *corev1.Container
	sidecarIndex, initIndex := -1, -1
	for _, list := range []struct {
		init bool
		cs   []corev1.Container
	}{{true, pod.Spec.InitContainers}, {false, pod.Spec.Containers}} {
		for i := range list.cs {
			c := &list.cs[i]
			if names[c.Name] {
				t.Errorf("container name %s used twice", c.Name)
			}
			names[c.Name] = true
			portNames := map[string]bool{}
			for _, p := range c.Ports {
				if p.Name == "" {
					continue
				}
				if msgs := validation.IsValidPortName(p.Name); len(msgs) > 0 || portNames[p.Name] {
					t.Errorf("container %s: bad port name %q: %v", c.Name, p.Name, msgs)
				}
				portNames[p.Name] = true
			}
			envs := map[string]int{}
			for _, e := range c.Env {
				if msgs := validation.IsEnvVarName(e.Name); len(msgs) > 0 {
					t.Errorf("container %s: bad env name %q: %v", c.Name, e.Name, msgs)
				}
				if envs[e.Name]++; envs[e.Name] > 1 {
					t.Errorf("container %s: env %s twice", c.Name, e.Name)
				}
			}
			if !list.init && c.Name != SidecarName && !slices.Contains(cfg.ExcludeContainers, c.Name) {
				for _, n := range []string{smv1.EnvBaselineKind, smv1.EnvBaselineNamespace, smv1.EnvBaselineName, smv1.EnvRoutesURL} {
					if envs[n] != 1 {
						t.Errorf("app container %s: consumer env %s missing", c.Name, n)
					}
				}
			}
			switch c.Name {
			case SidecarName:
				sidecar = c
				if list.init {
					sidecarIndex = i
				}
			case InitName:
				init, initIndex = c, i
				if !list.init {
					t.Errorf("%s is not an init container", InitName)
				}
			}
		}
	}
	if sidecar == nil {
		t.Fatal("no sidecar")
	}
	if cfg.LegacySidecar {
		if sidecarIndex != -1 || sidecar.RestartPolicy != nil {
			t.Errorf("legacy sidecar must be a regular container")
		}
	} else if sidecarIndex == -1 || sidecar.RestartPolicy == nil || *sidecar.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("native sidecar must be an init container with restartPolicy Always")
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range sidecar.Env {
		env[e.Name] = e
	}
	for _, name := range []string{EnvNamespace, EnvPodName, EnvWorkload, EnvRouteServer} {
		if _, ok := env[name]; !ok {
			t.Errorf("sidecar env %s missing", name)
		}
	}
	if sc := sidecar.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != cfg.ProxyUID {
		t.Errorf("sidecar must run as UID %d", cfg.ProxyUID)
	}
	switch mode {
	case ModeIPTables:
		if init == nil {
			t.Fatal("iptables mode without init container")
		}
		if !cfg.LegacySidecar && initIndex > sidecarIndex {
			t.Errorf("init container must run before the sidecar")
		}
		if env[EnvRedirect].Value == "" || env[EnvPorts].Value != "" {
			t.Errorf("iptables mode wants %s and no %s", EnvRedirect, EnvPorts)
		}
	case ModeExplicit:
		if init != nil {
			t.Errorf("explicit mode must not add an init container")
		}
		if env[EnvPorts].Value == "" || env[EnvRedirect].Value != "" {
			t.Errorf("explicit mode wants %s and no %s", EnvPorts, EnvRedirect)
		}
	}
}

func TestHandlerIgnoresOtherRequests(t *testing.T) {
	h, err := NewHandler(testConfig(), nil, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"sidecar.sandboxmesh.dev/inject":"true","sidecar.sandboxmesh.dev/workload":"w"}},"spec":{"containers":[{"name":"a","image":"i","ports":[{"containerPort":8080}]}]}}`)
	tests := []struct {
		name    string
		mutate  func(*admission.Request)
		warning bool
	}{
		{name: "update", mutate: func(r *admission.Request) { r.Operation = admissionv1.Update }},
		{name: "other kind", mutate: func(r *admission.Request) { r.Kind.Kind = "Service" }},
		{name: "subresource", mutate: func(r *admission.Request) { r.SubResource = "ephemeralcontainers" }},
		{name: "undecodable", mutate: func(r *admission.Request) { r.Object.Raw = []byte(`{"spec":`) }, warning: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := podRequest(pod)
			tt.mutate(&req)
			resp := h(context.Background(), req)
			if !resp.Allowed || resp.Patch != nil {
				t.Fatalf("want allowed without patch, got allowed=%v patch=%s", resp.Allowed, resp.Patch)
			}
			if got := len(resp.Warnings) > 0; got != tt.warning {
				t.Errorf("warnings = %q", resp.Warnings)
			}
		})
	}
}

func TestNamespaceLookupFailureAdmitsUnchanged(t *testing.T) {
	failing := NamespaceLabelerFunc(func(context.Context, string) (map[string]string, error) {
		return nil, errors.New("apiserver down")
	})
	h, err := NewHandler(testConfig(), failing, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	raw := []byte(`{"metadata":{"name":"p","annotations":{"sidecar.sandboxmesh.dev/inject":"true"}},"spec":{"containers":[{"name":"a","image":"i"}]}}`)
	resp := h(context.Background(), podRequest(raw))
	if !resp.Allowed {
		t.Fatal("denied")
	}
	pod, _ := applyPatch(t, raw, resp.Patch)
	if got := pod.Annotations[AnnotationStatus]; got != "skipped: namespace lookup: apiserver down" {
		t.Errorf("status = %q", got)
	}
	if alreadyInjected(pod) {
		t.Error("injected despite the failed lookup")
	}
}

func TestWorkloadOf(t *testing.T) {
	yes := true
	rs := func(name string) []metav1.OwnerReference {
		return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: name, Controller: &yes}}
	}
	tests := []struct {
		name        string
		annotations map[string]string
		labels      map[string]string
		owners      []metav1.OwnerReference
		want        workload
		wantErr     bool
	}{
		{name: "deployment", labels: map[string]string{"pod-template-hash": "abc12"}, owners: rs("web-abc12"), want: workload{"Deployment", "web"}},
		{name: "deployment with dashes", labels: map[string]string{"pod-template-hash": "7f9"}, owners: rs("my-web-app-7f9"), want: workload{"Deployment", "my-web-app"}},
		{name: "bare replicaset", owners: rs("web-rs"), want: workload{"ReplicaSet", "web-rs"}},
		{name: "argo rollout", labels: map[string]string{"rollouts-pod-template-hash": "6d4f"}, owners: rs("checkout-6d4f"), want: workload{"Rollout", "checkout"}},
		{name: "hash not a suffix", labels: map[string]string{"pod-template-hash": "zzz"}, owners: rs("web-abc12"), want: workload{"ReplicaSet", "web-abc12"}},
		{name: "statefulset", owners: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", Controller: &yes}}, want: workload{"StatefulSet", "db"}},
		{name: "non-controller owner ignored", owners: []metav1.OwnerReference{{APIVersion: "v1", Kind: "ConfigMap", Name: "x"}}, wantErr: true},
		{name: "annotation name", annotations: map[string]string{AnnotationWorkload: "checkout"}, owners: rs("web-abc12"), want: workload{"Deployment", "checkout"}},
		{name: "annotation kind/name", annotations: map[string]string{AnnotationWorkload: "Rollout/checkout"}, want: workload{"Rollout", "checkout"}},
		{name: "annotation empty", annotations: map[string]string{AnnotationWorkload: ""}, wantErr: true},
		{name: "annotation bad name", annotations: map[string]string{AnnotationWorkload: "Deployment/Not_Valid"}, wantErr: true},
		{name: "annotation too many slashes", annotations: map[string]string{AnnotationWorkload: "a/b/c"}, wantErr: true},
		{name: "no owner", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tt.annotations, Labels: tt.labels, OwnerReferences: tt.owners}}
			got, err := workloadOf(pod)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParsePortsAnnotation(t *testing.T) {
	tests := []struct {
		in      string
		mode    Mode
		want    string // portList rendering
		wantErr bool
	}{
		{in: "8080", mode: ModeIPTables, want: "8080"},
		{in: " 8080 , 9090/grpc,7000/tcp ", mode: ModeIPTables, want: "8080,9090/h2c,7000/tcp"},
		{in: "8080:15080,9090:15090/h2c", mode: ModeExplicit, want: "15080->8080,15090->9090/h2c"},
		{in: "8080:15080", mode: ModeIPTables, wantErr: true},
		{in: "", mode: ModeIPTables, wantErr: true},
		{in: ",", mode: ModeIPTables, wantErr: true},
		{in: "0", mode: ModeIPTables, wantErr: true},
		{in: "65536", mode: ModeIPTables, wantErr: true},
		{in: "http", mode: ModeIPTables, wantErr: true},
		{in: "8080/udp", mode: ModeIPTables, wantErr: true},
		{in: "8080:0", mode: ModeExplicit, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%q", tt.mode, tt.in), func(t *testing.T) {
			got, err := parsePortsAnnotation(tt.in, tt.mode)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && portList(got) != tt.want {
				t.Errorf("got %s, want %s", portList(got), tt.want)
			}
		})
	}
}

func TestExplicitPortAssignment(t *testing.T) {
	cfg := testConfig()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		annotations map[string]string
		ports       []int32
		want        string
		wantErr     string
	}{
		{name: "assigned from base", ports: []int32{8080, 9090}, want: "15080->8080,15081->9090"},
		{name: "skips ports in use", ports: []int32{15080, 8080}, want: "15081->15080,15082->8080"},
		{name: "annotation then assigned", annotations: map[string]string{AnnotationPorts: "8080,9090:15080"}, ports: []int32{8080}, want: "15081->8080,15080->9090"},
		{name: "sidecar port used by app", annotations: map[string]string{AnnotationPorts: "8080:9090"}, ports: []int32{8080, 9090}, wantErr: "port conflict: sidecar port 9090 for app port 8080 is used by container app"},
		{name: "sidecar port twice", annotations: map[string]string{AnnotationPorts: "8080:15080,8081:15080"}, wantErr: "port conflict: sidecar port 15080 given twice"},
		{name: "sidecar port is admin", annotations: map[string]string{AnnotationPorts: "8080:15020"}, wantErr: "port conflict: sidecar port 15020 for app port 8080 is the sidecar's admin port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := corev1.Container{Name: "app"}
			for _, p := range tt.ports {
				c.Ports = append(c.Ports, corev1.ContainerPort{ContainerPort: p})
			}
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: tt.annotations}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}
			got, err := interceptedPorts(&cfg, pod, ModeExplicit)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("err = %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if portList(got) != tt.want {
				t.Errorf("got %s, want %s", portList(got), tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string // substring; "" means valid
	}{
		{name: "valid", mutate: func(*Config) {}},
		{name: "no image", mutate: func(c *Config) { c.Image = "" }, wantErr: "image: required"},
		{name: "no route server", mutate: func(c *Config) { c.RouteServer = "" }, wantErr: "routeServer: required"},
		{name: "route server without port", mutate: func(c *Config) { c.RouteServer = "routes.svc" }, wantErr: "routeServer"},
		{name: "route server bad port", mutate: func(c *Config) { c.RouteServer = "routes.svc:0" }, wantErr: "port out of range"},
		{name: "bad mode", mutate: func(c *Config) { c.Mode = "ebpf" }, wantErr: "mode"},
		{name: "root uid", mutate: func(c *Config) { c.ProxyUID = -1 }, wantErr: "proxyUID"},
		{name: "admin equals inbound", mutate: func(c *Config) { c.AdminPort = DefaultInboundPort }, wantErr: "adminPort"},
		{name: "port out of range", mutate: func(c *Config) { c.InboundPort = 70000 }, wantErr: "inboundPort"},
		{name: "exclude port out of range", mutate: func(c *Config) { c.ExcludePorts = []int32{0} }, wantErr: "excludePorts[0]"},
		{name: "bad pull policy", mutate: func(c *Config) { c.ImagePullPolicy = "Sometimes" }, wantErr: "imagePullPolicy"},
		{name: "key name with comma", mutate: func(c *Config) { c.KeyNames = []string{"a,b"} }, wantErr: "keyNames"},
		{name: "routes URL not http", mutate: func(c *Config) { c.RoutesURL = "grpc://op:15011" }, wantErr: "routesURL"},
		{name: "routes URL without host", mutate: func(c *Config) { c.RoutesURL = "http:///v1" }, wantErr: "routesURL"},
		{name: "routes URL with query", mutate: func(c *Config) { c.RoutesURL = "http://op:15011/?x=1" }, wantErr: "routesURL"},
		{name: "bad opt-out label", mutate: func(c *Config) { c.NamespaceOptOutLabel = "not a label" }, wantErr: "namespaceOptOutLabel"},
		{name: "extra env without name", mutate: func(c *Config) { c.ExtraEnv = []corev1.EnvVar{{Value: "x"}} }, wantErr: "extraEnv[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			tt.mutate(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Mode != ModeIPTables || c.ProxyUID != DefaultProxyUID || c.InboundPort != DefaultInboundPort || c.Resources == nil {
					t.Errorf("defaults not filled: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want it to mention %q and wrap ErrInvalidConfig", err, tt.wantErr)
			}
		})
	}
}

func TestWebhookConfigurationGolden(t *testing.T) {
	b, err := MutatingWebhookConfigurationYAML(WebhookOptions{ServiceNamespace: "sandboxmesh-system", ServiceName: "sandboxmesh-operator-webhook"})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "mutatingwebhookconfiguration.yaml")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("webhook configuration differs from %s (run go test -update):\n%s", path, b)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "devmesh-injection.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(doc, b) {
		t.Errorf("docs/devmesh-injection.md does not show the current webhook configuration:\n%s", b)
	}
	if _, err := MutatingWebhookConfiguration(WebhookOptions{}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("no service and no URL: err = %v", err)
	}
}

// FuzzEvaluateAnnotations feeds arbitrary annotation values (the injector's parsers) to Evaluate: it
// must never panic, and every patch must apply and give a pod that decodes.
func FuzzEvaluateAnnotations(f *testing.F) {
	f.Add("8080,9090/grpc", "", "checkout", "iptables")
	f.Add("8080:15080,9090/h2c", "9100", "Rollout/ledger", "explicit")
	f.Add("", "", "", "")
	f.Add("8080:15020", "x", "a/b", "ebpf")
	cfg := testConfig()
	if err := cfg.Validate(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ports, exclude, wl, mode string) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{
				AnnotationInject: "true", AnnotationPorts: ports, AnnotationExcludePorts: exclude,
				AnnotationWorkload: wl, AnnotationMode: mode,
			}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "i", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
		}
		raw, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		d := Evaluate(&cfg, pod, "ns", nil)
		if d.Patch == nil {
			t.Fatal("a pod that asked for injection must get a patch (sidecar or skip status)")
		}
		p, err := jsonpatch.DecodePatch(d.Patch)
		if err != nil {
			t.Fatal(err)
		}
		out, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		if err := json.Unmarshal(out, &corev1.Pod{}); err != nil {
			t.Fatalf("decode: %v", err)
		}
	})
}

// TestHandlerConcurrent runs one handler from many goroutines (run with -race): same input, same patch.
func TestHandlerConcurrent(t *testing.T) {
	h, err := NewHandler(testConfig(), labels(nil), logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.ReadFile(filepath.Join("testdata", "multi-container.in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := yaml.YAMLToJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	want := h(context.Background(), podRequest(raw)).Patch
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			for range 50 {
				if got := h(context.Background(), podRequest(raw)).Patch; !bytes.Equal(got, want) {
					errs <- fmt.Errorf("patch differs under concurrency")
					return
				}
			}
			errs <- nil
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
