package v1alpha1_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{WithoutMeshCRDs: true}, func(e *testenv.Env) int {
		env = e
		return m.Run()
	})
}

const ns = "default"

func ptr[T any](v T) *T { return &v }

func validSandbox(name string) *smv1.Sandbox {
	return &smv1.Sandbox{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: smv1.SandboxSpec{
			Cluster:     "dev",
			Description: "new route service",
			Labels:      map[string]string{"team": "routing"},
			TTL:         &smv1.TTL{Duration: "2h", OffsetFrom: smv1.TTLFromUpdatedAt},
			Forks: []smv1.Fork{{
				ForkOf: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: "hotrod", Name: "route"},
				Customizations: &smv1.Customizations{
					Images: []smv1.ImageCustomization{{Image: "example.com/route:v2", Container: "route"}},
					Env: []smv1.EnvCustomization{
						{Name: "LOG_LEVEL", Value: ptr("debug")},
						{Name: "DB_PASSWORD", ValueFrom: &smv1.EnvValueFrom{Secret: &smv1.KeySelector{Name: "db", Key: "password"}}},
						{Name: "OLD", Operation: smv1.EnvDelete},
					},
					Command: []string{"/route"},
					Args:    []string{"--verbose"},
					Patch:   &smv1.Patch{Type: smv1.PatchStrategic, Value: "spec:\n  template:\n    metadata:\n      labels:\n        patched: \"yes\"\n"},
				},
			}},
			Virtual:   []smv1.Virtual{{Name: "frontend", Workload: smv1.WorkloadRef{Namespace: "hotrod", Name: "frontend"}}},
			Local:     []smv1.Local{{Name: "driver", From: smv1.WorkloadRef{Namespace: "hotrod", Name: "driver"}, Mappings: []smv1.PortMapping{{Port: 8080, ToLocal: "localhost:8080"}}}},
			Resources: []smv1.Resource{{Name: "db", Plugin: "mariadb", Params: map[string]string{"dbname": "test"}}},
			DefaultRouteGroup: &smv1.DefaultRouteGroup{Endpoints: []smv1.Endpoint{
				{Name: "frontend", Target: "http://frontend.hotrod.svc:8080"},
				{Name: "route", Target: "grpc://route.hotrod.deploy:8083"},
			}},
		},
	}
}

// addForkRef adds an env valueFrom.fork referring to the fork of hotrod/name.
func addForkRef(s *smv1.Sandbox, name, expr string) {
	s.Spec.Forks[0].Customizations.Env = append(s.Spec.Forks[0].Customizations.Env, smv1.EnvCustomization{Name: "REF",
		ValueFrom: &smv1.EnvValueFrom{Fork: &smv1.EnvValueFromFork{ForkOf: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: "hotrod", Name: name}, Expression: expr}}})
}

