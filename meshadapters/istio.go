package meshadapters

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-logr/logr"
	istioapi "istio.io/api/networking/v1alpha3"
	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// IstioRouter routes with networking.istio.io/v1 VirtualServices.
//
// When no VirtualService of the user's exists for the Service's host, it owns
// one (named "sandboxmesh-<service>", label app.kubernetes.io/managed-by=
// sandboxmesh) with one HTTP route per routing key and port plus a default
// route to the baseline. When the user owns a VirtualService for the host
// (mesh-bound: no gateways, or "mesh" among them), it inserts its named routes
// ("sandboxmesh-<key>", "sandboxmesh-<key>-<port>" for multi-port Services) at
// the top of the user's http list, copying timeout and retries of the user's
// default route for the port, and removes exactly those routes on cleanup.
// User VirtualServices are read and written as unstructured objects so that
// fields unknown to our Istio client version survive our updates.
//
// A VirtualService annotated sandboxmesh.dev/routing=disabled opts its host
// out. IstioRouter is a Watcher: a GitOps tool re-applying the user's
// VirtualService removes our routes, and the operator re-applies.
type IstioRouter struct {
	c      client.Client
	ex     *routingkey.Extractor
	domain string
	log    logr.Logger

	mu      sync.Mutex
	applied map[types.NamespacedName][]string // route names last applied per Service
}

var (
	_ Router  = (*IstioRouter)(nil)
	_ Watcher = (*IstioRouter)(nil)
)

var virtualServiceGVK = schema.GroupVersionKind{Group: "networking.istio.io", Version: "v1", Kind: "VirtualService"}

// NewIstioRouter is the Factory of the istio backend; it needs Deps.Client.
func NewIstioRouter(deps Deps) (Router, error) {
	deps = deps.withDefaults()
	if deps.Client == nil {
		return nil, errors.New("istio backend: Deps.Client is required")
	}
	return &IstioRouter{c: deps.Client, ex: deps.Extractor, domain: deps.ClusterDomain,
		log: deps.Logger.WithName(BackendIstio), applied: map[types.NamespacedName][]string{}}, nil
}

// Name returns "istio".
func (r *IstioRouter) Name() string { return BackendIstio }

// IstioOwnedName is the name of the VirtualService IstioRouter owns for a Service.
func IstioOwnedName(svc string) string { return RouteNamePrefix + svc }

// IstioRouteName is the name of the HTTP route for key on port of Service
// svc: "sandboxmesh-<key>", with "-<port>" appended for Services with several
// HTTP/gRPC ports, and with the Service name inserted ("sandboxmesh-<svc>.<key>")
// in a VirtualService that lists several hosts (several Services may then
// keep routes in it).
func IstioRouteName(svc, key string, port int32, multiPort, multiHost bool) string {
	n := RouteNamePrefix
	if multiHost {
		n += svc + "."
	}
	n += key
	if multiPort {
		n += "-" + strconv.Itoa(int(port))
	}
	return n
}

// istioRouteOf returns whether a route of a VirtualService belongs to svc: in
// a single-host VirtualService every route of ours does; in a multi-host one,
// routes qualified with svc's name and unqualified ones (left from when it
// had one host).
func istioRouteOf(vs *unstructured.Unstructured, svc string) func(any) bool {
	hosts, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts")
	multiHost := len(hosts) > 1
	return func(rt any) bool {
		if !isOurIstioRoute(rt) {
			return false
		}
		if !multiHost {
			return true
		}
		rest := strings.TrimPrefix(istioRouteName(rt), RouteNamePrefix)
		return strings.HasPrefix(rest, svc+".") || !strings.Contains(rest, ".")
	}
}

// WatchedObjects returns a VirtualService.
func (r *IstioRouter) WatchedObjects() []client.Object {
	return []client.Object{&istionetworkingv1.VirtualService{}}
}

