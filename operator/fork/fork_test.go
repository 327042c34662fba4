package fork

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

func ptr[T any](v T) *T { return &v }

func baseline() *appsv1.Deployment {
	three := int32(3)
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "route", Namespace: "hotrod", Generation: 7},
		Spec: appsv1.DeploymentSpec{
			Replicas: &three,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "route"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{
					Labels:      map[string]string{"app": "route", "tier": "backend", "version": "v1"},
					Annotations: map[string]string{smv1.AnnotationInject: "true"},
				},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "route", Image: "hotrod:v1", Env: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}}, Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8083}}},
					{Name: "cache", Image: "redis:7"},
				}},
			},
		},
	}
}

func sandbox() *smv1.Sandbox {
	return &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "feature-x", Namespace: "sandboxes"}}
}

func build(t *testing.T, c *smv1.Customizations, exclude ...string) (*appsv1.Deployment, error) {
	t.Helper()
	return Deployment(Input{Sandbox: sandbox(), RoutingKey: "k1", Fork: smv1.Fork{ForkOf: smv1.WorkloadRef{Namespace: "hotrod", Name: "route"}, Customizations: c}, Baseline: workload.FromDeployment(baseline()), ExcludeLabelKeys: exclude})
}

func env(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

func TestDeploymentInvariants(t *testing.T) {
	d, err := build(t, nil, "tier")
	if err != nil {
		t.Fatal(err)
	}
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("replicas/strategy = %d/%s", *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if d.Namespace != "hotrod" || d.Name != naming.ForkName("sandboxes", "feature-x", "hotrod", "route") {
		t.Errorf("name = %s/%s", d.Namespace, d.Name)
	}
	// The baseline Service selects app=route; its selector must never match a fork pod.
	baseSel := labels.SelectorFromSet(labels.Set{"app": "route"})
	if baseSel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("fork pods selectable by the baseline selector: %v", d.Spec.Template.Labels)
	}
	if _, ok := d.Spec.Template.Labels["tier"]; ok {
		t.Error("excluded label key kept")
	}
	if d.Spec.Template.Labels["version"] != "v1" {
		t.Error("unrelated label dropped")
	}
	sel, _ := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Error("fork selector does not select its own template")
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if e, _ := env(c, naming.EnvRoutingKey); e.Value != "k1" {
			t.Errorf("container %s lacks routing key env", c.Name)
		}
		if e, _ := env(c, naming.EnvSandboxName); e.Value != "feature-x" {
			t.Errorf("container %s lacks sandbox env", c.Name)
		}
	}
	if d.Spec.Template.Annotations[smv1.AnnotationInject] != "false" {
		t.Error("fork would get a sidecar")
	}
	if d.Annotations[naming.AnnotationBaselineGeneration] != "7" || d.Annotations[naming.AnnotationSpecHash] == "" {
		t.Errorf("annotations = %v", d.Annotations)
	}
}

