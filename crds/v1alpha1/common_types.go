package v1alpha1

import (
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TTLOffset says from which time a TTL is counted.
// +kubebuilder:validation:Enum=createdAt;updatedAt;noMatchedSandboxes
type TTLOffset string

const (
	// TTLFromCreatedAt counts the TTL from the object's creation.
	TTLFromCreatedAt TTLOffset = "createdAt"
	// TTLFromUpdatedAt counts the TTL from the last change of the spec.
	TTLFromUpdatedAt TTLOffset = "updatedAt"
	// TTLFromNoMatchedSandboxes counts a RouteGroup's TTL from the moment it matched no sandbox.
	TTLFromNoMatchedSandboxes TTLOffset = "noMatchedSandboxes"
)

// TTL bounds the lifetime of an object.
type TTL struct {
	// Duration is a whole number followed by a unit: m (minutes), h (hours), d (days) or w (weeks), e.g. "90m", "2d".
	// +kubebuilder:validation:Pattern=`^[0-9]{1,6}[mhdw]$`
	// +required
	Duration string `json:"duration"`
	// OffsetFrom says from when the duration counts: createdAt (default) or updatedAt
	// (RouteGroups also accept noMatchedSandboxes, their default).
	// +optional
	OffsetFrom TTLOffset `json:"offsetFrom,omitempty"`
}

// ParseTTL parses a TTL duration, "<n>m|h|d|w".
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

// Deadline is when the TTL expires for an object created at created whose
// spec last changed at updated: nil for offsetFrom noMatchedSandboxes (it
// depends on the matches) and when dflt, the offset of an empty offsetFrom,
// is noMatchedSandboxes too.
func (t *TTL) Deadline(created, updated time.Time, dflt TTLOffset) *time.Time {
	if t == nil {
		return nil
	}
	d, err := ParseTTL(t.Duration)
	if err != nil {
		return nil
	}
	off := t.OffsetFrom
	if off == "" {
		off = dflt
	}
	var at time.Time
	switch off {
	case TTLFromCreatedAt:
		at = created.Add(d)
	case TTLFromUpdatedAt:
		at = updated.Add(d)
	default:
		return nil
	}
	return &at
}

// Endpoint names an in-cluster target that gets a preview URL and is reachable
// under the owner's routing key.
type Endpoint struct {
	// Name of the endpoint, a DNS label; part of its preview host name.
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=30
	// +required
	Name string `json:"name"`
	// Target is scheme://host:port with scheme http, grpc or tcp; host is either
	// <service>.<namespace>.svc or <workload>.<namespace>.deploy (the fork of that workload);
	// port is 1-65535.
	// +kubebuilder:validation:Pattern=`^(http|grpc|tcp)://[a-z0-9]([-a-z0-9]*[a-z0-9])?\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\.(svc|deploy):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$`
	// +kubebuilder:validation:MaxLength=253
	// +required
	Target string `json:"target"`
}

// EndpointStatus is an Endpoint resolved by the operator.
type EndpointStatus struct {
	// Name of the endpoint.
	Name string `json:"name"`
	// Target as written in the spec.
	Target string `json:"target"`
	// Host:port the target resolves to in the cluster (the fork Service for .deploy targets).
	// +optional
	Host string `json:"host,omitempty"`
	// Port of the resolved target.
	// +optional
	Port int32 `json:"port,omitempty"`
	// Protocol of the target: http, grpc or tcp.
	// +optional
	Protocol string `json:"protocol,omitempty"`
	// URL is the in-cluster URL of the resolved target; the control plane turns it into a preview URL.
	// +optional
	URL string `json:"url,omitempty"`
}

// Condition types shared by Sandbox and RouteGroup.
const (
	// ConditionReady is True when every fork is available and every route is in place.
	ConditionReady = "Ready"
	// ConditionProgressing is True while the operator is still creating or updating objects.
	ConditionProgressing = "Progressing"
	// ConditionDegraded is True when something needs the user's attention; its reason says what.
	ConditionDegraded = "Degraded"
	// ConditionRoutesConfigured is True when every enabled mesh backend accepted the routes.
	ConditionRoutesConfigured = "RoutesConfigured"
)

// Condition reasons.
const (
	ReasonAvailable              = "Available"
	ReasonCreating               = "Creating"
	ReasonForksNotReady          = "ForksNotReady"
	ReasonBaselineNotFound       = "BaselineNotFound"
	ReasonBaselineServiceMissing = "BaselineServiceNotFound"
	ReasonImagePullFailed        = "ImagePullFailed"
	ReasonForkCrashLooping       = "ForkCrashLooping"
	ReasonInvalidPatch           = "InvalidPatch"
	ReasonInvalidCustomization   = "InvalidCustomization"
	ReasonUnsupportedKind        = "UnsupportedKind"
	// ReasonNameConflict: an object that is not this sandbox's fork already has the fork's name; it is
	// left untouched and the fork is not created.
	ReasonNameConflict = "NameConflict"
	// ReasonUnsupportedCustomization: the spec uses a Signadot feature SandboxMesh lacks (sandbox resources).
	ReasonUnsupportedCustomization = "UnsupportedCustomization"
	ReasonBackendRejected          = "BackendRejected"
	ReasonRoutesPending            = "RoutesPending"
	ReasonRoutesApplied            = "RoutesApplied"
	ReasonEndpointUnresolved       = "EndpointUnresolved"
	ReasonLocalNotConnected        = "LocalNotConnected"
	ReasonAsExpected               = "AsExpected"
	ReasonDeleting                 = "Deleting"
	ReasonNoMatchedSandboxes       = "NoMatchedSandboxes"
	ReasonMatched                  = "Matched"
)

// Conditions is a helper alias so generated docs read well.
type Conditions = []metav1.Condition