func TestSandboxValidation(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		mutate  func(*smv1.Sandbox)
		wantErr []string // substrings of the API server's message: field path and reason
	}{
		{name: "valid", mutate: func(*smv1.Sandbox) {}},
		{name: "valid fork only", mutate: func(s *smv1.Sandbox) {
			s.Spec.Virtual, s.Spec.Local, s.Spec.Resources, s.Spec.DefaultRouteGroup, s.Spec.TTL = nil, nil, nil, nil, nil
		}},
		{name: "valid endpoint target port 65535", mutate: func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup.Endpoints[0].Target = "tcp://frontend.hotrod.svc:65535"
		}},
		{name: "valid virtual only", mutate: func(s *smv1.Sandbox) { s.Spec.Forks, s.Spec.Local = nil, nil }},
		{name: "name too long", mutate: func(s *smv1.Sandbox) { s.Name = "a234567890123456789012345678901" },
			wantErr: []string{"metadata.name must be at most 30 characters"}},
		{name: "name starts with digit", mutate: func(s *smv1.Sandbox) { s.Name = "1abc" },
			wantErr: []string{"metadata.name must be a DNS label starting with a letter"}},
		{name: "nothing to sandbox", mutate: func(s *smv1.Sandbox) { s.Spec.Forks, s.Spec.Virtual, s.Spec.Local = nil, nil, nil },
			wantErr: []string{"spec", "at least one of forks, virtual or local must be given"}},
		{name: "fork twice", mutate: func(s *smv1.Sandbox) { s.Spec.Forks = append(s.Spec.Forks, s.Spec.Forks[0]) },
			wantErr: []string{"spec.forks", "a baseline workload may be forked at most once"}},
		{name: "local twice", mutate: func(s *smv1.Sandbox) { s.Spec.Local = append(s.Spec.Local, s.Spec.Local[0]) },
			wantErr: []string{"spec.local", "a baseline workload may be local at most once"}},
		{name: "fork and local", mutate: func(s *smv1.Sandbox) { s.Spec.Local[0].From = s.Spec.Forks[0].ForkOf },
			wantErr: []string{"spec.local", "cannot be both forked and local"}},
		{name: "bad kind", mutate: func(s *smv1.Sandbox) { s.Spec.Forks[0].ForkOf.Kind = "StatefulSet" },
			wantErr: []string{"spec.forks[0].forkOf.kind", "Unsupported value"}},
		{name: "bad namespace", mutate: func(s *smv1.Sandbox) { s.Spec.Forks[0].ForkOf.Namespace = "Hot_Rod" },
			wantErr: []string{"spec.forks[0].forkOf.namespace"}},
		{name: "bad ttl", mutate: func(s *smv1.Sandbox) { s.Spec.TTL.Duration = "2 hours" },
			wantErr: []string{"spec.ttl.duration"}},
		{name: "bad ttl offset", mutate: func(s *smv1.Sandbox) { s.Spec.TTL.OffsetFrom = "deletedAt" },
			wantErr: []string{"spec.ttl.offsetFrom", "Unsupported value"}},
		{name: "route-group ttl offset on a sandbox", mutate: func(s *smv1.Sandbox) { s.Spec.TTL.OffsetFrom = smv1.TTLFromNoMatchedSandboxes },
			wantErr: []string{"spec.ttl.offsetFrom", "noMatchedSandboxes is for RouteGroups"}},
		{name: "bad env operation", mutate: func(s *smv1.Sandbox) { s.Spec.Forks[0].Customizations.Env[0].Operation = "append" },
			wantErr: []string{"spec.forks[0].customizations.env[0].operation", "Unsupported value"}},
		{name: "env value and valueFrom", mutate: func(s *smv1.Sandbox) {
			s.Spec.Forks[0].Customizations.Env[1].Value = ptr("x")
		}, wantErr: []string{"spec.forks[0].customizations.env[1]", "value and valueFrom are mutually exclusive"}},
		{name: "env delete with value", mutate: func(s *smv1.Sandbox) {
			s.Spec.Forks[0].Customizations.Env[2].Value = ptr("x")
		}, wantErr: []string{"spec.forks[0].customizations.env[2]", "a delete takes neither value nor valueFrom"}},
		{name: "valueFrom two sources", mutate: func(s *smv1.Sandbox) {
			s.Spec.Forks[0].Customizations.Env[1].ValueFrom.ConfigMap = &smv1.KeySelector{Name: "c", Key: "k"}
		}, wantErr: []string{"spec.forks[0].customizations.env[1].valueFrom", "exactly one of secret, configMap, fieldRef"}},
		{name: "bad patch type", mutate: func(s *smv1.Sandbox) { s.Spec.Forks[0].Customizations.Patch.Type = "yaml" },
			wantErr: []string{"spec.forks[0].customizations.patch.type", "Unsupported value"}},
		{name: "empty image", mutate: func(s *smv1.Sandbox) { s.Spec.Forks[0].Customizations.Images[0].Image = "" },
			wantErr: []string{"spec.forks[0].customizations.images[0].image"}},
		{name: "bad endpoint target scheme", mutate: func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup.Endpoints[0].Target = "ftp://frontend.hotrod.svc:21"
		}, wantErr: []string{"spec.defaultRouteGroup.endpoints[0].target"}},
		{name: "endpoint target port 0", mutate: func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup.Endpoints[0].Target = "http://frontend.hotrod.svc:0"
		}, wantErr: []string{"spec.defaultRouteGroup.endpoints[0].target"}},
		{name: "endpoint target port 99999", mutate: func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup.Endpoints[0].Target = "http://frontend.hotrod.svc:99999"
		}, wantErr: []string{"spec.defaultRouteGroup.endpoints[0].target"}},
		{name: "endpoint target port 65536", mutate: func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup.Endpoints[0].Target = "http://frontend.hotrod.svc:65536"
		}, wantErr: []string{"spec.defaultRouteGroup.endpoints[0].target"}},
		{name: "bad endpoint target host", mutate: func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup.Endpoints[0].Target = "http://frontend.example.com:80"
		}, wantErr: []string{"spec.defaultRouteGroup.endpoints[0].target"}},
		{name: "duplicate endpoint name", mutate: func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup.Endpoints[1].Name = "frontend"
		}, wantErr: []string{"spec.defaultRouteGroup.endpoints[1]", "Duplicate value"}},
		{name: "local without mappings", mutate: func(s *smv1.Sandbox) { s.Spec.Local[0].Mappings = nil },
			wantErr: []string{"spec.local[0].mappings"}},
		{name: "bad port", mutate: func(s *smv1.Sandbox) { s.Spec.Local[0].Mappings[0].Port = 70000 },
			wantErr: []string{"spec.local[0].mappings[0].port"}},
		{name: "valueFrom fork", mutate: func(s *smv1.Sandbox) { addForkRef(s, "route", "http://{{ .Service.Host }}:{{- .Service.Port }}/v1") }},
		{name: "valueFrom fork unknown variable", mutate: func(s *smv1.Sandbox) { addForkRef(s, "route", "{{ .Deployment.Name }}") },
			wantErr: []string{"spec.forks[0].customizations.env[3].valueFrom.fork.expression", "only text and the actions {{ .Service.Host }} and {{ .Service.Port }}"}},
		{name: "valueFrom fork function", mutate: func(s *smv1.Sandbox) { addForkRef(s, "route", `{{ printf "%s" .Service.Host }}`) },
			wantErr: []string{"spec.forks[0].customizations.env[3].valueFrom.fork.expression", "only text and the actions"}},
		{name: "valueFrom fork comment", mutate: func(s *smv1.Sandbox) { addForkRef(s, "route", "{{/* x */}}") },
			wantErr: []string{"spec.forks[0].customizations.env[3].valueFrom.fork.expression"}},
		{name: "valueFrom fork expression too long", mutate: func(s *smv1.Sandbox) { addForkRef(s, "route", strings.Repeat("x", 201)) },
			wantErr: []string{"spec.forks[0].customizations.env[3].valueFrom.fork.expression", "200"}},
		// Which forks exist is checked by the REST API and the operator (a CEL rule over forks x env x forks is over the cost budget).
		{name: "valueFrom fork of no fork parses", mutate: func(s *smv1.Sandbox) { addForkRef(s, "customer", "{{ .Service.Host }}") }},
		{name: "valueFrom resource parses", mutate: func(s *smv1.Sandbox) {
			s.Spec.Forks[0].Customizations.Env = append(s.Spec.Forks[0].Customizations.Env,
				smv1.EnvCustomization{Name: "DB_HOST", ValueFrom: &smv1.EnvValueFrom{Resource: &smv1.EnvValueFromResource{Name: "db", OutputKey: "provision.host"}}})
		}},
		{name: "valueFrom resource outputKey without step", mutate: func(s *smv1.Sandbox) {
			s.Spec.Forks[0].Customizations.Env = append(s.Spec.Forks[0].Customizations.Env,
				smv1.EnvCustomization{Name: "DB_HOST", ValueFrom: &smv1.EnvValueFrom{Resource: &smv1.EnvValueFromResource{Name: "db", OutputKey: "host"}}})
		}, wantErr: []string{"spec.forks[0].customizations.env[3].valueFrom.resource.outputKey"}},
		{name: "resource plugin version", mutate: func(s *smv1.Sandbox) { s.Spec.Resources[0].Plugin = "mariadb@1.2.0" },
			wantErr: []string{"spec.resources[0].plugin", "plugin versions are not supported"}},
		{name: "resource plugin not a DNS label", mutate: func(s *smv1.Sandbox) { s.Spec.Resources[0].Plugin = "MariaDB" },
			wantErr: []string{"spec.resources[0].plugin", "DNS label"}},
		{name: "resource param name", mutate: func(s *smv1.Sandbox) { s.Spec.Resources[0].Params["9lives"] = "x" },
			wantErr: []string{"spec.resources[0].params", "param names"}},
		{name: "resource param value too long", mutate: func(s *smv1.Sandbox) { s.Spec.Resources[0].Params["seed"] = strings.Repeat("x", 4097) },
			wantErr: []string{"spec.resources[0].params", "at most 4096 bytes"}},
		{name: "resource names unique", mutate: func(s *smv1.Sandbox) { s.Spec.Resources = append(s.Spec.Resources, s.Spec.Resources[0]) },
			wantErr: []string{"spec.resources", "resource names must be unique"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := validSandbox("case-" + strconv.Itoa(i))
			tc.mutate(sb)
			err := env.Client.Create(ctx, sb)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid sandbox rejected: %v", err)
				}
				t.Cleanup(func() { _ = env.Client.Delete(ctx, sb) })
				return
			}
			if err == nil {
				_ = env.Client.Delete(ctx, sb)
				t.Fatalf("invalid sandbox accepted, want error containing %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err.Error(), want)
				}
			}
		})
	}
}

