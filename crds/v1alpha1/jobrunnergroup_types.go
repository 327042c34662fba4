package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// JobRunnerGroupSpec is the desired state of a JobRunnerGroup: the pods that
// claim and run the jobs of one runner group of the control plane. The
// control plane's agent writes it from the runner group (the Signadot v2
// jobRunnerGroup.Spec fields) plus controlPlane.
type JobRunnerGroupSpec struct {
	// Cluster the runner group runs in (informational: the agent's cluster).
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Namespace the runner pods run in (default sandboxmesh-jobs). The
	// Deployment and the runner token Secret live there. Immutable.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="namespace is immutable"
	// +kubebuilder:default=sandboxmesh-jobs
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// Image runs the jobs: it replaces the image of the pod template's first
	// container (or is the image of the only container without a template).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Image string `json:"image,omitempty"`
	// JobTimeout bounds how long one job may run (a Go duration such as "30m";
	// default 30m). The control plane enforces it; it is here for kubectl readers.
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h))+$`
	// +optional
	JobTimeout string `json:"jobTimeout,omitempty"`
	// PodTemplate is the template of the runner pods. Its first container
	// runs the jobs (its command is replaced by the runner); without a
	// template the pods have one container running Image. The schema keeps
	// it as written (the full pod schema would make this CRD 630 KB instead of
	// 11 KB); the operator validates it, and the agent refuses a template that
	// does not decode as a PodTemplateSpec before applying it.
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	// +optional
	PodTemplate *corev1.PodTemplateSpec `json:"podTemplate,omitempty"`
	// Scaling says how many runner pods run (default one).
	// +optional
	Scaling *JobRunnerGroupScaling `json:"scaling,omitempty"`
	// Labels of the runner group (informational; not copied to the pods).
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// ControlPlane is where the runner pods claim jobs.
	// +required
	ControlPlane RunnerControlPlane `json:"controlPlane"`
}

// JobRunnerGroupScaling sizes a runner group.
type JobRunnerGroupScaling struct {
	// Manual runs a fixed number of pods.
	// +optional
	Manual *ManualScaling `json:"manual,omitempty"`
}

// ManualScaling is a fixed number of runner pods.
type ManualScaling struct {
	// DesiredPods is the number of runner pods (default 1; 0 stops them).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	DesiredPods *int32 `json:"desiredPods,omitempty"`
}

// RunnerControlPlane tells runner pods which control plane to claim jobs
// from, as whom, and where their token is.
type RunnerControlPlane struct {
	// URL of the control plane, http(s)://host[:port][/path].
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^https?://[^\s/?#]+[^\s?#]*$`
	// +required
	URL string `json:"url"`
	// Org of the runner group.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Org string `json:"org"`
	// TokenSecretName is the Secret in spec.namespace whose key "token" holds
	// the runner group's token (the agent writes it).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +required
	TokenSecretName string `json:"tokenSecretName"`
}

// DesiredPods is the number of runner pods spec asks for (default 1).
func (s *JobRunnerGroupSpec) DesiredPods() int32 {
	if s.Scaling != nil && s.Scaling.Manual != nil && s.Scaling.Manual.DesiredPods != nil {
		return *s.Scaling.Manual.DesiredPods
	}
	return 1
}

// RunnerPods counts the runner pods of a group.
type RunnerPods struct {
	// Ready pods can claim jobs.
	// +optional
	Ready int32 `json:"ready,omitempty"`
	// NotReady pods exist but are not ready (starting, crashing).
	// +optional
	NotReady int32 `json:"notReady,omitempty"`
}

// JobRunnerGroupStatus is the observed state of a JobRunnerGroup.
type JobRunnerGroupStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Pods of the runner Deployment.
	// +optional
	Pods RunnerPods `json:"pods,omitempty"`
}

// Reasons of a JobRunnerGroup's Ready condition (with ReasonAvailable and
// ReasonNameConflict shared with Sandboxes).
const (
	// ReasonPodsNotReady: fewer runner pods are ready than desired.
	ReasonPodsNotReady = "PodsNotReady"
	// ReasonScaledToZero: scaling.manual.desiredPods is 0.
	ReasonScaledToZero = "ScaledToZero"
	// ReasonInvalidSpec: the spec cannot make a pod (no container and no
	// image, a pod template that does not decode, or one the API server refuses).
	ReasonInvalidSpec = "InvalidSpec"
	// ReasonNamespaceNotFound: spec.namespace does not exist.
	ReasonNamespaceNotFound = "NamespaceNotFound"
	// ReasonNamespaceNotWatched: the operator is limited to namespaces that
	// do not include spec.namespace.
	ReasonNamespaceNotWatched = "NamespaceNotWatched"
	// ReasonRolloutFailed: the Deployment reports it cannot make progress
	// (progress deadline exceeded, pods refused by quota or admission).
	ReasonRolloutFailed = "RolloutFailed"
)

// JobRunnerGroup runs the pods that claim jobs of a control-plane runner
// group and run them in the cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=jrg,categories=sandboxmesh
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Pod Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Pods Ready",type=integer,JSONPath=`.status.pods.ready`
// +kubebuilder:printcolumn:name="Not Ready",type=integer,JSONPath=`.status.pods.notReady`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 30",message="metadata.name must be at most 30 characters"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label starting with a letter"
type JobRunnerGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state.
	// +required
	Spec JobRunnerGroupSpec `json:"spec"`
	// Status is the observed state.
	// +optional
	Status JobRunnerGroupStatus `json:"status,omitempty"`
}

// JobRunnerGroupList is a list of JobRunnerGroups.
//
// +kubebuilder:object:root=true
type JobRunnerGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []JobRunnerGroup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&JobRunnerGroup{}, &JobRunnerGroupList{})
}