// ServicesFor maps a VirtualService to the Services its hosts name.
func (r *IstioRouter) ServicesFor(obj client.Object) []types.NamespacedName {
	var hosts []string
	switch vs := obj.(type) {
	case *istionetworkingv1.VirtualService:
		hosts = vs.Spec.Hosts
	case *unstructured.Unstructured:
		hosts, _, _ = unstructured.NestedStringSlice(vs.Object, "spec", "hosts")
	default:
		return nil
	}
	var out []types.NamespacedName
	add := func(n types.NamespacedName) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	if obj.GetLabels()[LabelManagedBy] == ManagedBy && obj.GetLabels()[LabelService] != "" {
		add(types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetLabels()[LabelService]})
	}
	suffix := ".svc." + r.domain
	for _, h := range hosts {
		switch {
		case h == "" || strings.Contains(h, "*"):
		case !strings.Contains(h, "."):
			add(types.NamespacedName{Namespace: obj.GetNamespace(), Name: h})
		case strings.HasSuffix(h, suffix):
			if parts := strings.Split(strings.TrimSuffix(h, suffix), "."); len(parts) == 2 {
				add(types.NamespacedName{Namespace: parts[1], Name: parts[0]})
			}
		}
	}
	return out
}

// istioView is what the router finds in the cluster for one Service.
type istioView struct {
	owned   *unstructured.Unstructured   // our VirtualService, if any
	users   []*unstructured.Unstructured // user VirtualServices for the host, oldest first
	optOut  *unstructured.Unstructured   // the first opted-out user VirtualService
	withOur []*unstructured.Unstructured // user VirtualServices carrying our routes
}

func (r *IstioRouter) view(ctx context.Context, svc Service) (*istioView, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(virtualServiceGVK.GroupVersion().WithKind("VirtualServiceList"))
	if err := r.c.List(ctx, list); err != nil {
		return nil, fmt.Errorf("istio: list VirtualServices for service %s: %w", svc, err)
	}
	fqdn := svc.FQDN(r.domain)
	v := &istioView{}
	for i := range list.Items {
		vs := &list.Items[i]
		if vs.GetLabels()[LabelManagedBy] == ManagedBy {
			if vs.GetNamespace() == svc.Namespace && vs.GetName() == IstioOwnedName(svc.Name) {
				v.owned = vs
			}
			continue
		}
		if !istioNamesHost(vs, svc, fqdn) {
			continue
		}
		v.users = append(v.users, vs)
		if slices.ContainsFunc(istioHTTP(vs), istioRouteOf(vs, svc.Name)) {
			v.withOur = append(v.withOur, vs)
		}
	}
	slices.SortStableFunc(v.users, func(a, b *unstructured.Unstructured) int {
		if c := a.GetCreationTimestamp().Compare(b.GetCreationTimestamp().Time); c != 0 {
			return c
		}
		return strings.Compare(a.GetNamespace()+"/"+a.GetName(), b.GetNamespace()+"/"+b.GetName())
	})
	for _, vs := range v.users {
		if vs.GetAnnotations()[AnnotationRouting] == RoutingDisabled {
			v.optOut = vs
			break
		}
	}
	return v, nil
}

// istioNamesHost reports whether a mesh-bound VirtualService routes the Service's host.
func istioNamesHost(vs *unstructured.Unstructured, svc Service, fqdn string) bool {
	gws, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "gateways")
	if len(gws) > 0 && !slices.Contains(gws, "mesh") {
		return false
	}
	hosts, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts")
	for _, h := range hosts {
		if h == fqdn || (h == svc.Name && vs.GetNamespace() == svc.Namespace) {
			return true
		}
	}
	return false
}

func istioHTTP(vs *unstructured.Unstructured) []any {
	routes, _, _ := unstructured.NestedSlice(vs.Object, "spec", "http")
	return routes
}

func istioRouteName(route any) string {
	m, _ := route.(map[string]any)
	n, _ := m["name"].(string)
	return n
}

func isOurIstioRoute(route any) bool {
	return strings.HasPrefix(istioRouteName(route), RouteNamePrefix)
}

