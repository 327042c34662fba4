package meshadapters

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// headerCase is a set of request headers and the routing key the request
// must be routed by ("" = baseline).
type headerCase struct {
	name    string
	headers [][2]string
	want    string
	// wantLinkerd overrides want under Linkerd's per-field header semantics.
	wantLinkerd *string
	// meshOnly marks a documented divergence from Extractor.Extract.
	meshOnly bool
}

func h(kv ...string) [][2]string {
	var out [][2]string
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, [2]string{kv[i], kv[i+1]})
	}
	return out
}

func headerCases(custom bool) []headerCase {
	cases := []headerCase{
		{name: "baggage key only", headers: h("baggage", "sm-routing-key=abc"), want: "abc"},
		{name: "baggage among other members", headers: h("baggage", "userId=7,sm-routing-key=abc,tenant=x"), want: "abc"},
		{name: "baggage key last", headers: h("baggage", "userId=7,sm-routing-key=abcd"), want: "abcd"},
		{name: "key is a prefix of the routed key", headers: h("baggage", "sm-routing-key=ab"), want: ""},
		{name: "routed key is a prefix of the key", headers: h("baggage", "sm-routing-key=abcde"), want: ""},
		{name: "longer key after shorter one in list", headers: h("baggage", "sm-routing-key=abcde,x=1"), want: ""},
		{name: "tracestate only", headers: h("tracestate", "vendor=opaque,sm-routing-key=abc"), want: "abc"},
		{name: "tracestate with spaces around =", headers: h("tracestate", "sm-routing-key = abc"), want: ""},
		{name: "uberctx only", headers: h("uberctx-sm-routing-key", "abc"), want: "abc"},
		{name: "ot-baggage only", headers: h("ot-baggage-sm-routing-key", "abcd"), want: "abcd"},
		{name: "b3 baggage- only", headers: h("baggage-sm-routing-key", "abc"), want: "abc"},
		{name: "no key", headers: h("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "baggage", "userId=7"), want: ""},
		{name: "no headers", want: ""},
		{name: "two baggage headers joined", headers: h("baggage", "userId=7", "baggage", "sm-routing-key=abc;p=1"), want: "abc"},
		{name: "two baggage headers key first", headers: h("baggage", "sm-routing-key=abcd", "baggage", "tenant=x"), want: "abcd"},
		{name: "properties", headers: h("baggage", "sm-routing-key=abc;ttl=3;flag"), want: "abc"},
		{name: "whitespace", headers: h("baggage", "userId=7 ,\t sm-routing-key = abc ; p=1 , b=2"), want: "abc"},
		{name: "other key name", headers: h("baggage", "other-routing-key=abc"), want: ""},
		{name: "name as suffix of another name", headers: h("baggage", "xsm-routing-key=abc"), want: ""},
		{name: "key inside another member's value", headers: h("baggage", "note=sm-routing-key=abc"), want: ""},
		{name: "header name case", headers: h("Baggage", "sm-routing-key=abc"), want: "abc"},
		{name: "local tunnel key", headers: h("baggage", "sm-routing-key=loc1"), want: "loc1"},
		{name: "baseline key", headers: h("baggage", "sm-routing-key=virt"), want: ""},
		{name: "uberctx with a list value", headers: h("uberctx-sm-routing-key", "abc,abc"), want: ""},
		{name: "uberctx repeated", headers: h("uberctx-sm-routing-key", "abc", "uberctx-sm-routing-key", "abc"), want: "", wantLinkerd: ptr("abc"), meshOnly: true},
		{name: "tracestate and baggage agree", headers: h("baggage", "sm-routing-key=abc", "tracestate", "sm-routing-key=abc"), want: "abc"},
		{name: "custom header ignored by default", headers: h("x-sandbox-key", "abc"), want: ""},
		{name: "second key name ignored by default", headers: h("baggage", "sd-routing-key=abc"), want: ""},
	}
	if custom {
		cases[len(cases)-2].want = "abc"
		cases[len(cases)-1].want = "abc"
		cases = append(cases,
			headerCase{name: "custom header mixed case", headers: h("X-Sandbox-Key", "abcd"), want: "abcd"},
			headerCase{name: "second key name in tracestate", headers: h("tracestate", "sd-routing-key=abc"), want: "abc"},
			headerCase{name: "second key name in uberctx", headers: h("uberctx-sd-routing-key", "loc1"), want: "loc1"},
			headerCase{name: "custom header with a list", headers: h("x-sandbox-key", "abc;p=1"), want: ""},
		)
	}
	return cases
}

func (c headerCase) wantFor(sem headerSemantics) string {
	if sem == linkerdSemantics && c.wantLinkerd != nil {
		return *c.wantLinkerd
	}
	return c.want
}

// routedKey is what Extract says, restricted to keys with a non-baseline route.
func routedKey(ex *routingkey.Extractor, routes []Route, hs [][2]string) string {
	hdr := http.Header{}
	for _, kv := range hs {
		hdr.Add(kv[0], kv[1])
	}
	k, ok := ex.Extract(hdr)
	if !ok {
		return ""
	}
	for _, r := range routes {
		if r.RoutingKey == k && r.Destination.Kind != DestinationBaseline {
			return k
		}
	}
	return ""
}

// expectTarget is where a request for port lands with routing key key ("" = baseline).
func expectTarget(svc Service, routes []Route, key string, port int32) target {
	for _, r := range routes {
		if r.RoutingKey == key && key != "" && r.Destination.Kind != DestinationBaseline {
			d := r.Destination
			ns := d.Namespace
			if ns == "" {
				ns = svc.Namespace
			}
			return target{serviceFQDN(d.Service, ns, ""), d.Port(port)}
		}
	}
	return target{svc.FQDN(""), port}
}

func extractors() []struct {
	name   string
	ex     *routingkey.Extractor
	custom bool
} {
	return []struct {
		name   string
		ex     *routingkey.Extractor
		custom bool
	}{{"default", routingkey.Default, false}, {"custom", customExtractor(), true}}
}

// TestOracleCasesAgreeWithExtract keeps the case table honest: apart from
// documented divergences, the wanted key is what the routing-key library extracts.
func TestOracleCasesAgreeWithExtract(t *testing.T) {
	routes := shopRoutes("oracle", "tunnels")
	for _, e := range extractors() {
		for _, c := range headerCases(e.custom) {
			t.Run(e.name+"/"+c.name, func(t *testing.T) {
				if got := routedKey(e.ex, routes, c.headers); got != c.want {
					t.Errorf("Extract routes by %q, case table says %q", got, c.want)
				}
			})
		}
	}
}

func TestOracleIstioOwned(t *testing.T) {
	svc := shopService("oracle")
	routes := shopRoutes("oracle", "tunnels")
	for _, e := range extractors() {
		valid, err := RouteSet{Service: svc, Routes: routes}.validate("")
		if err != nil {
			t.Fatal(err)
		}
		vs, err := IstioOwnedVirtualService(svc, withoutBaseline(valid), e.ex, "")
		if err != nil {
			t.Fatal(err)
		}
		if p := validateIstioRoutes(istioHTTP(vs)); len(p) > 0 {
			t.Fatalf("invalid routes: %v", p)
		}
		for _, port := range []int32{8080, 9090} {
			for _, c := range headerCases(e.custom) {
				t.Run(fmt.Sprintf("%s/%d/%s", e.name, port, c.name), func(t *testing.T) {
					got, name, ok := evalIstio(vs, request{path: "/items", method: "GET", port: port, host: "shop", headers: c.headers}, port)
					if !ok {
						t.Fatal("no route matched")
					}
					if want := expectTarget(svc, routes, c.want, port); got != want {
						t.Errorf("landed on %s via route %q, want %s", got, name, want)
					}
				})
			}
		}
	}
}

func withoutBaseline(rs []Route) []Route {
	var out []Route
	for _, r := range rs {
		if r.Destination.Kind != DestinationBaseline {
			out = append(out, r)
		}
	}
	return out
}

func TestOracleIstioUserVirtualService(t *testing.T) {
	svc := shopService("oracle")
	routes := shopRoutes("oracle", "tunnels")
	valid, err := RouteSet{Service: svc, Routes: routes}.validate("")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range extractors() {
		vs := userVirtualService("oracle")
		before := vs.DeepCopy()
		if err := InsertIstioRoutes(vs, svc, withoutBaseline(valid), e.ex, ""); err != nil {
			t.Fatal(err)
		}
		http := istioHTTP(vs)
		for _, rt := range http {
			if isOurIstioRoute(rt) {
				m := rt.(map[string]any)
				if m["timeout"] != "5s" || m["retries"] == nil {
					t.Errorf("route %s: timeout/retries of the default route not copied: %v %v", istioRouteName(rt), m["timeout"], m["retries"])
				}
			}
		}
		if got := len(http) - len(istioHTTP(before)); got != 3*2 {
			t.Errorf("inserted %d routes, want 6 (3 keys x 2 header ports)", got)
		}
		for _, path := range []string{"/items", "/v2/items"} {
			for _, port := range []int32{8080, 9090} {
				for _, c := range headerCases(e.custom) {
					t.Run(fmt.Sprintf("%s%s/%d/%s", e.name, path, port, c.name), func(t *testing.T) {
						req := request{path: path, method: "GET", port: port, host: "shop", headers: c.headers}
						got, name, ok := evalIstio(vs, req, port)
						if !ok {
							t.Fatal("no route matched")
						}
						want := expectTarget(svc, routes, c.want, port)
						if c.want == "" {
							// Unkeyed requests follow the user's routes untouched.
							want, _, _ = evalIstio(before, req, port)
							want.host = qualify(want.host, svc.Namespace)
						}
						got.host = qualify(got.host, svc.Namespace)
						if got != want {
							t.Errorf("landed on %s via route %q, want %s", got, name, want)
						}
					})
				}
			}
		}
		RemoveIstioRoutes(vs, svc)
		if !sameJSON(vs.Object, before.Object) {
			t.Errorf("RemoveIstioRoutes did not restore the user's VirtualService:\n got %v\nwant %v", vs.Object, before.Object)
		}
	}
}

// TestIstioSharedMultiHostVirtualService: two Services keep their routes in
// one user VirtualService that lists both hosts, without touching each other's.
func TestIstioSharedMultiHostVirtualService(t *testing.T) {
	shop := shopService("oracle")
	cart := shopService("oracle")
	cart.Name = "cart"
	vs := userVirtualService("oracle")
	_ = unstructured.SetNestedStringSlice(vs.Object, []string{"shop", "cart"}, "spec", "hosts")
	before := vs.DeepCopy()
	routes := withoutBaseline(shopRoutes("oracle", "tunnels"))
	shopRs, _ := RouteSet{Service: shop, Routes: routes}.validate("")
	cartRs, _ := RouteSet{Service: cart, Routes: routes[:1]}.validate("")
	for _, step := range []func() error{
		func() error { return InsertIstioRoutes(vs, shop, shopRs, routingkey.Default, "") },
		func() error { return InsertIstioRoutes(vs, cart, cartRs, routingkey.Default, "") },
		func() error { return InsertIstioRoutes(vs, shop, shopRs[:1], routingkey.Default, "") },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if got := ourRouteNames(vs, "shop"); len(got) != 2 {
		t.Errorf("shop routes %v, want 2 (1 key x 2 ports)", got)
	}
	if got := ourRouteNames(vs, "cart"); len(got) != 2 {
		t.Errorf("cart routes %v, want 2", got)
	}
	if p := validateIstioRoutes(istioHTTP(vs)); len(p) > 0 {
		t.Errorf("invalid: %v", p)
	}
	for _, tc := range []struct{ host, want string }{
		{"shop", "shop-abc.oracle.svc.cluster.local"},
		{"cart.oracle:8080", "shop-abc.oracle.svc.cluster.local"},
	} {
		got, name, _ := evalIstio(vs, request{path: "/", method: "GET", port: 8080, host: tc.host, headers: h("baggage", "sm-routing-key=abc")}, 8080)
		if got.host != tc.want {
			t.Errorf("%s: landed on %s via %s", tc.host, got, name)
		}
		if (tc.host == "shop") != strings.Contains(name, "shop.") {
			t.Errorf("%s: matched route %s of the other Service", tc.host, name)
		}
	}
	RemoveIstioRoutes(vs, shop)
	if got := ourRouteNames(vs, "cart"); len(got) != 2 {
		t.Errorf("removing shop's routes removed cart's: %v", got)
	}
	RemoveIstioRoutes(vs, cart)
	if !sameJSON(vs.Object, before.Object) {
		t.Errorf("not restored:\n got %v\nwant %v", vs.Object, before.Object)
	}
}

// qualify turns a short Service name into its FQDN.
func qualify(host, ns string) string {
	for _, c := range host {
		if c == '.' {
			return host
		}
	}
	return serviceFQDN(host, ns, "")
}

func TestOracleIstioMultiHostAuthority(t *testing.T) {
	svc := shopService("oracle")
	routes := withoutBaseline(shopRoutes("oracle", "tunnels"))
	valid, _ := RouteSet{Service: svc, Routes: routes}.validate("")
	vs := userVirtualService("oracle")
	_ = unstructured.SetNestedStringSlice(vs.Object, []string{"shop", "cart.oracle.svc.cluster.local"}, "spec", "hosts")
	if err := InsertIstioRoutes(vs, svc, valid, routingkey.Default, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host string
		fork bool
	}{{"shop", true}, {"shop:8080", true}, {"shop.oracle", true}, {"shop.oracle.svc.cluster.local:8080", true}, {"cart.oracle.svc.cluster.local", false}, {"shopx", false}} {
		t.Run(tc.host, func(t *testing.T) {
			got, _, _ := evalIstio(vs, request{path: "/", method: "GET", port: 8080, host: tc.host, headers: h("baggage", "sm-routing-key=abc")}, 8080)
			if isFork := got.host == "shop-abc.oracle.svc.cluster.local"; isFork != tc.fork {
				t.Errorf("authority %s landed on %s, fork=%v", tc.host, got, tc.fork)
			}
		})
	}
}

func semantics() []struct {
	name string
	sem  headerSemantics
} {
	return []struct {
		name string
		sem  headerSemantics
	}{{"envoy", envoySemantics}, {"linkerd", linkerdSemantics}}
}

func stamp(plan *GAMMAPlan) {
	for _, r := range plan.HTTPRoutes {
		r.CreationTimestamp = oursCreated
	}
	for _, r := range plan.GRPCRoutes {
		r.CreationTimestamp = oursCreated
	}
}

func derefHTTP(rs []*gatewayv1.HTTPRoute) []gatewayv1.HTTPRoute {
	var out []gatewayv1.HTTPRoute
	for _, r := range rs {
		out = append(out, *r)
	}
	return out
}

func derefGRPC(rs []*gatewayv1.GRPCRoute) []gatewayv1.GRPCRoute {
	var out []gatewayv1.GRPCRoute
	for _, r := range rs {
		out = append(out, *r)
	}
	return out
}

func TestOracleGAMMANoUserRoutes(t *testing.T) {
	svc := shopService("oracle")
	routes := shopRoutes("oracle", "tunnels")
	valid, _ := RouteSet{Service: svc, Routes: routes}.validate("")
	for _, e := range extractors() {
		plan, err := RenderGAMMA(BackendGatewayAPI, svc, withoutBaseline(valid), UserRoutes{}, e.ex, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkLimits(t, plan)
		stamp(plan)
		for _, s := range semantics() {
			for _, c := range headerCases(e.custom) {
				for _, req := range []request{
					{path: "/items", method: "GET", port: 8080},
					{grpc: "/shop.v1.Cart/Get", method: "POST", port: 9090},
				} {
					req.headers = c.headers
					t.Run(fmt.Sprintf("%s/%s/%d/%s", e.name, s.name, req.port, c.name), func(t *testing.T) {
						got, name, ok, _ := evalGAMMA(s.sem, svc, derefHTTP(plan.HTTPRoutes), derefGRPC(plan.GRPCRoutes), req)
						if !ok {
							t.Fatal("no rule matched: the request would fail")
						}
						if want := expectTarget(svc, routes, c.wantFor(s.sem), req.port); got != want {
							t.Errorf("landed on %s via %s, want %s", got, name, want)
						}
					})
				}
			}
		}
	}
}

func TestOracleGAMMAUserRoutes(t *testing.T) {
	svc := shopService("oracle")
	routes := shopRoutes("oracle", "tunnels")
	valid, _ := RouteSet{Service: svc, Routes: routes}.validate("")
	uh, ug := userHTTPRoute("oracle"), userGRPCRoute("oracle")
	uh.CreationTimestamp, ug.CreationTimestamp = userCreated, userCreated
	users := UserRoutes{HTTP: []gatewayv1.HTTPRoute{*uh}, GRPC: []gatewayv1.GRPCRoute{*ug}}
	reqs := []request{
		{path: "/items", method: "GET", port: 8080},
		{path: "/v2/items", method: "GET", port: 8080},
		{path: "/api/items", method: "GET", port: 8080},
		{path: "/api/items", method: "POST", port: 8080},
		{path: "/api", method: "GET", port: 8080, headers: h("x-canary", "1")},
		{grpc: "/shop.v1.Cart/Get", method: "POST", port: 9090},
		{grpc: "/shop.v1.Admin/Purge", method: "POST", port: 9090},
	}
	for _, e := range extractors() {
		plan, err := RenderGAMMA(BackendLinkerd, svc, withoutBaseline(valid), users, e.ex, isLinkerdRouteAnnotation)
		if err != nil {
			t.Fatal(err)
		}
		checkLimits(t, plan)
		stamp(plan)
		allHTTP := append(derefHTTP(plan.HTTPRoutes), *uh)
		allGRPC := append(derefGRPC(plan.GRPCRoutes), *ug)
		for _, r := range plan.HTTPRoutes {
			if r.Annotations["retry.linkerd.io/http"] != "5xx" || r.Annotations["example.com/owner"] != "" {
				t.Errorf("%s: Linkerd annotations not copied exactly: %v", r.Name, r.Annotations)
			}
		}
		for _, s := range semantics() {
			for _, base := range reqs {
				for _, c := range headerCases(e.custom) {
					req := base
					req.headers = append(append([][2]string(nil), base.headers...), c.headers...)
					t.Run(fmt.Sprintf("%s/%s/%s%s %v/%s", e.name, s.name, req.path, req.grpc, base.headers, c.name), func(t *testing.T) {
						// Where the request goes without SandboxMesh.
						userOnly, _, ok, _ := evalGAMMA(s.sem, svc, []gatewayv1.HTTPRoute{*uh}, []gatewayv1.GRPCRoute{*ug}, req)
						if !ok {
							t.Fatal("user routes do not match the request")
						}
						want := userOnly
						if userOnly.host == svc.FQDN("") {
							want = expectTarget(svc, routes, c.wantFor(s.sem), userOnly.port)
						}
						got, name, ok, _ := evalGAMMA(s.sem, svc, allHTTP, allGRPC, req)
						if !ok {
							t.Fatal("no rule matched")
						}
						if got != want {
							t.Errorf("landed on %s via %s, want %s", got, name, want)
						}
					})
				}
			}
		}
	}
}

// experimentalHeaderValue is the experimental channel's pattern for header match values.
var experimentalHeaderValue = regexp.MustCompile(`^[!-~]+([\t ]?[!-~]+)*$`)

// checkLimits checks the CRD limits on every rendered route.
func checkLimits(t *testing.T, plan *GAMMAPlan) {
	t.Helper()
	for _, r := range plan.HTTPRoutes {
		n := 0
		if len(r.Spec.Rules) > MaxRulesPerRoute {
			t.Errorf("%s: %d rules", r.Name, len(r.Spec.Rules))
		}
		for _, rule := range r.Spec.Rules {
			n += len(rule.Matches)
			if len(rule.Matches) > MaxMatchesPerRule {
				t.Errorf("%s: %d matches in a rule", r.Name, len(rule.Matches))
			}
			for _, m := range rule.Matches {
				if len(m.Headers) > MaxHeadersPerMatch {
					t.Errorf("%s: %d headers in a match", r.Name, len(m.Headers))
				}
				for _, hm := range m.Headers {
					if !experimentalHeaderValue.MatchString(hm.Value) {
						t.Errorf("%s: header value %q fails the experimental-channel pattern", r.Name, hm.Value)
					}
				}
			}
		}
		if n > MaxMatchesPerRoute {
			t.Errorf("%s: %d matches", r.Name, n)
		}
	}
	for _, r := range plan.GRPCRoutes {
		n := 0
		if len(r.Spec.Rules) > MaxRulesPerRoute {
			t.Errorf("%s: %d rules", r.Name, len(r.Spec.Rules))
		}
		for _, rule := range r.Spec.Rules {
			n += len(rule.Matches)
			if len(rule.Matches) > MaxMatchesPerRule {
				t.Errorf("%s: %d matches in a rule", r.Name, len(rule.Matches))
			}
		}
		if n > MaxMatchesPerRoute {
			t.Errorf("%s: %d matches", r.Name, n)
		}
	}
}

// bigUserRoute has 16 rules of 8 matches: the most a route may hold.
func bigUserRoute(ns string) *gatewayv1.HTTPRoute {
	r := userHTTPRoute(ns)
	r.Name = "shop-big"
	var rules []gatewayv1.HTTPRouteRule
	for i := range 16 {
		var ms []gatewayv1.HTTPRouteMatch
		for j := range 8 {
			ms = append(ms, gatewayv1.HTTPRouteMatch{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr(fmt.Sprintf("/r%d/m%d", i, j))}})
		}
		rules = append(rules, gatewayv1.HTTPRouteRule{Matches: ms, BackendRefs: r.Spec.Rules[3].BackendRefs})
	}
	r.Spec.Rules = rules
	return r
}

func TestOracleGAMMASharding(t *testing.T) {
	svc := shopService("oracle")
	routes := withoutBaseline(shopRoutes("oracle", "tunnels"))
	valid, _ := RouteSet{Service: svc, Routes: routes}.validate("")
	big := bigUserRoute("oracle")
	big.CreationTimestamp = userCreated
	plan, err := RenderGAMMA(BackendGatewayAPI, svc, valid, UserRoutes{HTTP: []gatewayv1.HTTPRoute{*big}}, customExtractor(), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLimits(t, plan)
	perKey := map[string]int{}
	for _, r := range plan.HTTPRoutes {
		perKey[r.Labels[LabelRoutingKey]]++
	}
	// 128 user matches x 9 header forms = 1152 matches: 9 routes of 128 per key.
	for _, k := range []string{"abc", "abcd", "loc1"} {
		if perKey[k] != 9 {
			t.Errorf("key %s: %d routes, want 9", k, perKey[k])
		}
	}
	stamp(plan)
	all := append(derefHTTP(plan.HTTPRoutes), *big)
	for _, s := range semantics() {
		for _, path := range []string{"/r0/m0", "/r15/m7/x", "/r9/m3"} {
			for _, c := range headerCases(true) {
				req := request{path: path, method: "GET", port: 8080, headers: c.headers}
				got, name, ok, _ := evalGAMMA(s.sem, svc, all, nil, req)
				if want := expectTarget(svc, routes, c.wantFor(s.sem), 8080); !ok || got != want {
					t.Errorf("%s %s %s: landed on %s via %s (ok=%v), want %s", s.name, path, c.name, got, name, ok, want)
				}
			}
		}
	}
}
