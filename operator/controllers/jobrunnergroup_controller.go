package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=jobrunnergroups,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=jobrunnergroups/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=sandboxmesh.dev,resources=jobrunnergroups/finalizers,verbs=update

// JobRunnerGroupReconciler turns a JobRunnerGroup into the runner Deployment
// in its spec.namespace. The Deployment lives in another namespace than its
// JobRunnerGroup, so it has no owner reference: labels tie it to the group
// and the finalizer deletes it.
type JobRunnerGroupReconciler struct {
	Client   client.Client
	Recorder recorder.EventRecorder
	// RunnerImage is the image of the init container that installs the
	// runner binary into the pods (the sandboxmesh-runner image).
	RunnerImage string
	// Namespaces the operator is limited to (empty: all): a group whose
	// spec.namespace is not among them gets Ready=False NamespaceNotWatched.
	Namespaces []string
	// Now is the clock of condition transitions (default time.Now).
	Now func() time.Time
}

// namespaceRetry is how often a group whose namespace does not exist is retried.
const namespaceRetry = 30 * time.Second

func (r *JobRunnerGroupReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// SetupWithManager registers the reconciler; a runner Deployment's changes
// (its status above all) reconcile its group, found by its labels.
func (r *JobRunnerGroupReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&smv1.JobRunnerGroup{}).
		Named("jobrunnergroup").
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(ownerRunnerGroup),
			builder.WithPredicates(predicate.NewPredicateFuncs(func(o client.Object) bool { return len(ownerRunnerGroup(context.Background(), o)) > 0 }))).
		Complete(r)
}

// ownerRunnerGroup maps a runner Deployment to its JobRunnerGroup.
func ownerRunnerGroup(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	if !smv1.IsManaged(l) || l[smv1.LabelRunnerGroup] == "" || l[smv1.LabelRunnerGroupNamespace] == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[smv1.LabelRunnerGroupNamespace], Name: l[smv1.LabelRunnerGroup]}}}
}

// ownsRunner reports whether labels mark the runner Deployment of group jrg.
func ownsRunner(labels map[string]string, jrg *smv1.JobRunnerGroup) bool {
	return smv1.IsManaged(labels) && labels[smv1.LabelRunnerGroup] == jrg.Name && labels[smv1.LabelRunnerGroupNamespace] == jrg.Namespace
}

// Reconcile implements reconcile.Reconciler (one span per call, see traced).
func (r *JobRunnerGroupReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	return traced(ctx, "JobRunnerGroup", req, r.reconcile)
}

func (r *JobRunnerGroupReconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	jrg := &smv1.JobRunnerGroup{}
	if err := r.Client.Get(ctx, req.NamespacedName, jrg); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if !jrg.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, r.reconcileDelete(ctx, jrg)
	}
	if !controllerutil.ContainsFinalizer(jrg, naming.Finalizer) {
		before := jrg.DeepCopy()
		controllerutil.AddFinalizer(jrg, naming.Finalizer)
		if err := r.Client.Patch(ctx, jrg, client.MergeFrom(before)); err != nil {
			return reconcile.Result{}, fmt.Errorf("add finalizer to JobRunnerGroup %s/%s: %w", jrg.Namespace, jrg.Name, err)
		}
	}
	return r.reconcileNormal(ctx, jrg)
}

// reconcileDelete deletes the runner Deployment (when it is the group's),
// then the finalizer.
func (r *JobRunnerGroupReconciler) reconcileDelete(ctx context.Context, jrg *smv1.JobRunnerGroup) error {
	if !controllerutil.ContainsFinalizer(jrg, naming.Finalizer) {
		return nil
	}
	if r.watches(runnerNamespace(jrg)) {
		var d appsv1.Deployment
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: runnerNamespace(jrg), Name: smv1.RunnerObjectName(jrg.Name)}, &d)
		switch {
		case err == nil && ownsRunner(d.Labels, jrg):
			if err := r.Client.Delete(ctx, &d, client.Preconditions{UID: &d.UID}); client.IgnoreNotFound(err) != nil {
				return fmt.Errorf("delete runner Deployment %s/%s of JobRunnerGroup %s/%s: %w", d.Namespace, d.Name, jrg.Namespace, jrg.Name, err)
			}
			event(r.Recorder, jrg, corev1.EventTypeNormal, "DeploymentDeleted", "Delete", "deleted runner Deployment %s/%s", d.Namespace, d.Name)
		case err != nil && !apierrors.IsNotFound(err):
			return fmt.Errorf("get runner Deployment of JobRunnerGroup %s/%s: %w", jrg.Namespace, jrg.Name, err)
		}
	}
	return removeFinalizer(ctx, r.Client, jrg)
}