// Apply converges the VirtualService configuration for rs.
func (r *IstioRouter) Apply(ctx context.Context, rs RouteSet) error {
	routes, err := rs.validate(r.domain)
	if err != nil {
		return err
	}
	routes = slices.DeleteFunc(routes, func(rt Route) bool { return rt.Destination.Kind == DestinationBaseline })
	if len(routes) == 0 || len(rs.Service.headerPorts()) == 0 {
		// Nothing to route by header (no key, or TCP ports only).
		return r.Remove(ctx, rs.Service)
	}
	var names []string
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		var err error
		names, err = r.apply(ctx, rs.Service, routes)
		return err
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.applied[rs.Service.Key()] = names
	r.mu.Unlock()
	return nil
}

func (r *IstioRouter) apply(ctx context.Context, svc Service, routes []Route) ([]string, error) {
	v, err := r.view(ctx, svc)
	if err != nil {
		return nil, err
	}
	if v.optOut != nil {
		r.log.Info("VirtualService opted out, removing our routes", "service", svc.String(), "virtualService", v.optOut.GetNamespace()+"/"+v.optOut.GetName())
		_, err := r.cleanup(ctx, svc, v, nil)
		return nil, err
	}
	if len(v.users) == 0 {
		desired, err := IstioOwnedVirtualService(svc, routes, r.ex, r.domain)
		if err != nil {
			return nil, err
		}
		if err := r.ensureOwned(ctx, v.owned, desired); err != nil {
			return nil, err
		}
		if _, err := r.cleanup(ctx, svc, v, v.owned); err != nil {
			return nil, err
		}
		return ourRouteNames(desired, svc.Name), nil
	}
	target := v.users[0]
	updated := target.DeepCopy()
	if err := InsertIstioRoutes(updated, svc, routes, r.ex, r.domain); err != nil {
		return nil, err
	}
	if !sameJSON(target.Object["spec"], updated.Object["spec"]) {
		if err := r.c.Update(ctx, updated); err != nil {
			return nil, fmt.Errorf("istio: insert routes into VirtualService %s/%s: %w", target.GetNamespace(), target.GetName(), err)
		}
	}
	if _, err := r.cleanup(ctx, svc, v, target); err != nil {
		return nil, err
	}
	return ourRouteNames(updated, svc.Name), nil
}

// cleanup removes our routes from every user VirtualService but keep and
// deletes our owned VirtualService unless it is keep. It returns the names of
// our routes in keep.
func (r *IstioRouter) cleanup(ctx context.Context, svc Service, v *istioView, keep *unstructured.Unstructured) ([]string, error) {
	for _, vs := range v.withOur {
		if keep != nil && vs.GetUID() == keep.GetUID() {
			continue
		}
		if err := r.stripUser(ctx, vs, svc); err != nil {
			return nil, err
		}
	}
	if v.owned != nil && (keep == nil || v.owned.GetUID() != keep.GetUID()) {
		if err := r.c.Delete(ctx, v.owned); err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("istio: delete VirtualService %s/%s: %w", v.owned.GetNamespace(), v.owned.GetName(), err)
		}
	}
	if keep == nil {
		return nil, nil
	}
	return ourRouteNames(keep, svc.Name), nil
}

// ourRouteNames returns the names of the keyed routes of svc in vs.
func ourRouteNames(vs *unstructured.Unstructured, svc string) []string {
	var names []string
	of := istioRouteOf(vs, svc)
	for _, rt := range istioHTTP(vs) {
		if of(rt) && istioRouteName(rt) != IstioDefaultRouteName {
			names = append(names, istioRouteName(rt))
		}
	}
	return names
}

func (r *IstioRouter) stripUser(ctx context.Context, vs *unstructured.Unstructured, svc Service) error {
	updated := vs.DeepCopy()
	RemoveIstioRoutes(updated, svc)
	if err := r.c.Update(ctx, updated); err != nil {
		return fmt.Errorf("istio: remove our routes from VirtualService %s/%s: %w", vs.GetNamespace(), vs.GetName(), err)
	}
	return nil
}

