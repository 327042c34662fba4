// Package controllers holds the operator's reconcilers: one per concern
// (Sandbox, RouteGroup, route drift), sharing the routing Engine.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/fork"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/operator/routing"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=sandboxes;routegroups,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=sandboxes/status;routegroups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=sandboxes/finalizers;routegroups/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=networking.istio.io,resources=virtualservices,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=gateway.networking.k8s.io,resources=httproutes;grpcroutes;referencegrants,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=linkerd.io,resources=serviceprofiles,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// SandboxReconciler turns a Sandbox into fork Deployments, fork Services and routes.
type SandboxReconciler struct {
	Client   client.Client
	Engine   *routing.Engine
	Recorder recorder.EventRecorder
	// Now is the clock (tests move it); default time.Now.
	Now func() time.Time
	// RequireAcceptance makes Ready wait until every backend reports its routes accepted.
	RequireAcceptance bool
	// MaxConcurrentReconciles bounds parallel reconciles (default 8); the
	// routing Engine serialises work per Service.
	MaxConcurrentReconciles int
}

func (r *SandboxReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler and its watches. The field index
// routing.IndexForkedWorkload must be registered first (see SetupIndexes).
func (r *SandboxReconciler) SetupWithManager(mgr ctrl.Manager) error {
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 8
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&smv1.Sandbox{}).
		Named("sandbox").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.sandboxesForDeployment)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(ownerSandbox), builder.WithPredicates(predicate.NewPredicateFuncs(isForkObject))).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.sandboxesForService)).
		Complete(r)
}

// SetupIndexes registers the field indexes the controllers use.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &smv1.Sandbox{}, routing.IndexForkedWorkload, func(o client.Object) []string {
		return routing.WorkloadsOf(o.(*smv1.Sandbox))
	}); err != nil {
		return err
	}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
		if err := idx.IndexField(ctx, obj, routing.IndexBaseline, routing.BaselineIndex); err != nil {
			return err
		}
		if err := idx.IndexField(ctx, obj, routing.IndexSandboxObjects, routing.SandboxObjectsIndex); err != nil {
			return err
		}
	}
	return nil
}

func isForkObject(o client.Object) bool {
	return o.GetLabels()[naming.LabelManagedBy] == naming.ManagedByValue && o.GetLabels()[naming.LabelSandbox] != ""
}

func ownerSandbox(_ context.Context, o client.Object) []reconcile.Request {
	if !isForkObject(o) {
		return nil
	}
	l := o.GetLabels()
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[naming.LabelSandboxNamespace], Name: l[naming.LabelSandbox]}}}
}

// sandboxesForDeployment maps a fork Deployment to its Sandbox and a baseline
// Deployment to every Sandbox referring to it.
func (r *SandboxReconciler) sandboxesForDeployment(ctx context.Context, o client.Object) []reconcile.Request {
	if isForkObject(o) {
		return ownerSandbox(ctx, o)
	}
	return r.sandboxesForWorkload(ctx, o.GetNamespace()+"/"+o.GetName())
}

func (r *SandboxReconciler) sandboxesForWorkload(ctx context.Context, key string) []reconcile.Request {
	list, err := routing.SandboxesOf(ctx, r.Client, key)
	if err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, sb := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sb)})
	}
	return out
}

// sandboxesForService maps a baseline Service to the Sandboxes forking
// workloads in its namespace (a new or changed Service changes their routes).
func (r *SandboxReconciler) sandboxesForService(ctx context.Context, o client.Object) []reconcile.Request {
	if isForkObject(o) {
		return ownerSandbox(ctx, o)
	}
	var list smv1.SandboxList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for _, sb := range list.Items {
		for _, w := range routing.WorkloadsOf(&sb) {
			if strings.HasPrefix(w, o.GetNamespace()+"/") {
				out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sb)})
				break
			}
		}
	}
	return out
}

// observed is what one reconcile learned, turned into status at the end.
type observed struct {
	forks       []smv1.ForkStatus
	degraded    []problem
	waiting     []string
	services    map[types.NamespacedName]bool
	routesErr   error
	routesState *meshadapters.Status
	routesFrom  string
	endpoints   []smv1.EndpointStatus
}

type problem struct{ reason, message string }

// Reconcile implements reconcile.Reconciler (one span per call, see traced).
func (r *SandboxReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return traced(ctx, "Sandbox", req, r.reconcile)
}

