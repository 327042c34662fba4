package meshadapters

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The status tests write what a mesh controller writes (the status
// subresource of the routes or VirtualServices, in the real API server) and
// check what Status makes of it.

// routeCond is one condition of a route parent status.
func routeCond(typ string, status metav1.ConditionStatus, reason, message string, gen int64) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: message, ObservedGeneration: gen,
		LastTransitionTime: metav1.NewTime(time.Now().Truncate(time.Second))}
}

// accepted is the status of a route the mesh accepts at generation gen.
func accepted(gen int64) []metav1.Condition {
	return []metav1.Condition{
		routeCond("Accepted", metav1.ConditionTrue, "Accepted", "", gen),
		routeCond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "", gen),
	}
}

// parentStatusFunc returns the parent status a mesh controller writes for an
// owned route (kind "HTTPRoute" or "GRPCRoute"); ok false leaves the route's
// status as it is.
type parentStatusFunc func(kind, name string, gen int64, parent gatewayv1.ParentReference) (ps []gatewayv1.RouteParentStatus, ok bool)

// byController writes conds from controller for every route.
func byController(controller string, conds func(kind, name string, gen int64) []metav1.Condition) parentStatusFunc {
	return func(kind, name string, gen int64, parent gatewayv1.ParentReference) ([]gatewayv1.RouteParentStatus, bool) {
		c := conds(kind, name, gen)
		if c == nil {
			return nil, false
		}
		return []gatewayv1.RouteParentStatus{{ParentRef: parent, ControllerName: gatewayv1.GatewayController(controller), Conditions: c}}, true
	}
}

// writeParentStatus updates the status subresource of every HTTPRoute and
// GRPCRoute backend owns for svc, as the mesh's controller would.
func writeParentStatus(t *testing.T, ctx context.Context, backend string, svc Service, f parentStatusFunc) {
	t.Helper()
	var hl gatewayv1.HTTPRouteList
	if err := env.client.List(ctx, &hl, client.InNamespace(svc.Namespace), ownedSelector(backend, svc)); err != nil {
		t.Fatal(err)
	}
	for i := range hl.Items {
		r := &hl.Items[i]
		ps, ok := f("HTTPRoute", r.Name, r.Generation, r.Spec.ParentRefs[0])
		if !ok {
			continue
		}
		r.Status.Parents = ps
		if err := env.client.Status().Update(ctx, r); err != nil {
			t.Fatalf("write status of HTTPRoute %s: %v", r.Name, err)
		}
	}
	var gl gatewayv1.GRPCRouteList
	if err := env.client.List(ctx, &gl, client.InNamespace(svc.Namespace), ownedSelector(backend, svc)); err != nil {
		t.Fatal(err)
	}
	for i := range gl.Items {
		r := &gl.Items[i]
		ps, ok := f("GRPCRoute", r.Name, r.Generation, r.Spec.ParentRefs[0])
		if !ok {
			continue
		}
		r.Status.Parents = ps
		if err := env.client.Status().Update(ctx, r); err != nil {
			t.Fatalf("write status of GRPCRoute %s: %v", r.Name, err)
		}
	}
}

func wantStatus(t *testing.T, st Status, accepted bool, reason string, contains ...string) {
	t.Helper()
	if st.Accepted != accepted || st.Reason != reason {
		t.Errorf("status = %+v, want accepted=%v reason %s", st, accepted, reason)
	}
	for _, s := range contains {
		if !strings.Contains(st.Message, s) {
			t.Errorf("status message %q lacks %q", st.Message, s)
		}
	}
}

