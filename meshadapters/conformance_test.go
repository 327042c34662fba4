package meshadapters

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// backendUnderTest is one backend in the conformance suite.
type backendUnderTest struct {
	name string
	// newRouter builds the backend on c (a wrapper of the envtest client).
	newRouter func(c client.Client) Router
	// userObjects are the user's own mesh objects for the Service (the "user-owned object" variant).
	userObjects func(ns string) []client.Object
	// resolve says where the cluster (or route server) sends req.
	resolve func(t *testing.T, ctx context.Context, r Router, svc Service, req request) (target, bool)
	// keyedOverridesUser: keyed requests go to the destination whatever the
	// user's routes say (Istio inserts at the top); otherwise keyed requests
	// follow the user's routes and only the baseline is replaced.
	keyedOverridesUser bool
	// drift changes the cluster as another writer would (GitOps re-apply, a deletion).
	drift func(t *testing.T, ctx context.Context, r Router, svc Service)
	// accept writes the parent status the mesh would write (Gateway API), or nil.
	accept func(t *testing.T, ctx context.Context, svc Service)
	// crashable: writes go through the client, so failures can be injected.
	crashable bool
}

func backends() []backendUnderTest {
	server := routeapi.NewServer(routeapi.ServerConfig{})
	devmesh := func(c client.Client) Router {
		r, err := NewDevmeshRouter(Deps{RouteServer: server})
		if err != nil {
			panic(err)
		}
		return r
	}
	istio := func(c client.Client) Router {
		r, err := NewIstioRouter(Deps{Client: c})
		if err != nil {
			panic(err)
		}
		return r
	}
	gw := func(c client.Client) Router {
		r, err := NewGatewayAPIRouter(Deps{Client: c})
		if err != nil {
			panic(err)
		}
		return r
	}
	ld := func(c client.Client) Router {
		r, err := NewLinkerdRouter(Deps{Client: c})
		if err != nil {
			panic(err)
		}
		return r
	}
	gammaUsers := func(ns string) []client.Object {
		return []client.Object{userHTTPRoute(ns), userGRPCRoute(ns)}
	}
	return []backendUnderTest{
		{name: BackendDevmesh, newRouter: devmesh, resolve: resolveDevmesh(server), keyedOverridesUser: true,
			drift: func(t *testing.T, ctx context.Context, r Router, svc Service) {
				if _, err := server.PublishWorkload(ctx, routeapi.WorkloadRef{Namespace: svc.Namespace, Name: "shop"}, nil); err != nil {
					t.Fatal(err)
				}
			}},
		{name: BackendIstio, newRouter: istio, resolve: resolveIstio, keyedOverridesUser: true, crashable: true,
			userObjects: func(ns string) []client.Object { return []client.Object{userVirtualService(ns)} },
			drift:       driftIstio},
		{name: BackendGatewayAPI, newRouter: gw, resolve: resolveGAMMA(envoySemantics), crashable: true,
			userObjects: gammaUsers, drift: driftGAMMA(BackendGatewayAPI), accept: acceptGAMMA(BackendGatewayAPI, "istio.io/gateway-controller")},
		{name: BackendLinkerd, newRouter: ld, resolve: resolveGAMMA(linkerdSemantics), crashable: true,
			userObjects: gammaUsers, drift: driftGAMMA(BackendLinkerd), accept: acceptGAMMA(BackendLinkerd, LinkerdControllerName)},
	}
}

var nsCounter atomic.Int64

func newNamespace(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%d", prefix, nsCounter.Add(1))
	if err := env.client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	return name
}

// snapshot captures labels, annotations and spec of every mesh object in the namespaces.
func snapshot(t *testing.T, ctx context.Context, namespaces ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, ns := range namespaces {
		for _, kind := range []string{"VirtualService", "HTTPRoute", "GRPCRoute", "ReferenceGrant"} {
			l := &unstructured.UnstructuredList{}
			gv := "gateway.networking.k8s.io/v1"
			if kind == "VirtualService" {
				gv = "networking.istio.io/v1"
			}
			l.SetAPIVersion(gv)
			l.SetKind(kind + "List")
			if err := env.client.List(ctx, l, client.InNamespace(ns)); err != nil {
				t.Fatalf("list %s: %v", kind, err)
			}
			for _, o := range l.Items {
				b, _ := json.Marshal(map[string]any{"labels": o.GetLabels(), "annotations": o.GetAnnotations(), "spec": o.Object["spec"]})
				out[kind+"/"+ns+"/"+o.GetName()] = string(b)
			}
		}
	}
	return out
}