// RunnerObservation is what one reconcile of a JobRunnerGroup learned,
// turned into its status by RunnerGroupStatus.
type RunnerObservation struct {
	// Deployment is the group's runner Deployment (nil: none yet).
	Deployment *appsv1.Deployment
	// Reason and Message of a problem that keeps the group from running
	// (empty: none).
	Reason, Message string
}

// reconcileNormal creates or updates the runner Deployment, then writes the
// status when it changed.
func (r *JobRunnerGroupReconciler) reconcileNormal(ctx context.Context, jrg *smv1.JobRunnerGroup) (reconcile.Result, error) {
	var obs RunnerObservation
	var res reconcile.Result
	ns := runnerNamespace(jrg)
	desired, err := RunnerDeployment(jrg, r.RunnerImage)
	switch {
	case !r.watches(ns):
		obs.Reason, obs.Message = smv1.ReasonNamespaceNotWatched, fmt.Sprintf("spec.namespace: the operator only watches namespaces %v; add %s to its --namespaces", r.Namespaces, ns)
	case err != nil:
		obs.Reason, obs.Message = smv1.ReasonInvalidSpec, err.Error()
	default:
		var rerr error
		obs, res, rerr = r.syncDeployment(ctx, jrg, desired)
		if rerr != nil {
			return reconcile.Result{}, rerr
		}
	}
	before := jrg.DeepCopy()
	jrg.Status = RunnerGroupStatus(jrg, obs, r.now())
	if equality.Semantic.DeepEqual(before.Status, jrg.Status) {
		return res, nil
	}
	if err := r.Client.Status().Patch(ctx, jrg, client.MergeFrom(before)); err != nil {
		return reconcile.Result{}, fmt.Errorf("patch status of JobRunnerGroup %s/%s: %w", jrg.Namespace, jrg.Name, err)
	}
	old, now := meta.FindStatusCondition(before.Status.Conditions, smv1.ConditionReady), meta.FindStatusCondition(jrg.Status.Conditions, smv1.ConditionReady)
	if old == nil || old.Status != now.Status || old.Reason != now.Reason {
		typ := corev1.EventTypeNormal
		if obs.Reason != "" {
			typ = corev1.EventTypeWarning
		}
		event(r.Recorder, jrg, typ, now.Reason, "Reconcile", "Ready=%s: %s", now.Status, now.Message)
	}
	return res, nil
}