func (r *IstioRouter) ensureOwned(ctx context.Context, cur, desired *unstructured.Unstructured) error {
	if cur == nil {
		if err := r.c.Create(ctx, desired); err != nil {
			return fmt.Errorf("istio: create VirtualService %s/%s: %w", desired.GetNamespace(), desired.GetName(), err)
		}
		return nil
	}
	if sameJSON(cur.Object["spec"], desired.Object["spec"]) && sameJSON(cur.GetLabels(), desired.GetLabels()) {
		return nil
	}
	upd := cur.DeepCopy()
	upd.Object["spec"] = desired.Object["spec"]
	upd.SetLabels(desired.GetLabels())
	if err := r.c.Update(ctx, upd); err != nil {
		return fmt.Errorf("istio: update VirtualService %s/%s: %w", cur.GetNamespace(), cur.GetName(), err)
	}
	return nil
}

// Remove deletes our VirtualService and our routes from user VirtualServices.
func (r *IstioRouter) Remove(ctx context.Context, svc Service) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		v, err := r.view(ctx, svc)
		if err != nil {
			return err
		}
		_, err = r.cleanup(ctx, svc, v, nil)
		return err
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.applied, svc.Key())
	r.mu.Unlock()
	return nil
}

// Status reads the VirtualService back: our routes must be present (those of
// the last Apply), first in the http list, valid (RE2 regexes, lowercase
// header names, destinations), and Istio's status (when istiod writes one)
// must not report errors; Reconciled=False there is Pending. The status's
// observedGeneration is not compared with the VirtualService's generation.
func (r *IstioRouter) Status(ctx context.Context, svc Service) (Status, error) {
	v, err := r.view(ctx, svc)
	if err != nil {
		return Status{}, err
	}
	r.mu.Lock()
	want, applied := r.applied[svc.Key()]
	r.mu.Unlock()
	if v.optOut != nil {
		return Status{Reason: ReasonOptedOut, Message: fmt.Sprintf("VirtualService %s/%s has %s=%s", v.optOut.GetNamespace(), v.optOut.GetName(), AnnotationRouting, RoutingDisabled), ObservedGeneration: v.optOut.GetGeneration()}, nil
	}
	var target *unstructured.Unstructured
	switch {
	case len(v.users) > 0:
		target = v.users[0]
	case v.owned != nil:
		target = v.owned
	}
	if target == nil {
		if applied && len(want) > 0 {
			return Status{Reason: ReasonNotApplied, Message: "no VirtualService for " + svc.FQDN(r.domain)}, nil
		}
		return Status{Accepted: true, Reason: ReasonNoRoutes, Message: "no routes for the service"}, nil
	}
	if len(ourRouteNames(target, svc.Name)) == 0 && len(want) == 0 {
		return Status{Accepted: true, Reason: ReasonNoRoutes, Message: "no routes for the service", ObservedGeneration: target.GetGeneration()}, nil
	}
	st := Status{ObservedGeneration: target.GetGeneration()}
	id := target.GetNamespace() + "/" + target.GetName()
	if problems := validateIstioRoutes(istioHTTP(target)); len(problems) > 0 {
		st.Reason, st.Message = ReasonRejected, "VirtualService "+id+": "+strings.Join(problems, "; ")
		return st, nil
	}
	errs, propagating := istioStatusProblems(target)
	if len(errs) > 0 {
		st.Reason, st.Message = ReasonRejected, "VirtualService "+id+": Istio reports: "+strings.Join(errs, "; ")
		return st, nil
	}
	have := map[string]bool{}
	for _, rt := range istioHTTP(target) {
		have[istioRouteName(rt)] = true
	}
	var missing []string
	for _, n := range want {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		st.Reason, st.Message = ReasonNotApplied, "VirtualService "+id+" lacks routes "+strings.Join(missing, ", ")
		return st, nil
	}
	if len(propagating) > 0 {
		st.Reason, st.Message = ReasonPending, "VirtualService "+id+": Istio is still distributing it: "+strings.Join(propagating, "; ")
		return st, nil
	}
	st.Accepted, st.Reason = true, ReasonAccepted
	st.Message = "routes in VirtualService " + id
	if len(v.users) > 1 {
		st.Reason = ReasonConflict
		st.Message += fmt.Sprintf("; %d VirtualServices name the host, Istio uses one (routes are in the oldest)", len(v.users))
	}
	return st, nil
}