func (r *SandboxReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	logger := log.FromContext(ctx)
	sb := &smv1.Sandbox{}
	if err := r.Client.Get(ctx, req.NamespacedName, sb); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !sb.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, r.finalize(ctx, sb)
	}
	// Finalizer first, then the routing key: both are metadata, written once.
	if !controllerutil.ContainsFinalizer(sb, naming.Finalizer) || sb.Annotations[naming.AnnotationRoutingKey] == "" {
		patch := client.MergeFrom(sb.DeepCopy())
		controllerutil.AddFinalizer(sb, naming.Finalizer)
		if sb.Annotations == nil {
			sb.Annotations = map[string]string{}
		}
		if sb.Annotations[naming.AnnotationRoutingKey] == "" {
			key := sb.Status.RoutingKey
			if key == "" {
				key = routingkey.New()
			}
			sb.Annotations[naming.AnnotationRoutingKey] = key
		}
		if err := r.Client.Patch(ctx, sb, patch); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer and routing key to Sandbox %s: %w", req, err)
		}
	}
	key := sb.Annotations[naming.AnnotationRoutingKey]

	// TTL.
	var deleteAt *metav1.Time
	if sb.Spec.TTL != nil {
		t, err := ttlDeadline(sb.Spec.TTL, sb.CreationTimestamp.Time, lastSpecUpdate(sb))
		if err == nil {
			deleteAt = &metav1.Time{Time: t}
			if !r.now().Before(t) {
				logger.Info("TTL expired, deleting sandbox", "scheduledDeleteTime", t)
				r.event(sb, corev1.EventTypeNormal, "Expired", "Delete", "TTL %s expired at %s", sb.Spec.TTL.Duration, t.Format(time.RFC3339))
				return reconcile.Result{}, client.IgnoreNotFound(r.Client.Delete(ctx, sb))
			}
		}
	}

	obs := &observed{services: map[types.NamespacedName]bool{}}
	desiredForks := map[string]bool{}
	for i, f := range sb.Spec.Forks {
		name, err := r.reconcileFork(ctx, sb, key, i, f, obs)
		if err != nil {
			return reconcile.Result{}, err
		}
		if name != "" {
			desiredForks[f.ForkOf.Namespace+"/"+name] = true
		}
	}
	for _, v := range sb.Spec.Virtual {
		var d appsv1.Deployment
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: v.Workload.Namespace, Name: v.Workload.Name}, &d); err != nil {
			if apierrors.IsNotFound(err) {
				obs.degraded = append(obs.degraded, problem{smv1.ReasonBaselineNotFound, fmt.Sprintf("virtual %s: Deployment %s/%s not found", v.Name, v.Workload.Namespace, v.Workload.Name)})
				continue
			}
			return reconcile.Result{}, err
		}
		svcs, err := r.Engine.BaselineServices(ctx, &d)
		if err != nil {
			return reconcile.Result{}, err
		}
		for _, s := range svcs {
			obs.services[client.ObjectKeyFromObject(&s)] = true
		}
	}
	for _, l := range sb.Spec.Local {
		obs.waiting = append(obs.waiting, fmt.Sprintf("local %s: no local connection for %s/%s", l.Name, l.From.Namespace, l.From.Name))
	}

	// Orphaned forks (removed from the spec): their routes go first, then their objects.
	orphans, err := r.orphans(ctx, sb, desiredForks, obs)
	if err != nil {
		return reconcile.Result{}, err
	}
	obs.routesErr = r.syncRoutes(ctx, obs.services)
	if obs.routesErr == nil {
		for _, o := range orphans {
			if err := r.deleteFork(ctx, sb, o); err != nil {
				return reconcile.Result{}, err
			}
			r.event(sb, corev1.EventTypeNormal, "ForkDeleted", "Delete", "deleted fork %s/%s", o.Namespace, o.Name)
		}
		r.routeStatus(ctx, obs)
	}
	obs.endpoints = r.resolveEndpoints(sb, obs)

	changed, err := r.writeStatus(ctx, sb, key, deleteAt, obs)
	if err != nil {
		return reconcile.Result{}, err
	}
	_ = changed
	if obs.routesErr != nil {
		return reconcile.Result{}, obs.routesErr
	}
	res := reconcile.Result{}
	if deleteAt != nil {
		res.RequeueAfter = time.Until(deleteAt.Time) + time.Second
		if r.Now != nil {
			res.RequeueAfter = deleteAt.Time.Sub(r.now()) + time.Second
		}
	}
	if obs.routesState != nil && !obs.routesState.Accepted && (res.RequeueAfter == 0 || res.RequeueAfter > 5*time.Second) {
		res.RequeueAfter = 5 * time.Second
	}
	return res, nil
}

