package meshadapters

import (
	"context"
	"errors"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

func TestRegistryNew(t *testing.T) {
	deps := Deps{Client: env.client, RouteServer: routeapi.NewServer(routeapi.ServerConfig{})}
	for _, tc := range []struct {
		name      string
		names     []string
		want      []string
		unknown   bool
		conflict  bool
		wantError bool
	}{
		{name: "three", names: []string{"devmesh", "istio", "gatewayapi"}, want: []string{"devmesh", "istio", "gatewayapi"}},
		{name: "gatewayapi and linkerd write the same routes", names: []string{"gatewayapi", "devmesh", "linkerd"}, conflict: true, wantError: true},
		{name: "devmesh next to linkerd", names: []string{"linkerd", "devmesh"}, want: []string{"linkerd", "devmesh"}},
		{name: "unknown name", names: []string{"istio", "consul"}, unknown: true, wantError: true},
		{name: "case matters", names: []string{"Istio"}, unknown: true, wantError: true},
		{name: "empty list", names: nil, wantError: true},
		{name: "repeated name", names: []string{"istio", "istio"}, wantError: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := New(tc.names, deps)
			if tc.wantError {
				if err == nil {
					t.Fatalf("New(%v) succeeded with %d routers", tc.names, len(rs))
				}
				if got := errors.Is(err, ErrUnknownBackend); got != tc.unknown {
					t.Errorf("errors.Is(err, ErrUnknownBackend) = %v for %v", got, err)
				}
				if got := errors.Is(err, ErrConflictingBackends); got != tc.conflict {
					t.Errorf("errors.Is(err, ErrConflictingBackends) = %v for %v", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				got = append(got, r.Name())
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("got %v, want %v", got, tc.want)
				}
			}
		})
	}
}

func TestRegistryDepsRequired(t *testing.T) {
	for _, tc := range []struct {
		name string
		deps Deps
	}{
		{"devmesh", Deps{Client: env.client}},
		{"istio", Deps{}},
		{"gatewayapi", Deps{}},
		{"linkerd", Deps{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New([]string{tc.name}, tc.deps); err == nil || errors.Is(err, ErrUnknownBackend) {
				t.Errorf("New without its dependency: %v", err)
			}
		})
	}
}

type fakeRouter struct{ name string }

func (f fakeRouter) Name() string                          { return f.name }
func (f fakeRouter) Apply(context.Context, RouteSet) error { return nil }
func (f fakeRouter) Remove(context.Context, Service) error { return nil }
func (f fakeRouter) Status(context.Context, Service) (Status, error) {
	return Status{Accepted: true}, nil
}

func TestRegistryRegister(t *testing.T) {
	reg := NewRegistry()
	f := func(Deps) (Router, error) { return fakeRouter{"kuma"}, nil }
	if err := reg.Register("kuma", f); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    Factory
	}{{"kuma", f}, {"istio", f}, {"", f}, {" x", f}, {"nilfactory", nil}} {
		if err := reg.Register(tc.name, tc.f); err == nil {
			t.Errorf("Register(%q) succeeded", tc.name)
		}
	}
	rs, err := reg.New([]string{"kuma"}, Deps{})
	if err != nil || rs[0].Name() != "kuma" {
		t.Fatalf("New(kuma) = %v, %v", rs, err)
	}
	if _, err := New([]string{"kuma"}, Deps{}); !errors.Is(err, ErrUnknownBackend) {
		t.Errorf("a private registry leaked into the default one: %v", err)
	}
}

func TestProtocolFor(t *testing.T) {
	for _, tc := range []struct {
		appProtocol, name string
		want              Protocol
	}{
		{"", "http", ProtocolHTTP},
		{"", "http-web", ProtocolHTTP},
		{"", "", ProtocolHTTP},
		{"", "grpc", ProtocolGRPC},
		{"", "grpc-api", ProtocolGRPC},
		{"", "grpc-web", ProtocolGRPC},
		{"", "http2", ProtocolGRPC},
		{"", "h2c", ProtocolGRPC},
		{"kubernetes.io/h2c", "web", ProtocolGRPC},
		{"GRPC", "web", ProtocolGRPC},
		{"", "tcp", ProtocolTCP},
		{"", "tcp-db", ProtocolTCP},
		{"", "tls", ProtocolTCP},
		{"", "mysql", ProtocolTCP},
		{"tcp", "http", ProtocolTCP},
		{"http", "grpc", ProtocolHTTP},
		{"kubernetes.io/ws", "", ProtocolHTTP},
		{"kubernetes.io/wss", "", ProtocolHTTP},
		{"", "https", ProtocolTCP},
	} {
		t.Run(tc.appProtocol+"/"+tc.name, func(t *testing.T) {
			if got := ProtocolFor(tc.appProtocol, tc.name); got != tc.want {
				t.Errorf("ProtocolFor(%q, %q) = %s, want %s", tc.appProtocol, tc.name, got, tc.want)
			}
		})
	}
}
