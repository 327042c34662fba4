package examples

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// documents reads the YAML documents of every .yaml file in dir, by file name.
func documents(t *testing.T, dir string) map[string][][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no YAML files in %s (%v)", dir, err)
	}
	out := map[string][][]byte{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, doc := range bytes.Split(data, []byte("\n---\n")) {
			if len(bytes.TrimSpace(yamlBody(doc))) > 0 {
				out[filepath.Base(f)] = append(out[filepath.Base(f)], doc)
			}
		}
	}
	return out
}

// yamlBody drops comment lines.
func yamlBody(doc []byte) []byte {
	var b bytes.Buffer
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			b.Write(l)
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

func kindOf(t *testing.T, name string, doc []byte) string {
	t.Helper()
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tm.APIVersion + "/" + tm.Kind
}

func strict(t *testing.T, name string, doc []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: strict decode into %T: %v", name, v, err)
	}
}

// app is the baseline the manifests describe.
type app struct {
	deployments map[string]*appsv1.Deployment // by name
	services    map[string]*corev1.Service    // by name
}

func loadApp(t *testing.T) app {
	t.Helper()
	a := app{deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{}}
	for name, docs := range documents(t, "hotrod/k8s") {
		for _, doc := range docs {
			switch k := kindOf(t, name, doc); k {
			case "apps/v1/Deployment":
				d := &appsv1.Deployment{}
				strict(t, name, doc, d)
				a.deployments[d.Name] = d
			case "v1/Service":
				s := &corev1.Service{}
				strict(t, name, doc, s)
				a.services[s.Name] = s
			case "v1/Namespace":
				strict(t, name, doc, &corev1.Namespace{})
			case "kustomize.config.k8s.io/v1beta1/Kustomization":
				var kz struct {
					APIVersion string   `json:"apiVersion"`
					Kind       string   `json:"kind"`
					Resources  []string `json:"resources"`
				}
				strict(t, name, doc, &kz)
				for _, r := range kz.Resources {
					if _, err := os.Stat(filepath.Join("hotrod/k8s", r)); err != nil {
						t.Errorf("%s: resource %s: %v", name, r, err)
					}
				}
			default:
				t.Errorf("%s: unexpected kind %s", name, k)
			}
		}
	}
	return a
}

func TestManifests(t *testing.T) {
	a := loadApp(t)
	if got, want := slices.Sorted(maps.Keys(a.deployments)), []string{"broker", "customer", "driver", "frontend", "route", "worker"}; !slices.Equal(got, want) {
		t.Fatalf("deployments %v, want %v", got, want)
	}
	// The broker is infrastructure: not injected, a TCP port, args "broker ...".
	if b, svc := a.deployments["broker"], a.services["broker"]; svc == nil || b.Spec.Template.Annotations["sidecar.sandboxmesh.dev/inject"] != "" ||
		len(b.Spec.Template.Spec.Containers) != 1 || b.Spec.Template.Spec.Containers[0].Args[0] != "broker" {
		t.Errorf("broker: want a Service, no sidecar injection and one container running \"hotrod broker\"")
	}
	for _, name := range []string{"customer", "driver", "frontend", "route", "worker"} {
		d, svc := a.deployments[name], a.services[name]
		if svc == nil {
			t.Errorf("%s: no Service", name)
			continue
		}
		if d.Namespace != "hotrod" || svc.Namespace != "hotrod" {
			t.Errorf("%s: namespaces %q, %q, want hotrod", name, d.Namespace, svc.Namespace)
		}
		tmpl := d.Spec.Template
		if tmpl.Annotations["sidecar.sandboxmesh.dev/inject"] != "true" {
			t.Errorf("%s: pod template lacks sidecar.sandboxmesh.dev/inject: \"true\"", name)
		}
		for k, v := range svc.Spec.Selector {
			if tmpl.Labels[k] != v || d.Spec.Selector.MatchLabels[k] != v {
				t.Errorf("%s: Service selector %s=%s does not select the pods", name, k, v)
			}
		}
		if len(tmpl.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", name, len(tmpl.Spec.Containers))
		}
		c := tmpl.Spec.Containers[0]
		if c.Image != "sandboxmesh.dev/hotrod:dev" || c.ImagePullPolicy != corev1.PullNever {
			t.Errorf("%s: image %s pull %s, want sandboxmesh.dev/hotrod:dev, Never", name, c.Image, c.ImagePullPolicy)
		}
		if !slices.Equal(c.Args, []string{name}) {
			t.Errorf("%s: args %q, want [%s]", name, c.Args, name)
		}
		ports := map[string]corev1.ContainerPort{}
		for _, p := range c.Ports {
			ports[p.Name] = p
		}
		for _, probe := range []*corev1.Probe{c.ReadinessProbe, c.LivenessProbe} {
			if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Port != intstr.FromString("http") {
				t.Errorf("%s: probe %+v, want httpGet on port http", name, probe)
			}
		}
		for _, sp := range svc.Spec.Ports {
			cp, ok := ports[sp.TargetPort.StrVal]
			if sp.TargetPort.Type != intstr.String || !ok || sp.Name != sp.TargetPort.StrVal || sp.Port != cp.ContainerPort {
				t.Errorf("%s: Service port %+v does not name a container port of the same name and number", name, sp)
			}
			wantProto := map[string]string{"http": "http", "grpc": "kubernetes.io/h2c"}[sp.Name]
			if sp.AppProtocol == nil || *sp.AppProtocol != wantProto {
				t.Errorf("%s: Service port %s appProtocol %v, want %s", name, sp.Name, sp.AppProtocol, wantProto)
			}
		}
		if name == "driver" {
			if _, ok := ports["grpc"]; !ok {
				t.Errorf("driver: no grpc port")
			}
		}
	}
}

