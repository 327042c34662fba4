package meshadapters

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Gateway API limits from the CRD schemas (HTTPRoute and GRPCRoute alike).
const (
	// MaxRulesPerRoute is spec.rules maxItems.
	MaxRulesPerRoute = 16
	// MaxMatchesPerRule is spec.rules[].matches maxItems.
	MaxMatchesPerRule = 64
	// MaxMatchesPerRoute is the CEL limit on matches across all rules of a route.
	MaxMatchesPerRoute = 128
	// MaxHeadersPerMatch is spec.rules[].matches[].headers maxItems.
	MaxHeadersPerMatch = 16
	// MaxGrantTargets is ReferenceGrant spec.to maxItems.
	MaxGrantTargets = 16
)

// LabelServiceNamespace names the namespace of the baseline Service on owned
// objects that live elsewhere (ReferenceGrants).
const LabelServiceNamespace = "sandboxmesh.dev/service-namespace"

// gammaFlavour is what differs between the mesh-neutral and the Linkerd backends.
type gammaFlavour struct {
	backend string
	// controllerName selects the parent status written by the mesh; empty accepts any controller.
	controllerName string
	// copyAnnotation says which annotations of a user route carry over to routes derived from it.
	copyAnnotation func(string) bool
	// checkServiceProfile reports a Linkerd ServiceProfile for the Service (it disables HTTPRoutes).
	checkServiceProfile bool
}

// GatewayAPIRouter routes with Gateway API HTTPRoutes and GRPCRoutes attached
// to the baseline Service (GAMMA: parentRefs [{group: "", kind: Service, name,
// port}]), in the Service's namespace. For every header port:
//
//   - when no user route is attached to the port, it owns a default route to
//     the baseline ("sandboxmesh.<svc>.<port>", so unmatched requests keep
//     working on meshes that drop them once a route is attached) and one route
//     per key ("sandboxmesh.<svc>.<port>.<key>") matching the key in every
//     header form;
//   - when user routes are attached, for every user route and key it owns a
//     route ("sandboxmesh.<svc>.<port>.<key>.<user route>") mirroring every
//     user rule: the same matches plus one header match per header form, the
//     same filters and timeouts, and backendRefs to the baseline replaced by
//     the destination (Gateway API precedence ranks a longer path above more
//     header matches, so header rules must repeat the user's paths; mirroring
//     the rules that do not send to the baseline keeps the user's precedence
//     among them, shifted by one header match).
//
// Objects are split when the CRD limits (16 rules, 64 matches per rule, 128
// per route) are reached. A destination in another namespace gets a
// ReferenceGrant there. User objects are never modified.
type GatewayAPIRouter struct {
	c      client.Client
	ex     *routingkey.Extractor
	domain string
	log    logr.Logger
	fl     gammaFlavour

	mu      sync.Mutex
	applied map[types.NamespacedName]gammaApplied
}

type gammaApplied struct {
	names []string
	notes []string
}

var (
	_ Router  = (*GatewayAPIRouter)(nil)
	_ Watcher = (*GatewayAPIRouter)(nil)
)

// NewGatewayAPIRouter is the Factory of the mesh-neutral gatewayapi backend; it needs Deps.Client.
func NewGatewayAPIRouter(deps Deps) (Router, error) {
	g, err := newGAMMARouter(deps, gammaFlavour{backend: BackendGatewayAPI})
	if err != nil {
		return nil, err
	}
	return g, nil
}

func newGAMMARouter(deps Deps, fl gammaFlavour) (*GatewayAPIRouter, error) {
	deps = deps.withDefaults()
	if deps.Client == nil {
		return nil, fmt.Errorf("%s backend: Deps.Client is required", fl.backend)
	}
	return &GatewayAPIRouter{c: deps.Client, ex: deps.Extractor, domain: deps.ClusterDomain,
		log: deps.Logger.WithName(fl.backend), fl: fl, applied: map[types.NamespacedName]gammaApplied{}}, nil
}

// Name returns the backend name ("gatewayapi" or "linkerd").
func (g *GatewayAPIRouter) Name() string { return g.fl.backend }

// WatchedObjects returns an HTTPRoute and a GRPCRoute.
func (g *GatewayAPIRouter) WatchedObjects() []client.Object {
	return []client.Object{&gatewayv1.HTTPRoute{}, &gatewayv1.GRPCRoute{}}
}

// ServicesFor maps a route to the Services it is attached to.
func (g *GatewayAPIRouter) ServicesFor(obj client.Object) []types.NamespacedName {
	var parents []gatewayv1.ParentReference
	switch r := obj.(type) {
	case *gatewayv1.HTTPRoute:
		parents = r.Spec.ParentRefs
	case *gatewayv1.GRPCRoute:
		parents = r.Spec.ParentRefs
	}
	var out []types.NamespacedName
	add := func(n types.NamespacedName) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if l := obj.GetLabels(); l[LabelManagedBy] == ManagedBy && l[LabelService] != "" {
		add(types.NamespacedName{Namespace: obj.GetNamespace(), Name: l[LabelService]})
	}
	for _, p := range parents {
		if !isServiceParent(p) {
			continue
		}
		ns := obj.GetNamespace()
		if p.Namespace != nil && *p.Namespace != "" {
			ns = string(*p.Namespace)
		}
		add(types.NamespacedName{Namespace: ns, Name: string(p.Name)})
	}
	return out
}