// reconcileFork creates or updates one fork and records what it saw.
func (r *SandboxReconciler) reconcileFork(ctx context.Context, sb *smv1.Sandbox, key string, i int, f smv1.Fork, obs *observed) (string, error) {
	baselineID := fmt.Sprintf("%s/%s/%s", kindOf(f.ForkOf), f.ForkOf.Namespace, f.ForkOf.Name)
	fs := smv1.ForkStatus{Name: f.ForkOf.Name, Baseline: baselineID}
	defer func() { obs.forks = append(obs.forks, fs) }()
	if kindOf(f.ForkOf) != smv1.KindDeployment {
		fs.Message = "kind " + string(f.ForkOf.Kind) + " is not supported yet"
		obs.degraded = append(obs.degraded, problem{smv1.ReasonUnsupportedKind, fmt.Sprintf("spec.forks[%d].forkOf.kind: %s is not supported yet (only Deployment)", i, f.ForkOf.Kind)})
		return "", nil
	}
	name := naming.ForkName(sb.Namespace, sb.Name, f.ForkOf.Namespace, f.ForkOf.Name)
	fs.Deployment = name
	var base appsv1.Deployment
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: f.ForkOf.Namespace, Name: f.ForkOf.Name}, &base); err != nil {
		if apierrors.IsNotFound(err) {
			fs.Message = "baseline Deployment not found"
			obs.degraded = append(obs.degraded, problem{smv1.ReasonBaselineNotFound, fmt.Sprintf("spec.forks[%d]: Deployment %s/%s not found", i, f.ForkOf.Namespace, f.ForkOf.Name)})
			// An existing fork keeps running (the user may restore the baseline);
			// with no workload behind the baseline Services it gets no routes.
			return name, nil
		}
		return "", fmt.Errorf("get baseline Deployment %s/%s: %w", f.ForkOf.Namespace, f.ForkOf.Name, err)
	}
	svcs, err := r.Engine.BaselineServices(ctx, &base)
	if err != nil {
		return "", err
	}
	for _, s := range svcs {
		obs.services[client.ObjectKeyFromObject(&s)] = true
	}
	var existing appsv1.Deployment
	err = r.Client.Get(ctx, types.NamespacedName{Namespace: base.Namespace, Name: name}, &existing)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("get fork Deployment %s/%s: %w", base.Namespace, name, err)
	}
	if exists && !forkOf(&existing, sb) {
		// Never take over an object we did not create (a user's Deployment, or another sandbox's fork
		// should the 32-bit name hash ever collide).
		fs.Deployment, fs.Message = "", fmt.Sprintf("Deployment %s/%s exists and is not this sandbox's fork", base.Namespace, name)
		obs.degraded = append(obs.degraded, problem{smv1.ReasonNameConflict, fmt.Sprintf("spec.forks[%d]: %s; it is left untouched", i, fs.Message)})
		return "", nil
	}
	// The baseline is snapshotted when the fork is created and re-read when the Sandbox changes.
	gen := strconv.FormatInt(sb.Generation, 10)
	if !exists || existing.Annotations[annotationSandboxGeneration] != gen {
		siblings, err := r.siblings(ctx, sb, f)
		if err != nil {
			return "", fmt.Errorf("read the forks env valueFrom.fork refers to: %w", err)
		}
		desired, err := fork.Deployment(fork.Input{Sandbox: sb, RoutingKey: key, Index: i, Fork: f, Baseline: &base,
			ExcludeLabelKeys: routing.SelectorKeys(svcs), Siblings: siblings})
		if err != nil {
			reason := smv1.ReasonInvalidCustomization
			switch {
			case errors.Is(err, fork.ErrInvalidPatch):
				reason = smv1.ReasonInvalidPatch
			case errors.Is(err, fork.ErrUnsupported):
				reason = smv1.ReasonUnsupportedCustomization
			}
			fs.Message = err.Error()
			obs.degraded = append(obs.degraded, problem{reason, err.Error()})
			return name, nil
		}
		desired.Annotations[annotationSandboxGeneration] = gen
		if sb.Namespace == base.Namespace {
			if err := controllerutil.SetControllerReference(sb, desired, r.Client.Scheme()); err != nil {
				return "", err
			}
		}
		if !exists {
			if err := r.Client.Create(ctx, desired); err != nil && !apierrors.IsAlreadyExists(err) {
				return "", fmt.Errorf("create fork Deployment %s/%s: %w", desired.Namespace, desired.Name, err)
			}
			r.event(sb, corev1.EventTypeNormal, "ForkCreated", "Create", "created fork Deployment %s/%s of %s", desired.Namespace, desired.Name, baselineID)
			existing = *desired
		} else if existing.Annotations[naming.AnnotationSpecHash] != desired.Annotations[naming.AnnotationSpecHash] ||
			existing.Annotations[annotationSandboxGeneration] != gen {
			existing.Labels = desired.Labels
			existing.Annotations = desired.Annotations
			existing.Spec = desired.Spec
			existing.OwnerReferences = desired.OwnerReferences
			if err := r.Client.Update(ctx, &existing); err != nil {
				return "", fmt.Errorf("update fork Deployment %s/%s: %w", existing.Namespace, existing.Name, err)
			}
			r.event(sb, corev1.EventTypeNormal, "ForkUpdated", "Update", "updated fork Deployment %s/%s", existing.Namespace, existing.Name)
		}
	}
	if len(svcs) > 0 {
		fs.Service = name
		if err := r.ensureForkService(ctx, sb, name, base.Name, base.Namespace, svcs); errors.Is(err, errNameConflict) {
			fs.Service, fs.Message = "", err.Error()
			obs.degraded = append(obs.degraded, problem{smv1.ReasonNameConflict, fmt.Sprintf("spec.forks[%d]: %v; it is left untouched", i, err)})
			return name, nil
		} else if err != nil {
			return "", err
		}
	}
	ready, why := fork.Ready(&existing)
	if ready && fs.Service != "" {
		// The fork Service must exist before routes point at it.
		var s corev1.Service
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: base.Namespace, Name: name}, &s); err != nil {
			ready, why = false, "waiting for the fork Service"
		}
	}
	fs.Ready = ready
	if !ready {
		fs.Message = why
		obs.waiting = append(obs.waiting, fmt.Sprintf("fork %s: %s", name, why))
		if p := r.podProblem(ctx, base.Namespace, name); p != nil {
			fs.Message = p.message
			obs.degraded = append(obs.degraded, *p)
		}
	}
	return name, nil
}

