// Package controllers holds the operator's reconcilers: one per concern
// (Sandbox, RouteGroup, route drift), sharing the routing Engine.
package controllers

import (
	"context"
	"errors"
	"fmt"
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
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"
	"sigs.k8s.io/controller-runtime/pkg/source"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/fork"
	"github.com/sandboxmesh/sandboxmesh/operator/local"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/operator/routing"
	"github.com/sandboxmesh/sandboxmesh/operator/status"
	"github.com/sandboxmesh/sandboxmesh/workload"
)

// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=sandboxes;routegroups,verbs=get;list;watch;update;patch;delete
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=sandboxes/status;routegroups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=sandboxes/finalizers;routegroups/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=argoproj.io,resources=rollouts,verbs=get;list;watch
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
	// RunnerImage installs sandboxmesh-runner into resource step pods.
	RunnerImage string
	// Namespaces the operator is limited to (empty: all); a plugin whose
	// runner namespace is not among them cannot run.
	Namespaces []string
	// RoutesURL is the routes lookup API's base URL given to fork containers
	// (smv1.EnvRoutesURL; "" leaves it out).
	RoutesURL string
	// Local carries local workloads to their machines' tunnels (nil: the operator runs without the
	// local-workload gateway, and local workloads stay LocalNotConnected). Engine.Locals is the same Router.
	Local *local.Router
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
	b := ctrl.NewControllerManagedBy(mgr).
		For(&smv1.Sandbox{}).
		Named("sandbox").
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.sandboxesForDeployment)).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(ownerSandbox), builder.WithPredicates(predicate.NewPredicateFuncs(isForkObject))).
		Watches(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.sandboxesForService)).
		Watches(&smv1.ResourcePlugin{}, handler.EnqueueRequestsFromMapFunc(r.sandboxesForPlugin))
	if r.Local != nil {
		// A machine connected or went away: the sandboxes it serves.
		b = b.WatchesRawSource(source.Channel(r.Local.Events(), handler.EnqueueRequestsFromMapFunc(r.sandboxesOfMachine)))
	}
	if r.Engine.Rollouts {
		// A Rollout created or changed after the sandboxes forking it.
		b = b.Watches(&workload.Rollout{}, handler.EnqueueRequestsFromMapFunc(r.sandboxesForDeployment))
	}
	return b.Complete(r)
}

// SetupIndexes registers the field indexes the controllers use; an Engine
// reading through the manager's cache sets Indexed after it.
func SetupIndexes(ctx context.Context, mgr ctrl.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &smv1.Sandbox{}, routing.IndexForkedWorkload, routing.WorkloadIndex); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &smv1.Sandbox{}, IndexResourcePlugin, ResourcePluginIndex); err != nil {
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
	return smv1.IsManaged(o.GetLabels()) && o.GetLabels()[naming.LabelSandbox] != ""
}

func ownerSandbox(_ context.Context, o client.Object) []reconcile.Request {
	if !isForkObject(o) {
		return nil
	}
	l := o.GetLabels()
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[naming.LabelSandboxNamespace], Name: l[naming.LabelSandbox]}}}
}

// sandboxesForDeployment maps a fork Deployment to its Sandbox and a baseline
// Deployment or Rollout to every Sandbox referring to it.
func (r *SandboxReconciler) sandboxesForDeployment(ctx context.Context, o client.Object) []reconcile.Request {
	if isForkObject(o) {
		return ownerSandbox(ctx, o)
	}
	return r.sandboxesForWorkload(ctx, o.GetNamespace()+"/"+o.GetName())
}

func (r *SandboxReconciler) sandboxesForWorkload(ctx context.Context, key string) []reconcile.Request {
	list, err := r.Engine.SandboxesOf(ctx, key)
	if err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, sb := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sb)})
	}
	return out
}

// sandboxesForPlugin maps a ResourcePlugin to the Sandboxes using it.
func (r *SandboxReconciler) sandboxesForPlugin(ctx context.Context, o client.Object) []reconcile.Request {
	var list smv1.SandboxList
	if err := r.Client.List(ctx, &list, client.MatchingFields{IndexResourcePlugin: o.GetNamespace() + "/" + o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, sb := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&sb)})
	}
	return out
}