func isCoreGroup(g *gatewayv1.Group) bool { return g != nil && (*g == "" || *g == "core") }

func isServiceParent(p gatewayv1.ParentReference) bool {
	return isCoreGroup(p.Group) && p.Kind != nil && *p.Kind == "Service"
}

// attachedTo reports whether a route in routeNS with parents attaches to port p of svc.
func attachedTo(parents []gatewayv1.ParentReference, routeNS string, svc Service, p ServicePort) bool {
	for _, ref := range parents {
		if !isServiceParent(ref) || string(ref.Name) != svc.Name {
			continue
		}
		ns := routeNS
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		if ns != svc.Namespace {
			continue
		}
		if ref.Port != nil && *ref.Port != p.Port {
			continue
		}
		if ref.SectionName != nil && string(*ref.SectionName) != p.Name {
			continue
		}
		return true
	}
	return false
}

// isBaselineRef reports whether a backendRef of a route in routeNS is the baseline Service.
func isBaselineRef(ref gatewayv1.BackendObjectReference, routeNS string, svc Service) bool {
	if ref.Group != nil && *ref.Group != "" && *ref.Group != "core" {
		return false
	}
	if ref.Kind != nil && *ref.Kind != "Service" {
		return false
	}
	ns := routeNS
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	return string(ref.Name) == svc.Name && ns == svc.Namespace
}

// UserRoutes are the user's routes in the Service's namespace (producer routes).
type UserRoutes struct {
	HTTP []gatewayv1.HTTPRoute
	GRPC []gatewayv1.GRPCRoute
}

// GAMMAPlan is what the gatewayapi and linkerd backends want in the cluster for one Service.
type GAMMAPlan struct {
	// HTTPRoutes in creation order: defaults first, then keyed routes.
	HTTPRoutes []*gatewayv1.HTTPRoute
	// GRPCRoutes in creation order: defaults first, then keyed routes.
	GRPCRoutes []*gatewayv1.GRPCRoute
	// ReferenceGrants for destinations in other namespaces.
	ReferenceGrants []*gatewayv1.ReferenceGrant
	// Notes explain what could not be routed (shown in Status).
	Notes []string
}

// gammaNames builds the names of owned objects; dots separate parts that
// cannot contain dots themselves, so names never collide.
func gammaDefaultName(svc string, port int32) string {
	return "sandboxmesh." + svc + "." + strconv.Itoa(int(port))
}

func gammaKeyedName(svc string, port int32, key, source string, part int) string {
	n := gammaDefaultName(svc, port) + "." + key
	if source != "" {
		// The user route's name keeps our routes in the user's tie-break order
		// (namespace/name) when creation timestamps are equal.
		name := source[strings.LastIndexByte(source, '/')+1:]
		if len(n)+1+len(name)+4 > 253 {
			h := fnv.New32a()
			h.Write([]byte(source))
			name = fmt.Sprintf("%08x", h.Sum32())
		}
		n += "." + name
	}
	if part > 0 {
		n += "." + strconv.Itoa(part+1)
	}
	return n
}

func gammaGrantName(svc Service) string { return "sandboxmesh." + svc.Namespace + "." + svc.Name }

func ptr[T any](v T) *T { return &v }

// anchored makes a full-match regex explicit: Envoy matches the whole value
// anyway, Linkerd requires the leftmost-first match to cover the whole value
// (so an unanchored alternative could hide a later full match), and other
// implementations may search.
func anchored(re string) string { return "^(?:" + re + ")$" }