const annotationSandboxGeneration = "sandboxmesh.dev/sandbox-generation"

func kindOf(w smv1.WorkloadRef) smv1.WorkloadKind {
	if w.Kind == "" {
		return smv1.KindDeployment
	}
	return w.Kind
}

func (r *SandboxReconciler) ensureForkService(ctx context.Context, sb *smv1.Sandbox, name, baseline, ns string, svcs []corev1.Service) error {
	desired := fork.Service(sb, name, baseline, ns, svcs)
	if sb.Namespace == ns {
		if err := controllerutil.SetControllerReference(sb, desired, r.Client.Scheme()); err != nil {
			return err
		}
	}
	var cur corev1.Service
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), &cur)
	if apierrors.IsNotFound(err) {
		if err := r.Client.Create(ctx, desired); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create fork Service %s/%s: %w", ns, name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("get fork Service %s/%s: %w", ns, name, err)
	}
	if !forkOf(&cur, sb) {
		return fmt.Errorf("Service %s/%s exists and is not this sandbox's fork: %w", ns, name, errNameConflict)
	}
	if equality.Semantic.DeepEqual(cur.Spec.Ports, desired.Spec.Ports) && equality.Semantic.DeepEqual(cur.Spec.Selector, desired.Spec.Selector) &&
		equality.Semantic.DeepEqual(cur.Labels, desired.Labels) {
		return nil
	}
	cur.Spec.Ports, cur.Spec.Selector, cur.Labels = desired.Spec.Ports, desired.Spec.Selector, desired.Labels
	if err := r.Client.Update(ctx, &cur); err != nil {
		return fmt.Errorf("update fork Service %s/%s: %w", ns, name, err)
	}
	return nil
}

