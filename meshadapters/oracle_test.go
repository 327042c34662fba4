package meshadapters

// The oracle evaluates rendered mesh objects against requests with the
// documented matching semantics, since no Envoy or Linkerd proxy runs here:
//
//   - Istio VirtualService (Envoy): http routes in order, the first route with
//     a matching match wins; a header regex is an RE2 full match of the header
//     fields joined with ","; exact compares the joined value.
//   - Gateway API HTTPRoute/GRPCRoute: every matching rule of every attached
//     route competes; precedence: exact path, longest prefix, method, most
//     header matches, most query matches (gRPC: longest service, longest
//     method, most headers), then the oldest route, then namespace/name, then
//     the first rule. Header semantics per implementation: Envoy (Istio's
//     GAMMA) joins fields with "," and full-matches; Linkerd matches each
//     field alone and needs the leftmost-first match to span the value.

import (
	"regexp"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// request is what the oracle routes.
type request struct {
	path    string
	method  string
	port    int32
	host    string      // authority; empty means the Service's short name
	headers [][2]string // in order, names in any case, repeatable
	grpc    string      // "/pkg.Service/Method" for gRPC requests (path is then ignored)
}

// values returns the header fields named name (case-insensitive), in order.
func (r request) values(name string) []string {
	var out []string
	for _, h := range r.headers {
		if strings.EqualFold(h[0], name) {
			out = append(out, h[1])
		}
	}
	return out
}

// target is where a request lands.
type target struct {
	host string
	port int32
}

func (t target) String() string { return t.host + ":" + strconv.Itoa(int(t.port)) }

// headerSemantics says how a header matcher reads repeated fields.
type headerSemantics int

const (
	envoySemantics   headerSemantics = iota // fields joined with ","; full match
	linkerdSemantics                        // each field alone; leftmost-first match spanning the value
)

func fullMatch(re, v string) bool {
	rx, err := regexp.Compile(`^(?:` + re + `)$`)
	if err != nil {
		panic(err)
	}
	return rx.MatchString(v)
}

// linkerdMatch reproduces linkerd2-proxy: find (leftmost-first, like Rust's
// regex and Go's regexp) and require the match to span the whole value.
func linkerdMatch(re, v string) bool {
	rx := regexp.MustCompile(re)
	loc := rx.FindStringIndex(v)
	return loc != nil && loc[0] == 0 && loc[1] == len(v)
}

func matchHeader(sem headerSemantics, req request, name string, exact bool, value string) bool {
	vs := req.values(name)
	if len(vs) == 0 {
		return false
	}
	if sem == envoySemantics {
		joined := strings.Join(vs, ",")
		if exact {
			return joined == value
		}
		return fullMatch(value, joined)
	}
	for _, v := range vs {
		if exact && v == value || !exact && linkerdMatch(value, v) {
			return true
		}
	}
	return false
}

// --- Istio -----------------------------------------------------------------

// evalIstio routes req with the http list of a VirtualService; ok is false
// when no route matches (Envoy answers 404).
func evalIstio(vs *unstructured.Unstructured, req request, defaultPort int32) (target, string, bool) {
	for _, rt := range istioHTTP(vs) {
		m := rt.(map[string]any)
		matches, _, _ := unstructured.NestedSlice(m, "match")
		hit := len(matches) == 0
		for _, mt := range matches {
			if istioMatch(mt.(map[string]any), req) {
				hit = true
				break
			}
		}
		if !hit {
			continue
		}
		dests, _, _ := unstructured.NestedSlice(m, "route")
		d := dests[0].(map[string]any)
		host, _, _ := unstructured.NestedString(d, "destination", "host")
		port := req.port
		if p, ok, _ := unstructured.NestedFieldNoCopy(d, "destination", "port", "number"); ok {
			n, _ := asInt64(p)
			port = int32(n)
		}
		if port == 0 {
			port = defaultPort
		}
		name, _ := m["name"].(string)
		return target{host, port}, name, true
	}
	return target{}, "", false
}

func istioStringMatch(sm map[string]any, v string) bool {
	switch {
	case sm["exact"] != nil:
		return v == sm["exact"].(string)
	case sm["prefix"] != nil:
		return strings.HasPrefix(v, sm["prefix"].(string))
	case sm["regex"] != nil:
		return fullMatch(sm["regex"].(string), v)
	}
	return true
}

func istioMatch(m map[string]any, req request) bool {
	for k, v := range m {
		switch k {
		case "name":
		case "port":
			n, _ := asInt64(v)
			if int32(n) != req.port {
				return false
			}
		case "uri":
			if !istioStringMatch(v.(map[string]any), req.path) {
				return false
			}
		case "method":
			if !istioStringMatch(v.(map[string]any), req.method) {
				return false
			}
		case "authority":
			if !istioStringMatch(v.(map[string]any), req.host) {
				return false
			}
		case "headers":
			for h, sm := range v.(map[string]any) {
				vs := req.values(h)
				if len(vs) == 0 || !istioStringMatch(sm.(map[string]any), strings.Join(vs, ",")) {
					return false
				}
			}
		default:
			panic("oracle: unsupported Istio match field " + k)
		}
	}
	return true
}

// --- Gateway API -----------------------------------------------------------

type gammaCandidate struct {
	rank    [5]int
	created int64
	id      string
	rule    int
	refs    []gatewayv1.BackendObjectReference
	name    string
}

func (a gammaCandidate) beats(b gammaCandidate) bool {
	for i := range a.rank {
		if a.rank[i] != b.rank[i] {
			return a.rank[i] > b.rank[i]
		}
	}
	if a.created != b.created {
		return a.created < b.created
	}
	if a.id != b.id {
		return a.id < b.id
	}
	return a.rule < b.rule
}

func pathPrefixMatch(prefix, path string) bool {
	prefix = strings.TrimSuffix(prefix, "/")
	if prefix == "" {
		return true
	}
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func httpMatch(sem headerSemantics, m gatewayv1.HTTPRouteMatch, req request) ([5]int, bool) {
	var rank [5]int
	if m.Path != nil {
		v := "/"
		if m.Path.Value != nil {
			v = *m.Path.Value
		}
		t := gatewayv1.PathMatchPathPrefix
		if m.Path.Type != nil {
			t = *m.Path.Type
		}
		switch t {
		case gatewayv1.PathMatchExact:
			if req.path != v {
				return rank, false
			}
			rank[0] = 1
		case gatewayv1.PathMatchPathPrefix:
			if !pathPrefixMatch(v, req.path) {
				return rank, false
			}
			rank[1] = len(strings.TrimSuffix(v, "/"))
		default:
			panic("oracle: unsupported path match " + string(t))
		}
	}
	if m.Method != nil {
		if string(*m.Method) != req.method {
			return rank, false
		}
		rank[2] = 1
	}
	for _, h := range m.Headers {
		exact := h.Type == nil || *h.Type == gatewayv1.HeaderMatchExact
		if !matchHeader(sem, req, string(h.Name), exact, h.Value) {
			return rank, false
		}
	}
	rank[3] = len(m.Headers)
	if len(m.QueryParams) > 0 {
		panic("oracle: query params unsupported")
	}
	return rank, true
}

func grpcMatch(sem headerSemantics, m gatewayv1.GRPCRouteMatch, req request) ([5]int, bool) {
	var rank [5]int
	if m.Method != nil {
		parts := strings.Split(strings.TrimPrefix(req.grpc, "/"), "/")
		if m.Method.Service != nil {
			if parts[0] != *m.Method.Service {
				return rank, false
			}
			rank[0] = len(*m.Method.Service)
		}
		if m.Method.Method != nil {
			if len(parts) < 2 || parts[1] != *m.Method.Method {
				return rank, false
			}
			rank[1] = len(*m.Method.Method)
		}
	}
	for _, h := range m.Headers {
		exact := h.Type == nil || *h.Type == gatewayv1.GRPCHeaderMatchExact
		if !matchHeader(sem, req, string(h.Name), exact, h.Value) {
			return rank, false
		}
	}
	rank[2] = len(m.Headers)
	return rank, true
}

// evalGAMMA routes req among the HTTPRoutes (or, for a gRPC request, the
// GRPCRoutes) attached to port req.port of svc; ok is false when no rule
// matches (404 / UNIMPLEMENTED, or a Linkerd failure), and also when no route
// is attached at all (then the request goes to the Service as usual: caller
// decides).
func evalGAMMA(sem headerSemantics, svc Service, httpRoutes []gatewayv1.HTTPRoute, grpcRoutes []gatewayv1.GRPCRoute, req request) (target, string, bool, bool) {
	port := ServicePort{Port: req.port}
	for _, p := range svc.Ports {
		if p.Port == req.port {
			port = p
		}
	}
	var best *gammaCandidate
	attached := false
	consider := func(c gammaCandidate) {
		if best == nil || c.beats(*best) {
			cc := c
			best = &cc
		}
	}
	if req.grpc == "" {
		for _, r := range httpRoutes {
			if !attachedTo(r.Spec.ParentRefs, r.Namespace, svc, port) {
				continue
			}
			attached = true
			for ri, rule := range r.Spec.Rules {
				matches := rule.Matches
				if len(matches) == 0 {
					matches = []gatewayv1.HTTPRouteMatch{{Path: &gatewayv1.HTTPPathMatch{Type: ptr(gatewayv1.PathMatchPathPrefix), Value: ptr("/")}}}
				}
				for _, m := range matches {
					if rank, ok := httpMatch(sem, m, req); ok {
						var refs []gatewayv1.BackendObjectReference
						for _, b := range rule.BackendRefs {
							refs = append(refs, b.BackendObjectReference)
						}
						consider(gammaCandidate{rank: rank, created: r.CreationTimestamp.UnixNano(), id: r.Namespace + "/" + r.Name, rule: ri, refs: refs, name: r.Name})
					}
				}
			}
		}
	} else {
		for _, r := range grpcRoutes {
			if !attachedTo(r.Spec.ParentRefs, r.Namespace, svc, port) {
				continue
			}
			attached = true
			for ri, rule := range r.Spec.Rules {
				matches := rule.Matches
				if len(matches) == 0 {
					matches = []gatewayv1.GRPCRouteMatch{{}}
				}
				for _, m := range matches {
					if rank, ok := grpcMatch(sem, m, req); ok {
						var refs []gatewayv1.BackendObjectReference
						for _, b := range rule.BackendRefs {
							refs = append(refs, b.BackendObjectReference)
						}
						consider(gammaCandidate{rank: rank, created: r.CreationTimestamp.UnixNano(), id: r.Namespace + "/" + r.Name, rule: ri, refs: refs, name: r.Name})
					}
				}
			}
		}
	}
	if best == nil {
		return target{}, "", false, attached
	}
	if len(best.refs) == 0 {
		return target{}, best.name, false, true
	}
	ref := best.refs[0]
	ns := svc.Namespace
	if ref.Namespace != nil {
		ns = string(*ref.Namespace)
	}
	p := req.port
	if ref.Port != nil {
		p = *ref.Port
	}
	return target{serviceFQDN(string(ref.Name), ns, ""), p}, best.name, true, true
}
