package meshadapters

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// yamlDocs renders objects as a multi-document YAML stream, without the
// fields the API server fills in.
func yamlDocs(t *testing.T, objs ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if md, ok := m["metadata"].(map[string]any); ok {
			delete(md, "creationTimestamp")
		}
		if st, ok := m["status"].(map[string]any); ok && (len(st) == 0 || sameJSON(st, map[string]any{"parents": nil})) {
			delete(m, "status")
		}
		y, err := yaml.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		buf.WriteString("---\n")
		buf.Write(y)
	}
	return buf.Bytes()
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./meshadapters -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (run go test ./meshadapters -run Golden -update and review the diff):\n%s", path, got)
	}
}

func gammaDocs(t *testing.T, plan *GAMMAPlan) []byte {
	var objs []any
	for _, g := range plan.ReferenceGrants {
		g.APIVersion, g.Kind = gatewayv1.GroupVersion.String(), "ReferenceGrant"
		objs = append(objs, g)
	}
	for _, r := range plan.GRPCRoutes {
		r.APIVersion, r.Kind = gatewayv1.GroupVersion.String(), "GRPCRoute"
		objs = append(objs, r)
	}
	for _, r := range plan.HTTPRoutes {
		r.APIVersion, r.Kind = gatewayv1.GroupVersion.String(), "HTTPRoute"
		objs = append(objs, r)
	}
	return yamlDocs(t, objs...)
}

func TestGolden(t *testing.T) {
	svc := shopService("shop")
	routes := shopRoutes("shop", "dev-tunnels")
	valid, err := RouteSet{Service: svc, Routes: routes}.validate("")
	if err != nil {
		t.Fatal(err)
	}
	mesh := withoutBaseline(valid)
	t.Run("istio owned", func(t *testing.T) {
		vs, err := IstioOwnedVirtualService(svc, mesh, routingkey.Default, "")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "istio-owned.yaml", yamlDocs(t, vs.Object))
	})
	t.Run("istio user", func(t *testing.T) {
		vs := userVirtualService("shop")
		if err := InsertIstioRoutes(vs, svc, mesh, routingkey.Default, ""); err != nil {
			t.Fatal(err)
		}
		golden(t, "istio-user.yaml", yamlDocs(t, vs.Object))
	})
	t.Run("istio single port custom config", func(t *testing.T) {
		one := svc
		one.Ports = svc.Ports[:1]
		vs, err := IstioOwnedVirtualService(one, mesh[:1], customExtractor(), "")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "istio-owned-custom.yaml", yamlDocs(t, vs.Object))
	})
	t.Run("gatewayapi no user route", func(t *testing.T) {
		plan, err := RenderGAMMA(BackendGatewayAPI, svc, mesh, UserRoutes{}, routingkey.Default, nil)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "gatewayapi-default.yaml", gammaDocs(t, plan))
	})
	t.Run("linkerd user routes", func(t *testing.T) {
		plan, err := RenderGAMMA(BackendLinkerd, svc, mesh[:1], UserRoutes{HTTP: []gatewayv1.HTTPRoute{*userHTTPRoute("shop")}, GRPC: []gatewayv1.GRPCRoute{*userGRPCRoute("shop")}}, routingkey.Default, isLinkerdRouteAnnotation)
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "linkerd-derived.yaml", gammaDocs(t, plan))
	})
	t.Run("devmesh", func(t *testing.T) {
		rs, err := DevmeshRoutes(RouteSet{Service: svc, Routes: routes}, "")
		if err != nil {
			t.Fatal(err)
		}
		golden(t, "devmesh-routes.yaml", yamlDocs(t, map[string]any{"routes": rs}))
	})
}
