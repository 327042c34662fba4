package v1alpha1_test

import (
	"strings"
	"testing"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func overrideSpec() smv1.SandboxSpec {
	return smv1.SandboxSpec{
		LocalMachineID: "m1",
		Forks:          []smv1.Fork{{ForkOf: smv1.WorkloadRef{Namespace: "hotrod", Name: "route"}}},
		Virtual:        []smv1.Virtual{{Name: "front", Workload: smv1.WorkloadRef{Namespace: "hotrod", Name: "frontend"}}},
		Routing:        &smv1.SandboxRouting{Forwards: []smv1.Forward{{Name: "override-1", Port: 8083, ToLocal: "localhost:8083"}}},
		Middleware: []smv1.Middleware{{Name: smv1.MiddlewareOverride,
			Args:  []smv1.MiddlewareArg{{Name: smv1.OverrideArgHost, ValueFrom: &smv1.MiddlewareArgValueFrom{Forward: "override-1"}}},
			Match: []smv1.MiddlewareMatch{{Workload: "route"}}}},
	}
}

// TestResolveOverrides: an override resolves to its forward and the one workload its match selects (a
// fork by its baseline's name, a virtual workload by its name); each mistake is reported at its field
// path and the override is left out.
func TestResolveOverrides(t *testing.T) {
	s := overrideSpec()
	ovs, errs := s.ResolveOverrides()
	if len(errs) != 0 || len(ovs) != 1 || ovs[0].Forward.Name != "override-1" || ovs[0].Workload.Name != "route" || ovs[0].Entry != "route" || ovs[0].Policy != nil {
		t.Fatalf("%+v %v", ovs, errs)
	}
	if o, ok := s.OverrideFor(smv1.WorkloadRef{Namespace: "hotrod", Name: "route", Kind: smv1.KindDeployment}); !ok || o.AsLocal().Mappings[0].Port != 8083 {
		t.Fatalf("OverrideFor: %+v %v", o, ok)
	}
	if _, ok := s.OverrideFor(smv1.WorkloadRef{Namespace: "hotrod", Name: "frontend"}); ok {
		t.Fatal("OverrideFor frontend")
	}
	for _, tc := range []struct {
		name   string
		mutate func(*smv1.SandboxSpec)
		path   string
		msg    string
	}{
		{"virtual by name with policy", func(s *smv1.SandboxSpec) {
			s.Middleware[0].Match[0].Workload = "fr*"
			s.Middleware[0].Args = append(s.Middleware[0].Args, smv1.MiddlewareArg{Name: "policy", Value: `{"exceptStatusCodes":[404,503]}`})
		}, "", ""},
		{"unknown middleware", func(s *smv1.SandboxSpec) { s.Middleware[0].Name = "trafficwatch" }, "spec.middleware[0].name", "unknown middleware"},
		{"no overrideHost", func(s *smv1.SandboxSpec) { s.Middleware[0].Args = nil }, "spec.middleware[0].args", "needs the argument overrideHost"},
		{"overrideHost as a value", func(s *smv1.SandboxSpec) {
			s.Middleware[0].Args[0] = smv1.MiddlewareArg{Name: "overrideHost", Value: "localhost:1"}
		}, "spec.middleware[0].args[0].valueFrom.forward", "required"},
		{"unknown forward", func(s *smv1.SandboxSpec) { s.Middleware[0].Args[0].ValueFrom.Forward = "nope" }, "spec.middleware[0].args[0].valueFrom.forward", "not one of"},
		{"unknown argument", func(s *smv1.SandboxSpec) {
			s.Middleware[0].Args = append(s.Middleware[0].Args, smv1.MiddlewareArg{Name: "mode"})
		}, "spec.middleware[0].args[1].name", "unknown argument"},
		{"argument twice", func(s *smv1.SandboxSpec) {
			s.Middleware[0].Args = append(s.Middleware[0].Args, s.Middleware[0].Args[0])
		}, "spec.middleware[0].args[1].name", "given twice"},
		{"bad policy JSON", func(s *smv1.SandboxSpec) {
			s.Middleware[0].Args = append(s.Middleware[0].Args, smv1.MiddlewareArg{Name: "policy", Value: `{"exceptStatus":[404]}`})
		}, "spec.middleware[0].args[1].value", "want JSON"},
		{"bad status", func(s *smv1.SandboxSpec) {
			s.Middleware[0].Args = append(s.Middleware[0].Args, smv1.MiddlewareArg{Name: "policy", Value: `{"exceptStatusCodes":[404,99]}`})
		}, "spec.middleware[0].args[1].value.exceptStatusCodes[1]", "not an HTTP status"},
		{"no match", func(s *smv1.SandboxSpec) { s.Middleware[0].Match = nil }, "spec.middleware[0].match", "required"},
		{"match none", func(s *smv1.SandboxSpec) { s.Middleware[0].Match[0].Workload = "x*" }, "spec.middleware[0].match", "matches none of the sandbox's forks and virtual workloads (front, route)"},
		{"match two", func(s *smv1.SandboxSpec) { s.Middleware[0].Match[0].Workload = "*" }, "spec.middleware[0].match", "matches 2 workloads (front, route)"},
		{"bad glob", func(s *smv1.SandboxSpec) { s.Middleware[0].Match[0].Workload = "[" }, "spec.middleware[0].match[0].workload", "bad glob"},
		{"forward used twice", func(s *smv1.SandboxSpec) {
			m := s.Middleware[0]
			m.Match = []smv1.MiddlewareMatch{{Workload: "front"}}
			s.Middleware = append(s.Middleware, m)
		}, "spec.middleware[1].args[0].valueFrom.forward", "already serves spec.middleware[0]"},
		{"forward without machine", func(s *smv1.SandboxSpec) { s.LocalMachineID = "" }, "spec.localMachineID", "required with spec.routing.forwards"},
		{"forward named like a local", func(s *smv1.SandboxSpec) {
			s.Local = []smv1.Local{{Name: "override-1", From: smv1.WorkloadRef{Namespace: "hotrod", Name: "driver"}, Mappings: []smv1.PortMapping{{Port: 1, ToLocal: "x:1"}}}}
		}, "spec.routing.forwards[0].name", "also the name of a local workload"},
		{"forward twice", func(s *smv1.SandboxSpec) { s.Routing.Forwards = append(s.Routing.Forwards, s.Routing.Forwards[0]) }, "spec.routing.forwards[1].name", "unique"},
		{"forward port", func(s *smv1.SandboxSpec) { s.Routing.Forwards[0].Port = 0 }, "spec.routing.forwards[0].port", "between 1 and 65535"},
		{"forward protocol", func(s *smv1.SandboxSpec) { s.Routing.Forwards[0].AppProtocol = "tcp" }, "spec.routing.forwards[0].appProtocol", "http or grpc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := overrideSpec()
			tc.mutate(&s)
			ovs, errs := s.ResolveOverrides()
			if tc.path == "" {
				if len(errs) != 0 || len(ovs) != 1 {
					t.Fatalf("%+v %v", ovs, errs)
				}
				return
			}
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("want %s: %s..., got %v", tc.path, tc.msg, errs)
		})
	}
}

// FuzzResolveOverrides: any policy value, glob and forward name gives overrides or field errors, never a
// panic, and an override is never returned for a middleware with an error.
func FuzzResolveOverrides(f *testing.F) {
	f.Add(`{"exceptStatusCodes":[404,503]}`, "route", "override-1")
	f.Add(`{"exceptStatusCodes":[1e3]}`, "[", "")
	f.Add(`null`, "*", "x")
	f.Fuzz(func(t *testing.T, policy, glob, forward string) {
		s := overrideSpec()
		s.Middleware[0].Args = append(s.Middleware[0].Args, smv1.MiddlewareArg{Name: "policy", Value: policy})
		s.Middleware[0].Match[0].Workload = glob
		s.Middleware[0].Args[0].ValueFrom.Forward = forward
		ovs, errs := s.ResolveOverrides()
		if len(ovs)+len(errs) == 0 {
			t.Fatal("neither an override nor an error")
		}
		if len(errs) > 0 && len(ovs) > 0 {
			t.Fatalf("override despite errors: %+v %v", ovs, errs)
		}
	})
}
