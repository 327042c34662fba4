package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"

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
)

// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=resourceplugins,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=resourceplugins/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=resourceplugins/finalizers,verbs=update

// maxPluginSandboxes bounds status.sandboxes of a ResourcePlugin.
const maxPluginSandboxes = 50

// ResourcePluginReconciler reports whether a ResourcePlugin is valid and
// who uses it, and keeps it while Sandboxes use it: their delete steps need it.
type ResourcePluginReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// RunnerImage is the operator's runner image (for the dry build of the step pods).
	RunnerImage string
}

// SetupWithManager registers the reconciler; a Sandbox's changes reconcile
// the plugins it names. The index IndexResourcePlugin must be registered
// first (SetupIndexes).
func (r *ResourcePluginReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&smv1.ResourcePlugin{}).
		Named("resourceplugin").
		Watches(&smv1.Sandbox{}, handler.EnqueueRequestsFromMapFunc(pluginsOfSandbox)).
		Complete(r)
}

func pluginsOfSandbox(_ context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, k := range ResourcePluginIndex(o) {
		ns, name, _ := strings.Cut(k, "/")
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
	return out
}

// Reconcile implements reconcile.Reconciler (one span per call, see traced).
func (r *ResourcePluginReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return traced(ctx, "ResourcePlugin", req, r.reconcile)
}

func (r *ResourcePluginReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	rp := &smv1.ResourcePlugin{}
	if err := r.Client.Get(ctx, req.NamespacedName, rp); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var list smv1.SandboxList
	if err := r.Client.List(ctx, &list, client.MatchingFields{IndexResourcePlugin: rp.Namespace + "/" + rp.Name}); err != nil {
		return reconcile.Result{}, fmt.Errorf("list Sandboxes using ResourcePlugin %s/%s: %w", rp.Namespace, rp.Name, err)
	}
	users := make([]string, 0, len(list.Items))
	for _, sb := range list.Items {
		users = append(users, sb.Name)
	}
	sort.Strings(users)
	if !rp.DeletionTimestamp.IsZero() {
		if !controllerutil.ContainsFinalizer(rp, naming.Finalizer) {
			return reconcile.Result{}, nil
		}
		if len(users) == 0 {
			return reconcile.Result{}, removeFinalizer(ctx, r.Client, rp)
		}
		msg := "deletion waits: used by sandboxes " + strings.Join(users, ", ")
		changed, err := r.writeStatus(ctx, rp, users, metav1.Condition{Type: smv1.ConditionReady, Status: metav1.ConditionFalse, Reason: smv1.ReasonInUse, Message: msg})
		if changed {
			event(r.Recorder, rp, corev1.EventTypeWarning, smv1.ReasonInUse, "Delete", "%s", msg)
		}
		return reconcile.Result{}, err
	}
	if !controllerutil.ContainsFinalizer(rp, naming.Finalizer) {
		before := rp.DeepCopy()
		controllerutil.AddFinalizer(rp, naming.Finalizer)
		if err := r.Client.Patch(ctx, rp, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer to ResourcePlugin %s/%s: %w", rp.Namespace, rp.Name, err)
		}
	}
	ready := metav1.Condition{Type: smv1.ConditionReady, Status: metav1.ConditionTrue, Reason: smv1.ReasonValid, Message: "the plugin is valid"}
	if problems := CheckResourcePlugin(rp, r.RunnerImage); len(problems) > 0 {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, smv1.ReasonInvalidSpec, strings.Join(problems, "; ")
	}
	changed, err := r.writeStatus(ctx, rp, users, ready)
	if changed && ready.Status == metav1.ConditionFalse {
		event(r.Recorder, rp, corev1.EventTypeWarning, ready.Reason, "Reconcile", "%s", ready.Message)
	}
	return reconcile.Result{}, err
}

// CheckResourcePlugin is what is wrong with rp ("path: message"):
// ValidateResourcePlugin, then a dry build of the pod of every step (the
// podTemplateOverlay must decode and apply).
func CheckResourcePlugin(rp *smv1.ResourcePlugin, runnerImage string) []string {
	var out []string
	for _, p := range smv1.ValidateResourcePlugin(&rp.Spec) {
		out = append(out, p.String())
	}
	if len(out) > 0 {
		return out
	}
	if runnerImage == "" {
		runnerImage = smv1.RunnerBinary
	}
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "check", Namespace: rp.Namespace, UID: "check"}}
	for _, steps := range [][]smv1.PluginStep{rp.Spec.Create, rp.Spec.Delete} {
		for i := range steps {
			if _, err := StepPod(StepPodInput{Sandbox: sb, Resource: "check", Plugin: rp, Step: &steps[i], Attempt: 1, StateSecret: "check", RunnerImage: runnerImage}); err != nil {
				return []string{err.Error()}
			}
		}
	}
	return nil
}

// writeStatus patches rp's status when it changed, and reports whether Ready changed.
func (r *ResourcePluginReconciler) writeStatus(ctx context.Context, rp *smv1.ResourcePlugin, users []string, ready metav1.Condition) (bool, error) {
	before := rp.DeepCopy()
	if len(users) > maxPluginSandboxes {
		users = users[:maxPluginSandboxes]
	}
	if len(users) == 0 {
		users = nil
	}
	rp.Status.ObservedGeneration = rp.Generation
	rp.Status.Sandboxes = users
	ready.ObservedGeneration = rp.Generation
	ready.Message = truncateMessage(ready.Message)
	changed := meta.SetStatusCondition(&rp.Status.Conditions, ready)
	if equality.Semantic.DeepEqual(before.Status, rp.Status) {
		return false, nil
	}
	if err := r.Client.Status().Patch(ctx, rp, client.MergeFrom(before)); err != nil {
		return false, fmt.Errorf("patch status of ResourcePlugin %s/%s: %w", rp.Namespace, rp.Name, err)
	}
	return changed, nil
}

func truncateMessage(s string) string {
	const limit = 1024
	if len(s) > limit {
		return s[:limit-3] + "..."
	}
	return s
}
