package apitypes

import (
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func TestValidateEnvValueFrom(t *testing.T) {
	route := v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "hotrod", Name: "route"}
	spec := func(vf *v1alpha1.EnvValueFrom) *v1alpha1.SandboxSpec {
		return &v1alpha1.SandboxSpec{Cluster: "c1", Forks: []v1alpha1.Fork{
			{ForkOf: route},
			{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "hotrod", Name: "frontend"},
				Customizations: &v1alpha1.Customizations{Env: []v1alpha1.EnvCustomization{{Name: "ROUTE_ADDR", ValueFrom: vf}}}},
		}}
	}
	const p = "spec.forks[1].customizations.env[0].valueFrom"
	for _, tc := range []struct {
		name     string
		vf       *v1alpha1.EnvValueFrom
		path, in string
	}{
		{"fork ok", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: "{{ .Service.Host }}:{{ .Service.Port }}"}}, "", ""},
		{"fork of a workload not forked", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: v1alpha1.WorkloadRef{Namespace: "hotrod", Name: "driver"}, Expression: "{{ .Service.Host }}"}},
			p + ".fork.forkOf", "not one of spec.forks"},
		{"fork trim markers", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: "http://{{- .Service.Host -}} :{{.Service.Port}}/"}}, "", ""},
		{"unknown field", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: "{{ .Service.Name }}"}}, p + ".fork.expression", "only text and the actions {{ .Service.Host }} and {{ .Service.Port }}"},
		{"unknown object", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: "{{ .Deployment.Name }}"}}, p + ".fork.expression", "only text and the actions"},
		{"function", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: `{{ printf "%s" .Service.Host }}`}}, p + ".fork.expression", "only text and the actions"},
		{"comment", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: "{{/* x */}}{{ .Service.Host }}"}}, p + ".fork.expression", "only text and the actions"},
		{"too long", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: strings.Repeat("x", 201)}}, p + ".fork.expression", "200"},
		{"broken template", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: "{{ .Service.Host"}}, p + ".fork.expression", "invalid expression"},
		{"empty expression", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route}}, p + ".fork.expression", "required"},
		{"resource bad outputKey", &v1alpha1.EnvValueFrom{Resource: &v1alpha1.EnvValueFromResource{Name: "db", OutputKey: "host"}}, p + ".resource.outputKey", "<step>.<output>"},
		{"resource not in spec.resources", &v1alpha1.EnvValueFrom{Resource: &v1alpha1.EnvValueFromResource{Name: "db", OutputKey: "provision.host"}}, p + ".resource.name", "not one of spec.resources"},
		{"two sources", &v1alpha1.EnvValueFrom{Fork: &v1alpha1.EnvValueFromFork{ForkOf: route, Expression: "x"}, FieldRef: &v1alpha1.FieldSelector{FieldPath: "metadata.name"}}, p, "exactly one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateSandboxSpec(spec(tc.vf))
			if tc.path == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected: %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Message, tc.in) {
					return
				}
			}
			t.Fatalf("want %s: …%s…, got %v", tc.path, tc.in, errs)
		})
	}
}