func TestCustomizations(t *testing.T) {
	cases := []struct {
		name    string
		c       *smv1.Customizations
		check   func(t *testing.T, d *appsv1.Deployment)
		wantErr error
		errPath string
	}{
		{name: "image main container", c: &smv1.Customizations{Images: []smv1.ImageCustomization{{Image: "hotrod:v2"}}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if d.Spec.Template.Spec.Containers[0].Image != "hotrod:v2" || d.Spec.Template.Spec.Containers[1].Image != "redis:7" {
					t.Error(d.Spec.Template.Spec.Containers)
				}
			}},
		{name: "image named container", c: &smv1.Customizations{Images: []smv1.ImageCustomization{{Image: "redis:8", Container: "cache"}}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if d.Spec.Template.Spec.Containers[1].Image != "redis:8" {
					t.Error(d.Spec.Template.Spec.Containers[1].Image)
				}
			}},
		{name: "image unknown container", c: &smv1.Customizations{Images: []smv1.ImageCustomization{{Image: "x", Container: "nope"}}},
			wantErr: ErrInvalidCustomization, errPath: "spec.forks[0].customizations.images[0].container"},
		{name: "env upsert new and existing", c: &smv1.Customizations{Env: []smv1.EnvCustomization{{Name: "A", Value: ptr("9")}, {Name: "C", Value: ptr("3")}}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if a, _ := env(c, "A"); a.Value != "9" {
					t.Error("A not replaced")
				}
				if cc, _ := env(c, "C"); cc.Value != "3" {
					t.Error("C not added")
				}
			}},
		{name: "env delete", c: &smv1.Customizations{Env: []smv1.EnvCustomization{{Name: "B", Operation: smv1.EnvDelete}}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if _, ok := env(d.Spec.Template.Spec.Containers[0], "B"); ok {
					t.Error("B not deleted")
				}
			}},
		{name: "env valueFrom", c: &smv1.Customizations{Env: []smv1.EnvCustomization{
			{Name: "S", ValueFrom: &smv1.EnvValueFrom{Secret: &smv1.KeySelector{Name: "db", Key: "pw"}}},
			{Name: "M", ValueFrom: &smv1.EnvValueFrom{ConfigMap: &smv1.KeySelector{Name: "cfg", Key: "k"}}, Container: "cache"},
			{Name: "P", ValueFrom: &smv1.EnvValueFrom{FieldRef: &smv1.FieldSelector{FieldPath: "status.podIP"}}},
		}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				c0, c1 := d.Spec.Template.Spec.Containers[0], d.Spec.Template.Spec.Containers[1]
				if s, _ := env(c0, "S"); s.ValueFrom == nil || s.ValueFrom.SecretKeyRef.Name != "db" {
					t.Error("secret")
				}
				if m, _ := env(c1, "M"); m.ValueFrom == nil || m.ValueFrom.ConfigMapKeyRef.Key != "k" {
					t.Error("configmap")
				}
				if p, _ := env(c0, "P"); p.ValueFrom == nil || p.ValueFrom.FieldRef.FieldPath != "status.podIP" {
					t.Error("fieldRef")
				}
			}},
		{name: "command and args", c: &smv1.Customizations{Command: []string{"/bin/route"}, Args: []string{"-v"}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				c := d.Spec.Template.Spec.Containers[0]
				if len(c.Command) != 1 || c.Args[0] != "-v" {
					t.Error(c.Command, c.Args)
				}
			}},
		{name: "strategic patch", c: &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchStrategic, Value: "spec:\n  template:\n    spec:\n      containers:\n      - name: cache\n        image: redis:9\n"}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				cs := d.Spec.Template.Spec.Containers
				if len(cs) != 2 || cs[1].Image != "redis:9" || cs[0].Image != "hotrod:v1" {
					t.Error(cs)
				}
			}},
		{name: "merge patch cannot break invariants", c: &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchMerge, Value: `{"spec":{"replicas":5,"selector":{"matchLabels":{"app":"route"}}}}`}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if *d.Spec.Replicas != 1 || d.Spec.Selector.MatchLabels["app"] != "" {
					t.Error("invariants overridden by patch")
				}
			}},
		{name: "json patch", c: &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchJSON, Value: `[{"op":"add","path":"/spec/template/spec/containers/0/args","value":["--json"]}]`}},
			check: func(t *testing.T, d *appsv1.Deployment) {
				if d.Spec.Template.Spec.Containers[0].Args[0] != "--json" {
					t.Error(d.Spec.Template.Spec.Containers[0].Args)
				}
			}},
		{name: "json patch bad path", c: &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchJSON, Value: `[{"op":"replace","path":"/spec/nothing/here","value":1}]`}},
			wantErr: ErrInvalidPatch, errPath: "spec.forks[0].customizations.patch.value"},
		{name: "patch not yaml", c: &smv1.Customizations{Patch: &smv1.Patch{Value: "spec: [unclosed"}},
			wantErr: ErrInvalidPatch, errPath: "spec.forks[0].customizations.patch.value"},
		{name: "patch wrong type", c: &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchMerge, Value: `{"spec":{"replicas":"many"}}`}},
			wantErr: ErrInvalidPatch, errPath: "spec.forks[0].customizations.patch.value"},
		{name: "strategic patch whose merge key is a map (apimachinery panics)", c: &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchStrategic, Value: "spec:\n template:\n  spec:\n   containers:\n   - name: {0: null}\n"}},
			wantErr: ErrInvalidPatch, errPath: "malformed strategic merge patch"},
		{name: "patch removes containers", c: &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchMerge, Value: `{"spec":{"template":{"spec":{"containers":null}}}}`}},
			wantErr: ErrInvalidPatch, errPath: "removes every container"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := build(t, tc.c)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errPath) {
					t.Fatalf("err = %v, want %v at %s", err, tc.wantErr, tc.errPath)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, d)
		})
	}
}