// sandboxesOfMachine maps a machine's tunnel event (local.MachineObject) to the Sandboxes whose
// spec.localMachineID it is.
func (r *SandboxReconciler) sandboxesOfMachine(ctx context.Context, o client.Object) []reconcile.Request {
	machine, ok := local.MachineOf(o)
	if !ok {
		return nil
	}
	var list smv1.SandboxList
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	var out []reconcile.Request
	for i := range list.Items {
		if sb := &list.Items[i]; sb.Spec.LocalMachineID == machine && (len(sb.Spec.Local) > 0 || sb.Spec.Routing != nil) {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(sb)})
		}
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
	forks     []smv1.ForkStatus
	problems  []status.Problem
	routes    status.Routes
	endpoints []smv1.EndpointStatus
	resources []smv1.ResourceStatus
	local     []smv1.LocalStatus
}

func (o *observed) problem(k status.Kind, format string, args ...any) {
	o.problems = append(o.problems, status.Problem{Kind: k, Message: fmt.Sprintf(format, args...)})
}

// Reconcile implements reconcile.Reconciler (one span per call, see traced).
func (r *SandboxReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return traced(ctx, "Sandbox", req, r.reconcile)
}

// reconcile runs the steps shared with RouteGroups (deletion, finalizer and
// routing key, TTL), then reconcileNormal.
func (r *SandboxReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	sb := &smv1.Sandbox{}
	if err := r.Client.Get(ctx, req.NamespacedName, sb); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !sb.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, sb)
	}
	key, patched, err := ensureFinalizerAndKey(ctx, r.Client, sb, sb.Status.RoutingKey)
	if err != nil || patched {
		return reconcile.Result{}, err // patched: its watch event reconciles again, with the key in the cache
	}
	created := sb.CreationTimestamp.Time
	deleteAt := ttlDeadline(sb.Spec.TTL, &sb.ObjectMeta, &created)
	if expired, err := expire(ctx, r.Client, r.Recorder, sb, sb.Spec.TTL, deleteAt, r.now()); expired || err != nil {
		return reconcile.Result{}, err
	}
	return r.reconcileNormal(ctx, sb, key, deleteAt)
}

// reconcileNormal builds the forks, syncs the routes of every Service the
// sandbox touches (routing.Footprint), deletes forks the spec no longer lists
// once their routes are gone, and writes the status.
func (r *SandboxReconciler) reconcileNormal(ctx context.Context, sb *smv1.Sandbox, key string, deleteAt *time.Time) (reconcile.Result, error) {
	fp, err := r.Engine.Footprint(ctx, sb)
	if err != nil {
		return reconcile.Result{}, err
	}
	obs := &observed{}
	// Resources come before forks: a fork reads their outputs.
	resources, err := r.reconcileResources(ctx, sb, key, obs)
	if err != nil {
		return reconcile.Result{}, err
	}
	obs.resources = resources.Statuses
	desiredForks := map[string]bool{}
	for i, f := range sb.Spec.Forks {
		if !resources.Ready {
			// Forks wait; one already there (an operator restarted mid-way) stays.
			desiredForks[f.ForkOf.Namespace+"/"+naming.ForkName(sb.Namespace, sb.Name, f.ForkOf.Namespace, f.ForkOf.Name)] = true
			continue
		}
		name, err := r.reconcileFork(ctx, sb, key, i, f, fp, obs, &resources)
		if err != nil {
			return reconcile.Result{}, err
		}
		if name != "" {
			desiredForks[f.ForkOf.Namespace+"/"+name] = true
		}
	}
	for _, v := range sb.Spec.Virtual {
		if w := v.Workload.Namespace + "/" + v.Workload.Name; fp.Baselines[w] == nil {
			obs.problem(unusableKind(fp.Unusable[w]), "virtual %s: %v", v.Name, fp.Unusable[w])
		}
	}
	localServices, err := r.reconcileLocals(ctx, sb, fp, obs)
	if err != nil {
		return reconcile.Result{}, err
	}
	// Forks removed from the spec: their routes go first, then their objects.
	var orphans []client.ObjectKey
	for _, d := range fp.Forks {
		if !desiredForks[d.Namespace+"/"+d.Name] {
			orphans = append(orphans, client.ObjectKeyFromObject(&d))
		}
	}
	obs.routes = status.Routes{Backends: r.Engine.BackendNames(), RequireAcceptance: r.RequireAcceptance}
	obs.routes.Err = r.Engine.SyncServices(ctx, fp.Services)
	if obs.routes.Err == nil {
		for _, o := range orphans {
			if err := r.deleteFork(ctx, sb, o); err != nil {
				return reconcile.Result{}, err
			}
			event(r.Recorder, sb, corev1.EventTypeNormal, "ForkDeleted", "Delete", "deleted fork %s/%s", o.Namespace, o.Name)
		}
		routeStatus(ctx, r.Engine, fp.Services, &obs.routes)
		if err := r.deleteLocalServices(ctx, sb, localServices); err != nil {
			return reconcile.Result{}, err
		}
	}
	obs.endpoints = resolveEndpoints(sb, obs)

	if err := r.writeStatus(ctx, sb, key, deleteAt, obs); err != nil {
		return reconcile.Result{}, err
	}
	if obs.routes.Err != nil {
		return reconcile.Result{}, obs.routes.Err
	}
	res := reconcile.Result{RequeueAfter: requeueFor(deleteAt, r.now())}
	if (obs.routes.Pending || obs.routes.Rejected) && (res.RequeueAfter == 0 || res.RequeueAfter > 5*time.Second) {
		res.RequeueAfter = 5 * time.Second
	}
	res.RequeueAfter = minRequeue(res.RequeueAfter, resources.Requeue)
	if len(localServices) > 0 { // refresh the tunnels' lastHeartbeat
		res.RequeueAfter = minRequeue(res.RequeueAfter, heartbeatEvery)
	}
	return res, nil
}

