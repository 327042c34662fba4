package v1alpha1

import (
	"errors"
	"testing"
)

func TestResolve(t *testing.T) {
	svc := ForkService{Host: "sbx-route-1a2b.hotrod.svc", Port: 8083}
	for _, tc := range []struct {
		expr, want string
		bad        bool
	}{
		{"{{ .Service.Host }}:{{ .Service.Port }}", "sbx-route-1a2b.hotrod.svc:8083", false},
		{"http://{{ .Service.Host }}/api", "http://sbx-route-1a2b.hotrod.svc/api", false},
		{"plain", "plain", false},
		{"{{ .Service.Name }}", "", true},
		{"{{ .Deployment.Name }}", "", true},
		{"{{ .Service.Host", "", true},
		{`{{ printf "%s" .Service.Host }}`, "", true},
		{"{{ range 100000000 }}{{ end }}", "", true},
		{"{{ if .Service.Host }}x{{ end }}", "", true},
		{"{{ $x := 1 }}", "", true},
		{"{{/* comment */}}{{.Service.Port}}", "8083", false},
	} {
		got, err := (&EnvValueFromFork{Expression: tc.expr}).Resolve(svc)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("%q: got %q, %v", tc.expr, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidExpression) {
			t.Errorf("%q: error does not wrap ErrInvalidExpression: %v", tc.expr, err)
		}
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{"{{ .Service.Host }}:{{ .Service.Port }}", "{{ .X }}", "{{", "{{ range 10 }}a{{ end }}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, expr string) {
		got, err := (&EnvValueFromFork{Expression: expr}).Resolve(ForkService{Host: "h.ns.svc", Port: 80})
		if err != nil && !errors.Is(err, ErrInvalidExpression) {
			t.Fatalf("%q: %v", expr, err)
		}
		if len(got) > maxExpressionOutput {
			t.Fatalf("%q: %d bytes", expr, len(got))
		}
	})
}