func TestService(t *testing.T) {
	sb := sandbox()
	svcs := []corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: "route"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9000}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "route-admin"}, Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "http", Port: 9090}}}},
	}
	s := Service(sb, "fork", "route", "hotrod", svcs)
	if len(s.Spec.Ports) != 3 || s.Spec.Ports[2].Name != "port-9090" || s.Spec.Selector[naming.LabelFork] != "fork" {
		t.Fatalf("%+v", s.Spec)
	}
}

func FuzzPatch(f *testing.F) {
	f.Add("strategic", "spec:\n  replicas: 2\n")
	f.Add("merge", `{"spec":null}`)
	f.Add("json", `[{"op":"remove","path":"/spec"}]`)
	f.Fuzz(func(t *testing.T, typ, value string) {
		d, err := build(t, &smv1.Customizations{Patch: &smv1.Patch{Type: smv1.PatchType(typ), Value: value}})
		if err == nil && (d == nil || *d.Spec.Replicas != 1 || len(d.Spec.Template.Spec.Containers) == 0) {
			t.Fatalf("invariant broken for %q %q", typ, value)
		}
	})
}

// TestEnvValueFromFork: Signadot's sandbox service references resolved
// against sibling forks, with field paths when they cannot be.
func TestEnvValueFromFork(t *testing.T) {
	customer := smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: "hotrod", Name: "customer"}
	ref := func(w smv1.WorkloadRef, expr string) *smv1.Customizations {
		return &smv1.Customizations{Env: []smv1.EnvCustomization{
			{Name: "A", Value: ptr("x")},
			{Name: "CUSTOMER_ADDR", ValueFrom: &smv1.EnvValueFrom{Fork: &smv1.EnvValueFromFork{ForkOf: w, Expression: expr}}},
		}}
	}
	siblings := map[string]Sibling{
		SiblingKey(customer): {Service: smv1.ForkService{Host: "feature-x-customer-1a2b.hotrod.svc", Port: 8081}},
		"hotrod/route":       {Service: smv1.ForkService{Host: "feature-x-route-3c4d.hotrod.svc", Port: 8083}},
		"hotrod/noports":     {Service: smv1.ForkService{Host: "feature-x-noports-5e6f.hotrod.svc"}},
		"hotrod/gone":        {Service: smv1.ForkService{Host: "feature-x-gone-7a8b.hotrod.svc"}, BaselineMissing: true},
	}
	in := func(c *smv1.Customizations) Input {
		return Input{Sandbox: sandbox(), RoutingKey: "k1", Index: 1, Fork: smv1.Fork{ForkOf: smv1.WorkloadRef{Namespace: "hotrod", Name: "route"}, Customizations: c},
			Baseline: workload.FromDeployment(baseline()), Siblings: siblings}
	}
	const path = "spec.forks[1].customizations.env[1].valueFrom"
	for _, tc := range []struct {
		name, expr string
		w          smv1.WorkloadRef
		want       string
		errIs      error
		errIn      string
	}{
		{name: "host and port", w: customer, expr: "{{ .Service.Host }}:{{ .Service.Port }}", want: "feature-x-customer-1a2b.hotrod.svc:8081"},
		{name: "url", w: customer, expr: "http://{{.Service.Host}}:{{.Service.Port}}/api", want: "http://feature-x-customer-1a2b.hotrod.svc:8081/api"},
		{name: "itself", w: smv1.WorkloadRef{Namespace: "hotrod", Name: "route"}, expr: "{{ .Service.Host }}", want: "feature-x-route-3c4d.hotrod.svc"},
		{name: "host of a workload without ports", w: smv1.WorkloadRef{Namespace: "hotrod", Name: "noports"}, expr: "{{ .Service.Host }}", want: "feature-x-noports-5e6f.hotrod.svc"},
		{name: "port of a workload without ports", w: smv1.WorkloadRef{Namespace: "hotrod", Name: "noports"}, expr: "{{ .Service.Port }}",
			errIs: ErrInvalidCustomization, errIn: path + ".fork.expression: {{ .Service.Port }}: Deployment hotrod/noports declares no container port"},
		{name: "port of a missing baseline", w: smv1.WorkloadRef{Namespace: "hotrod", Name: "gone"}, expr: "{{ .Service.Port }}",
			errIs: ErrInvalidCustomization, errIn: path + ".fork.expression: {{ .Service.Port }}: the baseline Deployment hotrod/gone of that fork was not found"},
		{name: "not a fork of the sandbox", w: smv1.WorkloadRef{Namespace: "hotrod", Name: "driver"}, expr: "{{ .Service.Host }}",
			errIs: ErrInvalidCustomization, errIn: path + ".fork.forkOf: hotrod/driver is not a fork of this sandbox"},
		{name: "unknown variable", w: customer, expr: "{{ .Deployment.Name }}",
			errIs: smv1.ErrInvalidExpression, errIn: path + ".fork.expression: invalid expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Deployment(in(ref(tc.w, tc.expr)))
			if tc.errIs != nil {
				if !errors.Is(err, tc.errIs) || !strings.Contains(err.Error(), tc.errIn) {
					t.Fatalf("got %v, want %v containing %q", err, tc.errIs, tc.errIn)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e, ok := env(d.Spec.Template.Spec.Containers[0], "CUSTOMER_ADDR")
			if !ok || e.Value != tc.want || e.ValueFrom != nil {
				t.Fatalf("CUSTOMER_ADDR = %+v, want %q", e, tc.want)
			}
		})
	}
}

