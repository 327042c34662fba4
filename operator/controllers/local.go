package controllers

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/local"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/operator/routing"
	"github.com/sandboxmesh/sandboxmesh/operator/status"
)

// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch;create;update;patch;delete

// heartbeatEvery is how often a connected local workload's status.local[].tunnel.lastHeartbeat is refreshed.
const heartbeatEvery = time.Minute

// reconcileLocals gives every local workload of sb whose machine is connected its listeners and its Service
// (operator/local), before the routes are synced (the routing Engine routes a local workload only while its
// listeners are up), and releases the listeners of the others; it returns the Services to keep. Without a
// local gateway (r.Local nil) every local workload is LocalNotConnected.
func (r *SandboxReconciler) reconcileLocals(ctx context.Context, sb *smv1.Sandbox, fp *routing.Footprint, obs *observed) (map[string]bool, error) {
	keepSvc := map[string]bool{}
	sbKey := sb.Namespace + "/" + sb.Name
	keep := map[local.Key]bool{}
	prev := map[string]smv1.LocalStatus{}
	for _, s := range sb.Status.Local {
		prev[s.Name] = s
	}
	if _, errs := sb.Spec.ResolveOverrides(); len(errs) > 0 {
		for _, e := range errs { // blocking: the user must mend the spec (the control plane refuses these)
			obs.problem(status.InvalidCustomization, "%v", e)
		}
	}
	locals := localsOf(sb)
	for i := range locals {
		l := &locals[i]
		st := smv1.LocalStatus{Name: l.Name}
		switch {
		case r.Local == nil:
			obs.problem(status.LocalNotConnected, "local %s: this operator runs without the local-workload gateway (--local-gateway-address)", l.Name)
		case sb.Spec.LocalMachineID == "":
			obs.problem(status.LocalNotConnected, "local %s: spec.localMachineID is empty: apply the sandbox from a machine joined with `sandboxmesh local connect`", l.Name)
		case !r.Local.Connected(sb):
			obs.problem(status.LocalNotConnected, "local %s: machine %s is not connected (sandboxmesh local connect)", l.Name, sb.Spec.LocalMachineID)
		default:
			ports := map[int32]int32{}
			var failed error
			for _, m := range l.Mappings {
				k := local.Key{Sandbox: sbKey, Local: l.Name, Port: m.Port}
				p, err := r.Local.Ensure(k, local.Target{MachineID: sb.Spec.LocalMachineID, Sandbox: sb.Name, Local: l.Name, ToLocal: m.ToLocal})
				if err != nil {
					failed = err
					break
				}
				keep[k], ports[m.Port] = true, p
			}
			if failed != nil {
				obs.problem(status.LocalNotConnected, "local %s: %v", l.Name, failed)
				break
			}
			w := l.From.Namespace + "/" + l.From.Name
			var tmpl *appsv1.Deployment // resolves named target ports
			if base := fp.Baselines[w]; base != nil {
				tmpl = base.Deployment
			}
			svc, eps := local.Objects(r.Local.Services, sb, l, tmpl, fp.ServicesOf[w], ports)
			if len(svc.Spec.Ports) == 0 {
				obs.problem(status.LocalNotConnected, "local %s: no Service port of %s leads to a mapped port", l.Name, w)
				break
			}
			if err := r.ensureLocalService(ctx, sb, svc, eps); err != nil {
				return nil, err
			}
			keepSvc[svc.Name] = true
			st.Service = svc.Name
			st.Tunnel.Connected = true
			st.Tunnel.LastHeartbeat = prev[l.Name].Tunnel.LastHeartbeat
			if hb := st.Tunnel.LastHeartbeat; hb == nil || r.now().Sub(hb.Time) >= heartbeatEvery {
				st.Tunnel.LastHeartbeat = &metav1.Time{Time: r.now().Truncate(time.Second)}
			}
		}
		obs.local = append(obs.local, st)
	}
	if r.Local != nil {
		r.Local.Release(sbKey, func(k local.Key) bool { return keep[k] })
	}
	return keepSvc, nil
}

