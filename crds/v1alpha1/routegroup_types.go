package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelMatch matches sandboxes whose label Key has a value matching the glob Value
// (`*` any run of characters, `?` one character).
type LabelMatch struct {
	// Key of the sandbox label.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=317
	// +required
	Key string `json:"key"`
	// Value is a glob.
	// +kubebuilder:validation:MaxLength=256
	// +required
	Value string `json:"value"`
}

// MatchCriterion is one criterion of a RouteGroup's any/all list.
type MatchCriterion struct {
	// Label match.
	// +required
	Label LabelMatch `json:"label"`
}

// RouteGroupMatch selects sandboxes: exactly one of label, any or all.
// +kubebuilder:validation:XValidation:rule="[has(self.label), has(self.any), has(self.all)].filter(x, x).size() == 1",message="exactly one of label, any, all must be set"
type RouteGroupMatch struct {
	// Label matches one label.
	// +optional
	Label *LabelMatch `json:"label,omitempty"`
	// Any matches sandboxes matching at least one criterion.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Any []MatchCriterion `json:"any,omitempty"`
	// All matches sandboxes matching every criterion.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	All []MatchCriterion `json:"all,omitempty"`
}

// RouteGroupSpec is the desired state of a RouteGroup.
type RouteGroupSpec struct {
	// Cluster the route group applies to. Immutable.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="cluster is immutable"
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Description for humans.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Description string `json:"description,omitempty"`
	// Match selects the sandboxes (in the RouteGroup's namespace) whose forks the group's key routes to.
	// +required
	Match RouteGroupMatch `json:"match"`
	// Endpoints of the route group.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	// +optional
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// TTL deletes the route group after a while; offsetFrom defaults to noMatchedSandboxes.
	// +optional
	TTL *TTL `json:"ttl,omitempty"`
}

// RouteGroupStatus is the observed state of a RouteGroup.
type RouteGroupStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// RoutingKey of the route group.
	// +optional
	RoutingKey string `json:"routingKey,omitempty"`
	// MatchedSandboxes are the names of the matched sandboxes, sorted.
	// +listType=atomic
	// +optional
	MatchedSandboxes []string `json:"matchedSandboxes,omitempty"`
	// Conditions: Ready, RoutesConfigured, Degraded.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Endpoints resolved from spec.endpoints.
	// +listType=atomic
	// +optional
	Endpoints []EndpointStatus `json:"endpoints,omitempty"`
	// ScheduledDeleteTime is when the TTL deletes the route group.
	// +optional
	ScheduledDeleteTime *metav1.Time `json:"scheduledDeleteTime,omitempty"`
}

// RouteGroup routes one routing key to the forks of several sandboxes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rg,categories=sandboxmesh
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Routing Key",type=string,JSONPath=`.status.routingKey`
// +kubebuilder:printcolumn:name="Sandboxes",type=string,JSONPath=`.status.matchedSandboxes`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 30",message="metadata.name must be at most 30 characters"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label starting with a letter"
type RouteGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state.
	// +required
	Spec RouteGroupSpec `json:"spec"`
	// Status is the observed state.
	// +optional
	Status RouteGroupStatus `json:"status,omitempty"`
}

// RouteGroupList is a list of RouteGroups.
//
// +kubebuilder:object:root=true
type RouteGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RouteGroup `json:"items"`
}

func init() {
	SchemeBuilder.Register(&RouteGroup{}, &RouteGroupList{})
}