// podProblem looks at the fork's pods for failures a user can act on.
func (r *SandboxReconciler) podProblem(ctx context.Context, ns, forkName string) *problem {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{naming.LabelFork: forkName}); err != nil {
		return nil
	}
	for _, p := range pods.Items {
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
					return &problem{smv1.ReasonImagePullFailed, fmt.Sprintf("fork %s: container %s cannot pull image %s: %s", forkName, cs.Name, cs.Image, w.Message)}
				case "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError":
					reason := smv1.ReasonForkCrashLooping
					if w.Reason != "CrashLoopBackOff" {
						reason = smv1.ReasonInvalidCustomization
					}
					return &problem{reason, fmt.Sprintf("fork %s: container %s: %s: %s", forkName, cs.Name, w.Reason, w.Message)}
				}
			}
		}
	}
	return nil
}

// siblings returns what env valueFrom.fork expressions of fork f can refer
// to: every fork of sb with its Service host and the first container port of
// its baseline (read from the cache). Nil when f uses no such expression.
func (r *SandboxReconciler) siblings(ctx context.Context, sb *smv1.Sandbox, f smv1.Fork) (map[string]fork.Sibling, error) {
	uses := false
	if f.Customizations != nil {
		for _, e := range f.Customizations.Env {
			uses = uses || (e.ValueFrom != nil && e.ValueFrom.Fork != nil)
		}
	}
	if !uses {
		return nil, nil
	}
	out := map[string]fork.Sibling{}
	for _, o := range sb.Spec.Forks {
		sib := fork.Sibling{Service: smv1.ForkService{Host: naming.ForkName(sb.Namespace, sb.Name, o.ForkOf.Namespace, o.ForkOf.Name) + "." + o.ForkOf.Namespace + ".svc"}}
		var d appsv1.Deployment
		switch err := r.Client.Get(ctx, types.NamespacedName{Namespace: o.ForkOf.Namespace, Name: o.ForkOf.Name}, &d); {
		case err == nil:
			sib.Service.Port = fork.FirstContainerPort(&d)
		case apierrors.IsNotFound(err):
			sib.BaselineMissing = true
		default:
			return nil, err
		}
		out[fork.SiblingKey(o.ForkOf)] = sib
	}
	return out, nil
}

