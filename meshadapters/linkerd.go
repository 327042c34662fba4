package meshadapters

import "strings"

// LinkerdControllerName is the controllerName of Linkerd's policy controller
// in route parent statuses.
const LinkerdControllerName = "linkerd.io/policy-controller"

// NewLinkerdRouter is the Factory of the linkerd backend; it needs Deps.Client.
//
// It writes the same GAMMA routes as the gatewayapi backend (gateway.networking.k8s.io/v1
// HTTPRoute and GRPCRoute with a Service parent and a port), with what Linkerd needs:
//
//   - status is read from the parent status written by "linkerd.io/policy-controller";
//   - Linkerd's retry and timeout annotations (retry.linkerd.io/*, timeout.linkerd.io/*) of a
//     user route are copied onto the routes derived from it (on a route they replace those of
//     the Service, so leaving them out would change the retry policy of keyed requests);
//   - header regexes are anchored (^(?:...)$): Linkerd takes the leftmost-first match and
//     requires it to span the whole value, and matches each header field on its own;
//   - a default route to the baseline is kept while no user route is attached, since Linkerd
//     fails requests that match no route once any route is attached to a Service port;
//   - Status reports a ServiceProfile for the Service: Linkerd then ignores HTTPRoutes.
//
// Linkerd versions (docs/meshadapters.md has the table): 2.18 or newer reads HTTPRoute and
// GRPCRoute v1, so HTTP and gRPC ports are routed. 2.14 to 2.17 read HTTPRoute v1beta1, which
// the Gateway API CRDs serve next to v1, so HTTP ports are routed. Linkerd reads GRPCRoutes only
// from 2.16; 2.16 and 2.17 read GRPCRoute v1alpha2, served next to v1 only by the Gateway API
// v1.1 experimental channel, so elsewhere (and on 2.14 and 2.15) gRPC ports are not routed by
// key and keyed gRPC requests stay on the baseline. Retry and timeout annotations are read by
// Linkerd 2.16 or newer. Routes of the policy.linkerd.io group are not derived from.
func NewLinkerdRouter(deps Deps) (Router, error) {
	g, err := newGAMMARouter(deps, gammaFlavour{
		backend:             BackendLinkerd,
		controllerName:      LinkerdControllerName,
		copyAnnotation:      isLinkerdRouteAnnotation,
		checkServiceProfile: true,
	})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func isLinkerdRouteAnnotation(k string) bool {
	return strings.HasPrefix(k, "retry.linkerd.io/") || strings.HasPrefix(k, "timeout.linkerd.io/")
}