// TestEnvValueFromResource: a resource output becomes a secretKeyRef to the
// sandbox's outputs Secret (never a value); an unknown resource or output is
// an InvalidCustomization with the field path and what there is.
func TestEnvValueFromResource(t *testing.T) {
	in := func(name, key string) Input {
		sb := sandbox()
		sb.Spec.Resources = []smv1.Resource{{Name: "db", Plugin: "postgres-schema"}, {Name: "cache", Plugin: "redis"}}
		return Input{Sandbox: sb, RoutingKey: "k1", Index: 1, Fork: smv1.Fork{ForkOf: smv1.WorkloadRef{Namespace: "hotrod", Name: "route"},
			Customizations: &smv1.Customizations{Env: []smv1.EnvCustomization{
				{Name: "A", Value: ptr("x")},
				{Name: "DB", ValueFrom: &smv1.EnvValueFrom{Resource: &smv1.EnvValueFromResource{Name: name, OutputKey: key}}}}}},
			Baseline:       workload.FromDeployment(baseline()),
			ResourceSecret: "sm-res-feature-x-12345678",
			ResourceKeys:   map[string]bool{"db.provision.url": true, "db.provision.host": true, "cache.make.addr": true},
		}
	}
	d, err := Deployment(in("db", "provision.url"))
	if err != nil {
		t.Fatal(err)
	}
	e, ok := env(d.Spec.Template.Spec.Containers[0], "DB")
	if !ok || e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != "sm-res-feature-x-12345678" || e.ValueFrom.SecretKeyRef.Key != "db.provision.url" {
		t.Fatalf("DB = %+v", e)
	}
	const path = "spec.forks[1].customizations.env[1].valueFrom.resource: "
	for _, tc := range []struct{ name, key, want string }{
		{"db", "provision.password", path + "resource db has no output provision.password (it has provision.host, provision.url)"},
		{"queue", "make.addr", path + "the sandbox has no resource queue (spec.resources: [db cache])"},
		{"cache", "make.port", "(it has make.addr)"},
	} {
		_, err := Deployment(in(tc.name, tc.key))
		if !errors.Is(err, ErrInvalidCustomization) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: %v, want %q", tc.name, tc.key, err, tc.want)
		}
	}
	noKeys := in("db", "provision.url")
	noKeys.ResourceKeys = nil
	if _, err := Deployment(noKeys); !errors.Is(err, ErrInvalidCustomization) || !strings.Contains(err.Error(), "(it has none)") {
		t.Errorf("no outputs: %v", err)
	}
}