// RenderGAMMA computes the plan for svc from the validated routes (no Baseline
// destinations) and the user's routes. It is pure: the golden and oracle
// tests call it directly.
func RenderGAMMA(backend string, svc Service, routes []Route, users UserRoutes, ex *routingkey.Extractor, copyAnnotation func(string) bool) (*GAMMAPlan, error) {
	if ex == nil {
		ex = routingkey.Default
	}
	plan := &GAMMAPlan{}
	labels := func(key string) map[string]string {
		l := ownedLabels(backend, svc)
		if key != "" {
			l[LabelRoutingKey] = key
		}
		return l
	}
	sortByAge := func(a, b metav1.ObjectMeta) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	}
	userHTTP := slices.Clone(users.HTTP)
	slices.SortFunc(userHTTP, func(a, b gatewayv1.HTTPRoute) int { return sortByAge(a.ObjectMeta, b.ObjectMeta) })
	userGRPC := slices.Clone(users.GRPC)
	slices.SortFunc(userGRPC, func(a, b gatewayv1.GRPCRoute) int { return sortByAge(a.ObjectMeta, b.ObjectMeta) })

	for _, p := range svc.headerPorts() {
		parent := gatewayv1.ParentReference{Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(svc.Name), Port: ptr(p.Port)}
		meta := func(name, key string, annotations map[string]string) metav1.ObjectMeta {
			return metav1.ObjectMeta{Namespace: svc.Namespace, Name: name, Labels: labels(key), Annotations: annotations}
		}
		var attH []gatewayv1.HTTPRoute
		for _, u := range userHTTP {
			if attachedTo(u.Spec.ParentRefs, u.Namespace, svc, p) {
				attH = append(attH, u)
			}
		}
		var attG []gatewayv1.GRPCRoute
		for _, u := range userGRPC {
			if attachedTo(u.Spec.ParentRefs, u.Namespace, svc, p) {
				attG = append(attG, u)
			}
		}
		baseRef := gatewayv1.BackendObjectReference{Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(svc.Name), Port: ptr(p.Port)}
		if len(attH) == 0 && len(attG) == 0 {
			// No user route: a default route keeps unmatched requests on the baseline.
			if p.protocol() == ProtocolGRPC {
				plan.GRPCRoutes = append(plan.GRPCRoutes, &gatewayv1.GRPCRoute{
					ObjectMeta: meta(gammaDefaultName(svc.Name, p.Port), "", nil),
					Spec: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}},
						Rules: []gatewayv1.GRPCRouteRule{{BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: baseRef, Weight: ptr(int32(1))}}}}}},
				})
				for _, rt := range routes {
					rule := gatewayv1.GRPCRouteRule{BackendRefs: []gatewayv1.GRPCBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: destRef(svc, rt.Destination, p.Port), Weight: ptr(int32(1))}}}}
					rules, notes := deriveGRPCRules(ex.HeaderMatchers(rt.RoutingKey), rule, []gatewayv1.GRPCRouteMatch{{}})
					plan.Notes = append(plan.Notes, notes...)
					for i, chunk := range packGRPC(rules) {
						plan.GRPCRoutes = append(plan.GRPCRoutes, &gatewayv1.GRPCRoute{
							ObjectMeta: meta(gammaKeyedName(svc.Name, p.Port, rt.RoutingKey, "", i), rt.RoutingKey, nil),
							Spec:       gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}}, Rules: chunk},
						})
					}
				}
				continue
			}
			plan.HTTPRoutes = append(plan.HTTPRoutes, &gatewayv1.HTTPRoute{
				ObjectMeta: meta(gammaDefaultName(svc.Name, p.Port), "", nil),
				Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}},
					Rules: []gatewayv1.HTTPRouteRule{{
						Matches:     []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")}}},
						BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: baseRef, Weight: ptr(int32(1))}}},
					}}},
			})
			for _, rt := range routes {
				rule := gatewayv1.HTTPRouteRule{BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{BackendObjectReference: destRef(svc, rt.Destination, p.Port), Weight: ptr(int32(1))}}}}
				all := []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")}}}
				rules, notes := deriveHTTPRules(ex.HeaderMatchers(rt.RoutingKey), rule, all)
				plan.Notes = append(plan.Notes, notes...)
				for i, chunk := range packHTTP(rules) {
					plan.HTTPRoutes = append(plan.HTTPRoutes, &gatewayv1.HTTPRoute{
						ObjectMeta: meta(gammaKeyedName(svc.Name, p.Port, rt.RoutingKey, "", i), rt.RoutingKey, nil),
						Spec:       gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}}, Rules: chunk},
					})
				}
			}
			continue
		}
		// User routes attached: derive from each.
		for _, u := range attH {
			if u.Annotations[AnnotationRouting] == RoutingDisabled {
				plan.Notes = append(plan.Notes, fmt.Sprintf("HTTPRoute %s/%s opted out (%s=%s)", u.Namespace, u.Name, AnnotationRouting, RoutingDisabled))
				continue
			}
			source := "HTTPRoute/" + u.Namespace + "/" + u.Name
			ann := derivedAnnotations(source, u.Annotations, copyAnnotation)
			for _, rt := range routes {
				var rules []gatewayv1.HTTPRouteRule
				for _, ur := range u.Spec.Rules {
					rule, _ := retargetHTTPRule(ur, u.Namespace, svc, rt.Destination, p.Port)
					matches := ur.Matches
					if len(matches) == 0 {
						matches = []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")}}}
					}
					rs, notes := deriveHTTPRules(ex.HeaderMatchers(rt.RoutingKey), rule, matches)
					plan.Notes = append(plan.Notes, prefixed(source, notes)...)
					rules = append(rules, rs...)
				}
				for i, chunk := range packHTTP(rules) {
					plan.HTTPRoutes = append(plan.HTTPRoutes, &gatewayv1.HTTPRoute{
						ObjectMeta: meta(gammaKeyedName(svc.Name, p.Port, rt.RoutingKey, source, i), rt.RoutingKey, ann),
						Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}},
							Hostnames: slices.Clone(u.Spec.Hostnames), Rules: chunk},
					})
				}
			}
		}
		for _, u := range attG {
			if u.Annotations[AnnotationRouting] == RoutingDisabled {
				plan.Notes = append(plan.Notes, fmt.Sprintf("GRPCRoute %s/%s opted out (%s=%s)", u.Namespace, u.Name, AnnotationRouting, RoutingDisabled))
				continue
			}
			source := "GRPCRoute/" + u.Namespace + "/" + u.Name
			ann := derivedAnnotations(source, u.Annotations, copyAnnotation)
			for _, rt := range routes {
				var rules []gatewayv1.GRPCRouteRule
				for _, ur := range u.Spec.Rules {
					rule, _ := retargetGRPCRule(ur, u.Namespace, svc, rt.Destination, p.Port)
					matches := ur.Matches
					if len(matches) == 0 {
						matches = []gatewayv1.GRPCRouteMatch{{}}
					}
					rs, notes := deriveGRPCRules(ex.HeaderMatchers(rt.RoutingKey), rule, matches)
					plan.Notes = append(plan.Notes, prefixed(source, notes)...)
					rules = append(rules, rs...)
				}
				for i, chunk := range packGRPC(rules) {
					plan.GRPCRoutes = append(plan.GRPCRoutes, &gatewayv1.GRPCRoute{
						ObjectMeta: meta(gammaKeyedName(svc.Name, p.Port, rt.RoutingKey, source, i), rt.RoutingKey, ann),
						Spec: gatewayv1.GRPCRouteSpec{CommonRouteSpec: gatewayv1.CommonRouteSpec{ParentRefs: []gatewayv1.ParentReference{parent}},
							Hostnames: slices.Clone(u.Spec.Hostnames), Rules: chunk},
					})
				}
			}
		}
	}
	plan.ReferenceGrants = referenceGrants(backend, svc, routes)
	return plan, nil
}