// orphans lists fork Deployments of this sandbox that the spec no longer wants,
// adding their baselines' Services to the set whose routes are recomputed.
func (r *SandboxReconciler) orphans(ctx context.Context, sb *smv1.Sandbox, desired map[string]bool, obs *observed) ([]client.ObjectKey, error) {
	var list appsv1.DeploymentList
	if err := routing.ListSandboxObjects(ctx, r.Client, &list, sb.Namespace, sb.Name); err != nil {
		return nil, fmt.Errorf("list forks of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	var out []client.ObjectKey
	for _, d := range list.Items {
		if desired[d.Namespace+"/"+d.Name] {
			continue
		}
		out = append(out, client.ObjectKeyFromObject(&d))
		if err := r.addBaselineServices(ctx, &d, obs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// addBaselineServices adds the Services a fork's baseline sits behind.
func (r *SandboxReconciler) addBaselineServices(ctx context.Context, forkDep *appsv1.Deployment, obs *observed) error {
	var base appsv1.Deployment
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: forkDep.Namespace, Name: forkDep.Labels[naming.LabelBaseline]}, &base)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	svcs, err := r.Engine.BaselineServices(ctx, &base)
	if err != nil {
		return err
	}
	for _, s := range svcs {
		obs.services[client.ObjectKeyFromObject(&s)] = true
	}
	return nil
}

// deleteFork deletes a fork Deployment of sb and its Service, each only if it is sb's (labels).
func (r *SandboxReconciler) deleteFork(ctx context.Context, sb *smv1.Sandbox, key client.ObjectKey) error {
	bg := metav1.DeletePropagationBackground
	for _, o := range []client.Object{&corev1.Service{}, &appsv1.Deployment{}} {
		if err := r.Client.Get(ctx, key, o); err != nil {
			if apierrors.IsNotFound(err) {
				continue
			}
			return fmt.Errorf("get fork %T %s: %w", o, key, err)
		}
		if !forkOf(o, sb) {
			continue
		}
		if err := r.Client.Delete(ctx, o, &client.DeleteOptions{PropagationPolicy: &bg}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("delete fork %T %s: %w", o, key, err)
		}
	}
	return nil
}

// errNameConflict: an object with a fork's name is not that fork.
var errNameConflict = errors.New("name taken by an object that is not this fork")

// forkOf reports whether o carries sb's fork labels: the operator only ever changes or deletes those.
func forkOf(o metav1.Object, sb *smv1.Sandbox) bool {
	l := o.GetLabels()
	return l[naming.LabelManagedBy] == naming.ManagedByValue && l[naming.LabelSandbox] == sb.Name && l[naming.LabelSandboxNamespace] == sb.Namespace
}

func (r *SandboxReconciler) syncRoutes(ctx context.Context, services map[types.NamespacedName]bool) error {
	keys := make([]types.NamespacedName, 0, len(services))
	for k := range services {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
	var errs []error
	for _, k := range keys {
		if err := r.Engine.Sync(ctx, k); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (r *SandboxReconciler) routeStatus(ctx context.Context, obs *observed) {
	for k := range obs.services {
		st, backend, err := r.Engine.Status(ctx, k)
		if err != nil {
			obs.routesErr = err
			return
		}
		if !st.Accepted {
			obs.routesState, obs.routesFrom = &st, backend+" on Service "+k.String()
			return
		}
	}
	obs.routesState = &meshadapters.Status{Accepted: true}
}

// finalize removes the sandbox's routes, then its forks, then the finalizer.
func (r *SandboxReconciler) finalize(ctx context.Context, sb *smv1.Sandbox) error {
	if !controllerutil.ContainsFinalizer(sb, naming.Finalizer) {
		return nil
	}
	obs := &observed{services: map[types.NamespacedName]bool{}}
	var list appsv1.DeploymentList
	if err := routing.ListSandboxObjects(ctx, r.Client, &list, sb.Namespace, sb.Name); err != nil {
		return err
	}
	for _, d := range list.Items {
		if err := r.addBaselineServices(ctx, &d, obs); err != nil {
			return err
		}
	}
	// Virtual workloads and forks whose Deployment is gone still have routes to remove.
	for _, w := range routing.WorkloadsOf(sb) {
		ns, name, _ := strings.Cut(w, "/")
		var d appsv1.Deployment
		if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &d); err == nil {
			svcs, err := r.Engine.BaselineServices(ctx, &d)
			if err != nil {
				return err
			}
			for _, s := range svcs {
				obs.services[client.ObjectKeyFromObject(&s)] = true
			}
		}
	}
	if err := r.syncRoutes(ctx, obs.services); err != nil {
		r.event(sb, corev1.EventTypeWarning, "RouteRemovalFailed", "Delete", "cannot remove routes yet: %v", err)
		return err
	}
	for _, d := range list.Items {
		if err := r.deleteFork(ctx, sb, client.ObjectKeyFromObject(&d)); err != nil {
			return err
		}
	}
	// Fork Services whose Deployment was already gone.
	var svcs corev1.ServiceList
	if err := routing.ListSandboxObjects(ctx, r.Client, &svcs, sb.Namespace, sb.Name); err != nil {
		return err
	}
	for _, s := range svcs.Items {
		if err := r.Client.Delete(ctx, &s); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	patch := client.MergeFrom(sb.DeepCopy())
	controllerutil.RemoveFinalizer(sb, naming.Finalizer)
	if err := r.Client.Patch(ctx, sb, patch); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("remove finalizer of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	return nil
}

func (r *SandboxReconciler) resolveEndpoints(sb *smv1.Sandbox, obs *observed) []smv1.EndpointStatus {
	if sb.Spec.DefaultRouteGroup == nil {
		return nil
	}
	forkOf := map[string]string{}
	for _, f := range obs.forks {
		if f.Service != "" {
			parts := strings.SplitN(f.Baseline, "/", 3)
			if len(parts) == 3 {
				forkOf[parts[1]+"/"+parts[2]] = f.Service
			}
		}
	}
	var out []smv1.EndpointStatus
	for _, ep := range sb.Spec.DefaultRouteGroup.Endpoints {
		st, err := ResolveEndpoint(ep, forkOf)
		if err != nil {
			obs.degraded = append(obs.degraded, problem{smv1.ReasonEndpointUnresolved, err.Error()})
		}
		out = append(out, st)
	}
	return out
}

// ResolveEndpoint resolves an endpoint target. forkServices maps
// "<namespace>/<workload>" to the name of its fork Service.
func ResolveEndpoint(ep smv1.Endpoint, forkServices map[string]string) (smv1.EndpointStatus, error) {
	st := smv1.EndpointStatus{Name: ep.Name, Target: ep.Target}
	scheme, rest, ok := strings.Cut(ep.Target, "://")
	if !ok {
		return st, fmt.Errorf("endpoint %s: target %q has no scheme", ep.Name, ep.Target)
	}
	hostport := rest
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return st, fmt.Errorf("endpoint %s: target %q has no port", ep.Name, ep.Target)
	}
	host, portStr := hostport[:i], hostport[i+1:]
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return st, fmt.Errorf("endpoint %s: bad port in %q", ep.Name, ep.Target)
	}
	labels := strings.Split(host, ".")
	if len(labels) != 3 {
		return st, fmt.Errorf("endpoint %s: host %q must be <name>.<namespace>.svc or <workload>.<namespace>.deploy", ep.Name, host)
	}
	name, ns, kind := labels[0], labels[1], labels[2]
	switch kind {
	case "svc":
	case "deploy":
		svc, ok := forkServices[ns+"/"+name]
		if !ok {
			return st, fmt.Errorf("endpoint %s: %s.%s.deploy is not a fork of this sandbox", ep.Name, name, ns)
		}
		name = svc
	default:
		return st, fmt.Errorf("endpoint %s: host %q must end in .svc or .deploy", ep.Name, host)
	}
	st.Host = name + "." + ns + ".svc"
	st.Port = int32(port)
	st.Protocol = scheme
	st.URL = fmt.Sprintf("%s://%s:%d", scheme, st.Host, port)
	return st, nil
}

func (r *SandboxReconciler) writeStatus(ctx context.Context, sb *smv1.Sandbox, key string, deleteAt *metav1.Time, obs *observed) (bool, error) {
	before := sb.DeepCopy()
	st := &sb.Status
	st.ObservedGeneration = sb.Generation
	st.RoutingKey = key
	st.Forks = obs.forks
	st.Endpoints = obs.endpoints
	st.ScheduledDeleteTime = deleteAt
	gen := sb.Generation

	set := func(t string, s metav1.ConditionStatus, reason, msg string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: reason, Message: truncate(msg), ObservedGeneration: gen})
	}
	// RoutesConfigured.
	switch {
	case obs.routesErr != nil:
		set(smv1.ConditionRoutesConfigured, metav1.ConditionFalse, smv1.ReasonBackendRejected, obs.routesErr.Error())
	case obs.routesState != nil && !obs.routesState.Accepted && obs.routesState.Reason == meshadapters.ReasonRejected:
		set(smv1.ConditionRoutesConfigured, metav1.ConditionFalse, smv1.ReasonBackendRejected, obs.routesFrom+": "+obs.routesState.Message)
	case obs.routesState != nil && !obs.routesState.Accepted:
		set(smv1.ConditionRoutesConfigured, metav1.ConditionFalse, smv1.ReasonRoutesPending, obs.routesFrom+": "+obs.routesState.Message)
	default:
		set(smv1.ConditionRoutesConfigured, metav1.ConditionTrue, smv1.ReasonRoutesApplied, "routes applied by "+r.Engine.BackendNames())
	}
	routesOK := meta.IsStatusConditionTrue(st.Conditions, smv1.ConditionRoutesConfigured) ||
		(!r.RequireAcceptance && obs.routesErr == nil && (obs.routesState == nil || obs.routesState.Reason != meshadapters.ReasonRejected))
	// Degraded.
	if obs.routesErr != nil || (obs.routesState != nil && obs.routesState.Reason == meshadapters.ReasonRejected) {
		msg := obs.routesFrom
		if obs.routesErr != nil {
			msg = obs.routesErr.Error()
		}
		obs.degraded = append(obs.degraded, problem{smv1.ReasonBackendRejected, msg})
	}
	if len(obs.degraded) > 0 {
		set(smv1.ConditionDegraded, metav1.ConditionTrue, obs.degraded[0].reason, joinProblems(obs.degraded))
	} else {
		set(smv1.ConditionDegraded, metav1.ConditionFalse, smv1.ReasonAsExpected, "")
	}
	ready := len(obs.degraded) == 0 && len(obs.waiting) == 0 && routesOK
	switch {
	case ready:
		set(smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable, "all forks available and routes in place")
		set(smv1.ConditionProgressing, metav1.ConditionFalse, smv1.ReasonAvailable, "")
	case len(obs.degraded) > 0:
		set(smv1.ConditionReady, metav1.ConditionFalse, obs.degraded[0].reason, joinProblems(obs.degraded))
		set(smv1.ConditionProgressing, metav1.ConditionFalse, obs.degraded[0].reason, "blocked until the problem is fixed")
	default:
		reason := smv1.ReasonForksNotReady
		msg := strings.Join(obs.waiting, "; ")
		if len(obs.waiting) == 0 {
			reason, msg = smv1.ReasonRoutesPending, "waiting for the mesh to accept the routes"
		} else if strings.HasPrefix(obs.waiting[0], "local ") {
			reason = smv1.ReasonLocalNotConnected
		}
		set(smv1.ConditionReady, metav1.ConditionFalse, reason, msg)
		set(smv1.ConditionProgressing, metav1.ConditionTrue, reason, msg)
	}
	if equality.Semantic.DeepEqual(before.Status, sb.Status) {
		return false, nil
	}
	if err := r.Client.Status().Patch(ctx, sb, client.MergeFrom(before)); err != nil {
		return false, fmt.Errorf("patch status of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	r.transitionEvents(sb, before)
	return true, nil
}

func (r *SandboxReconciler) transitionEvents(sb, before *smv1.Sandbox) {
	for _, t := range []string{smv1.ConditionReady, smv1.ConditionDegraded} {
		now := meta.FindStatusCondition(sb.Status.Conditions, t)
		old := meta.FindStatusCondition(before.Status.Conditions, t)
		if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason) {
			continue
		}
		// Nothing to tell: a sandbox that is not (and was never) degraded, or
		// the first "not ready yet" right after ForkCreated said work started.
		if now.Status == metav1.ConditionFalse && (old == nil || old.Status == metav1.ConditionFalse) && t == smv1.ConditionDegraded {
			continue
		}
		if now.Status == metav1.ConditionFalse && old == nil && t == smv1.ConditionReady {
			continue
		}
		typ := corev1.EventTypeNormal
		if (t == smv1.ConditionDegraded && now.Status == metav1.ConditionTrue) || (t == smv1.ConditionReady && now.Status == metav1.ConditionFalse && old != nil && old.Status == metav1.ConditionTrue) {
			typ = corev1.EventTypeWarning
		}
		r.event(sb, typ, now.Reason, "Reconcile", "%s=%s: %s", t, now.Status, now.Message)
	}
}

func (r *SandboxReconciler) event(obj *smv1.Sandbox, typ, reason, action, note string, args ...any) {
	if r.Recorder == nil {
		return
	}
	r.Recorder.Eventf(obj, nil, typ, reason, action, note, args...)
}

func joinProblems(ps []problem) string {
	msgs := make([]string, 0, len(ps))
	for _, p := range ps {
		msgs = append(msgs, p.message)
	}
	return strings.Join(msgs, "; ")
}

func truncate(s string) string {
	if len(s) > 1024 {
		return s[:1021] + "..."
	}
	return s
}

// lastSpecUpdate approximates "updatedAt": the last time a manager wrote the spec.
func lastSpecUpdate(sb *smv1.Sandbox) time.Time {
	t := sb.CreationTimestamp.Time
	for _, m := range sb.ManagedFields {
		if m.Subresource == "" && m.Time != nil && m.Time.After(t) && m.FieldsV1 != nil && strings.Contains(string(m.FieldsV1.Raw), `"f:spec"`) {
			t = m.Time.Time
		}
	}
	return t
}

// ttlDeadline computes when a TTL expires.
func ttlDeadline(ttl *smv1.TTL, created, updated time.Time) (time.Time, error) {
	d, err := ParseTTL(ttl.Duration)
	if err != nil {
		return time.Time{}, err
	}
	from := created
	if ttl.OffsetFrom == smv1.TTLFromUpdatedAt {
		from = updated
	}
	return from.Add(d), nil
}

// ParseTTL parses "<n>m|h|d|w".
func ParseTTL(s string) (time.Duration, error) {
	if len(s) < 2 {
		return 0, fmt.Errorf("ttl %q: want <n>m|h|d|w", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("ttl %q: want <n>m|h|d|w", s)
	}
	unit := map[byte]time.Duration{'m': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("ttl %q: unit must be m, h, d or w", s)
	}
	return time.Duration(n) * unit, nil
}