func TestSandboxImmutableFields(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		mutate  func(*smv1.Sandbox)
		wantErr []string
	}{
		{name: "change cluster", mutate: func(s *smv1.Sandbox) { s.Spec.Cluster = "prod" }, wantErr: []string{"spec.cluster", "cluster is immutable"}},
		{name: "remove cluster", mutate: func(s *smv1.Sandbox) { s.Spec.Cluster = "" }, wantErr: []string{"cluster is immutable"}},
		{name: "change resources", mutate: func(s *smv1.Sandbox) { s.Spec.Resources[0].Params["dbname"] = "other" }, wantErr: []string{"spec.resources", "resources are immutable"}},
		{name: "remove resources", mutate: func(s *smv1.Sandbox) { s.Spec.Resources = nil }, wantErr: []string{"resources are immutable"}},
		{name: "change image is fine", mutate: func(s *smv1.Sandbox) { s.Spec.Forks[0].Customizations.Images[0].Image = "example.com/route:v3" }},
		{name: "change ttl is fine", mutate: func(s *smv1.Sandbox) { s.Spec.TTL.Duration = "1d" }},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := validSandbox("immutable-" + string(rune('a'+i)))
			if err := env.Client.Create(ctx, sb); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = env.Client.Delete(ctx, sb) })
			tc.mutate(sb)
			err := env.Client.Update(ctx, sb)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("update rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("update accepted, want error containing %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err.Error(), want)
				}
			}
		})
	}
}