func prefixed(p string, notes []string) []string {
	for i := range notes {
		notes[i] = p + ": " + notes[i]
	}
	return notes
}

func derivedAnnotations(source string, user map[string]string, copyAnnotation func(string) bool) map[string]string {
	out := map[string]string{AnnotationDerivedFrom: source}
	if copyAnnotation != nil {
		for k, v := range user {
			if copyAnnotation(k) {
				out[k] = v
			}
		}
	}
	return out
}

// destRef is the backendRef of a destination for baseline port p.
func destRef(svc Service, d Destination, p int32) gatewayv1.BackendObjectReference {
	ref := gatewayv1.BackendObjectReference{Group: ptr(gatewayv1.Group("")), Kind: ptr(gatewayv1.Kind("Service")), Name: gatewayv1.ObjectName(d.Service), Port: ptr(d.Port(p))}
	if d.Namespace != "" && d.Namespace != svc.Namespace {
		ref.Namespace = ptr(gatewayv1.Namespace(d.Namespace))
	}
	return ref
}

// retargetHTTPRule copies a user rule (filters, timeouts, retry...) with its
// baseline backendRefs pointing at the destination and other backendRefs
// kept; the bool reports whether the rule sends to the baseline.
func retargetHTTPRule(ur gatewayv1.HTTPRouteRule, routeNS string, svc Service, d Destination, p int32) (gatewayv1.HTTPRouteRule, bool) {
	rule := *ur.DeepCopy()
	rule.Name, rule.Matches = nil, nil
	baseline := false
	for i, br := range rule.BackendRefs {
		if !isBaselineRef(br.BackendObjectReference, routeNS, svc) {
			if br.Namespace == nil && routeNS != svc.Namespace {
				rule.BackendRefs[i].Namespace = ptr(gatewayv1.Namespace(routeNS))
			}
			continue
		}
		baseline = true
		port := p
		if br.Port != nil {
			port = *br.Port
		}
		rule.BackendRefs[i].BackendObjectReference = destRef(svc, d, port)
	}
	return rule, baseline
}

func retargetGRPCRule(ur gatewayv1.GRPCRouteRule, routeNS string, svc Service, d Destination, p int32) (gatewayv1.GRPCRouteRule, bool) {
	rule := *ur.DeepCopy()
	rule.Name, rule.Matches = nil, nil
	baseline := false
	for i, br := range rule.BackendRefs {
		if !isBaselineRef(br.BackendObjectReference, routeNS, svc) {
			if br.Namespace == nil && routeNS != svc.Namespace {
				rule.BackendRefs[i].Namespace = ptr(gatewayv1.Namespace(routeNS))
			}
			continue
		}
		baseline = true
		port := p
		if br.Port != nil {
			port = *br.Port
		}
		rule.BackendRefs[i].BackendObjectReference = destRef(svc, d, port)
	}
	return rule, baseline
}

// deriveHTTPRules adds one header matcher to each match (a match per header
// form); pack splits the result to fit the CRD limits.
func deriveHTTPRules(hms []routingkey.HeaderMatcher, rule gatewayv1.HTTPRouteRule, matches []gatewayv1.HTTPRouteMatch) ([]gatewayv1.HTTPRouteRule, []string) {
	var out []gatewayv1.HTTPRouteMatch
	var notes []string
	for mi, m := range matches {
		for _, hm := range hms {
			if len(m.Headers) >= MaxHeadersPerMatch {
				notes = append(notes, fmt.Sprintf("match %d already has %d header matches, no room for %s", mi, len(m.Headers), hm.Header))
				continue
			}
			if slices.ContainsFunc(m.Headers, func(h gatewayv1.HTTPHeaderMatch) bool { return strings.EqualFold(string(h.Name), hm.Header) }) {
				notes = append(notes, fmt.Sprintf("match %d already matches header %s, that form is not routed", mi, hm.Header))
				continue
			}
			nm := *m.DeepCopy()
			h := gatewayv1.HTTPHeaderMatch{Type: ptr(gatewayv1.HeaderMatchRegularExpression), Name: gatewayv1.HTTPHeaderName(hm.Header), Value: anchored(hm.Regex)}
			if hm.Exact != "" {
				h = gatewayv1.HTTPHeaderMatch{Type: ptr(gatewayv1.HeaderMatchExact), Name: gatewayv1.HTTPHeaderName(hm.Header), Value: hm.Exact}
			}
			nm.Headers = append(nm.Headers, h)
			out = append(out, nm)
		}
	}
	if len(out) == 0 {
		return nil, notes
	}
	r := *rule.DeepCopy()
	r.Matches = out
	return []gatewayv1.HTTPRouteRule{r}, notes
}