// reconcileFork creates or updates one fork and records what it saw.
func (r *SandboxReconciler) reconcileFork(ctx context.Context, sb *smv1.Sandbox, key string, i int, f smv1.Fork, fp *routing.Footprint, obs *observed, resources *resourcesResult) (string, error) {
	kind := workload.Kind(f.ForkOf)
	baselineID := fmt.Sprintf("%s/%s/%s", kind, f.ForkOf.Namespace, f.ForkOf.Name)
	fs := smv1.ForkStatus{Name: f.ForkOf.Name, Baseline: baselineID}
	defer func() { obs.forks = append(obs.forks, fs) }()
	if kind != smv1.KindDeployment && kind != smv1.KindRollout {
		fs.Message = "kind " + string(kind) + " is not supported"
		obs.problem(status.UnsupportedKind, "spec.forks[%d].forkOf.kind: %s is not supported (Deployment or Rollout)", i, kind)
		return "", nil
	}
	name := naming.ForkName(sb.Namespace, sb.Name, f.ForkOf.Namespace, f.ForkOf.Name)
	fs.Deployment = name
	w := f.ForkOf.Namespace + "/" + f.ForkOf.Name
	base, svcs := fp.Baselines[w], fp.ServicesOf[w]
	if base == nil {
		fs.Message = fmt.Sprintf("baseline %v", fp.Unusable[w])
		obs.problem(unusableKind(fp.Unusable[w]), "spec.forks[%d]: %v", i, fp.Unusable[w])
		// An existing fork keeps running (the user may restore the baseline);
		// with no workload behind the baseline Services it gets no routes.
		return name, nil
	}
	var existing appsv1.Deployment
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: base.Namespace, Name: name}, &existing)
	exists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return "", fmt.Errorf("get fork Deployment %s/%s: %w", base.Namespace, name, err)
	}
	if exists && !forkOf(&existing, sb) {
		// Never take over an object we did not create (a user's Deployment, or another sandbox's fork
		// should the 32-bit name hash ever collide).
		fs.Deployment, fs.Message = "", fmt.Sprintf("Deployment %s/%s exists and is not this sandbox's fork", base.Namespace, name)
		obs.problem(status.NameConflict, "spec.forks[%d]: %s; it is left untouched", i, fs.Message)
		return "", nil
	}
	// The baseline is snapshotted when the fork is created and re-read when the Sandbox changes.
	gen := strconv.FormatInt(sb.Generation, 10)
	if !exists || existing.Annotations[annotationSandboxGeneration] != gen {
		siblings, err := r.siblings(ctx, sb, f)
		if err != nil {
			return "", fmt.Errorf("read the forks env valueFrom.fork refers to: %w", err)
		}
		desired, err := fork.Deployment(fork.Input{Sandbox: sb, RoutingKey: key, Index: i, Fork: f, Baseline: base,
			ExcludeLabelKeys: routing.SelectorKeys(svcs), Siblings: siblings, ResourceSecret: resources.Secret, ResourceKeys: resources.Keys, RoutesURL: r.RoutesURL})
		if err != nil {
			kind := status.InvalidCustomization
			switch {
			case errors.Is(err, fork.ErrInvalidPatch):
				kind = status.InvalidPatch
			case errors.Is(err, fork.ErrUnsupported):
				kind = status.UnsupportedCustomization
			}
			fs.Message = err.Error()
			obs.problem(kind, "%s", err.Error())
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
			event(r.Recorder, sb, corev1.EventTypeNormal, "ForkCreated", "Create", "created fork Deployment %s/%s of %s", desired.Namespace, desired.Name, baselineID)
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
			event(r.Recorder, sb, corev1.EventTypeNormal, "ForkUpdated", "Update", "updated fork Deployment %s/%s", existing.Namespace, existing.Name)
		}
	}
	if len(svcs) > 0 {
		fs.Service = name
		if err := r.ensureForkService(ctx, sb, name, base.Name, base.Namespace, svcs); errors.Is(err, errNameConflict) {
			fs.Service, fs.Message = "", err.Error()
			obs.problem(status.NameConflict, "spec.forks[%d]: %v; it is left untouched", i, err)
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
		obs.problem(status.ForkNotReady, "fork %s: %s", name, why)
		if p := r.podProblem(ctx, base.Namespace, name); p != nil {
			fs.Message = p.Message
			obs.problems = append(obs.problems, *p)
		}
	}
	return name, nil
}

