package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/operator/routing"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// RouteGroupReconciler routes a RouteGroup's key to the forks of every Sandbox it matches.
type RouteGroupReconciler struct {
	Client   client.Client
	Engine   *routing.Engine
	Recorder recorder.EventRecorder
	Now      func() time.Time
}

func (r *RouteGroupReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler; any Sandbox change re-evaluates
// the RouteGroups of its namespace.
func (r *RouteGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&smv1.RouteGroup{}).
		Named("routegroup").
		Watches(&smv1.Sandbox{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			var list smv1.RouteGroupList
			if err := r.Client.List(ctx, &list, client.InNamespace(o.GetNamespace())); err != nil {
				return nil
			}
			out := make([]reconcile.Request, 0, len(list.Items))
			for _, rg := range list.Items {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rg)})
			}
			return out
		})).
		Complete(r)
}

// Reconcile implements reconcile.Reconciler (one span per call, see traced).
func (r *RouteGroupReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return traced(ctx, "RouteGroup", req, r.reconcile)
}

func (r *RouteGroupReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	rg := &smv1.RouteGroup{}
	if err := r.Client.Get(ctx, req.NamespacedName, rg); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var sbs smv1.SandboxList
	if err := r.Client.List(ctx, &sbs, client.InNamespace(rg.Namespace)); err != nil {
		return reconcile.Result{}, err
	}
	prev := map[string]bool{}
	for _, n := range rg.Status.MatchedSandboxes {
		prev[n] = true
	}
	var matched []*smv1.Sandbox
	services := map[types.NamespacedName]bool{}
	for i := range sbs.Items {
		sb := &sbs.Items[i]
		m := sb.DeletionTimestamp.IsZero() && routing.Matches(rg.Spec.Match, sb.Spec.Labels)
		if m {
			matched = append(matched, sb)
		}
		if m || prev[sb.Name] {
			if err := r.servicesOf(ctx, sb, services); err != nil {
				return reconcile.Result{}, err
			}
		}
	}
	if !rg.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(rg, naming.Finalizer) {
			return reconcile.Result{}, nil
		}
		if err := syncAll(ctx, r.Engine, services); err != nil {
			return reconcile.Result{}, err
		}
		patch := client.MergeFrom(rg.DeepCopy())
		controllerutil.RemoveFinalizer(rg, naming.Finalizer)
		return reconcile.Result{}, client.IgnoreNotFound(r.Client.Patch(ctx, rg, patch))
	}
	if !controllerutil.ContainsFinalizer(rg, naming.Finalizer) || rg.Annotations[naming.AnnotationRoutingKey] == "" {
		patch := client.MergeFrom(rg.DeepCopy())
		controllerutil.AddFinalizer(rg, naming.Finalizer)
		if rg.Annotations == nil {
			rg.Annotations = map[string]string{}
		}
		if rg.Annotations[naming.AnnotationRoutingKey] == "" {
			key := rg.Status.RoutingKey
			if key == "" {
				key = routingkey.New()
			}
			rg.Annotations[naming.AnnotationRoutingKey] = key
		}
		if err := r.Client.Patch(ctx, rg, patch); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer and routing key to RouteGroup %s: %w", req, err)
		}
	}
	routesErr := syncAll(ctx, r.Engine, services)

	// Status.
	before := rg.DeepCopy()
	st := &rg.Status
	st.ObservedGeneration = rg.Generation
	st.RoutingKey = rg.Annotations[naming.AnnotationRoutingKey]
	st.MatchedSandboxes = nil
	forkServices := map[string]string{}
	notReady := []string{}
	for _, sb := range matched {
		st.MatchedSandboxes = append(st.MatchedSandboxes, sb.Name)
		if !meta.IsStatusConditionTrue(sb.Status.Conditions, smv1.ConditionReady) {
			notReady = append(notReady, sb.Name)
		}
		for _, f := range sb.Status.Forks {
			parts := strings.SplitN(f.Baseline, "/", 3)
			if len(parts) == 3 && f.Service != "" {
				if _, taken := forkServices[parts[1]+"/"+parts[2]]; !taken {
					forkServices[parts[1]+"/"+parts[2]] = f.Service
				}
			}
		}
	}
	sort.Strings(st.MatchedSandboxes)
	var problems []string
	st.Endpoints = nil
	for _, ep := range rg.Spec.Endpoints {
		es, err := ResolveEndpoint(ep, forkServices)
		if err != nil {
			problems = append(problems, err.Error())
		}
		st.Endpoints = append(st.Endpoints, es)
	}
	gen := rg.Generation
	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: truncate(msg), ObservedGeneration: gen})
	}
	if routesErr != nil {
		set(smv1.ConditionRoutesConfigured, metav1.ConditionFalse, smv1.ReasonBackendRejected, routesErr.Error())
		problems = append(problems, routesErr.Error())
	} else {
		set(smv1.ConditionRoutesConfigured, metav1.ConditionTrue, smv1.ReasonRoutesApplied, "routes applied by "+r.Engine.BackendNames())
	}
	switch {
	case len(problems) > 0:
		set(smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonEndpointUnresolved, strings.Join(problems, "; "))
		if routesErr != nil {
			set(smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonBackendRejected, strings.Join(problems, "; "))
		}
		set(smv1.ConditionReady, metav1.ConditionFalse, meta.FindStatusCondition(st.Conditions, smv1.ConditionDegraded).Reason, strings.Join(problems, "; "))
	case len(matched) == 0:
		set(smv1.ConditionDegraded, metav1.ConditionFalse, smv1.ReasonAsExpected, "")
		set(smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonNoMatchedSandboxes, "no sandbox matches")
	case len(notReady) > 0:
		set(smv1.ConditionDegraded, metav1.ConditionFalse, smv1.ReasonAsExpected, "")
		set(smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonForksNotReady, "sandboxes not ready: "+strings.Join(notReady, ", "))
	default:
		set(smv1.ConditionDegraded, metav1.ConditionFalse, smv1.ReasonAsExpected, "")
		set(smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonMatched, fmt.Sprintf("%d sandboxes matched and ready", len(matched)))
	}
	// TTL: from creation, update, or (default) since no sandbox matched.
	st.ScheduledDeleteTime = nil
	if ttl := rg.Spec.TTL; ttl != nil {
		d, err := ParseTTL(ttl.Duration)
		if err == nil {
			var from *time.Time
			switch ttl.OffsetFrom {
			case smv1.TTLFromCreatedAt:
				t := rg.CreationTimestamp.Time
				from = &t
			case smv1.TTLFromUpdatedAt:
				t := lastSpecUpdate(&smv1.Sandbox{ObjectMeta: rg.ObjectMeta})
				from = &t
			default:
				if c := meta.FindStatusCondition(st.Conditions, smv1.ConditionReady); c != nil && c.Reason == smv1.ReasonNoMatchedSandboxes {
					t := c.LastTransitionTime.Time
					from = &t
				}
			}
			if from != nil {
				at := from.Add(d)
				st.ScheduledDeleteTime = &metav1.Time{Time: at}
				if !r.now().Before(at) {
					r.event(rg, corev1.EventTypeNormal, "Expired", "Delete", "TTL %s expired", ttl.Duration)
					return reconcile.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, rg))
				}
			}
		}
	}
	if !equality.Semantic.DeepEqual(before.Status, rg.Status) {
		if err := r.Client.Status().Patch(ctx, rg, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, fmt.Errorf("patch status of RouteGroup %s: %w", req, err)
		}
		if old, now := meta.FindStatusCondition(before.Status.Conditions, smv1.ConditionReady), meta.FindStatusCondition(rg.Status.Conditions, smv1.ConditionReady); old == nil || old.Status != now.Status || old.Reason != now.Reason {
			r.event(rg, corev1.EventTypeNormal, now.Reason, "Reconcile", "Ready=%s: %s", now.Status, now.Message)
		}
	}
	if routesErr != nil {
		return reconcile.Result{}, routesErr
	}
	if st.ScheduledDeleteTime != nil {
		return reconcile.Result{RequeueAfter: st.ScheduledDeleteTime.Sub(r.now()) + time.Second}, nil
	}
	return reconcile.Result{}, nil
}

func (r *RouteGroupReconciler) event(obj *smv1.RouteGroup, typ, reason, action, note string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(obj, nil, typ, reason, action, note, args...)
	}
}

// servicesOf adds the baseline Services of a sandbox's forks.
func (r *RouteGroupReconciler) servicesOf(ctx context.Context, sb *smv1.Sandbox, out map[types.NamespacedName]bool) error {
	for _, f := range sb.Spec.Forks {
		var d appsv1.Deployment
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: f.ForkOf.Namespace, Name: f.ForkOf.Name}, &d); err != nil {
			if client.IgnoreNotFound(err) == nil {
				continue
			}
			return err
		}
		svcs, err := r.Engine.BaselineServices(ctx, &d)
		if err != nil {
			return err
		}
		for _, s := range svcs {
			out[client.ObjectKeyFromObject(&s)] = true
		}
	}
	return nil
}

func syncAll(ctx context.Context, e *routing.Engine, services map[types.NamespacedName]bool) error {
	r := &SandboxReconciler{Engine: e}
	return r.syncRoutes(ctx, services)
}