func TestValidateHardening(t *testing.T) {
	base := func() *v1alpha1.SandboxSpec {
		return &v1alpha1.SandboxSpec{Cluster: "c1", Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Namespace: "shop", Name: "cart"}}}}
	}
	withTarget := func(tg string) *v1alpha1.SandboxSpec {
		s := base()
		s.DefaultRouteGroup = &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: tg}}}
		return s
	}
	withLabel := func(v string) *v1alpha1.SandboxSpec {
		s := base()
		s.Labels = map[string]string{"team": v}
		return s
	}
	const tp = "spec.defaultRouteGroup.endpoints[0].target"
	for _, tc := range []struct {
		name     string
		spec     *v1alpha1.SandboxSpec
		path, in string
	}{
		{"port 8080", withTarget("http://web.shop.svc:8080"), "", ""},
		{"port 1", withTarget("http://web.shop.svc:1"), "", ""},
		{"port 65535", withTarget("http://web.shop.svc:65535"), "", ""},
		{"port 0", withTarget("http://web.shop.svc:0"), tp, "out of range"},
		{"port 00000", withTarget("http://web.shop.svc:00000"), tp, "out of range"},
		{"port 65536", withTarget("http://web.shop.svc:65536"), tp, "out of range"},
		{"port 99999", withTarget("tcp://web.shop.deploy:99999"), tp, "out of range"},
		{"label value plain", withLabel("cart team, EU/west ü"), "", ""},
		{"label value NUL", withLabel("a\x00b"), `spec.labels["team"]`, "control characters"},
		{"label value newline", withLabel("a\nb"), `spec.labels["team"]`, "control characters"},
		{"label value ANSI escape", withLabel("\x1b[31mred"), `spec.labels["team"]`, "control characters"},
		{"label value bidi override", withLabel("abc\u202edef"), `spec.labels["team"]`, "control characters"},
		{"label value invalid UTF-8", withLabel("a\xffb"), `spec.labels["team"]`, "UTF-8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateSandboxSpec(tc.spec)
			if tc.path == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected: %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Message, tc.in) {
					return
				}
			}
			t.Fatalf("want %s: …%s…, got %v", tc.path, tc.in, errs)
		})
	}

	t.Run("validation stops after MaxFieldErrors", func(t *testing.T) {
		s := base()
		s.Forks = make([]v1alpha1.Fork, 10000)
		for i := range s.Forks {
			s.Forks[i].ForkOf = v1alpha1.WorkloadRef{Namespace: "BAD_NS", Name: "x"}
		}
		errs := ValidateSandboxSpec(s)
		if len(errs) != MaxFieldErrors+1 || !strings.Contains(errs[len(errs)-1].Message, "more errors not shown") {
			t.Fatalf("%d errors, last %v", len(errs), errs[len(errs)-1])
		}
		if n := len(errs.Error()); n > 4096 {
			t.Fatalf("error text is %d bytes", n)
		}
		w := &WorkloadReport{Workloads: make([]Workload, MaxWorkloads)}
		if errs := ValidateWorkloadReport(w); len(errs) != MaxFieldErrors+1 {
			t.Fatalf("workload report: %d errors", len(errs))
		}
	})

	t.Run("text", func(t *testing.T) {
		for v, ok := range map[string]bool{"ci key": true, "": false, "a\tb": false, "a\rb": false, "\x7f": false, strings.Repeat("x", 129): false, "clé 🔑": true} {
			if fe := ValidateText("name", v, 128, true); (fe == nil) != ok {
				t.Errorf("%q: %v", v, fe)
			}
		}
	})
}

func TestValidateSandboxResources(t *testing.T) {
	route := v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "hotrod", Name: "route"}
	spec := func(rs []v1alpha1.Resource, key string) *v1alpha1.SandboxSpec {
		return &v1alpha1.SandboxSpec{Cluster: "c1", Resources: rs, Forks: []v1alpha1.Fork{{ForkOf: route,
			Customizations: &v1alpha1.Customizations{Env: []v1alpha1.EnvCustomization{{Name: "DB_HOST",
				ValueFrom: &v1alpha1.EnvValueFrom{Resource: &v1alpha1.EnvValueFromResource{Name: "db", OutputKey: key}}}}}}}}
	}
	db := v1alpha1.Resource{Name: "db", Plugin: "postgres-schema", Params: map[string]string{"dbname": "x"}}
	for _, tc := range []struct {
		name     string
		rs       []v1alpha1.Resource
		key      string
		path, in string
	}{
		{"ok", []v1alpha1.Resource{db}, "provision.host", "", ""},
		{"twice", []v1alpha1.Resource{db, db}, "provision.host", "spec.resources[1].name", "unique"},
		{"no plugin", []v1alpha1.Resource{{Name: "db"}}, "provision.host", "spec.resources[0].plugin", "required"},
		{"plugin version", []v1alpha1.Resource{{Name: "db", Plugin: "pg@v2"}}, "provision.host", "spec.resources[0].plugin", "versions are not supported"},
		{"bad param", []v1alpha1.Resource{{Name: "db", Plugin: "pg", Params: map[string]string{"1x": ""}}}, "provision.host", "spec.resources[0].params", "param name"},
		{"long param", []v1alpha1.Resource{{Name: "db", Plugin: "pg", Params: map[string]string{"x": strings.Repeat("v", 4097)}}}, "provision.host", "spec.resources[0].params.x", "4096"},
		{"unknown resource", nil, "provision.host", "spec.forks[0].customizations.env[0].valueFrom.resource.name", "not one of spec.resources"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := ValidateSandboxSpec(spec(tc.rs, tc.key))
			if tc.path == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected: %v", errs)
				}
				return
			}
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Message, tc.in) {
					return
				}
			}
			t.Fatalf("want %s: ...%s..., got %v", tc.path, tc.in, errs)
		})
	}
}