func TestRouteGroupValidation(t *testing.T) {
	ctx := context.Background()
	valid := func(name string) *smv1.RouteGroup {
		return &smv1.RouteGroup{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: smv1.RouteGroupSpec{
				Cluster:   "dev",
				Match:     smv1.RouteGroupMatch{Any: []smv1.MatchCriterion{{Label: smv1.LabelMatch{Key: "feature", Value: "checkout-*"}}}},
				Endpoints: []smv1.Endpoint{{Name: "frontend", Target: "http://frontend.hotrod.svc:8080"}},
				TTL:       &smv1.TTL{Duration: "30m", OffsetFrom: smv1.TTLFromNoMatchedSandboxes},
			},
		}
	}
	cases := []struct {
		name    string
		mutate  func(*smv1.RouteGroup)
		wantErr []string
	}{
		{name: "valid any", mutate: func(*smv1.RouteGroup) {}},
		{name: "valid label", mutate: func(r *smv1.RouteGroup) {
			r.Spec.Match = smv1.RouteGroupMatch{Label: &smv1.LabelMatch{Key: "feature", Value: "x"}}
		}},
		{name: "no match", mutate: func(r *smv1.RouteGroup) { r.Spec.Match = smv1.RouteGroupMatch{} },
			wantErr: []string{"spec.match", "exactly one of label, any, all must be set"}},
		{name: "two matches", mutate: func(r *smv1.RouteGroup) {
			r.Spec.Match.Label = &smv1.LabelMatch{Key: "a", Value: "b"}
		}, wantErr: []string{"spec.match", "exactly one of label, any, all must be set"}},
		{name: "empty label key", mutate: func(r *smv1.RouteGroup) { r.Spec.Match.Any[0].Label.Key = "" },
			wantErr: []string{"spec.match.any[0].label.key"}},
		{name: "bad ttl", mutate: func(r *smv1.RouteGroup) { r.Spec.TTL.Duration = "-1h" },
			wantErr: []string{"spec.ttl.duration"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rg := valid("rg-" + string(rune('a'+i)))
			tc.mutate(rg)
			err := env.Client.Create(ctx, rg)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid route group rejected: %v", err)
				}
				t.Cleanup(func() { _ = env.Client.Delete(ctx, rg) })
				return
			}
			if err == nil {
				_ = env.Client.Delete(ctx, rg)
				t.Fatalf("invalid route group accepted, want %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err.Error(), want)
				}
			}
		})
	}
}

// TestPrinterColumns checks what `kubectl get sandboxes` shows, through the
// same Table request kubectl makes.
func TestPrinterColumns(t *testing.T) {
	ctx := context.Background()
	sb := validSandbox("columns")
	if err := env.Client.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, sb) })
	sb.Status.RoutingKey = "k3y0000000000001"
	sb.Status.Conditions = []metav1.Condition{{Type: smv1.ConditionReady, Status: metav1.ConditionTrue, Reason: smv1.ReasonAvailable, LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(ctx, sb); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/sandboxmesh.dev/v1alpha1/namespaces/default/sandboxes").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatalf("decode table %s: %v", raw, err)
	}
	var names []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			names = append(names, c.Name)
		}
	}
	if got, want := strings.Join(names, ","), "Name,Ready,Routing Key,Age"; got != want {
		t.Fatalf("columns = %s, want %s", got, want)
	}
	found := false
	for _, row := range table.Rows {
		if row.Cells[0] == "columns" {
			found = true
			if row.Cells[1] != "True" || row.Cells[2] != "k3y0000000000001" {
				t.Errorf("row = %v", row.Cells)
			}
		}
	}
	if !found {
		t.Fatalf("sandbox not in table: %+v", table.Rows)
	}
}