// validateIstioRoutes checks our routes in an http list: they come first, have
// unique names, valid header matches and a destination.
func validateIstioRoutes(http []any) []string {
	var problems []string
	seen := map[string]bool{}
	userSeen := false
	for i, rt := range http {
		name := istioRouteName(rt)
		if !isOurIstioRoute(rt) {
			userSeen = true
			continue
		}
		if userSeen {
			problems = append(problems, fmt.Sprintf("http[%d] %s comes after a user route", i, name))
		}
		if seen[name] {
			problems = append(problems, fmt.Sprintf("http[%d]: duplicate route name %s", i, name))
		}
		seen[name] = true
		m, _ := rt.(map[string]any)
		matches, _, _ := unstructured.NestedSlice(m, "match")
		for j, mt := range matches {
			mm, _ := mt.(map[string]any)
			hs, _, _ := unstructured.NestedMap(mm, "headers")
			for h, sm := range hs {
				if h != strings.ToLower(h) {
					problems = append(problems, fmt.Sprintf("http[%d].match[%d]: header %q must be lowercase", i, j, h))
				}
				smm, _ := sm.(map[string]any)
				if re, ok := smm["regex"].(string); ok {
					if _, err := regexp.Compile(re); err != nil {
						problems = append(problems, fmt.Sprintf("http[%d].match[%d].headers[%s]: regex: %v", i, j, h, err))
					}
				}
			}
		}
		dests, _, _ := unstructured.NestedSlice(m, "route")
		if len(dests) == 0 {
			problems = append(problems, fmt.Sprintf("http[%d] %s: no destination", i, name))
		}
		for j, d := range dests {
			dm, _ := d.(map[string]any)
			if h, _, _ := unstructured.NestedString(dm, "destination", "host"); h == "" {
				problems = append(problems, fmt.Sprintf("http[%d].route[%d]: destination host required", i, j))
			}
		}
	}
	return problems
}

// istioStatusProblems reads the VirtualService status written by istiod when
// its status reporting is on. errs are the error-level validation messages
// and the conditions with status False, except Reconciled; propagating holds
// the message of a Reconciled=False condition, which istiod sets while the
// configuration is still being distributed to the proxies (not a rejection).
func istioStatusProblems(vs *unstructured.Unstructured) (errs, propagating []string) {
	msgs, _, _ := unstructured.NestedSlice(vs.Object, "status", "validationMessages")
	for _, m := range msgs {
		mm, _ := m.(map[string]any)
		if lvl, _ := mm["level"].(string); lvl == "ERROR" {
			name, _, _ := unstructured.NestedString(mm, "type", "name")
			code, _, _ := unstructured.NestedString(mm, "type", "code")
			errs = append(errs, fmt.Sprintf("%s %s", code, name))
		}
	}
	conds, _, _ := unstructured.NestedSlice(vs.Object, "status", "conditions")
	for _, c := range conds {
		cm, _ := c.(map[string]any)
		if s, _ := cm["status"].(string); s == "False" {
			t, _ := cm["type"].(string)
			msg, _ := cm["message"].(string)
			if t == "Reconciled" {
				propagating = append(propagating, fmt.Sprintf("condition Reconciled=False: %s", msg))
				continue
			}
			errs = append(errs, fmt.Sprintf("condition %s=False: %s", t, msg))
		}
	}
	return errs, propagating
}