func TestFirstContainerPort(t *testing.T) {
	d := baseline()
	if p := FirstContainerPort(d); p != 8083 {
		t.Fatalf("port %d", p)
	}
	d.Spec.Template.Spec.Containers[0].Ports = nil
	d.Spec.Template.Spec.Containers[1].Ports = []corev1.ContainerPort{{ContainerPort: 6379}}
	if p := FirstContainerPort(d); p != 6379 {
		t.Fatalf("port of the first container with one: %d", p)
	}
	d.Spec.Template.Spec.Containers[1].Ports = nil
	if p := FirstContainerPort(d); p != 0 {
		t.Fatalf("no ports: %d", p)
	}
}

// TestRolloutFork: a Rollout's fork is the Deployment built from its pod
// template (spec.template, or spec.workloadRef's Deployment's), with the
// customizations and invariants of a Deployment fork and the baseline kind
// recorded.
func TestRolloutFork(t *testing.T) {
	dep := baseline()
	inline := &workload.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "route", Namespace: "hotrod", Generation: 4},
		Spec: workload.RolloutSpec{Replicas: ptr(int32(5)), Selector: dep.Spec.Selector, Template: dep.Spec.Template}}
	ref := &workload.Rollout{ObjectMeta: metav1.ObjectMeta{Name: "route", Namespace: "hotrod", Generation: 2},
		Spec: workload.RolloutSpec{WorkloadRef: &workload.RolloutWorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "route-template"}}}
	for _, tc := range []struct {
		name    string
		base    *workload.Baseline
		wantGen string
	}{
		{"spec.template", workload.FromRollout(inline, nil), "4"},
		{"spec.workloadRef", workload.FromRollout(ref, dep), "2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &smv1.Customizations{Images: []smv1.ImageCustomization{{Image: "hotrod:v2"}}, Env: []smv1.EnvCustomization{{Name: "A", Value: ptr("9")}}}
			d, err := Deployment(Input{Sandbox: sandbox(), RoutingKey: "k1", Fork: smv1.Fork{ForkOf: smv1.WorkloadRef{Kind: smv1.KindRollout, Namespace: "hotrod", Name: "route"}, Customizations: c},
				Baseline: tc.base, ExcludeLabelKeys: []string{"app"}})
			if err != nil {
				t.Fatal(err)
			}
			if d.Name != naming.ForkName("sandboxes", "feature-x", "hotrod", "route") || *d.Spec.Replicas != 1 {
				t.Errorf("name/replicas = %s/%d", d.Name, *d.Spec.Replicas)
			}
			if got := d.Spec.Template.Spec.Containers[0]; got.Image != "hotrod:v2" || got.Ports[0].ContainerPort != 8083 {
				t.Errorf("main container = %+v", got)
			}
			if e, _ := env(d.Spec.Template.Spec.Containers[0], "A"); e.Value != "9" {
				t.Errorf("env A = %q", e.Value)
			}
			if _, ok := d.Spec.Template.Labels["app"]; ok || d.Spec.Template.Labels["version"] != "v1" {
				t.Errorf("template labels = %v", d.Spec.Template.Labels)
			}
			if d.Annotations[naming.AnnotationBaselineKind] != "Rollout" || d.Annotations[naming.AnnotationBaselineGeneration] != tc.wantGen {
				t.Errorf("annotations = %v", d.Annotations)
			}
			if d.Labels[naming.LabelBaseline] != "route" {
				t.Errorf("labels = %v", d.Labels)
			}
		})
	}
	if d, err := build(t, nil); err != nil || d.Annotations[naming.AnnotationBaselineKind] != "" {
		t.Errorf("a Deployment fork records a baseline kind: %v %v", d.Annotations, err)
	}
}

