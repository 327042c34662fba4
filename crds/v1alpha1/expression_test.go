package v1alpha1

import (
	"errors"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

func TestResolve(t *testing.T) {
	svc := ForkService{Host: "sbx-route-1a2b.hotrod.svc", Port: 8083}
	for _, tc := range []struct {
		expr, want string
		bad        bool
	}{
		{"{{ .Service.Host }}:{{ .Service.Port }}", "sbx-route-1a2b.hotrod.svc:8083", false},
		{"http://{{ .Service.Host }}/api", "http://sbx-route-1a2b.hotrod.svc/api", false},
		{"{{.Service.Host}}", "sbx-route-1a2b.hotrod.svc", false},
		{"a  {{- .Service.Port -}}  b", "a8083b", false},
		{"{{\t.Service.Port\n}}", "8083", false},
		{"plain", "plain", false},
		{"{x}", "{x}", false},
		{"}}", "}}", false},
		{"trailing {", "trailing {", false},
		{"{{ .Service.Name }}", "", true},
		{"{{ .Deployment.Name }}", "", true},
		{"{{ .Service.Host", "", true},
		{"{{{ .Service.Host }}", "", true},
		{`{{ printf "%s" .Service.Host }}`, "", true},
		{"{{ .Service.Host | html }}", "", true},
		{"{{ (.Service.Host) }}", "", true},
		{"{{ range 100000000 }}{{ end }}", "", true},
		{"{{ if .Service.Host }}x{{ end }}", "", true},
		{"{{ $x := 1 }}", "", true},
		{"{{/* comment */}}{{.Service.Port}}", "", true},
		{"{{-.Service.Host}}", "", true},
		{"{{ .Service.Host.X }}", "", true},
		{"{{}}", "", true},
		{"a{{", "", true},
	} {
		got, err := (&EnvValueFromFork{Expression: tc.expr}).Resolve(svc)
		if tc.bad != (err != nil) || got != tc.want {
			t.Errorf("%q: got %q, %v", tc.expr, got, err)
		}
		if err != nil && !errors.Is(err, ErrInvalidExpression) {
			t.Errorf("%q: error does not wrap ErrInvalidExpression: %v", tc.expr, err)
		}
		if err != nil && !strings.Contains(err.Error(), "Service.Host") && !strings.Contains(err.Error(), "unexpected") && !strings.Contains(err.Error(), "unclosed") {
			t.Errorf("%q: unhelpful error %v", tc.expr, err)
		}
	}
}

func TestResolveNoPort(t *testing.T) {
	noPort := ForkService{Host: "f.ns.svc"}
	if got, err := (&EnvValueFromFork{Expression: "http://{{ .Service.Host }}"}).Resolve(noPort); err != nil || got != "http://f.ns.svc" {
		t.Fatalf("host only: %q %v", got, err)
	}
	if _, err := (&EnvValueFromFork{Expression: "{{ .Service.Host }}:{{ .Service.Port }}"}).Resolve(noPort); !errors.Is(err, ErrNoPort) {
		t.Fatalf("port of a workload without ports: %v", err)
	}
}

// TestExpressionRuleInCRD keeps the CEL rule of the generated CRD equal to
// ExpressionPattern, so kubectl and the REST API accept the same expressions.
func TestExpressionRuleInCRD(t *testing.T) {
	b, err := os.ReadFile("../manifests/sandboxmesh.dev_sandboxes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	p := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	for _, k := range []string{"spec", "forks", "customizations", "env", "valueFrom", "fork", "expression"} {
		if p.Items != nil {
			p = p.Items.Schema
		}
		s, ok := p.Properties[k]
		if !ok {
			t.Fatalf("no %s in the schema", k)
		}
		p = &s
	}
	want := "self.matches(r'" + ExpressionPattern + "')"
	if len(p.XValidations) != 1 || p.XValidations[0].Rule != want {
		t.Fatalf("CRD rule %+v\nwant %s\n(copy ExpressionPattern into the marker of EnvValueFromFork.Expression and run make manifests)", p.XValidations, want)
	}
}

// expand is a reference evaluator of the expression language, independent of
// text/template: actions are replaced, trim markers trim the adjacent text.
var reAction = regexp.MustCompile(`[{][{](-[ \t\r\n])?[ \t\r\n]*[.]Service[.](Host|Port)[ \t\r\n]*([ \t\r\n]-)?[}][}]`)

func expand(s string, svc ForkService) string {
	var b strings.Builder
	last, trimNext := 0, false
	for _, m := range reAction.FindAllStringSubmatchIndex(s, -1) {
		text := s[last:m[0]]
		if trimNext {
			text = strings.TrimLeft(text, " \t\r\n")
		}
		if m[2] >= 0 {
			text = strings.TrimRight(text, " \t\r\n")
		}
		b.WriteString(text)
		if s[m[4]:m[5]] == "Host" {
			b.WriteString(svc.Host)
		} else {
			b.WriteString(strconv.Itoa(int(svc.Port)))
		}
		trimNext = m[6] >= 0
		last = m[1]
	}
	text := s[last:]
	if trimNext {
		text = strings.TrimLeft(text, " \t\r\n")
	}
	b.WriteString(text)
	return b.String()
}

// FuzzResolve: the regular expression (what the CRD's CEL rule checks) and
// the template parser accept exactly the same expressions, and an accepted
// one resolves to what the reference evaluator says.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"{{ .Service.Host }}:{{ .Service.Port }}", "{{ .X }}", "{{", "{{ range 10 }}a{{ end }}",
		"a {{- .Service.Host -}} b", "{{/* c */}}", "{x}{{.Service.Port}}{", "{{- /* c */ -}}", "{{.Service.Host\n}}"} {
		f.Add(s)
	}
	svc := ForkService{Host: "h.ns.svc", Port: 80}
	f.Fuzz(func(t *testing.T, expr string) {
		byRegexp := reExpression.MatchString(expr)
		_, perr := parseExpression(expr)
		if byRegexp != (perr == nil) {
			t.Fatalf("%q: regexp accepts %v, template parser says %v", expr, byRegexp, perr)
		}
		got, err := (&EnvValueFromFork{Expression: expr}).Resolve(svc)
		if err != nil && !errors.Is(err, ErrInvalidExpression) {
			t.Fatalf("%q: %v", expr, err)
		}
		if len(got) > maxExpressionOutput {
			t.Fatalf("%q: %d bytes", expr, len(got))
		}
		if byRegexp {
			want := expand(expr, svc)
			if len(want) <= maxExpressionOutput && (err != nil || got != want) {
				t.Fatalf("%q: got %q, %v; want %q", expr, got, err, want)
			}
		}
	})
}