func deriveGRPCRules(hms []routingkey.HeaderMatcher, rule gatewayv1.GRPCRouteRule, matches []gatewayv1.GRPCRouteMatch) ([]gatewayv1.GRPCRouteRule, []string) {
	var out []gatewayv1.GRPCRouteMatch
	var notes []string
	for mi, m := range matches {
		for _, hm := range hms {
			if len(m.Headers) >= MaxHeadersPerMatch {
				notes = append(notes, fmt.Sprintf("match %d already has %d header matches, no room for %s", mi, len(m.Headers), hm.Header))
				continue
			}
			if slices.ContainsFunc(m.Headers, func(h gatewayv1.GRPCHeaderMatch) bool { return strings.EqualFold(string(h.Name), hm.Header) }) {
				notes = append(notes, fmt.Sprintf("match %d already matches header %s, that form is not routed", mi, hm.Header))
				continue
			}
			nm := *m.DeepCopy()
			h := gatewayv1.GRPCHeaderMatch{Type: ptr(gatewayv1.GRPCHeaderMatchRegularExpression), Name: gatewayv1.GRPCHeaderName(hm.Header), Value: anchored(hm.Regex)}
			if hm.Exact != "" {
				h = gatewayv1.GRPCHeaderMatch{Type: ptr(gatewayv1.GRPCHeaderMatchExact), Name: gatewayv1.GRPCHeaderName(hm.Header), Value: hm.Exact}
			}
			nm.Headers = append(nm.Headers, h)
			out = append(out, nm)
		}
	}
	if len(out) == 0 {
		return nil, notes
	}
	r := *rule.DeepCopy()
	r.Matches = out
	return []gatewayv1.GRPCRouteRule{r}, notes
}

// packHTTP splits rules, in order, into routes of at most MaxRulesPerRoute
// rules, MaxMatchesPerRule matches per rule and MaxMatchesPerRoute matches,
// filling each route: a rule may be split across rules and routes, since its
// matches are alternatives with the same precedence and action.
func packHTTP(rules []gatewayv1.HTTPRouteRule) [][]gatewayv1.HTTPRouteRule {
	return pack(rules, func(r gatewayv1.HTTPRouteRule) int { return len(r.Matches) },
		func(r gatewayv1.HTTPRouteRule, i, j int) gatewayv1.HTTPRouteRule {
			c := *r.DeepCopy()
			c.Matches = c.Matches[i:j]
			return c
		})
}

func packGRPC(rules []gatewayv1.GRPCRouteRule) [][]gatewayv1.GRPCRouteRule {
	return pack(rules, func(r gatewayv1.GRPCRouteRule) int { return len(r.Matches) },
		func(r gatewayv1.GRPCRouteRule, i, j int) gatewayv1.GRPCRouteRule {
			c := *r.DeepCopy()
			c.Matches = c.Matches[i:j]
			return c
		})
}

func pack[R any](rules []R, size func(R) int, slice func(r R, i, j int) R) [][]R {
	var out [][]R
	var cur []R
	n := 0
	flush := func() {
		if len(cur) > 0 {
			out = append(out, cur)
		}
		cur, n = nil, 0
	}
	for _, r := range rules {
		total := size(r)
		if total == 0 {
			if len(cur) == MaxRulesPerRoute {
				flush()
			}
			cur = append(cur, r)
			continue
		}
		for i := 0; i < total; {
			if len(cur) == MaxRulesPerRoute || n == MaxMatchesPerRoute {
				flush()
			}
			j := min(total, i+MaxMatchesPerRule, i+MaxMatchesPerRoute-n)
			cur = append(cur, slice(r, i, j))
			n += j - i
			i = j
		}
	}
	flush()
	return out
}