const annotationSandboxGeneration = "sandboxmesh.dev/sandbox-generation"

// unusableKind is the problem of a baseline routing.Footprint could not use:
// UnsupportedKind for what SandboxMesh cannot fork, else BaselineNotFound.
func unusableKind(err error) status.Kind {
	if errors.Is(err, workload.ErrUnsupported) {
		return status.UnsupportedKind
	}
	return status.BaselineNotFound
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
func (r *SandboxReconciler) podProblem(ctx context.Context, ns, forkName string) *status.Problem {
	var pods corev1.PodList
	if err := r.Client.List(ctx, &pods, client.InNamespace(ns), client.MatchingLabels{naming.LabelFork: forkName}); err != nil {
		return nil
	}
	for _, p := range pods.Items {
		for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := cs.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull":
					return &status.Problem{Kind: status.ImagePullFailed, Message: fmt.Sprintf("fork %s: container %s cannot pull image %s: %s", forkName, cs.Name, cs.Image, w.Message)}
				case "CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError":
					kind := status.ForkCrashLooping
					if w.Reason != "CrashLoopBackOff" {
						kind = status.InvalidCustomization
					}
					return &status.Problem{Kind: kind, Message: fmt.Sprintf("fork %s: container %s: %s: %s", forkName, cs.Name, w.Reason, w.Message)}
				}
			}
		}
	}
	return nil
}

// siblings returns what env valueFrom.fork expressions of fork f can refer
// to: every fork of sb with its Service host and the first container port of
// its baseline workload (read from the cache). Nil when f uses no such expression.
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
		switch b, err := workload.Get(ctx, r.Client, o.ForkOf, r.Engine.Rollouts); {
		case err == nil:
			sib.Service.Port = fork.FirstContainerPort(b.Deployment)
		case errors.Is(err, workload.ErrNotFound), errors.Is(err, workload.ErrUnsupported):
			// That fork's own status says which; here its port is unknown.
			sib.BaselineMissing = true
		default:
			return nil, err
		}
		out[fork.SiblingKey(o.ForkOf)] = sib
	}
	return out, nil
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
	return naming.OwnedBy(o.GetLabels(), sb.Namespace, sb.Name)
}

// routeStatus asks the backends whether they accepted the routes of each
// Service; the first one that did not gives the answer.
func routeStatus(ctx context.Context, e *routing.Engine, services []types.NamespacedName, out *status.Routes) {
	for _, k := range services {
		st, backend, err := e.Status(ctx, k)
		if err != nil {
			out.Err = err
			return
		}
		if !st.Accepted {
			out.From, out.Message = backend+" on Service "+k.String(), st.Message
			out.Rejected = st.Reason == meshadapters.ReasonRejected
			out.Pending = !out.Rejected
			return
		}
	}
}

