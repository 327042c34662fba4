package meshadapters

import (
	"encoding/json"
	"regexp"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// FuzzRender feeds arbitrary route sets (JSON) to validation and to every
// renderer: bad input must be an error, never a panic, and valid input must
// render objects within the CRD limits with regexes that compile.
// Seed corpus: testdata/fuzz/FuzzRender.
func FuzzRender(f *testing.F) {
	seed, _ := json.Marshal(RouteSet{Service: shopService("fz"), Routes: shopRoutes("fz", "tn")})
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var rs RouteSet
		if json.Unmarshal(data, &rs) != nil {
			return
		}
		if len(rs.Routes) > 8 || len(rs.Service.Ports) > 8 {
			return // keep each run small
		}
		routes, err := rs.validate("")
		if err != nil {
			return
		}
		routes = withoutBaseline(routes)
		if _, err := DevmeshRoutes(rs, ""); err != nil {
			t.Fatalf("DevmeshRoutes of a valid route set: %v", err)
		}
		if len(routes) == 0 {
			return
		}
		if len(rs.Service.headerPorts()) > 0 {
			vs, err := IstioOwnedVirtualService(rs.Service, routes, routingkey.Default, "")
			if err != nil {
				t.Fatal(err)
			}
			if p := validateIstioRoutes(istioHTTP(vs)); len(p) > 0 {
				t.Fatalf("invalid Istio routes: %v", p)
			}
		}
		uh := userHTTPRoute(rs.Service.Namespace)
		uh.Spec.ParentRefs[0].Name = gatewayv1.ObjectName(rs.Service.Name)
		plan, err := RenderGAMMA(BackendGatewayAPI, rs.Service, routes, UserRoutes{HTTP: []gatewayv1.HTTPRoute{*uh}}, routingkey.Default, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkLimits(t, plan)
		for _, r := range plan.HTTPRoutes {
			for _, rule := range r.Spec.Rules {
				for _, m := range rule.Matches {
					for _, hm := range m.Headers {
						if hm.Type != nil && *hm.Type == gatewayv1.HeaderMatchRegularExpression {
							if _, err := regexp.Compile(hm.Value); err != nil {
								t.Fatalf("regex %q: %v", hm.Value, err)
							}
						}
					}
				}
			}
		}
	})
}