// cliFile is the control-plane (CLI) spec file format, as internal/cli reads it.
type cliFile[S any] struct {
	Name string `json:"name"`
	Spec S      `json:"spec"`
}

func TestSpecs(t *testing.T) {
	a := loadApp(t)
	crs := documents(t, "specs/cr")
	clis := documents(t, "specs/cli")
	if got, want := slices.Sorted(maps.Keys(clis)), slices.Sorted(maps.Keys(crs)); !slices.Equal(got, want) {
		t.Fatalf("specs/cli has %v, specs/cr has %v: want the same files in both forms", got, want)
	}
	var sandboxes []*v1alpha1.Sandbox
	var groups []*v1alpha1.RouteGroup
	for name, docs := range crs {
		if len(docs) != 1 || len(clis[name]) != 1 {
			t.Fatalf("%s: want one document in each form", name)
		}
		cr, cli := docs[0], clis[name][0]
		t.Run(name, func(t *testing.T) {
			check := func(errs apitypes.FieldErrors) {
				t.Helper()
				for _, e := range errs {
					t.Errorf("%s: %s", name, e.Error())
				}
			}
			switch k := kindOf(t, name, cr); k {
			case "sandboxmesh.dev/v1alpha1/Sandbox":
				sb := &v1alpha1.Sandbox{}
				strict(t, name, cr, sb)
				var f cliFile[v1alpha1.SandboxSpec]
				strict(t, "cli/"+name, cli, &f)
				if f.Spec.Cluster == "" {
					t.Errorf("cli/%s: no spec.cluster", name)
				}
				withCluster := sb.Spec
				withCluster.Cluster = f.Spec.Cluster
				if f.Name != sb.Name || !reflect.DeepEqual(f.Spec, withCluster) {
					t.Errorf("cli/%s differs from cr/%s (besides spec.cluster)", name, name)
				}
				if fe := apitypes.ValidateObjectName("metadata.name", sb.Name); fe != nil {
					t.Error(fe)
				}
				check(apitypes.ValidateSandboxSpec(&f.Spec))
				for _, fk := range sb.Spec.Forks {
					w := fk.ForkOf
					if d := a.deployments[w.Name]; d == nil || d.Namespace != w.Namespace || (w.Kind != "" && w.Kind != v1alpha1.KindDeployment) {
						t.Errorf("fork of %s/%s/%s: no such Deployment in hotrod/k8s", w.Kind, w.Namespace, w.Name)
					}
				}
				if sb.Spec.DefaultRouteGroup != nil {
					checkEndpoints(t, a, sb.Spec.DefaultRouteGroup.Endpoints)
				}
				sandboxes = append(sandboxes, sb)
			case "sandboxmesh.dev/v1alpha1/RouteGroup":
				rg := &v1alpha1.RouteGroup{}
				strict(t, name, cr, rg)
				var f cliFile[v1alpha1.RouteGroupSpec]
				strict(t, "cli/"+name, cli, &f)
				withCluster := rg.Spec
				withCluster.Cluster = f.Spec.Cluster
				if f.Name != rg.Name || !reflect.DeepEqual(f.Spec, withCluster) {
					t.Errorf("cli/%s differs from cr/%s (besides spec.cluster)", name, name)
				}
				if fe := apitypes.ValidateObjectName("metadata.name", rg.Name); fe != nil {
					t.Error(fe)
				}
				check(apitypes.ValidateRouteGroupSpec(&f.Spec))
				checkEndpoints(t, a, rg.Spec.Endpoints)
				groups = append(groups, rg)
			default:
				t.Fatalf("%s: unexpected kind %s", name, k)
			}
		})
	}
	// The samples cover what they claim: an image change, an env change, two
	// forks in one sandbox, and a RouteGroup matching two sandboxes.
	var image, env, two bool
	for _, sb := range sandboxes {
		two = two || len(sb.Spec.Forks) >= 2
		for _, f := range sb.Spec.Forks {
			if f.Customizations != nil {
				image = image || len(f.Customizations.Images) > 0
				env = env || len(f.Customizations.Env) > 0
			}
		}
	}
	if !image || !env || !two {
		t.Errorf("samples: image change %v, env change %v, two forks %v; want all", image, env, two)
	}
	for _, rg := range groups {
		var matched []string
		for _, sb := range sandboxes {
			if l := rg.Spec.Match.Label; l != nil && sb.Namespace == rg.Namespace && sb.Spec.Labels[l.Key] == l.Value {
				matched = append(matched, sb.Name)
			}
		}
		if len(matched) != 2 {
			t.Errorf("RouteGroup %s matches %v, want two sandboxes", rg.Name, matched)
		}
	}
	if len(groups) == 0 {
		t.Error("no RouteGroup sample")
	}
}

// checkEndpoints checks that each endpoint names a Service port (.svc) or a
// Deployment's container port (.deploy) of the app.
func checkEndpoints(t *testing.T, a app, eps []v1alpha1.Endpoint) {
	t.Helper()
	for _, e := range eps {
		_, rest, _ := strings.Cut(e.Target, "://")
		host, port, _ := strings.Cut(rest, ":")
		parts := strings.Split(host, ".")
		found := false
		switch parts[2] {
		case "svc":
			if s := a.services[parts[0]]; s != nil && s.Namespace == parts[1] {
				for _, p := range s.Spec.Ports {
					found = found || port == itoa(p.Port)
				}
			}
		case "deploy":
			if d := a.deployments[parts[0]]; d != nil && d.Namespace == parts[1] {
				for _, p := range d.Spec.Template.Spec.Containers[0].Ports {
					found = found || port == itoa(p.ContainerPort)
				}
			}
		}
		if !found {
			t.Errorf("endpoint %s: target %s is not a port of the app", e.Name, e.Target)
		}
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