// TestStatusGAMMA: for gatewayapi and linkerd, Status reports what the mesh
// wrote in the routes' parent statuses: Accepted=False or ResolvedRefs=False
// at the current generation is a rejection (with the route, the reason and
// the message); a status observed at an older generation, accepting or
// rejecting, counts as neither (Pending); linkerd reads only the status of
// Linkerd's policy controller.
func TestStatusGAMMA(t *testing.T) {
	for _, tc := range []struct {
		backend, controller string
		newRouter           func(Deps) (Router, error)
	}{
		{BackendGatewayAPI, "istio.io/gateway-controller", NewGatewayAPIRouter},
		{BackendLinkerd, LinkerdControllerName, NewLinkerdRouter},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ns := newNamespace(t, ctx, "status-"+tc.backend)
			svc := shopService(ns)
			r, err := tc.newRouter(Deps{Client: env.client})
			if err != nil {
				t.Fatal(err)
			}
			rs := RouteSet{Service: svc, Routes: shopRoutes(ns, ns)[:2]}
			mustApply(t, ctx, r, rs)
			// Owned: a default and two keyed routes per header port.
			httpKeyed := "HTTPRoute " + ns + "/sandboxmesh.shop.8080.abc"
			grpcKeyed := "GRPCRoute " + ns + "/sandboxmesh.shop.9090.abcd"

			wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonPending, httpKeyed+": no parent status")

			write := func(conds func(kind, name string, gen int64) []metav1.Condition) {
				t.Helper()
				writeParentStatus(t, ctx, tc.backend, svc, byController(tc.controller, conds))
			}
			all := func(_, _ string, gen int64) []metav1.Condition { return accepted(gen) }
			write(all)
			st := mustStatus(t, ctx, r, svc)
			wantStatus(t, st, true, ReasonAccepted, "6 routes accepted")
			if st.ObservedGeneration != 1 {
				t.Errorf("ObservedGeneration = %d, want 1", st.ObservedGeneration)
			}

			t.Run("Accepted=False", func(t *testing.T) {
				write(func(kind, name string, gen int64) []metav1.Condition {
					if kind+" "+ns+"/"+name == httpKeyed {
						return []metav1.Condition{
							routeCond("Accepted", metav1.ConditionFalse, "UnsupportedValue", "header match type RegularExpression is not supported", gen),
							routeCond("ResolvedRefs", metav1.ConditionTrue, "ResolvedRefs", "", gen),
						}
					}
					return accepted(gen)
				})
				wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonRejected,
					httpKeyed+": Accepted=False UnsupportedValue: header match type RegularExpression is not supported")
			})

			t.Run("ResolvedRefs=False", func(t *testing.T) {
				write(func(kind, name string, gen int64) []metav1.Condition {
					if kind+" "+ns+"/"+name == grpcKeyed {
						return []metav1.Condition{
							routeCond("Accepted", metav1.ConditionTrue, "Accepted", "", gen),
							routeCond("ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", "Service shop-abcd not found", gen),
						}
					}
					return accepted(gen)
				})
				st := mustStatus(t, ctx, r, svc)
				wantStatus(t, st, false, ReasonRejected, grpcKeyed+": ResolvedRefs=False BackendNotFound: Service shop-abcd not found")
				if strings.Contains(st.Message, httpKeyed) {
					t.Errorf("status still reports the earlier rejection: %s", st.Message)
				}
			})

			t.Run("both at once", func(t *testing.T) {
				write(func(kind, name string, gen int64) []metav1.Condition {
					switch kind + " " + ns + "/" + name {
					case httpKeyed:
						return []metav1.Condition{routeCond("Accepted", metav1.ConditionFalse, "NoMatchingParent", "no port 8080", gen)}
					case grpcKeyed:
						return []metav1.Condition{
							routeCond("Accepted", metav1.ConditionTrue, "Accepted", "", gen),
							routeCond("ResolvedRefs", metav1.ConditionFalse, "InvalidKind", "bad kind", gen),
						}
					}
					return accepted(gen)
				})
				wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonRejected,
					httpKeyed+": Accepted=False NoMatchingParent: no port 8080", grpcKeyed+": ResolvedRefs=False InvalidKind: bad kind")
			})

			t.Run("stale", func(t *testing.T) {
				write(all)
				wantStatus(t, mustStatus(t, ctx, r, svc), true, ReasonAccepted)
				// A new destination port for abc on the HTTP port: Apply
				// updates that route (generation 2); the mesh has not seen it.
				moved := RouteSet{Service: svc, Routes: shopRoutes(ns, ns)[:2]}
				moved.Routes[0].Destination.Ports = map[int32]int32{8080: 81, 9090: 9091}
				mustApply(t, ctx, r, moved)
				var hr gatewayv1.HTTPRoute
				if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "sandboxmesh.shop.8080.abc"}, &hr); err != nil {
					t.Fatal(err)
				}
				if hr.Generation != 2 {
					t.Fatalf("generation of %s after the update = %d, want 2", hr.Name, hr.Generation)
				}
				wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonPending, httpKeyed+": not observed at generation 2")

				// A rejection observed at the old generation does not count either.
				write(func(kind, name string, gen int64) []metav1.Condition {
					if kind+" "+ns+"/"+name == httpKeyed {
						return []metav1.Condition{
							routeCond("Accepted", metav1.ConditionFalse, "UnsupportedValue", "old", gen-1),
							routeCond("ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", "old", gen-1),
						}
					}
					return accepted(gen)
				})
				wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonPending, httpKeyed+": not observed at generation 2")

				// ResolvedRefs=False from an older generation next to a current Accepted=True is not a rejection.
				write(func(kind, name string, gen int64) []metav1.Condition {
					if kind+" "+ns+"/"+name == httpKeyed {
						return []metav1.Condition{
							routeCond("Accepted", metav1.ConditionTrue, "Accepted", "", gen),
							routeCond("ResolvedRefs", metav1.ConditionFalse, "BackendNotFound", "old", gen-1),
						}
					}
					return accepted(gen)
				})
				st := mustStatus(t, ctx, r, svc)
				wantStatus(t, st, true, ReasonAccepted)
				if st.ObservedGeneration != 1 {
					t.Errorf("ObservedGeneration = %d, want 1 (the lowest accepted generation)", st.ObservedGeneration)
				}
			})

			t.Run("other controller", func(t *testing.T) {
				other := "example.com/other-mesh"
				writeParentStatus(t, ctx, tc.backend, svc, byController(other, func(_, _ string, gen int64) []metav1.Condition {
					return []metav1.Condition{routeCond("Accepted", metav1.ConditionFalse, "NotAllowedByParent", "not mine", gen)}
				}))
				st := mustStatus(t, ctx, r, svc)
				if tc.backend == BackendLinkerd {
					// Only linkerd.io/policy-controller speaks for Linkerd.
					wantStatus(t, st, false, ReasonPending, "no parent status")
				} else {
					// The mesh-neutral backend takes the Service parent status of any controller.
					wantStatus(t, st, false, ReasonRejected, "Accepted=False NotAllowedByParent: not mine")
				}
				// Both controllers report: linkerd reads Linkerd's, gatewayapi the first.
				writeParentStatus(t, ctx, tc.backend, svc, func(_, _ string, gen int64, parent gatewayv1.ParentReference) ([]gatewayv1.RouteParentStatus, bool) {
					return []gatewayv1.RouteParentStatus{
						{ParentRef: parent, ControllerName: gatewayv1.GatewayController(other),
							Conditions: []metav1.Condition{routeCond("Accepted", metav1.ConditionFalse, "NotAllowedByParent", "not mine", gen)}},
						{ParentRef: parent, ControllerName: gatewayv1.GatewayController(tc.controller), Conditions: accepted(gen)},
					}, true
				})
				st = mustStatus(t, ctx, r, svc)
				if tc.backend == BackendLinkerd {
					wantStatus(t, st, true, ReasonAccepted)
				} else {
					wantStatus(t, st, false, ReasonRejected, "not mine")
				}
			})

			if err := r.Remove(ctx, svc); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, mustStatus(t, ctx, r, svc), true, ReasonNoRoutes)
		})
	}
}

