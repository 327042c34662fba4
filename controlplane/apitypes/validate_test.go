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
		{"resource", &v1alpha1.EnvValueFrom{Resource: &v1alpha1.EnvValueFromResource{Name: "db", OutputKey: "host"}}, p + ".resource", "not supported"},
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