// TestConsumerEnv: every fork container learns the baseline it replaces and the routes lookup URL;
// values the user set (in the baseline or a customization) are kept.
func TestConsumerEnv(t *testing.T) {
	const url = "http://sandboxmesh-operator.sandboxmesh-system.svc:15011"
	rollout := &workload.Baseline{Kind: smv1.KindRollout, Deployment: baseline()}
	rollout.Name = "route-ro"
	cases := []struct {
		name      string
		base      *workload.Baseline
		c         *smv1.Customizations
		routesURL string
		want      map[string]string // per container 0; "" means absent
	}{
		{name: "deployment", base: workload.FromDeployment(baseline()), routesURL: url,
			want: map[string]string{smv1.EnvBaselineKind: "Deployment", smv1.EnvBaselineNamespace: "hotrod", smv1.EnvBaselineName: "route", smv1.EnvRoutesURL: url}},
		{name: "rollout", base: rollout, routesURL: url,
			want: map[string]string{smv1.EnvBaselineKind: "Rollout", smv1.EnvBaselineNamespace: "hotrod", smv1.EnvBaselineName: "route-ro", smv1.EnvRoutesURL: url}},
		{name: "no routes URL", base: workload.FromDeployment(baseline()),
			want: map[string]string{smv1.EnvBaselineName: "route", smv1.EnvRoutesURL: ""}},
		{name: "user values kept", base: workload.FromDeployment(baseline()), routesURL: url,
			c:    &smv1.Customizations{Env: []smv1.EnvCustomization{{Name: smv1.EnvBaselineName, Value: ptr("mine")}, {Name: smv1.EnvRoutesURL, Value: ptr("http://elsewhere:1")}}},
			want: map[string]string{smv1.EnvBaselineName: "mine", smv1.EnvRoutesURL: "http://elsewhere:1", smv1.EnvBaselineKind: "Deployment"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Deployment(Input{Sandbox: sandbox(), RoutingKey: "k1", Fork: smv1.Fork{ForkOf: tc.base.Ref(), Customizations: tc.c}, Baseline: tc.base, RoutesURL: tc.routesURL})
			if err != nil {
				t.Fatal(err)
			}
			for i, c := range d.Spec.Template.Spec.Containers {
				for name, want := range tc.want {
					if i > 0 && tc.c != nil {
						continue // customizations apply to the main container only
					}
					got, ok := env(c, name)
					if want == "" && ok || want != "" && got.Value != want {
						t.Errorf("container %s: %s = %q (set %v), want %q", c.Name, name, got.Value, ok, want)
					}
				}
				seen := map[string]bool{}
				for _, e := range c.Env {
					if seen[e.Name] {
						t.Errorf("container %s: %s twice", c.Name, e.Name)
					}
					seen[e.Name] = true
				}
			}
		})
	}
}