// TestStatusLinkerdServiceProfile: a ServiceProfile for the Service makes
// Linkerd ignore HTTPRoutes and GRPCRoutes, so linkerd's Status rejects even
// routes Linkerd's controller accepted; gatewayapi does not care.
func TestStatusLinkerdServiceProfile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "serviceprofiles.linkerd.io"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "linkerd.io", Scope: apiextensionsv1.NamespaceScoped,
			Names: apiextensionsv1.CustomResourceDefinitionNames{Plural: "serviceprofiles", Singular: "serviceprofile", Kind: "ServiceProfile", ListKind: "ServiceProfileList"},
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{Name: "v1alpha2", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: ptr(true)}}}},
		},
	}
	if err := env.client.Create(ctx, crd); err != nil {
		t.Fatalf("create ServiceProfile CRD: %v", err)
	}
	t.Cleanup(func() { _ = env.client.Delete(context.Background(), crd) })
	if err := waitFor(ctx, func() (bool, error) {
		if err := env.client.Get(ctx, client.ObjectKeyFromObject(crd), crd); err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	}); err != nil {
		t.Fatalf("ServiceProfile CRD not established: %v", err)
	}

	ns := newNamespace(t, ctx, "status-sp")
	svc := shopService(ns)
	rs := RouteSet{Service: svc, Routes: shopRoutes(ns, ns)[:1]}
	ld, err := NewLinkerdRouter(Deps{Client: env.client})
	if err != nil {
		t.Fatal(err)
	}
	acceptAll := func(backend string) {
		t.Helper()
		writeParentStatus(t, ctx, backend, svc, byController(LinkerdControllerName, func(_, _ string, gen int64) []metav1.Condition { return accepted(gen) }))
	}
	mustApply(t, ctx, ld, rs)
	acceptAll(BackendLinkerd)
	wantStatus(t, mustStatus(t, ctx, ld, svc), true, ReasonAccepted)

	sp := &unstructured.Unstructured{}
	sp.SetAPIVersion("linkerd.io/v1alpha2")
	sp.SetKind("ServiceProfile")
	sp.SetNamespace(ns)
	sp.SetName(svc.FQDN(""))
	sp.Object["spec"] = map[string]any{"routes": []any{map[string]any{"name": "GET /", "condition": map[string]any{"method": "GET", "pathRegex": "/"}}}}
	// The client learns the new kind from discovery; retry until it does.
	if err := waitFor(ctx, func() (bool, error) {
		err := env.client.Create(ctx, sp)
		if meta.IsNoMatchError(err) {
			return false, nil
		}
		return err == nil, err
	}); err != nil {
		t.Fatalf("create ServiceProfile: %v", err)
	}
	wantStatus(t, mustStatus(t, ctx, ld, svc), false, ReasonRejected, "ServiceProfile "+ns+"/"+svc.FQDN("")+" exists")
	if err := ld.Remove(ctx, svc); err != nil {
		t.Fatal(err)
	}

	// The mesh-neutral backend does not look for ServiceProfiles.
	gw, err := NewGatewayAPIRouter(Deps{Client: env.client})
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, ctx, gw, rs)
	acceptAll(BackendGatewayAPI)
	wantStatus(t, mustStatus(t, ctx, gw, svc), true, ReasonAccepted)
	if err := gw.Remove(ctx, svc); err != nil {
		t.Fatal(err)
	}

	// Without the ServiceProfile, linkerd's routes count again.
	if err := env.client.Delete(ctx, sp); err != nil {
		t.Fatal(err)
	}
	mustApply(t, ctx, ld, rs)
	acceptAll(BackendLinkerd)
	wantStatus(t, mustStatus(t, ctx, ld, svc), true, ReasonAccepted)
	if err := ld.Remove(ctx, svc); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls f every 100ms until it returns true or an error, or ctx ends.