func diffSnapshots(before, after map[string]string) string {
	var out []string
	for k, v := range before {
		if w, ok := after[k]; !ok {
			out = append(out, "missing "+k)
		} else if w != v {
			out = append(out, fmt.Sprintf("changed %s:\n  before %s\n  after  %s", k, v, w))
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			out = append(out, "left behind "+k)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// countingClient counts writes and fails the failAt-th one (0: never).
type countingClient struct {
	client.WithWatch
	writes atomic.Int64
}

var errInjected = errors.New("injected write failure (simulated crash)")

func newCountingClient(failAt int64) *countingClient {
	cc := &countingClient{}
	write := func() error {
		if n := cc.writes.Add(1); failAt > 0 && n == failAt {
			return errInjected
		}
		return nil
	}
	cc.WithWatch = interceptor.NewClient(env.client, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if err := write(); err != nil {
				return err
			}
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if err := write(); err != nil {
				return err
			}
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
			if err := write(); err != nil {
				return err
			}
			return c.Patch(ctx, obj, patch, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if err := write(); err != nil {
				return err
			}
			return c.Delete(ctx, obj, opts...)
		},
	})
	return cc
}

// requestsFor are the requests checked after every step: every routed key
// and an unknown key and no key, on both header ports, on paths the user's
// routes treat differently.
func requestsFor(rs RouteSet) []struct {
	req request
	key string
} {
	keys := []string{"", "zzz"}
	for _, r := range rs.Routes {
		keys = append(keys, r.RoutingKey)
	}
	var out []struct {
		req request
		key string
	}
	for _, k := range keys {
		var hs [][2]string
		if k != "" {
			hs = h("baggage", "userId=1,sm-routing-key="+k+";p=1")
		}
		for _, base := range []request{
			{path: "/items", method: "GET", port: 8080, host: "shop"},
			{path: "/v2/items", method: "GET", port: 8080, host: "shop"},
			{path: "/api/items", method: "GET", port: 8080, host: "shop"},
			{grpc: "/shop.v1.Cart/Get", path: "/shop.v1.Cart/Get", method: "POST", port: 9090, host: "shop"},
			{grpc: "/shop.v1.Admin/Purge", path: "/shop.v1.Admin/Purge", method: "POST", port: 9090, host: "shop"},
		} {
			base.headers = hs
			out = append(out, struct {
				req request
				key string
			}{base, k})
		}
	}
	return out
}

// checkRouting checks where every request lands against the route set. user
// is where each request lands with no SandboxMesh routes at all.
func checkRouting(t *testing.T, ctx context.Context, b backendUnderTest, r Router, rs RouteSet, user func(request) target) {
	t.Helper()
	for _, c := range requestsFor(rs) {
		got, ok := b.resolve(t, ctx, r, rs.Service, c.req)
		if !ok {
			t.Errorf("%s %s%s key %q: no route matched (the request would fail)", b.name, c.req.path, c.req.grpc, c.key)
			continue
		}
		base := user(c.req)
		want := base
		if dest := expectTarget(rs.Service, rs.Routes, c.key, c.req.port); dest.host != rs.Service.FQDN("") {
			switch {
			case b.keyedOverridesUser:
				want = dest
			case base.host == rs.Service.FQDN(""):
				want = expectTarget(rs.Service, rs.Routes, c.key, base.port)
			}
		}
		if got != want {
			t.Errorf("%s %s%s port %d key %q: landed on %s, want %s", b.name, c.req.path, c.req.grpc, c.req.port, c.key, got, want)
		}
	}
}

// userTargets evaluates the user's objects alone (before SandboxMesh touched anything).
func userTargets(t *testing.T, b backendUnderTest, svc Service, objs []client.Object) func(request) target {
	return func(req request) target {
		base := target{svc.FQDN(""), req.port}
		for _, o := range objs {
			switch u := o.(type) {
			case *unstructured.Unstructured:
				if got, _, ok := evalIstio(u, req, req.port); ok {
					got.host = qualify(got.host, svc.Namespace)
					return got
				}
			}
		}
		var hr []gatewayv1.HTTPRoute
		var gr []gatewayv1.GRPCRoute
		for _, o := range objs {
			switch u := o.(type) {
			case *gatewayv1.HTTPRoute:
				hr = append(hr, *u)
			case *gatewayv1.GRPCRoute:
				gr = append(gr, *u)
			}
		}
		if got, _, ok, attached := evalGAMMA(envoySemantics, svc, hr, gr, req); attached && ok {
			return got
		}
		return base
	}
}

func resolveDevmesh(server *routeapi.Server) func(t *testing.T, ctx context.Context, r Router, svc Service, req request) (target, bool) {
	return func(t *testing.T, ctx context.Context, r Router, svc Service, req request) (target, bool) {
		hdr := http.Header{}
		for _, kv := range req.headers {
			hdr.Add(kv[0], kv[1])
		}
		base := target{svc.FQDN(""), req.port}
		key, ok := routingkey.Default.Extract(hdr)
		if !ok {
			return base, true
		}
		var tp int32
		for _, p := range svc.Ports {
			if p.Port == req.port {
				tp = p.targetPort()
			}
		}
		tg, found := server.Table().Lookup(routeapi.WorkloadRef{Namespace: svc.Namespace, Name: "shop"}, key, tp)
		if !found || tg.Destination.Kind == routeapi.DestinationBaseline {
			return base, true
		}
		return target{tg.Destination.Host, tg.Port}, true
	}
}

func resolveIstio(t *testing.T, ctx context.Context, r Router, svc Service, req request) (target, bool) {
	v, err := r.(*IstioRouter).view(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	vs := v.owned
	if len(v.users) > 0 {
		vs = v.users[0]
	}
	if vs == nil {
		return target{svc.FQDN(""), req.port}, true
	}
	got, _, ok := evalIstio(vs, req, req.port)
	got.host = qualify(got.host, svc.Namespace)
	return got, ok
}

func resolveGAMMA(sem headerSemantics) func(t *testing.T, ctx context.Context, r Router, svc Service, req request) (target, bool) {
	return func(t *testing.T, ctx context.Context, r Router, svc Service, req request) (target, bool) {
		var hl gatewayv1.HTTPRouteList
		var gl gatewayv1.GRPCRouteList
		if err := env.client.List(ctx, &hl, client.InNamespace(svc.Namespace)); err != nil {
			t.Fatal(err)
		}
		if err := env.client.List(ctx, &gl, client.InNamespace(svc.Namespace)); err != nil {
			t.Fatal(err)
		}
		got, _, ok, attached := evalGAMMA(sem, svc, hl.Items, gl.Items, req)
		if !attached {
			return target{svc.FQDN(""), req.port}, true
		}
		return got, ok
	}
}

func driftIstio(t *testing.T, ctx context.Context, r Router, svc Service) {
	v, err := r.(*IstioRouter).view(ctx, svc)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.users) > 0 {
		// A GitOps tool re-applies the user's VirtualService as in git.
		vs := v.users[0]
		vs.Object["spec"] = userVirtualService(svc.Namespace).Object["spec"]
		if err := env.client.Update(ctx, vs); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := env.client.Delete(ctx, v.owned); err != nil {
		t.Fatal(err)
	}
}

func driftGAMMA(backend string) func(t *testing.T, ctx context.Context, r Router, svc Service) {
	return func(t *testing.T, ctx context.Context, r Router, svc Service) {
		var hl gatewayv1.HTTPRouteList
		if err := env.client.List(ctx, &hl, client.InNamespace(svc.Namespace), ownedSelector(backend, svc)); err != nil {
			t.Fatal(err)
		}
		if len(hl.Items) < 2 {
			t.Fatalf("expected at least 2 owned HTTPRoutes, got %d", len(hl.Items))
		}
		if err := env.client.Delete(ctx, &hl.Items[0]); err != nil {
			t.Fatal(err)
		}
		hl.Items[1].Spec.Rules = hl.Items[1].Spec.Rules[:1]
		hl.Items[1].Spec.Rules[0].BackendRefs[0].Name = "elsewhere"
		if err := env.client.Update(ctx, &hl.Items[1]); err != nil {
			t.Fatal(err)
		}
	}
}

func acceptGAMMA(backend, controller string) func(t *testing.T, ctx context.Context, svc Service) {
	return func(t *testing.T, ctx context.Context, svc Service) {
		cond := func(gen int64) []metav1.Condition {
			now := metav1.NewTime(time.Now())
			return []metav1.Condition{
				{Type: "Accepted", Status: metav1.ConditionTrue, Reason: "Accepted", ObservedGeneration: gen, LastTransitionTime: now},
				{Type: "ResolvedRefs", Status: metav1.ConditionTrue, Reason: "ResolvedRefs", ObservedGeneration: gen, LastTransitionTime: now},
			}
		}
		var hl gatewayv1.HTTPRouteList
		if err := env.client.List(ctx, &hl, client.InNamespace(svc.Namespace), ownedSelector(backend, svc)); err != nil {
			t.Fatal(err)
		}
		for i := range hl.Items {
			r := &hl.Items[i]
			r.Status.Parents = []gatewayv1.RouteParentStatus{{ParentRef: r.Spec.ParentRefs[0], ControllerName: gatewayv1.GatewayController(controller), Conditions: cond(r.Generation)}}
			if err := env.client.Status().Update(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		var gl gatewayv1.GRPCRouteList
		if err := env.client.List(ctx, &gl, client.InNamespace(svc.Namespace), ownedSelector(backend, svc)); err != nil {
			t.Fatal(err)
		}
		for i := range gl.Items {
			r := &gl.Items[i]
			r.Status.Parents = []gatewayv1.RouteParentStatus{{ParentRef: r.Spec.ParentRefs[0], ControllerName: gatewayv1.GatewayController(controller), Conditions: cond(r.Generation)}}
			if err := env.client.Status().Update(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func mustApply(t *testing.T, ctx context.Context, r Router, rs RouteSet) {
	t.Helper()
	if err := r.Apply(ctx, rs); err != nil {
		t.Fatalf("Apply (%d routes): %v", len(rs.Routes), err)
	}
}

func mustStatus(t *testing.T, ctx context.Context, r Router, svc Service) Status {
	t.Helper()
	st, err := r.Status(ctx, svc)
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	return st
}

// TestConformance runs every backend through the same life cycle against the
// real API server, with and without a user-owned mesh object for the Service.
func TestConformance(t *testing.T) {
	for _, b := range backends() {
		for _, withUser := range []bool{false, true} {
			if withUser && b.userObjects == nil {
				continue
			}
			name := b.name + "/no user object"
			if withUser {
				name = b.name + "/user object"
			}
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				defer cancel()
				ns := newNamespace(t, ctx, "conf-"+b.name)
				tunnels := newNamespace(t, ctx, "tunnels-"+b.name)
				svc := shopService(ns)
				var users []client.Object
				if withUser {
					users = b.userObjects(ns)
					for _, o := range users {
						if err := env.client.Create(ctx, o.DeepCopyObject().(client.Object)); err != nil {
							t.Fatalf("create user object: %v", err)
						}
					}
				}
				user := userTargets(t, b, svc, users)
				before := snapshot(t, ctx, ns, tunnels)
				r := b.newRouter(env.client)
				all := shopRoutes(ns, tunnels)
				rs1 := RouteSet{Service: svc, Routes: all[:1]}
				rs2 := RouteSet{Service: svc, Routes: all}

				// Add one sandbox, then several keys and a local tunnel in another namespace.
				mustApply(t, ctx, r, rs1)
				checkRouting(t, ctx, b, r, rs1, user)
				mustApply(t, ctx, r, rs2)
				checkRouting(t, ctx, b, r, rs2, user)

				// Idempotent: a second Apply writes nothing.
				if b.crashable {
					cc := newCountingClient(0)
					mustApply(t, ctx, b.newRouter(cc), rs2)
					if n := cc.writes.Load(); n != 0 {
						t.Errorf("second Apply wrote %d times, want 0", n)
					}
				}
				mustApply(t, ctx, r, rs2)

				// Status: read back from the cluster.
				st := mustStatus(t, ctx, r, svc)
				if b.accept != nil {
					if st.Accepted || st.Reason != ReasonPending {
						t.Errorf("status before the mesh reported: %+v, want Pending", st)
					}
					b.accept(t, ctx, svc)
					st = mustStatus(t, ctx, r, svc)
				}
				if !st.Accepted {
					t.Errorf("status after Apply: %+v", st)
				}

				// Watcher maps the user's objects to the Service.
				if w, ok := r.(Watcher); ok {
					for _, o := range users {
						if got := w.ServicesFor(o); !slices.Contains(got, svc.Key()) {
							t.Errorf("ServicesFor(%s) = %v, want %s", o.GetName(), got, svc.Key())
						}
					}
				}

				// Drift (GitOps re-apply, deletion by hand): Status notices, Apply repairs.
				b.drift(t, ctx, r, svc)
				if st := mustStatus(t, ctx, r, svc); st.Accepted {
					t.Errorf("status after drift: %+v, want not accepted", st)
				}
				mustApply(t, ctx, r, rs2)
				checkRouting(t, ctx, b, r, rs2, user)

				// Crash at every write of rs1 -> rs2 and of Remove, then rerun.
				if b.crashable {
					for _, step := range []struct {
						name string
						from RouteSet
						run  func(r Router) error
					}{
						{"apply", rs1, func(r Router) error { return r.Apply(ctx, rs2) }},
						{"remove", rs2, func(r Router) error { return r.Remove(ctx, svc) }},
						{"shrink", rs2, func(r Router) error { return r.Apply(ctx, rs1) }},
					} {
						for n := int64(1); n < 60; n++ {
							mustApply(t, ctx, r, step.from)
							cc := newCountingClient(n)
							err := step.run(b.newRouter(cc))
							if err == nil {
								break // fewer than n writes: nothing left to interrupt
							}
							if !errors.Is(err, errInjected) {
								t.Fatalf("%s interrupted at write %d: unexpected error %v", step.name, n, err)
							}
							if err := step.run(b.newRouter(env.client)); err != nil {
								t.Fatalf("%s rerun after a crash at write %d: %v", step.name, n, err)
							}
							switch step.name {
							case "apply":
								checkRouting(t, ctx, b, r, rs2, user)
							case "shrink":
								checkRouting(t, ctx, b, r, rs1, user)
							case "remove":
								if d := diffSnapshots(before, snapshot(t, ctx, ns, tunnels)); d != "" {
									t.Fatalf("remove rerun after a crash at write %d left the cluster changed:\n%s", n, d)
								}
							}
						}
					}
				} else {
					cctx, ccancel := context.WithCancel(ctx)
					ccancel()
					if err := r.Apply(cctx, rs2); err == nil {
						t.Errorf("Apply with a cancelled context succeeded")
					}
					mustApply(t, ctx, r, rs2)
					checkRouting(t, ctx, b, r, rs2, user)
				}

				// Cleanup leaves the cluster exactly as before; so does an empty route set.
				mustApply(t, ctx, r, rs2)
				if err := r.Remove(ctx, svc); err != nil {
					t.Fatalf("Remove: %v", err)
				}
				if d := diffSnapshots(before, snapshot(t, ctx, ns, tunnels)); d != "" {
					t.Errorf("Remove left the cluster changed:\n%s", d)
				}
				if st := mustStatus(t, ctx, r, svc); !st.Accepted || st.Reason != ReasonNoRoutes {
					t.Errorf("status after Remove: %+v", st)
				}
				mustApply(t, ctx, r, rs2)
				mustApply(t, ctx, r, RouteSet{Service: svc})
				if d := diffSnapshots(before, snapshot(t, ctx, ns, tunnels)); d != "" {
					t.Errorf("Apply of an empty route set left the cluster changed:\n%s", d)
				}
				if b.name == BackendDevmesh {
					if n := server(r).Table().Workload(routeapi.WorkloadRef{Namespace: ns, Name: "shop"}).Len(); n != 0 {
						t.Errorf("route server keeps %d routes after Remove", n)
					}
				}
			})
		}
	}
}

func server(r Router) *routeapi.Server { return r.(*DevmeshRouter).server }

// TestConformanceIstioOptOut: an annotated user VirtualService is left alone
// and our routes leave it.
func TestConformanceIstioOptOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := newNamespace(t, ctx, "optout")
	svc := shopService(ns)
	vs := userVirtualService(ns)
	if err := env.client.Create(ctx, vs); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, ctx, ns)
	r, _ := NewIstioRouter(Deps{Client: env.client})
	rs := RouteSet{Service: svc, Routes: shopRoutes(ns, ns)[:2]}
	mustApply(t, ctx, r, rs)
	if err := env.client.Get(ctx, client.ObjectKeyFromObject(vs), vs); err != nil {
		t.Fatal(err)
	}
	vs.SetAnnotations(map[string]string{AnnotationRouting: RoutingDisabled})
	if err := env.client.Update(ctx, vs); err != nil {
		t.Fatal(err)
	}
	mustApply(t, ctx, r, rs)
	if st := mustStatus(t, ctx, r, svc); st.Accepted || st.Reason != ReasonOptedOut {
		t.Errorf("status: %+v, want OptedOut", st)
	}
	after := snapshot(t, ctx, ns)
	want := userVirtualService(ns)
	want.SetAnnotations(map[string]string{AnnotationRouting: RoutingDisabled})
	b, _ := json.Marshal(map[string]any{"labels": want.GetLabels(), "annotations": want.GetAnnotations(), "spec": want.Object["spec"]})
	before["VirtualService/"+ns+"/shop-user"] = string(b)
	if d := diffSnapshots(before, after); d != "" {
		t.Errorf("opted-out VirtualService changed or objects created:\n%s", d)
	}
}

// TestConformanceGAMMALimits creates the sharded routes derived from a user
// route at the CRD limits: the API server (CEL rules included) must accept
// every one of them.
func TestConformanceGAMMALimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := newNamespace(t, ctx, "limits")
	svc := shopService(ns)
	if err := env.client.Create(ctx, bigUserRoute(ns)); err != nil {
		t.Fatalf("create user route at the limits: %v", err)
	}
	before := snapshot(t, ctx, ns)
	r, err := NewGatewayAPIRouter(Deps{Client: env.client, Extractor: customExtractor()})
	if err != nil {
		t.Fatal(err)
	}
	rs := RouteSet{Service: svc, Routes: withoutBaseline(shopRoutes(ns, ns))}
	mustApply(t, ctx, r, rs)
	var hl gatewayv1.HTTPRouteList
	if err := env.client.List(ctx, &hl, client.InNamespace(ns), ownedSelector(BackendGatewayAPI, svc)); err != nil {
		t.Fatal(err)
	}
	if len(hl.Items) != 3*9 {
		t.Errorf("%d owned HTTPRoutes, want 27 (3 keys x 9 full routes)", len(hl.Items))
	}
	if err := r.Remove(ctx, svc); err != nil {
		t.Fatal(err)
	}
	if d := diffSnapshots(before, snapshot(t, ctx, ns)); d != "" {
		t.Errorf("Remove left the cluster changed:\n%s", d)
	}
}

// TestConformanceRejectsBadRouteSets: bad input is an error with the field path, never a write.
func TestConformanceRejectsBadRouteSets(t *testing.T) {
	ctx := context.Background()
	svc := shopService("bad")
	for _, tc := range []struct {
		name  string
		rs    RouteSet
		field string
	}{
		{"no namespace", RouteSet{Service: Service{Name: "x"}}, "service.namespace"},
		{"bad key", RouteSet{Service: svc, Routes: []Route{{RoutingKey: "Bad_Key", Destination: Destination{Kind: DestinationFork, Service: "x"}}}}, "routes[0].routingKey"},
		{"duplicate key", RouteSet{Service: svc, Routes: []Route{
			{RoutingKey: "k1", Destination: Destination{Kind: DestinationFork, Service: "x"}},
			{RoutingKey: "k1", Destination: Destination{Kind: DestinationFork, Service: "y"}}}}, "routes[1].routingKey"},
		{"fork without service", RouteSet{Service: svc, Routes: []Route{{RoutingKey: "k1", Destination: Destination{Kind: DestinationFork}}}}, "routes[0].destination.service"},
		{"unknown kind", RouteSet{Service: svc, Routes: []Route{{RoutingKey: "k1", Destination: Destination{Kind: "Elsewhere"}}}}, "routes[0].destination.kind"},
		{"unknown port", RouteSet{Service: svc, Routes: []Route{{RoutingKey: "k1", Destination: Destination{Kind: DestinationFork, Service: "x", Ports: map[int32]int32{1: 2}}}}}, "routes[0].destination.ports"},
	} {
		for _, b := range backends() {
			t.Run(tc.name+"/"+b.name, func(t *testing.T) {
				cc := newCountingClient(0)
				err := b.newRouter(cc).Apply(ctx, tc.rs)
				if !errors.Is(err, ErrInvalidRouteSet) || !strings.Contains(err.Error(), tc.field) {
					t.Errorf("Apply = %v, want ErrInvalidRouteSet at %s", err, tc.field)
				}
				if n := cc.writes.Load(); n != 0 {
					t.Errorf("%d writes for an invalid route set", n)
				}
			})
		}
	}
}

// ensure unused imports stay referenced when the suite changes.
var (
	_ = apierrors.IsNotFound
	_ = types.NamespacedName{}
)

// TestConformanceUserObjectAppears: a user object created after our routes
// takes them over (Istio: our routes move into the user's VirtualService and
// ours is deleted; Gateway API: our default route gives way to routes
// mirroring the user's), and its deletion brings ours back.
func TestConformanceUserObjectAppears(t *testing.T) {
	for _, b := range backends() {
		if b.userObjects == nil {
			continue
		}
		t.Run(b.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ns := newNamespace(t, ctx, "appears-"+b.name)
			svc := shopService(ns)
			rs := RouteSet{Service: svc, Routes: shopRoutes(ns, ns)[:2]}
			r := b.newRouter(env.client)
			before := snapshot(t, ctx, ns)
			mustApply(t, ctx, r, rs)
			users := b.userObjects(ns)
			for _, o := range users {
				if err := env.client.Create(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			withUsers := snapshot(t, ctx, ns)
			for k, v := range withUsers {
				if strings.Contains(v, `"`+LabelManagedBy+`":"`+ManagedBy+`"`) {
					delete(withUsers, k) // ours, from before the user objects existed
				}
			}
			mustApply(t, ctx, r, rs)
			checkRouting(t, ctx, b, r, rs, userTargets(t, b, svc, users))
			if b.name == BackendIstio {
				v, err := r.(*IstioRouter).view(ctx, svc)
				if err != nil {
					t.Fatal(err)
				}
				if v.owned != nil || len(ourRouteNames(v.users[0], svc.Name)) != 4 {
					t.Errorf("owned VirtualService left (%v) or routes not moved (%v)", v.owned != nil, ourRouteNames(v.users[0], svc.Name))
				}
			}
			if err := r.Remove(ctx, svc); err != nil {
				t.Fatal(err)
			}
			if d := diffSnapshots(withUsers, snapshot(t, ctx, ns)); d != "" {
				t.Errorf("Remove with user objects:\n%s", d)
			}
			mustApply(t, ctx, r, rs)
			for _, o := range users {
				if err := env.client.Delete(ctx, o); err != nil {
					t.Fatal(err)
				}
			}
			mustApply(t, ctx, r, rs)
			checkRouting(t, ctx, b, r, rs, userTargets(t, b, svc, nil))
			if err := r.Remove(ctx, svc); err != nil {
				t.Fatal(err)
			}
			if d := diffSnapshots(before, snapshot(t, ctx, ns)); d != "" {
				t.Errorf("Remove:\n%s", d)
			}
		})
	}
}

func TestIstioServicesFor(t *testing.T) {
	r, _ := NewIstioRouter(Deps{Client: env.client})
	w := r.(Watcher)
	typed := &istionetworkingv1.VirtualService{}
	typed.Namespace, typed.Name = "a", "vs"
	typed.Spec.Hosts = []string{"shop", "cart.b.svc.cluster.local", "*.c.svc.cluster.local", "example.com", "x.y"}
	got := w.ServicesFor(typed)
	want := []types.NamespacedName{{Namespace: "a", Name: "shop"}, {Namespace: "b", Name: "cart"}}
	if !slices.Equal(got, want) {
		t.Errorf("ServicesFor = %v, want %v", got, want)
	}
	owned := &istionetworkingv1.VirtualService{}
	owned.Namespace, owned.Name = "a", "sandboxmesh-shop"
	owned.Labels = ownedLabels(BackendIstio, Service{Namespace: "a", Name: "shop"})
	if got := w.ServicesFor(owned); !slices.Equal(got, want[:1]) {
		t.Errorf("ServicesFor(owned) = %v", got)
	}
	if len(w.WatchedObjects()) != 1 {
		t.Errorf("WatchedObjects = %v", w.WatchedObjects())
	}
}