// referenceGrants allows our routes in the Service's namespace to send to
// destination Services in other namespaces.
func referenceGrants(backend string, svc Service, routes []Route) []*gatewayv1.ReferenceGrant {
	byNS := map[string][]string{}
	for _, r := range routes {
		d := r.Destination
		if d.Namespace == "" || d.Namespace == svc.Namespace {
			continue
		}
		if !slices.Contains(byNS[d.Namespace], d.Service) {
			byNS[d.Namespace] = append(byNS[d.Namespace], d.Service)
		}
	}
	var out []*gatewayv1.ReferenceGrant
	for ns, names := range byNS {
		slices.Sort(names)
		g := &gatewayv1.ReferenceGrant{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gammaGrantName(svc), Labels: ownedLabels(backend, svc)},
			Spec: gatewayv1.ReferenceGrantSpec{From: []gatewayv1.ReferenceGrantFrom{
				{Group: gatewayv1.GroupName, Kind: "HTTPRoute", Namespace: gatewayv1.Namespace(svc.Namespace)},
				{Group: gatewayv1.GroupName, Kind: "GRPCRoute", Namespace: gatewayv1.Namespace(svc.Namespace)},
			}},
		}
		g.Labels[LabelServiceNamespace] = svc.Namespace
		if len(names) > MaxGrantTargets {
			g.Spec.To = []gatewayv1.ReferenceGrantTo{{Group: "", Kind: "Service"}}
		} else {
			for _, n := range names {
				g.Spec.To = append(g.Spec.To, gatewayv1.ReferenceGrantTo{Group: "", Kind: "Service", Name: ptr(gatewayv1.ObjectName(n))})
			}
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *gatewayv1.ReferenceGrant) int { return strings.Compare(a.Namespace, b.Namespace) })
	return out
}

// gammaState is what the router finds in the cluster for one Service.
type gammaState struct {
	users  UserRoutes
	http   []gatewayv1.HTTPRoute
	grpc   []gatewayv1.GRPCRoute
	grants []gatewayv1.ReferenceGrant
}

func (g *GatewayAPIRouter) read(ctx context.Context, svc Service) (*gammaState, error) {
	st := &gammaState{}
	var hl gatewayv1.HTTPRouteList
	if err := g.c.List(ctx, &hl, client.InNamespace(svc.Namespace)); err != nil {
		return nil, fmt.Errorf("%s: list HTTPRoutes in namespace %s for service %s: %w", g.fl.backend, svc.Namespace, svc, err)
	}
	var gl gatewayv1.GRPCRouteList
	if err := g.c.List(ctx, &gl, client.InNamespace(svc.Namespace)); err != nil {
		return nil, fmt.Errorf("%s: list GRPCRoutes in namespace %s for service %s: %w", g.fl.backend, svc.Namespace, svc, err)
	}
	mine := func(l map[string]string) bool {
		return l[LabelManagedBy] == ManagedBy && l[LabelBackend] == g.fl.backend && l[LabelService] == svc.Name
	}
	for _, r := range hl.Items {
		switch {
		case mine(r.Labels):
			st.http = append(st.http, r)
		case r.Labels[LabelManagedBy] != ManagedBy:
			st.users.HTTP = append(st.users.HTTP, r)
		}
	}
	for _, r := range gl.Items {
		switch {
		case mine(r.Labels):
			st.grpc = append(st.grpc, r)
		case r.Labels[LabelManagedBy] != ManagedBy:
			st.users.GRPC = append(st.users.GRPC, r)
		}
	}
	var rg gatewayv1.ReferenceGrantList
	sel := ownedSelector(g.fl.backend, svc)
	sel[LabelServiceNamespace] = svc.Namespace
	if err := g.c.List(ctx, &rg, sel); err != nil {
		return nil, fmt.Errorf("%s: list ReferenceGrants for service %s: %w", g.fl.backend, svc, err)
	}
	st.grants = rg.Items
	return st, nil
}

// Apply converges the owned routes of rs.Service: grants first, then default
// routes, then keyed routes, and only then deletes what is no longer wanted
// (keyed routes before default routes), so that a Service never has keyed
// routes without its default route.
func (g *GatewayAPIRouter) Apply(ctx context.Context, rs RouteSet) error {
	routes, err := rs.validate(g.domain)
	if err != nil {
		return err
	}
	routes = slices.DeleteFunc(routes, func(rt Route) bool { return rt.Destination.Kind == DestinationBaseline })
	if len(routes) == 0 {
		return g.Remove(ctx, rs.Service)
	}
	var applied gammaApplied
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		st, err := g.read(ctx, rs.Service)
		if err != nil {
			return err
		}
		plan, err := RenderGAMMA(g.fl.backend, rs.Service, routes, st.users, g.ex, g.fl.copyAnnotation)
		if err != nil {
			return err
		}
		applied = gammaApplied{notes: plan.Notes}
		for _, o := range plan.HTTPRoutes {
			applied.names = append(applied.names, "HTTPRoute/"+o.Name)
		}
		for _, o := range plan.GRPCRoutes {
			applied.names = append(applied.names, "GRPCRoute/"+o.Name)
		}
		return g.converge(ctx, rs.Service, st, plan)
	})
	if err != nil {
		return err
	}
	for _, n := range applied.notes {
		g.log.Info("part of the route set cannot be routed", "service", rs.Service.String(), "note", n)
	}
	g.mu.Lock()
	g.applied[rs.Service.Key()] = applied
	g.mu.Unlock()
	return nil
}

