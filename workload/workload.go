// Package workload owns the kinds of workload a Sandbox can fork — Deployments
// and Argo Rollouts — and reads each into one shape, Baseline: the Deployment
// a fork is built from and Services select. The fork builder, the routing
// engine and the agent's workload report see only Baselines, so a kind is
// added here and nowhere else.
//
// Rollouts are read into Rollout, a minimal struct of our own holding the
// fields a fork needs (argoproj.io/v1alpha1): the Argo Rollouts Go module is
// not imported, its API packages would bring the Argo controller's
// dependencies with them. Rollouts are only ever read.
package workload

import (
	"context"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// RolloutGroupVersion is the API group and version of Argo Rollouts.
var RolloutGroupVersion = schema.GroupVersion{Group: "argoproj.io", Version: "v1alpha1"}

// RolloutGVK is the GroupVersionKind of an Argo Rollout.
var RolloutGVK = RolloutGroupVersion.WithKind("Rollout")

// RolloutGVR is the resource of Argo Rollouts (rollouts.argoproj.io).
var RolloutGVR = RolloutGroupVersion.WithResource("rollouts")

// AddToScheme registers Rollout and RolloutList under RolloutGroupVersion.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(RolloutGroupVersion, &Rollout{}, &RolloutList{})
	metav1.AddToGroupVersion(s, RolloutGroupVersion)
	return nil
}

// Rollout is the part of an Argo Rollout (argoproj.io/v1alpha1) a fork is
// built from; every other field is dropped when it is decoded.
type Rollout struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RolloutSpec   `json:"spec,omitempty"`
	Status            RolloutStatus `json:"status,omitempty"`
}