func waitFor(ctx context.Context, f func() (bool, error)) error {
	for {
		ok, err := f()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting: %w", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// setIstioStatus writes the status subresource of a VirtualService as istiod
// does when its status reporting (and analysis) is on.
func setIstioStatus(t *testing.T, ctx context.Context, ns, name string, status map[string]any) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		vs := &unstructured.Unstructured{}
		vs.SetGroupVersionKind(virtualServiceGVK)
		if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, vs); err != nil {
			return err
		}
		if status == nil {
			delete(vs.Object, "status")
		} else {
			st := runtimeDeepCopy(status).(map[string]any)
			st["observedGeneration"] = vs.GetGeneration()
			vs.Object["status"] = st
		}
		return env.client.Status().Update(ctx, vs)
	})
	if err != nil {
		t.Fatalf("write status of VirtualService %s/%s: %v", ns, name, err)
	}
}

// TestStatusIstio: the istio backend's Status reads the VirtualService that
// carries our routes (ours or the user's): the routes of the last Apply must
// be there, first, and well-formed, and Istio's own status (written by istiod
// when status reporting is on) must have no ERROR-level validation message and
// no condition with status False but Reconciled, whose False means "still
// distributing" (Pending). Warnings do not reject.
func TestStatusIstio(t *testing.T) {
	for _, withUser := range []bool{false, true} {
		name := "owned VirtualService"
		if withUser {
			name = "user VirtualService"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			ns := newNamespace(t, ctx, "status-istio")
			svc := shopService(ns)
			vsName := IstioOwnedName(svc.Name)
			if withUser {
				if err := env.client.Create(ctx, userVirtualService(ns)); err != nil {
					t.Fatal(err)
				}
				vsName = "shop-user"
			}
			r, err := NewIstioRouter(Deps{Client: env.client})
			if err != nil {
				t.Fatal(err)
			}
			mustApply(t, ctx, r, RouteSet{Service: svc, Routes: shopRoutes(ns, ns)[:2]})
			id := "VirtualService " + ns + "/" + vsName
			wantStatus(t, mustStatus(t, ctx, r, svc), true, ReasonAccepted, "routes in "+id)

			warning := map[string]any{"level": "WARNING", "type": map[string]any{"code": "IST0118", "name": "PortNameIsNotUnderNamingConvention"}}
			setIstioStatus(t, ctx, ns, vsName, map[string]any{"validationMessages": []any{warning}})
			wantStatus(t, mustStatus(t, ctx, r, svc), true, ReasonAccepted)

			errMsg := map[string]any{"level": "ERROR", "type": map[string]any{"code": "IST0101", "name": "ReferencedResourceNotFound"}}
			setIstioStatus(t, ctx, ns, vsName, map[string]any{"validationMessages": []any{warning, errMsg}})
			st := mustStatus(t, ctx, r, svc)
			wantStatus(t, st, false, ReasonRejected, id+": Istio reports: IST0101 ReferencedResourceNotFound")
			if strings.Contains(st.Message, "IST0118") {
				t.Errorf("a warning is reported as a rejection: %s", st.Message)
			}
			vs := &unstructured.Unstructured{}
			vs.SetGroupVersionKind(virtualServiceGVK)
			if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: vsName}, vs); err != nil {
				t.Fatal(err)
			}
			if st.ObservedGeneration != vs.GetGeneration() {
				t.Errorf("ObservedGeneration = %d, want the VirtualService's generation %d", st.ObservedGeneration, vs.GetGeneration())
			}

			// PassedAnalysis=False: istiod's analyzers found a problem.
			setIstioStatus(t, ctx, ns, vsName, map[string]any{"conditions": []any{
				map[string]any{"type": "PassedAnalysis", "status": "False", "reason": "errorsFound", "message": "1 Error found"}}})
			wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonRejected, id+": Istio reports: condition PassedAnalysis=False: 1 Error found")

			// Reconciled=False: istiod is still distributing the configuration; not a rejection.
			setIstioStatus(t, ctx, ns, vsName, map[string]any{"conditions": []any{
				map[string]any{"type": "Reconciled", "status": "False", "reason": "stillPropagating", "message": "61/122 complete"}}})
			wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonPending, id+": Istio is still distributing it: condition Reconciled=False: 61/122 complete")

			setIstioStatus(t, ctx, ns, vsName, map[string]any{"conditions": []any{
				map[string]any{"type": "Reconciled", "status": "True", "reason": "Reconciled"}}})
			wantStatus(t, mustStatus(t, ctx, r, svc), true, ReasonAccepted)
			setIstioStatus(t, ctx, ns, vsName, nil)

			if withUser {
				// Someone moves a user route above ours: keyed requests on /v2
				// would miss the fork. Status rejects it; Apply repairs it.
				err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
					if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: vsName}, vs); err != nil {
						return err
					}
					http := istioHTTP(vs)
					var user int
					for i, rt := range http {
						if istioRouteName(rt) == "v2" {
							user = i
						}
					}
					reordered := append([]any{http[user]}, append(append([]any{}, http[:user]...), http[user+1:]...)...)
					if err := unstructured.SetNestedSlice(vs.Object, reordered, "spec", "http"); err != nil {
						return err
					}
					return env.client.Update(ctx, vs)
				})
				if err != nil {
					t.Fatal(err)
				}
				wantStatus(t, mustStatus(t, ctx, r, svc), false, ReasonRejected, id+": http[1] sandboxmesh-abc-8080 comes after a user route")
				mustApply(t, ctx, r, RouteSet{Service: svc, Routes: shopRoutes(ns, ns)[:2]})
				wantStatus(t, mustStatus(t, ctx, r, svc), true, ReasonAccepted)
			}

			if err := r.Remove(ctx, svc); err != nil {
				t.Fatal(err)
			}
			wantStatus(t, mustStatus(t, ctx, r, svc), true, ReasonNoRoutes)
			if !withUser {
				vs := &unstructured.Unstructured{}
				vs.SetGroupVersionKind(virtualServiceGVK)
				if err := env.client.Get(ctx, client.ObjectKey{Namespace: ns, Name: vsName}, vs); !apierrors.IsNotFound(err) {
					t.Errorf("owned VirtualService after Remove: %v", err)
				}
			}
		})
	}
}
