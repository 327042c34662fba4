package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
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
	"github.com/sandboxmesh/sandboxmesh/operator/status"
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

// reconcile runs the steps shared with Sandboxes (deletion, finalizer and
// routing key), then reconcileNormal (which handles the TTL: its default
// offset depends on the status it computes).
func (r *RouteGroupReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	rg := &smv1.RouteGroup{}
	if err := r.Client.Get(ctx, req.NamespacedName, rg); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	matched, touched, err := r.sandboxes(ctx, rg)
	if err != nil {
		return reconcile.Result{}, err
	}
	services, err := r.Engine.ServicesOf(ctx, touched)
	if err != nil {
		return reconcile.Result{}, err
	}
	if !rg.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, r.reconcileDelete(ctx, rg, services)
	}
	key, patched, err := ensureFinalizerAndKey(ctx, r.Client, rg, rg.Status.RoutingKey)
	if err != nil || patched {
		return reconcile.Result{}, err // patched: its watch event reconciles again, with the key in the cache
	}
	return r.reconcileNormal(ctx, rg, key, matched, services)
}

// sandboxes returns the Sandboxes of the group's namespace it matches, and
// those whose routes it touches: the matched ones and the ones it matched
// before (their routes under its key must go).
func (r *RouteGroupReconciler) sandboxes(ctx context.Context, rg *smv1.RouteGroup) (matched, touched []*smv1.Sandbox, err error) {
	var sbs smv1.SandboxList
	if err := r.Client.List(ctx, &sbs, client.InNamespace(rg.Namespace)); err != nil {
		return nil, nil, fmt.Errorf("list Sandboxes for RouteGroup %s/%s: %w", rg.Namespace, rg.Name, err)
	}
	prev := map[string]bool{}
	for _, n := range rg.Status.MatchedSandboxes {
		prev[n] = true
	}
	for i := range sbs.Items {
		sb := &sbs.Items[i]
		m := sb.DeletionTimestamp.IsZero() && routing.Matches(rg.Spec.Match, sb.Spec.Labels)
		if m {
			matched = append(matched, sb)
		}
		if m || prev[sb.Name] {
			touched = append(touched, sb)
		}
	}
	return matched, touched, nil
}

// reconcileDelete removes the group's routes, then the finalizer.
func (r *RouteGroupReconciler) reconcileDelete(ctx context.Context, rg *smv1.RouteGroup, services []types.NamespacedName) error {
	if !controllerutil.ContainsFinalizer(rg, naming.Finalizer) {
		return nil
	}
	if err := r.Engine.SyncServices(ctx, services); err != nil {
		return err
	}
	return removeFinalizer(ctx, r.Client, rg)
}

// reconcileNormal syncs the routes of every Service the matched sandboxes
// touch, computes the status, deletes the group when its TTL expired, else
// writes the status when it changed.
func (r *RouteGroupReconciler) reconcileNormal(ctx context.Context, rg *smv1.RouteGroup, key string, matched []*smv1.Sandbox, services []types.NamespacedName) (reconcile.Result, error) {
	routesErr := r.Engine.SyncServices(ctx, services)

	before := rg.DeepCopy()
	st := &rg.Status
	st.ObservedGeneration = rg.Generation
	st.RoutingKey = key
	st.MatchedSandboxes = nil
	forkServices := map[string]string{}
	var notReady []string
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
	var problems []status.Problem
	st.Endpoints = nil
	for _, ep := range rg.Spec.Endpoints {
		es, err := ResolveEndpoint(ep, forkServices)
		if err != nil {
			problems = append(problems, status.Problem{Kind: status.EndpointUnresolved, Message: err.Error()})
		}
		st.Endpoints = append(st.Endpoints, es)
	}
	switch {
	case len(matched) == 0:
		problems = append(problems, status.Problem{Kind: status.NoMatchedSandboxes, Message: "no sandbox matches"})
	case len(notReady) > 0:
		problems = append(problems, status.Problem{Kind: status.SandboxesNotReady, Message: "sandboxes not ready: " + strings.Join(notReady, ", ")})
	}
	status.Set(&st.Conditions, status.Observed{Generation: rg.Generation, Problems: problems,
		Routes:      status.Routes{Err: routesErr, Backends: r.Engine.BackendNames()},
		ReadyReason: smv1.ReasonMatched, ReadyMessage: fmt.Sprintf("%d sandboxes matched and ready", len(matched))})

	// TTL: from creation, update, or (default) since no sandbox matched.
	var noMatchSince *time.Time
	if c := meta.FindStatusCondition(st.Conditions, smv1.ConditionReady); c != nil && c.Reason == smv1.ReasonNoMatchedSandboxes {
		t := c.LastTransitionTime.Time
		noMatchSince = &t
	}
	deleteAt := ttlDeadline(rg.Spec.TTL, &rg.ObjectMeta, noMatchSince)
	st.ScheduledDeleteTime = metaTime(deleteAt)
	if expired, err := expire(ctx, r.Client, r.Recorder, rg, rg.Spec.TTL, deleteAt, r.now()); expired || err != nil {
		return reconcile.Result{}, err
	}
	if !equality.Semantic.DeepEqual(before.Status, rg.Status) {
		if err := r.Client.Status().Patch(ctx, rg, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, fmt.Errorf("patch status of RouteGroup %s/%s: %w", rg.Namespace, rg.Name, err)
		}
		if old, now := meta.FindStatusCondition(before.Status.Conditions, smv1.ConditionReady), meta.FindStatusCondition(rg.Status.Conditions, smv1.ConditionReady); old == nil || old.Status != now.Status || old.Reason != now.Reason {
			event(r.Recorder, rg, corev1.EventTypeNormal, now.Reason, "Reconcile", "Ready=%s: %s", now.Status, now.Message)
		}
	}
	if routesErr != nil {
		return reconcile.Result{}, routesErr
	}
	return reconcile.Result{RequeueAfter: requeueFor(deleteAt, r.now())}, nil
}