// reconcileDelete removes the sandbox's routes, then its forks, then its
// resources (outputs Secrets, delete steps, state Secrets), then the finalizer.
func (r *SandboxReconciler) reconcileDelete(ctx context.Context, sb *smv1.Sandbox) (reconcile.Result, error) {
	if !controllerutil.ContainsFinalizer(sb, naming.Finalizer) {
		return reconcile.Result{}, nil
	}
	fp, err := r.Engine.Footprint(ctx, sb)
	if err != nil {
		return reconcile.Result{}, err
	}
	if err := r.Engine.SyncServices(ctx, fp.Services); err != nil {
		event(r.Recorder, sb, corev1.EventTypeWarning, "RouteRemovalFailed", "Delete", "cannot remove routes yet: %v", err)
		return reconcile.Result{}, err
	}
	for _, d := range fp.Forks {
		if err := r.deleteFork(ctx, sb, client.ObjectKeyFromObject(&d)); err != nil {
			return reconcile.Result{}, err
		}
	}
	if r.Local != nil {
		r.Local.Release(sb.Namespace+"/"+sb.Name, nil)
		if err := r.deleteLocalServices(ctx, sb, nil); err != nil {
			return reconcile.Result{}, err
		}
	}
	// Fork Services whose Deployment was already gone.
	var svcs corev1.ServiceList
	if err := r.Engine.ListSandboxObjects(ctx, &svcs, sb.Namespace, sb.Name); err != nil {
		return reconcile.Result{}, fmt.Errorf("list fork Services of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	for _, s := range svcs.Items {
		if err := r.Client.Delete(ctx, &s); client.IgnoreNotFound(err) != nil {
			return reconcile.Result{}, fmt.Errorf("delete fork Service %s/%s: %w", s.Namespace, s.Name, err)
		}
	}
	if len(sb.Spec.Resources) > 0 {
		if err := r.deleteOutputs(ctx, sb); err != nil {
			return reconcile.Result{}, err
		}
		gone, sts, requeue, err := r.deleteResources(ctx, sb)
		if err != nil {
			return reconcile.Result{}, err
		}
		if !gone {
			return reconcile.Result{RequeueAfter: requeue}, r.writeDeleteStatus(ctx, sb, sts)
		}
	}
	return reconcile.Result{}, removeFinalizer(ctx, r.Client, sb)
}

func resolveEndpoints(sb *smv1.Sandbox, obs *observed) []smv1.EndpointStatus {
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
			obs.problem(status.EndpointUnresolved, "%s", err.Error())
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

// writeStatus sets the status from obs (status.Set) and patches it only when it changed.
func (r *SandboxReconciler) writeStatus(ctx context.Context, sb *smv1.Sandbox, key string, deleteAt *time.Time, obs *observed) error {
	before := sb.DeepCopy()
	st := &sb.Status
	st.ObservedGeneration = sb.Generation
	st.RoutingKey = key
	st.Forks = obs.forks
	st.Endpoints = obs.endpoints
	st.ScheduledDeleteTime = metaTime(deleteAt)
	st.Resources = obs.resources
	st.Local = obs.local
	status.Set(&st.Conditions, status.Observed{Generation: sb.Generation, Problems: obs.problems, Routes: obs.routes,
		ReadyReason: smv1.ReasonAvailable, ReadyMessage: "all forks available and routes in place", Progressing: true})
	if len(sb.Spec.Resources) > 0 {
		meta.SetStatusCondition(&st.Conditions, status.ResourcesCondition(sb.Generation, obs.resources))
	}
	if equality.Semantic.DeepEqual(before.Status, sb.Status) {
		return nil
	}
	if err := r.Client.Status().Patch(ctx, sb, client.MergeFrom(before)); err != nil {
		return fmt.Errorf("patch status of Sandbox %s/%s: %w", sb.Namespace, sb.Name, err)
	}
	r.transitionEvents(sb, before)
	return nil
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
		event(r.Recorder, sb, typ, now.Reason, "Reconcile", "%s=%s: %s", t, now.Status, now.Message)
	}
}

// ParseTTL parses "<n>m|h|d|w" (smv1.ParseTTL).
func ParseTTL(s string) (time.Duration, error) { return smv1.ParseTTL(s) }