// IstioDefaultRouteName is the name of the catch-all route of an owned VirtualService.
const IstioDefaultRouteName = RouteNamePrefix + "default"

// IstioOwnedVirtualService renders the VirtualService IstioRouter owns for svc
// when the user has none: our keyed routes, then a default route to the baseline.
func IstioOwnedVirtualService(svc Service, routes []Route, ex *routingkey.Extractor, domain string) (*unstructured.Unstructured, error) {
	keyed, err := istioKeyedRoutes(svc, routes, ex, domain, nil, false)
	if err != nil {
		return nil, err
	}
	def := &istioapi.HTTPRoute{
		Name:  IstioDefaultRouteName,
		Route: []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{Host: svc.FQDN(domain)}}},
	}
	dm, err := protoToMap(def)
	if err != nil {
		return nil, err
	}
	vs := &unstructured.Unstructured{}
	vs.SetGroupVersionKind(virtualServiceGVK)
	vs.SetNamespace(svc.Namespace)
	vs.SetName(IstioOwnedName(svc.Name))
	vs.SetLabels(ownedLabels(BackendIstio, svc))
	vs.Object["spec"] = map[string]any{
		"hosts": []any{svc.FQDN(domain)},
		"http":  append(keyed, dm),
	}
	return vs, nil
}

// InsertIstioRoutes replaces our routes for svc in the user VirtualService vs
// (an unstructured object) with routes: first svc's previous routes are
// removed, then the new ones are inserted at the top, with timeout and
// retries copied from the user's default route of each port.
func InsertIstioRoutes(vs *unstructured.Unstructured, svc Service, routes []Route, ex *routingkey.Extractor, domain string) error {
	RemoveIstioRoutes(vs, svc)
	user := istioHTTP(vs)
	hosts, _, _ := unstructured.NestedStringSlice(vs.Object, "spec", "hosts")
	keyed, err := istioKeyedRoutes(svc, routes, ex, domain, user, len(hosts) > 1)
	if err != nil {
		return fmt.Errorf("VirtualService %s/%s: %w", vs.GetNamespace(), vs.GetName(), err)
	}
	if err := unstructured.SetNestedSlice(vs.Object, append(keyed, user...), "spec", "http"); err != nil {
		return fmt.Errorf("VirtualService %s/%s: set spec.http: %w", vs.GetNamespace(), vs.GetName(), err)
	}
	return nil
}

// RemoveIstioRoutes removes the routes of svc from vs; when only ours were
// there, spec.http is removed altogether, as it was before.
func RemoveIstioRoutes(vs *unstructured.Unstructured, svc Service) {
	http := istioHTTP(vs)
	if http == nil {
		return
	}
	kept := slices.DeleteFunc(http, istioRouteOf(vs, svc.Name))
	if len(kept) == 0 {
		unstructured.RemoveNestedField(vs.Object, "spec", "http")
		return
	}
	_ = unstructured.SetNestedSlice(vs.Object, kept, "spec", "http")
}