func (g *GatewayAPIRouter) converge(ctx context.Context, svc Service, st *gammaState, plan *GAMMAPlan) error {
	for _, o := range plan.ReferenceGrants {
		cur := findByName(st.grants, o.Namespace, o.Name)
		if err := upsert(ctx, g, cur, o, func(c, d *gatewayv1.ReferenceGrant) bool { return sameJSON(c.Spec, d.Spec) },
			func(c, d *gatewayv1.ReferenceGrant) { c.Spec = d.Spec }); err != nil {
			return err
		}
	}
	for _, o := range plan.GRPCRoutes {
		cur := findByName(st.grpc, o.Namespace, o.Name)
		if err := upsert(ctx, g, cur, o, func(c, d *gatewayv1.GRPCRoute) bool { return sameJSON(c.Spec, d.Spec) },
			func(c, d *gatewayv1.GRPCRoute) { c.Spec = d.Spec }); err != nil {
			return err
		}
	}
	for _, o := range plan.HTTPRoutes {
		cur := findByName(st.http, o.Namespace, o.Name)
		if err := upsert(ctx, g, cur, o, func(c, d *gatewayv1.HTTPRoute) bool { return sameJSON(c.Spec, d.Spec) },
			func(c, d *gatewayv1.HTTPRoute) { c.Spec = d.Spec }); err != nil {
			return err
		}
	}
	return g.deleteStale(ctx, svc, st, plan)
}

func findByName[T any, PT interface {
	*T
	client.Object
}](items []T, ns, name string) PT {
	for i := range items {
		o := PT(&items[i])
		if o.GetNamespace() == ns && o.GetName() == name {
			return o
		}
	}
	return nil
}

// upsert creates desired, or updates cur when its spec, labels or annotations differ.
func upsert[T client.Object](ctx context.Context, g *GatewayAPIRouter, cur, desired T, same func(c, d T) bool, set func(c, d T)) error {
	kind := strings.TrimPrefix(fmt.Sprintf("%T", desired), "*v1.")
	if isNilObject(cur) {
		if err := g.c.Create(ctx, desired); err != nil {
			return fmt.Errorf("%s: create %s %s/%s: %w", g.fl.backend, kind, desired.GetNamespace(), desired.GetName(), err)
		}
		return nil
	}
	if same(cur, desired) && sameJSON(cur.GetLabels(), desired.GetLabels()) && sameJSON(nonEmpty(cur.GetAnnotations()), nonEmpty(desired.GetAnnotations())) {
		return nil
	}
	set(cur, desired)
	cur.SetLabels(desired.GetLabels())
	cur.SetAnnotations(desired.GetAnnotations())
	if err := g.c.Update(ctx, cur); err != nil {
		return fmt.Errorf("%s: update %s %s/%s: %w", g.fl.backend, kind, cur.GetNamespace(), cur.GetName(), err)
	}
	return nil
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

func isNilObject(o client.Object) bool {
	switch v := o.(type) {
	case *gatewayv1.HTTPRoute:
		return v == nil
	case *gatewayv1.GRPCRoute:
		return v == nil
	case *gatewayv1.ReferenceGrant:
		return v == nil
	}
	return o == nil
}

// deleteStale deletes owned objects that plan does not contain (nil plan:
// all): keyed routes first, then default routes, then grants.
func (g *GatewayAPIRouter) deleteStale(ctx context.Context, svc Service, st *gammaState, plan *GAMMAPlan) error {
	want := map[string]bool{}
	if plan != nil {
		for _, o := range plan.HTTPRoutes {
			want["HTTPRoute/"+o.Namespace+"/"+o.Name] = true
		}
		for _, o := range plan.GRPCRoutes {
			want["GRPCRoute/"+o.Namespace+"/"+o.Name] = true
		}
		for _, o := range plan.ReferenceGrants {
			want["ReferenceGrant/"+o.Namespace+"/"+o.Name] = true
		}
	}
	var keyed, defaults, grants []client.Object
	add := func(kind string, o client.Object) {
		if want[kind+"/"+o.GetNamespace()+"/"+o.GetName()] {
			return
		}
		switch {
		case kind == "ReferenceGrant":
			grants = append(grants, o)
		case o.GetLabels()[LabelRoutingKey] == "":
			defaults = append(defaults, o)
		default:
			keyed = append(keyed, o)
		}
	}
	for i := range st.http {
		add("HTTPRoute", &st.http[i])
	}
	for i := range st.grpc {
		add("GRPCRoute", &st.grpc[i])
	}
	for i := range st.grants {
		add("ReferenceGrant", &st.grants[i])
	}
	for _, o := range slices.Concat(keyed, defaults, grants) {
		if err := g.c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("%s: delete %T %s/%s of service %s: %w", g.fl.backend, o, o.GetNamespace(), o.GetName(), svc, err)
		}
	}
	return nil
}

// Remove deletes every owned object of svc (keyed routes first).
func (g *GatewayAPIRouter) Remove(ctx context.Context, svc Service) error {
	st, err := g.read(ctx, svc)
	if err != nil {
		return err
	}
	if err := g.deleteStale(ctx, svc, st, nil); err != nil {
		return err
	}
	g.mu.Lock()
	delete(g.applied, svc.Key())
	g.mu.Unlock()
	return nil
}