// RolloutStatus holds the fields of a Rollout's status the agent reports.
type RolloutStatus struct {
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`
}

// RolloutSpec holds the fields of a Rollout's spec that a fork copies.
type RolloutSpec struct {
	Replicas *int32 `json:"replicas,omitempty"`
	// Selector of the Rollout's pods; with WorkloadRef it may be empty (the
	// referenced Deployment's is used).
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
	// Template is the pod template; empty when WorkloadRef is set.
	Template corev1.PodTemplateSpec `json:"template,omitempty"`
	// WorkloadRef names a Deployment (same namespace) whose pod template the Rollout runs.
	WorkloadRef             *RolloutWorkloadRef `json:"workloadRef,omitempty"`
	MinReadySeconds         int32               `json:"minReadySeconds,omitempty"`
	RevisionHistoryLimit    *int32              `json:"revisionHistoryLimit,omitempty"`
	ProgressDeadlineSeconds *int32              `json:"progressDeadlineSeconds,omitempty"`
}

// RolloutWorkloadRef is a Rollout's spec.workloadRef.
type RolloutWorkloadRef struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Name       string `json:"name,omitempty"`
}

// RolloutList is a list of Rollouts.
type RolloutList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Rollout `json:"items"`
}

// DeepCopyInto copies r into out.
func (r *Rollout) DeepCopyInto(out *Rollout) {
	*out = *r
	r.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Replicas = copyInt32(r.Spec.Replicas)
	out.Spec.Selector = r.Spec.Selector.DeepCopy()
	r.Spec.Template.DeepCopyInto(&out.Spec.Template)
	if r.Spec.WorkloadRef != nil {
		ref := *r.Spec.WorkloadRef
		out.Spec.WorkloadRef = &ref
	}
	out.Spec.RevisionHistoryLimit = copyInt32(r.Spec.RevisionHistoryLimit)
	out.Spec.ProgressDeadlineSeconds = copyInt32(r.Spec.ProgressDeadlineSeconds)
}

func copyInt32(p *int32) *int32 {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// DeepCopy returns a deep copy of r.
func (r *Rollout) DeepCopy() *Rollout {
	if r == nil {
		return nil
	}
	out := new(Rollout)
	r.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (r *Rollout) DeepCopyObject() runtime.Object { return r.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *RolloutList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &RolloutList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]Rollout, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
	return out
}

// Baseline is a forkable workload of any kind in the shape forks are built
// from: a Deployment. For a Deployment it is the Deployment itself; for a
// Rollout it is a Deployment with the Rollout's metadata (name, namespace,
// labels, generation), replicas, selector and pod template (spec.template,
// or the pod template of the Deployment spec.workloadRef names, as Argo runs
// it). It is read-only: it may be shared with the cache.
type Baseline struct {
	// Kind of the workload.
	Kind smv1.WorkloadKind
	*appsv1.Deployment
}

// Ref returns the workload's reference.
func (b *Baseline) Ref() smv1.WorkloadRef {
	return smv1.WorkloadRef{Kind: b.Kind, Namespace: b.Namespace, Name: b.Name}
}

// FromDeployment is the Baseline of a Deployment.
func FromDeployment(d *appsv1.Deployment) *Baseline {
	return &Baseline{Kind: smv1.KindDeployment, Deployment: d}
}

// FromRollout is the Baseline of Rollout r. ref is the Deployment r's
// spec.workloadRef names (nil without one).
func FromRollout(r *Rollout, ref *appsv1.Deployment) *Baseline {
	d := &appsv1.Deployment{
		TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Namespace: r.Namespace, Name: r.Name, Labels: r.Labels, Annotations: r.Annotations,
			Generation: r.Generation, UID: r.UID, CreationTimestamp: r.CreationTimestamp, DeletionTimestamp: r.DeletionTimestamp},
		Spec: appsv1.DeploymentSpec{Replicas: r.Spec.Replicas, Selector: r.Spec.Selector, Template: r.Spec.Template,
			MinReadySeconds: r.Spec.MinReadySeconds, RevisionHistoryLimit: r.Spec.RevisionHistoryLimit,
			ProgressDeadlineSeconds: r.Spec.ProgressDeadlineSeconds},
		Status: appsv1.DeploymentStatus{ReadyReplicas: r.Status.ReadyReplicas},
	}
	if ref != nil {
		d.Spec.Template = ref.Spec.Template
		if d.Spec.Selector == nil {
			d.Spec.Selector = ref.Spec.Selector
		}
	}
	return &Baseline{Kind: smv1.KindRollout, Deployment: d}
}

// Kind returns the kind of ref, Deployment when empty.
func Kind(ref smv1.WorkloadRef) smv1.WorkloadKind {
	if ref.Kind == "" {
		return smv1.KindDeployment
	}
	return ref.Kind
}

// ErrNotFound means the workload (or the Deployment a Rollout's workloadRef
// names, or the Rollout API itself) does not exist; the wrapping error says which.
var ErrNotFound = errors.New("not found")

// ErrUnsupported means the workload is of a kind SandboxMesh cannot fork (or a
// Rollout's workloadRef names something other than an apps/v1 Deployment).
var ErrUnsupported = errors.New("not supported")

// ErrRolloutsNotInstalled means the cluster serves no Rollout API (no
// rollouts.argoproj.io CRD); it is an ErrNotFound (errors.Is).
var ErrRolloutsNotInstalled error = notInstalled{}

type notInstalled struct{}

func (notInstalled) Error() string {
	return "Argo Rollouts are not installed in the cluster (no rollouts.argoproj.io CRD when the operator started)"
}

func (notInstalled) Is(target error) bool { return target == ErrNotFound }

// Get reads the workload ref (kind, namespace, name) as a Baseline. A missing
// workload returns an error wrapping ErrNotFound that names it; rollouts
// false (the cluster has no Rollout CRD) makes every Rollout missing.
func Get(ctx context.Context, c client.Reader, ref smv1.WorkloadRef, rollouts bool) (*Baseline, error) {
	key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
	switch k := Kind(ref); k {
	case smv1.KindDeployment:
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, key, d); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("Deployment %s %w", key, ErrNotFound)
			}
			return nil, fmt.Errorf("get Deployment %s: %w", key, err)
		}
		return FromDeployment(d), nil
	case smv1.KindRollout:
		if !rollouts {
			return nil, fmt.Errorf("Rollout %s: %w", key, ErrRolloutsNotInstalled)
		}
		r := &Rollout{}
		if err := c.Get(ctx, key, r); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, fmt.Errorf("Rollout %s %w", key, ErrNotFound)
			}
			return nil, fmt.Errorf("get Rollout %s: %w", key, err)
		}
		return ResolveRollout(ctx, c, r)
	default:
		return nil, fmt.Errorf("%s: kind %q %w (Deployment or Rollout)", key, k, ErrUnsupported)
	}
}

// ResolveRollout returns the Baseline of r, reading the Deployment its
// spec.workloadRef names, if any.
func ResolveRollout(ctx context.Context, c client.Reader, r *Rollout) (*Baseline, error) {
	wr := r.Spec.WorkloadRef
	if wr == nil {
		return FromRollout(r, nil), nil
	}
	if wr.Kind != "Deployment" || (wr.APIVersion != "" && wr.APIVersion != "apps/v1") {
		return nil, fmt.Errorf("Rollout %s/%s: spec.workloadRef: kind %q (apiVersion %q) %w (only apps/v1 Deployment)",
			r.Namespace, r.Name, wr.Kind, wr.APIVersion, ErrUnsupported)
	}
	d := &appsv1.Deployment{}
	key := types.NamespacedName{Namespace: r.Namespace, Name: wr.Name}
	if err := c.Get(ctx, key, d); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("Rollout %s/%s: spec.workloadRef: Deployment %s %w", r.Namespace, r.Name, key, ErrNotFound)
		}
		return nil, fmt.Errorf("Rollout %s/%s: get spec.workloadRef Deployment %s: %w", r.Namespace, r.Name, key, err)
	}
	return FromRollout(r, d), nil
}

// ListRollouts returns the Baselines of the Rollouts opts select that
// SandboxMesh did not create. A Rollout whose
// workloadRef Deployment is missing is left out (it has no pods to select).
func ListRollouts(ctx context.Context, c client.Reader, opts ...client.ListOption) ([]*Baseline, error) {
	var list RolloutList
	if err := c.List(ctx, &list, opts...); err != nil {
		return nil, fmt.Errorf("list Rollouts: %w", err)
	}
	rs := make([]*Rollout, len(list.Items))
	for i := range list.Items {
		rs[i] = &list.Items[i]
	}
	return resolveAll(ctx, c, rs)
}

// resolveAll returns the Baselines of the Rollouts SandboxMesh did not
// create, leaving out those whose workloadRef is missing or unsupported.
func resolveAll(ctx context.Context, c client.Reader, rs []*Rollout) ([]*Baseline, error) {
	out := make([]*Baseline, 0, len(rs))
	for _, r := range rs {
		if smv1.IsManaged(r.Labels) {
			continue
		}
		b, err := ResolveRollout(ctx, c, r)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnsupported) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// ListRolloutsUnstructured is ListRollouts for a client whose scheme does not
// register Rollout (the agent's): it lists unstructured objects and decodes
// each into Rollout.
func ListRolloutsUnstructured(ctx context.Context, c client.Reader, opts ...client.ListOption) ([]*Baseline, error) {
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(RolloutGroupVersion.WithKind("RolloutList"))
	if err := c.List(ctx, list, opts...); err != nil {
		return nil, fmt.Errorf("list Rollouts: %w", err)
	}
	rs := make([]*Rollout, len(list.Items))
	for i := range list.Items {
		rs[i] = &Rollout{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(list.Items[i].Object, rs[i]); err != nil {
			return nil, fmt.Errorf("decode Rollout %s/%s: %w", list.Items[i].GetNamespace(), list.Items[i].GetName(), err)
		}
	}
	return resolveAll(ctx, c, rs)
}