// syncDeployment creates the runner Deployment or updates it when its spec
// hash or replicas differ from desired. Problems the user must fix (no
// namespace, a template the API server refuses, a foreign Deployment with
// the name) come back in the observation; other errors are returned.
func (r *JobRunnerGroupReconciler) syncDeployment(ctx context.Context, jrg *smv1.JobRunnerGroup, desired *appsv1.Deployment) (RunnerObservation, reconcile.Result, error) {
	var obs RunnerObservation
	existing := &appsv1.Deployment{}
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(desired), existing)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, desired); err != nil {
			return r.writeProblem(jrg, desired, err)
		}
		event(r.Recorder, jrg, corev1.EventTypeNormal, "DeploymentCreated", "Create", "created runner Deployment %s/%s", desired.Namespace, desired.Name)
		obs.Deployment = desired
	case err != nil:
		return obs, reconcile.Result{}, fmt.Errorf("get runner Deployment %s/%s of JobRunnerGroup %s/%s: %w", desired.Namespace, desired.Name, jrg.Namespace, jrg.Name, err)
	case !ownsRunner(existing.Labels, jrg):
		obs.Reason, obs.Message = smv1.ReasonNameConflict, fmt.Sprintf("Deployment %s/%s exists and is not this group's runner Deployment (labels %s=%s, %s, %s); delete or rename it",
			existing.Namespace, existing.Name, smv1.LabelManagedBy, smv1.ManagedBy, smv1.LabelRunnerGroup, smv1.LabelRunnerGroupNamespace)
	case existing.Annotations[naming.AnnotationSpecHash] != desired.Annotations[naming.AnnotationSpecHash] ||
		existing.Spec.Replicas == nil || *existing.Spec.Replicas != *desired.Spec.Replicas:
		existing.Labels = desired.Labels
		existing.Annotations = mergeMaps(existing.Annotations, desired.Annotations)
		existing.Spec = desired.Spec
		current := existing.DeepCopy()
		if err := r.Client.Update(ctx, existing); err != nil {
			obs, res, err := r.writeProblem(jrg, desired, err)
			obs.Deployment = current // its pods still run the previous template
			return obs, res, err
		}
		event(r.Recorder, jrg, corev1.EventTypeNormal, "DeploymentUpdated", "Update", "updated runner Deployment %s/%s", existing.Namespace, existing.Name)
		obs.Deployment = existing
	default:
		obs.Deployment = existing
	}
	return obs, reconcile.Result{}, nil
}

// writeProblem turns a failed create or update of the runner Deployment into
// an observation when the user must act, else returns the error.
func (r *JobRunnerGroupReconciler) writeProblem(jrg *smv1.JobRunnerGroup, d *appsv1.Deployment, err error) (RunnerObservation, reconcile.Result, error) {
	var obs RunnerObservation
	switch {
	case apierrors.IsNotFound(err): // the namespace
		obs.Reason, obs.Message = smv1.ReasonNamespaceNotFound, fmt.Sprintf("spec.namespace: namespace %s does not exist", d.Namespace)
		return obs, reconcile.Result{RequeueAfter: namespaceRetry}, nil
	case apierrors.IsInvalid(err):
		obs.Reason, obs.Message = smv1.ReasonInvalidSpec, fmt.Sprintf("the API server refused runner Deployment %s/%s: %v", d.Namespace, d.Name, err)
		return obs, reconcile.Result{}, nil
	case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
		// Another writer was first: look again in a moment.
		return obs, reconcile.Result{RequeueAfter: time.Second}, nil
	}
	return obs, reconcile.Result{}, fmt.Errorf("write runner Deployment %s/%s of JobRunnerGroup %s/%s: %w", d.Namespace, d.Name, jrg.Namespace, jrg.Name, err)
}

// watches reports whether the operator may touch namespace ns.
func (r *JobRunnerGroupReconciler) watches(ns string) bool {
	return len(r.Namespaces) == 0 || slices.Contains(r.Namespaces, ns)
}

