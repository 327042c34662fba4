package meshadapters

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// shopService is the baseline Service of the tests: an HTTP port, a gRPC port
// and a TCP port.
func shopService(ns string) Service {
	return Service{
		Namespace: ns, Name: "shop",
		Ports: []ServicePort{
			{Name: "http", Port: 8080, TargetPort: 8081, Protocol: ProtocolHTTP},
			{Name: "grpc-api", Port: 9090, TargetPort: 9090, Protocol: ProtocolGRPC},
			{Name: "tcp-db", Port: 5432, TargetPort: 5432, Protocol: ProtocolTCP},
		},
		Workloads: []WorkloadRef{{Kind: "Deployment", Name: "shop"}},
	}
}

// shopRoutes are the routes of the tests: two keys where one is a prefix of
// the other, a local tunnel in another namespace and a baseline-only key.
func shopRoutes(ns, tunnelNS string) []Route {
	return []Route{
		{RoutingKey: "abc", Owner: Owner{Kind: "Sandbox", Namespace: ns, Name: "sb-abc"},
			Destination: Destination{Kind: DestinationFork, Service: "shop-abc", Ports: map[int32]int32{8080: 80, 9090: 9091}}},
		{RoutingKey: "abcd", Owner: Owner{Kind: "Sandbox", Namespace: ns, Name: "sb-abcd"},
			Destination: Destination{Kind: DestinationFork, Service: "shop-abcd"}},
		{RoutingKey: "loc1", Owner: Owner{Kind: "Sandbox", Namespace: ns, Name: "sb-local"},
			Destination: Destination{Kind: DestinationLocal, Namespace: tunnelNS, Service: "tunnel-loc1", Ports: map[int32]int32{8080: 18080, 9090: 19090}}},
		{RoutingKey: "virt", Owner: Owner{Kind: "RouteGroup", Name: "rg-virt"},
			Destination: Destination{Kind: DestinationBaseline}},
	}
}

func customExtractor() *routingkey.Extractor {
	ex, err := routingkey.NewExtractor(routingkey.Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"X-Sandbox-Key"}})
	if err != nil {
		panic(err)
	}
	return ex
}

// userVirtualService is a user's VirtualService for the shop host: a /v2 route
// to another Service and a default route with timeout and retries.
func userVirtualService(ns string) *unstructured.Unstructured {
	vs := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1",
		"kind":       "VirtualService",
		"metadata": map[string]any{
			"namespace": ns, "name": "shop-user",
			"labels":      map[string]any{"team": "shop"},
			"annotations": map[string]any{"example.com/owner": "gitops"},
		},
		"spec": map[string]any{
			"hosts": []any{"shop"},
			"http": []any{
				map[string]any{
					"name":  "v2",
					"match": []any{map[string]any{"uri": map[string]any{"prefix": "/v2"}}},
					"route": []any{map[string]any{"destination": map[string]any{"host": "shop-v2"}}},
				},
				map[string]any{
					"name":    "default",
					"route":   []any{map[string]any{"destination": map[string]any{"host": "shop"}}},
					"timeout": "5s",
					"retries": map[string]any{"attempts": int64(3), "perTryTimeout": "2s", "retryOn": "5xx"},
				},
			},
		},
	}}
	return vs
}

// userHTTPRoute is a user's producer route on the HTTP port: a /v2 prefix to
// another Service, a header canary to another Service, GET /api with a
// timeout and a catch-all to the baseline.
func userHTTPRoute(ns string) *gatewayv1.HTTPRoute {
	svc := func(name string, port int32) []gatewayv1.HTTPBackendRef {
		return []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
			Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(name), Port: ptr(port)}, Weight: ptr(int32(1))}}}
	}
	prefix := func(v string) *gatewayv1.HTTPPathMatch {
		return &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr(v)}
	}
	return &gatewayv1.HTTPRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-user",
			Annotations: map[string]string{"retry.linkerd.io/http": "5xx", "retry.linkerd.io/limit": "2", "example.com/owner": "gitops"}},
		Spec: gatewayv1.HTTPRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: "shop", Port: ptr(int32(8080))}}},
			Rules: []gatewayv1.HTTPRouteRule{
				{Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/v2")}}, BackendRefs: svc("shop-v2", 8080)},
				{Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/"), Headers: []gatewayv1.HTTPHeaderMatch{
					{Type: ptr(gatewayv1.HeaderMatchExact), Name: "x-canary", Value: "1"}}}}, BackendRefs: svc("shop-canary", 8080)},
				{Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/api"), Method: ptr(gatewayv1.HTTPMethodGet)}}, BackendRefs: svc("shop", 8080),
					Timeouts: &gatewayv1.HTTPRouteTimeouts{Request: ptr(gatewayv1.Duration("3s"))}},
				{Matches: []gatewayv1.HTTPRouteMatch{{Path: prefix("/")}}, BackendRefs: svc("shop", 8080)},
			},
		},
	}
}

// userGRPCRoute is a user's producer route on the gRPC port: one method to
// another Service, everything else to the baseline.
func userGRPCRoute(ns string) *gatewayv1.GRPCRoute {
	ref := func(name string) []gatewayv1.GRPCBackendRef {
		return []gatewayv1.GRPCBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: gatewayv1.BackendObjectReference{
			Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(name), Port: ptr(int32(9090))}, Weight: ptr(int32(1))}}}
	}
	return &gatewayv1.GRPCRoute{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop-grpc-user"},
		Spec: gatewayv1.GRPCRouteSpec{
			CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{{
				Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: "shop", Port: ptr(int32(9090))}}},
			Rules: []gatewayv1.GRPCRouteRule{
				{Matches: []gatewayv1.GRPCRouteMatch{{Method: &gatewayv1.GRPCMethodMatch{Type: ptr(gatewayv1.GRPCMethodMatchExact),
					Service: ptr("shop.v1.Admin"), Method: ptr("Purge")}}}, BackendRefs: ref("shop-admin")},
				{BackendRefs: ref("shop")},
			},
		},
	}
}

var (
	userCreated = metav1.NewTime(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	oursCreated = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
)