// istioKeyedRoutes renders one route per key and header port: a match per
// header form (and the port when the Service has several header ports, and
// the authority when the VirtualService has several hosts), to the destination
// port mapped from the baseline port. user is the user's http list, from which
// timeout and retries of the default route of each port are copied.
func istioKeyedRoutes(svc Service, routes []Route, ex *routingkey.Extractor, domain string, user []any, multiHost bool) ([]any, error) {
	ports := svc.headerPorts()
	if len(ports) == 0 {
		return nil, fmt.Errorf("service %s: no HTTP or gRPC port: %w", svc, ErrInvalidRouteSet)
	}
	multiPort := len(ports) > 1
	var authority *istioapi.StringMatch
	if multiHost {
		authority = &istioapi.StringMatch{MatchType: &istioapi.StringMatch_Regex{Regex: AuthorityRegex(svc, domain)}}
	}
	var out []any
	for _, rt := range routes {
		matchers := ex.HeaderMatchers(rt.RoutingKey)
		for _, p := range ports {
			hr := &istioapi.HTTPRoute{Name: IstioRouteName(svc.Name, rt.RoutingKey, p.Port, multiPort, multiHost)}
			for _, m := range matchers {
				sm := &istioapi.StringMatch{MatchType: &istioapi.StringMatch_Regex{Regex: m.Regex}}
				if m.Exact != "" {
					sm = &istioapi.StringMatch{MatchType: &istioapi.StringMatch_Exact{Exact: m.Exact}}
				}
				mr := &istioapi.HTTPMatchRequest{Headers: map[string]*istioapi.StringMatch{m.Header: sm}, Authority: authority}
				if multiPort {
					mr.Port = uint32(p.Port)
				}
				hr.Match = append(hr.Match, mr)
			}
			hr.Route = []*istioapi.HTTPRouteDestination{{Destination: &istioapi.Destination{
				Host: rt.Destination.Host,
				Port: &istioapi.PortSelector{Number: uint32(rt.Destination.Port(p.Port))},
			}}}
			m, err := protoToMap(hr)
			if err != nil {
				return nil, err
			}
			if def := istioDefaultRoute(user, p.Port); def != nil {
				for _, f := range []string{"timeout", "retries"} {
					if v, ok := def[f]; ok {
						m[f] = runtimeDeepCopy(v)
					}
				}
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// AuthorityRegex matches the Host/:authority forms of the Service's name
// (name, name.ns, name.ns.svc, the FQDN), with an optional port.
func AuthorityRegex(svc Service, domain string) string {
	if domain == "" {
		domain = DefaultClusterDomain
	}
	q := regexp.QuoteMeta
	return q(svc.Name) + `(?:\.` + q(svc.Namespace) + `(?:\.svc(?:\.` + q(domain) + `)?)?)?(?::[0-9]+)?`
}

// istioDefaultRoute returns the first user route that every request on port
// matches (no match, or a match with no condition but the port or a "/"
// prefix), or nil.
func istioDefaultRoute(user []any, port int32) map[string]any {
	for _, rt := range user {
		m, _ := rt.(map[string]any)
		if m == nil || isOurIstioRoute(rt) {
			continue
		}
		matches, _, _ := unstructured.NestedSlice(m, "match")
		if len(matches) == 0 {
			return m
		}
		for _, mt := range matches {
			if istioCatchAll(mt, port) {
				return m
			}
		}
	}
	return nil
}

func istioCatchAll(match any, port int32) bool {
	mm, _ := match.(map[string]any)
	for k, v := range mm {
		switch k {
		case "name", "ignoreUriCase", "statPrefix":
		case "port":
			if n, ok := asInt64(v); !ok || n != int64(port) {
				return false
			}
		case "uri":
			um, _ := v.(map[string]any)
			if p, _ := um["prefix"].(string); p != "/" || len(um) != 1 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

func asInt64(v any) (int64, bool) {
	switch n := v.(type) {
	case int64:
		return n, true
	case float64:
		return int64(n), float64(int64(n)) == n
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	}
	return 0, false
}

type jsonMarshaler interface{ MarshalJSON() ([]byte, error) }

// protoToMap renders an Istio API message as an unstructured map.
func protoToMap(m jsonMarshaler) (map[string]any, error) {
	b, err := m.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("render Istio route: %w", err)
	}
	return jsonToMap(b)
}

func jsonToMap(b []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return normalizeJSON(v).(map[string]any), nil
}

// normalizeJSON turns json.Number into int64 or float64, as the API server's decoder does.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeJSON(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeJSON(e)
		}
		return x
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	}
	return v
}

func runtimeDeepCopy(v any) any {
	b, _ := json.Marshal(v)
	var out any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	_ = dec.Decode(&out)
	return normalizeJSON(out)
}

// sameJSON compares two JSON-like values by their canonical encoding.
func sameJSON(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