// ensureLocalService creates or updates a local workload's Service and its EndpointSlice (owned by the
// Service, so it goes with it).
func (r *SandboxReconciler) ensureLocalService(ctx context.Context, sb *smv1.Sandbox, svc *corev1.Service, eps *discoveryv1.EndpointSlice) error {
	var cur corev1.Service
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(svc), &cur)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, svc); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create local Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(svc), &cur); err != nil {
			return fmt.Errorf("get local Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get local Service %s/%s: %w", svc.Namespace, svc.Name, err)
	case !naming.OwnedBy(cur.Labels, sb.Namespace, sb.Name):
		return fmt.Errorf("Service %s/%s exists and is not this sandbox's local workload: %w", svc.Namespace, svc.Name, errNameConflict)
	case !equality.Semantic.DeepEqual(cur.Spec.Ports, svc.Spec.Ports) || !equality.Semantic.DeepEqual(cur.Labels, svc.Labels):
		cur.Spec.Ports, cur.Labels = svc.Spec.Ports, svc.Labels
		if err := r.Client.Update(ctx, &cur); err != nil {
			return fmt.Errorf("update local Service %s/%s: %w", svc.Namespace, svc.Name, err)
		}
	}
	if err := controllerutil.SetControllerReference(&cur, eps, r.Client.Scheme()); err != nil {
		return err
	}
	var ce discoveryv1.EndpointSlice
	err = r.Client.Get(ctx, client.ObjectKeyFromObject(eps), &ce)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, eps); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create local EndpointSlice %s/%s: %w", eps.Namespace, eps.Name, err)
		}
	case err != nil:
		return fmt.Errorf("get local EndpointSlice %s/%s: %w", eps.Namespace, eps.Name, err)
	case !equality.Semantic.DeepEqual(ce.Endpoints, eps.Endpoints) || !equality.Semantic.DeepEqual(ce.Ports, eps.Ports) ||
		!equality.Semantic.DeepEqual(ce.Labels, eps.Labels) || !equality.Semantic.DeepEqual(ce.OwnerReferences, eps.OwnerReferences):
		ce.Endpoints, ce.Ports, ce.Labels, ce.OwnerReferences, ce.AddressType = eps.Endpoints, eps.Ports, eps.Labels, eps.OwnerReferences, eps.AddressType
		if err := r.Client.Update(ctx, &ce); err != nil {
			return fmt.Errorf("update local EndpointSlice %s/%s: %w", eps.Namespace, eps.Name, err)
		}
	}
	return nil
}

// deleteLocalServices deletes the local workloads' Services of sb that keep does not name (nil: all),
// once no route leads to them any more (their EndpointSlices go with them).
func (r *SandboxReconciler) deleteLocalServices(ctx context.Context, sb *smv1.Sandbox, keep map[string]bool) error {
	if r.Local == nil {
		return nil
	}
	var svcs corev1.ServiceList
	if err := r.Client.List(ctx, &svcs, client.InNamespace(r.Local.Services.Namespace), client.MatchingLabels(map[string]string{
		smv1.LabelManagedBy: smv1.ManagedBy, naming.LabelSandbox: sb.Name, naming.LabelSandboxNamespace: sb.Namespace})); err != nil {
		return fmt.Errorf("list local Services of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	for i := range svcs.Items {
		s := &svcs.Items[i]
		if s.Labels[naming.LabelLocal] == "" || keep[s.Name] {
			continue
		}
		if err := r.Client.Delete(ctx, s); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete local Service %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	return nil
}

// localsOf returns what the sandbox's machine serves through its tunnel: spec.local, then the forward of
// each override middleware that resolves (spec.routing.forwards), as a local workload of the overridden
// workload, so that one machinery (listener, Service, tunnel) carries both.
func localsOf(sb *smv1.Sandbox) []smv1.Local {
	ovs, _ := sb.Spec.ResolveOverrides()
	if len(ovs) == 0 {
		return sb.Spec.Local
	}
	out := append([]smv1.Local(nil), sb.Spec.Local...)
	for _, o := range ovs {
		out = append(out, o.AsLocal())
	}
	return out
}