// Status reads the parent statuses of the owned routes: every route must be
// Accepted (and its refs resolved) by the mesh at its current generation.
func (g *GatewayAPIRouter) Status(ctx context.Context, svc Service) (Status, error) {
	st, err := g.read(ctx, svc)
	if err != nil {
		return Status{}, err
	}
	g.mu.Lock()
	applied, ok := g.applied[svc.Key()]
	g.mu.Unlock()
	if g.fl.checkServiceProfile {
		if sp, err := g.serviceProfile(ctx, svc); err != nil {
			return Status{}, err
		} else if sp != "" {
			return Status{Reason: ReasonRejected, Message: "ServiceProfile " + sp + " exists: Linkerd ignores HTTPRoutes and GRPCRoutes of a Service that has one"}, nil
		}
	}
	type obj struct {
		kind    string
		meta    metav1.ObjectMeta
		parents []gatewayv1.RouteParentStatus
	}
	var objs []obj
	for _, r := range st.http {
		objs = append(objs, obj{"HTTPRoute", r.ObjectMeta, r.Status.Parents})
	}
	for _, r := range st.grpc {
		objs = append(objs, obj{"GRPCRoute", r.ObjectMeta, r.Status.Parents})
	}
	if len(objs) == 0 {
		if ok && len(applied.names) > 0 {
			return Status{Reason: ReasonNotApplied, Message: "no routes of ours for the service"}, nil
		}
		return Status{Accepted: true, Reason: ReasonNoRoutes, Message: "no routes for the service"}, nil
	}
	have := map[string]bool{}
	for _, o := range objs {
		have[o.kind+"/"+o.meta.Name] = true
	}
	var missing []string
	for _, n := range applied.names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return Status{Reason: ReasonNotApplied, Message: "missing " + strings.Join(missing, ", ")}, nil
	}
	var pending, rejected []string
	minGen := int64(-1)
	for _, o := range objs {
		id := o.kind + " " + o.meta.Namespace + "/" + o.meta.Name
		ps := g.parentStatus(o.parents, svc)
		if ps == nil {
			pending = append(pending, id+": no parent status")
			continue
		}
		acc := meta.FindStatusCondition(ps.Conditions, string(gatewayv1.RouteConditionAccepted))
		res := meta.FindStatusCondition(ps.Conditions, string(gatewayv1.RouteConditionResolvedRefs))
		switch {
		case acc == nil || acc.ObservedGeneration < o.meta.Generation:
			pending = append(pending, id+": not observed at generation "+strconv.FormatInt(o.meta.Generation, 10))
		case acc.Status != metav1.ConditionTrue:
			rejected = append(rejected, fmt.Sprintf("%s: Accepted=%s %s: %s", id, acc.Status, acc.Reason, acc.Message))
		case res != nil && res.Status == metav1.ConditionFalse && res.ObservedGeneration >= o.meta.Generation:
			rejected = append(rejected, fmt.Sprintf("%s: ResolvedRefs=False %s: %s", id, res.Reason, res.Message))
		default:
			if minGen < 0 || acc.ObservedGeneration < minGen {
				minGen = acc.ObservedGeneration
			}
		}
	}
	switch {
	case len(rejected) > 0:
		return Status{Reason: ReasonRejected, Message: strings.Join(rejected, "; ")}, nil
	case len(pending) > 0:
		return Status{Reason: ReasonPending, Message: strings.Join(pending, "; ")}, nil
	}
	s := Status{Accepted: true, Reason: ReasonAccepted, Message: fmt.Sprintf("%d routes accepted", len(objs)), ObservedGeneration: minGen}
	if len(applied.notes) > 0 {
		s.Reason = ReasonConflict
		s.Message += "; " + strings.Join(applied.notes, "; ")
	}
	return s, nil
}

// parentStatus returns the status our mesh wrote for the Service parent.
func (g *GatewayAPIRouter) parentStatus(parents []gatewayv1.RouteParentStatus, svc Service) *gatewayv1.RouteParentStatus {
	for i := range parents {
		p := &parents[i]
		if !isServiceParent(p.ParentRef) || string(p.ParentRef.Name) != svc.Name {
			continue
		}
		if g.fl.controllerName != "" && string(p.ControllerName) != g.fl.controllerName {
			continue
		}
		return p
	}
	return nil
}

var serviceProfileGVK = schema.GroupVersionKind{Group: "linkerd.io", Version: "v1alpha2", Kind: "ServiceProfile"}

// serviceProfile returns the name of the Linkerd ServiceProfile of svc, or ""
// (also when the ServiceProfile CRD is not installed).
func (g *GatewayAPIRouter) serviceProfile(ctx context.Context, svc Service) (string, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(serviceProfileGVK)
	name := svc.FQDN(g.domain)
	err := g.c.Get(ctx, client.ObjectKey{Namespace: svc.Namespace, Name: name}, u)
	switch {
	case err == nil:
		return svc.Namespace + "/" + name, nil
	case apierrors.IsNotFound(err), meta.IsNoMatchError(err), errors.Is(err, &meta.NoKindMatchError{}):
		return "", nil
	}
	return "", fmt.Errorf("%s: get ServiceProfile %s/%s: %w", g.fl.backend, svc.Namespace, name, err)
}