func runnerNamespace(jrg *smv1.JobRunnerGroup) string {
	if jrg.Spec.Namespace != "" {
		return jrg.Spec.Namespace
	}
	return smv1.DefaultJobNamespace
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// RunnerGroupStatus computes a JobRunnerGroup's status from what a reconcile
// observed, keeping the transition times of conditions that did not change.
// Ready is True when every desired pod of the latest template is ready (or
// none is desired); otherwise its reason says why not.
func RunnerGroupStatus(jrg *smv1.JobRunnerGroup, obs RunnerObservation, now time.Time) smv1.JobRunnerGroupStatus {
	st := *jrg.Status.DeepCopy()
	st.ObservedGeneration = jrg.Generation
	st.Pods = smv1.RunnerPods{}
	desired := jrg.Spec.DesiredPods()
	ready := metav1.Condition{Type: smv1.ConditionReady, Status: metav1.ConditionFalse, ObservedGeneration: jrg.Generation, LastTransitionTime: metav1.NewTime(now)}
	d := obs.Deployment
	if d != nil {
		st.Pods.Ready = d.Status.ReadyReplicas
		st.Pods.NotReady = max(d.Status.Replicas-d.Status.ReadyReplicas, 0)
	}
	switch {
	case obs.Reason != "":
		ready.Reason, ready.Message = obs.Reason, obs.Message
	case d == nil || d.Status.ObservedGeneration < d.Generation:
		ready.Reason, ready.Message = smv1.ReasonCreating, "the runner Deployment's latest spec is not rolled out yet"
	case rolloutFailure(d) != "":
		ready.Reason, ready.Message = smv1.ReasonRolloutFailed, rolloutFailure(d)
	case desired == 0:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, smv1.ReasonScaledToZero, "scaling.manual.desiredPods is 0: no runner pod claims jobs"
	case d.Status.ReadyReplicas >= desired && d.Status.UpdatedReplicas >= desired:
		ready.Status, ready.Reason, ready.Message = metav1.ConditionTrue, smv1.ReasonAvailable, fmt.Sprintf("%d of %d runner pods ready", d.Status.ReadyReplicas, desired)
	default:
		ready.Reason, ready.Message = smv1.ReasonPodsNotReady, fmt.Sprintf("%d of %d runner pods ready", min(d.Status.ReadyReplicas, desired), desired)
	}
	meta.SetStatusCondition(&st.Conditions, ready)
	return st
}

// rolloutFailure is the message of a Deployment condition saying its pods
// cannot be made (ReplicaFailure) or it stopped progressing ("": neither).
func rolloutFailure(d *appsv1.Deployment) string {
	for _, c := range d.Status.Conditions {
		if (c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue) ||
			(c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse) {
			return fmt.Sprintf("runner Deployment %s/%s: %s: %s", d.Namespace, d.Name, c.Reason, c.Message)
		}
	}
	return ""
}

// RunnerDeployment is the runner Deployment of jrg: spec.podTemplate (or one
// container running spec.image) with spec.image on its first container, an
// init container from runnerImage installing the runner binary into an
// emptyDir, the first container's command replaced by the runner, which gets
// the control plane's address, the group's name and token and the pod's
// identity in its environment (and the pods the token's hash, so that a new
// token rolls them). Its pods opt out of devmesh injection: runner
// pods are clients, not routed workloads. The error names the spec field that
// cannot make a pod.
func RunnerDeployment(jrg *smv1.JobRunnerGroup, runnerImage string) (*appsv1.Deployment, error) {
	if runnerImage == "" {
		return nil, fmt.Errorf("the operator has no runner image (--runner-image)")
	}
	var tpl corev1.PodTemplateSpec
	if jrg.Spec.PodTemplate != nil {
		tpl = *jrg.Spec.PodTemplate.DeepCopy()
	}
	if len(tpl.Spec.Containers) == 0 {
		if jrg.Spec.Image == "" {
			return nil, fmt.Errorf("spec.image: required when spec.podTemplate has no containers")
		}
		tpl.Spec.Containers = []corev1.Container{{Name: smv1.RunnerContainer}}
	}
	main := &tpl.Spec.Containers[0]
	if jrg.Spec.Image != "" {
		main.Image = jrg.Spec.Image
	}
	if main.Image == "" {
		return nil, fmt.Errorf("spec.podTemplate.spec.containers[0].image: required when spec.image is empty")
	}
	for _, c := range tpl.Spec.InitContainers {
		if c.Name == smv1.RunnerContainerInstall {
			return nil, fmt.Errorf("spec.podTemplate.spec.initContainers: the name %s is reserved for the runner", smv1.RunnerContainerInstall)
		}
	}
	for _, v := range tpl.Spec.Volumes {
		if v.Name == smv1.RunnerVolume {
			return nil, fmt.Errorf("spec.podTemplate.spec.volumes: the name %s is reserved for the runner", smv1.RunnerVolume)
		}
	}

	groupLabels := map[string]string{
		smv1.LabelManagedBy:            smv1.ManagedBy,
		smv1.LabelRunnerGroup:          jrg.Name,
		smv1.LabelRunnerGroupNamespace: jrg.Namespace,
	}
	tpl.Labels = mergeMaps(tpl.Labels, groupLabels)
	tpl.Annotations = mergeMaps(tpl.Annotations, map[string]string{smv1.AnnotationInject: "false"})
	if h := jrg.Annotations[smv1.AnnotationRunnerTokenHash]; h != "" {
		tpl.Annotations[smv1.AnnotationRunnerTokenHash] = h
	}
	if tpl.Spec.AutomountServiceAccountToken == nil {
		// Jobs talk to the control plane and the sandboxes, not to the API server.
		no := false
		tpl.Spec.AutomountServiceAccountToken = &no
	}

	bin := smv1.RunnerBinDir + "/" + smv1.RunnerBinary
	main.Command = []string{bin, "run"}
	main.Args = nil
	ours := []corev1.EnvVar{
		{Name: smv1.EnvControlPlaneURL, Value: jrg.Spec.ControlPlane.URL},
		{Name: smv1.EnvOrg, Value: jrg.Spec.ControlPlane.Org},
		{Name: smv1.EnvRunnerGroup, Value: jrg.Name},
		{Name: smv1.EnvPodName, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.name"}}},
		{Name: smv1.EnvPodNamespace, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}},
		{Name: smv1.EnvRunnerToken, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: jrg.Spec.ControlPlane.TokenSecretName}, Key: smv1.RunnerTokenSecretKey}}},
	}
	main.Env = slices.DeleteFunc(main.Env, func(e corev1.EnvVar) bool {
		return slices.ContainsFunc(ours, func(o corev1.EnvVar) bool { return o.Name == e.Name })
	})
	main.Env = append(main.Env, ours...)
	main.VolumeMounts = slices.DeleteFunc(main.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == smv1.RunnerBinDir })
	main.VolumeMounts = append(main.VolumeMounts, corev1.VolumeMount{Name: smv1.RunnerVolume, MountPath: smv1.RunnerBinDir, ReadOnly: true})
	tpl.Spec.Volumes = append(tpl.Spec.Volumes, runnerBinVolume())
	tpl.Spec.InitContainers = append([]corev1.Container{runnerInstallInit(runnerImage)}, tpl.Spec.InitContainers...)

	replicas := jrg.Spec.DesiredPods()
	history := int32(2)
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: smv1.RunnerObjectName(jrg.Name), Namespace: runnerNamespace(jrg), Labels: groupLabels},
		Spec: appsv1.DeploymentSpec{
			Replicas:             &replicas,
			RevisionHistoryLimit: &history,
			Selector:             &metav1.LabelSelector{MatchLabels: map[string]string{smv1.LabelRunnerGroup: jrg.Name, smv1.LabelRunnerGroupNamespace: jrg.Namespace}},
			Template:             tpl,
		},
	}
	b, err := json.Marshal(d.Spec)
	if err != nil {
		return nil, fmt.Errorf("hash runner Deployment of JobRunnerGroup %s/%s: %w", jrg.Namespace, jrg.Name, err)
	}
	h := sha256.Sum256(b)
	d.Annotations = map[string]string{naming.AnnotationSpecHash: hex.EncodeToString(h[:8])}
	return d, nil
}

// runnerBinVolume is the emptyDir the runner binary is installed into
// (runner pods and step pods).
func runnerBinVolume() corev1.Volume {
	return corev1.Volume{Name: smv1.RunnerVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptrTo(resource.MustParse("64Mi"))}}}
}

// runnerInstallInit is the init container that copies the runner binary
// from runnerImage into runnerBinVolume (runner pods and step pods).
func runnerInstallInit(runnerImage string) corev1.Container {
	no, yes, nonroot := false, true, int64(65532) // the user of the project's images
	return corev1.Container{
		Name:         smv1.RunnerContainerInstall,
		Image:        runnerImage,
		Command:      []string{smv1.RunnerBinary, "install", smv1.RunnerBinDir},
		VolumeMounts: []corev1.VolumeMount{{Name: smv1.RunnerVolume, MountPath: smv1.RunnerBinDir}},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no, ReadOnlyRootFilesystem: &yes, RunAsNonRoot: &yes, RunAsUser: &nonroot, RunAsGroup: &nonroot,
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

func ptrTo[T any](v T) *T { return &v }
