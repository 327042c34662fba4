// Package status owns the conditions of Sandboxes and RouteGroups: a pure
// function from what one reconcile observed (typed problems, the routes'
// state) to the Ready, Progressing, Degraded and RoutesConfigured conditions.
// Reasons come from problem kinds, never from message text. Ready is decided
// by an ordered chain of checks, the first that applies wins (the shape of
// cert-manager's readiness policy chain).
package status

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Kind is the kind of a problem. Blocking kinds need the user (Degraded);
// the others mean the object is still on its way (Progressing).
type Kind uint8

// Problem kinds.
const (
	// ForkNotReady: a fork Deployment has no available pod yet.
	ForkNotReady Kind = iota + 1
	// LocalNotConnected: a local workload has no tunnel.
	LocalNotConnected
	// RoutesPending: a backend has not accepted the routes yet.
	RoutesPending
	// NoMatchedSandboxes: a RouteGroup matches no sandbox.
	NoMatchedSandboxes
	// SandboxesNotReady: sandboxes a RouteGroup matches are not Ready.
	SandboxesNotReady
	// ResourcesNotReady: a sandbox's resources are being created; its forks wait.
	ResourcesNotReady

	// BaselineNotFound: a forked or virtual workload does not exist.
	BaselineNotFound
	// ImagePullFailed: a fork's pod cannot pull its image.
	ImagePullFailed
	// ForkCrashLooping: a fork's container keeps crashing.
	ForkCrashLooping
	// InvalidPatch: a fork's patch does not apply.
	InvalidPatch
	// InvalidCustomization: a customization names something that is not there.
	InvalidCustomization
	// UnsupportedKind: a workload kind SandboxMesh cannot fork.
	UnsupportedKind
	// UnsupportedCustomization: a Signadot feature SandboxMesh lacks.
	UnsupportedCustomization
	// NameConflict: an object that is not the fork has the fork's name.
	NameConflict
	// EndpointUnresolved: an endpoint target does not resolve.
	EndpointUnresolved
	// BackendRejected: a mesh backend failed to apply or refused the routes.
	BackendRejected
	// ResourceCreateFailed: a create step of a sandbox resource failed (it is retried).
	ResourceCreateFailed
	// PluginNotFound: a sandbox resource names a ResourcePlugin that does not exist.
	PluginNotFound
)

var reasons = map[Kind]string{
	ForkNotReady:             smv1.ReasonForksNotReady,
	LocalNotConnected:        smv1.ReasonLocalNotConnected,
	RoutesPending:            smv1.ReasonRoutesPending,
	NoMatchedSandboxes:       smv1.ReasonNoMatchedSandboxes,
	SandboxesNotReady:        smv1.ReasonForksNotReady,
	BaselineNotFound:         smv1.ReasonBaselineNotFound,
	ImagePullFailed:          smv1.ReasonImagePullFailed,
	ForkCrashLooping:         smv1.ReasonForkCrashLooping,
	InvalidPatch:             smv1.ReasonInvalidPatch,
	InvalidCustomization:     smv1.ReasonInvalidCustomization,
	UnsupportedKind:          smv1.ReasonUnsupportedKind,
	UnsupportedCustomization: smv1.ReasonUnsupportedCustomization,
	NameConflict:             smv1.ReasonNameConflict,
	EndpointUnresolved:       smv1.ReasonEndpointUnresolved,
	BackendRejected:          smv1.ReasonBackendRejected,
	ResourcesNotReady:        smv1.ReasonResourcesCreating,
	ResourceCreateFailed:     smv1.ReasonCreateFailed,
	PluginNotFound:           smv1.ReasonPluginNotFound,
}

// Reason is the condition reason of k.
func (k Kind) Reason() string { return reasons[k] }

// Blocking reports whether k needs the user to act (Degraded) rather than time.
func (k Kind) Blocking() bool { return k >= BaselineNotFound }

// Problem is one thing standing between an object and Ready.
type Problem struct {
	Kind    Kind
	Message string
}

// Routes is what the mesh backends said about the object's routes.
type Routes struct {
	// Err: applying the routes, or asking the backends about them, failed.
	Err error
	// Rejected: a backend refused the routes; Pending: it has not accepted them yet.
	Rejected, Pending bool
	// From names the backend and Service that answered ("istio on Service ns/x"); Message is its answer.
	From, Message string
	// Backends lists the enabled backends (for the RoutesApplied message).
	Backends string
	// RequireAcceptance makes Ready wait while Pending.
	RequireAcceptance bool
}

// Observed is what one reconcile learned.
type Observed struct {
	// Generation of the object (the conditions' observedGeneration).
	Generation int64
	// Problems in the order of the spec; the first blocking one, else the first
	// other one, gives Ready its reason.
	Problems []Problem
	// Routes of the object.
	Routes Routes
	// ReadyReason and ReadyMessage describe Ready=True.
	ReadyReason, ReadyMessage string
	// Progressing: also maintain the Progressing condition (Sandboxes do).
	Progressing bool
}

// MaxMessage bounds condition messages (the API allows 32 KiB; status stays small).
const MaxMessage = 1024

// Conditions returns the conditions for o (without transition times).
func Conditions(o Observed) []metav1.Condition {
	problems := append(append([]Problem(nil), o.Problems...), routeProblems(o.Routes)...)
	out := []metav1.Condition{routesConfigured(o.Routes)}
	for _, policy := range readiness {
		if v, ok := policy(problems, o); ok {
			out = append(out, v.ready, v.degraded)
			if o.Progressing {
				out = append(out, v.progressing)
			}
			break
		}
	}
	for i := range out {
		out[i].ObservedGeneration = o.Generation
		out[i].Message = truncate(out[i].Message)
	}
	return out
}

// Set writes the conditions for o into conds, keeping transition times of
// conditions whose status did not change; it reports whether anything changed.
func Set(conds *[]metav1.Condition, o Observed) bool {
	changed := false
	for _, c := range Conditions(o) {
		changed = meta.SetStatusCondition(conds, c) || changed
	}
	return changed
}

func routeProblems(r Routes) []Problem {
	switch {
	case r.Err != nil:
		return []Problem{{BackendRejected, r.Err.Error()}}
	case r.Rejected:
		return []Problem{{BackendRejected, r.From + ": " + r.Message}}
	case r.Pending && r.RequireAcceptance:
		return []Problem{{RoutesPending, "waiting for the mesh to accept the routes (" + r.From + ": " + r.Message + ")"}}
	}
	return nil
}

func routesConfigured(r Routes) metav1.Condition {
	c := metav1.Condition{Type: smv1.ConditionRoutesConfigured, Status: metav1.ConditionFalse}
	switch {
	case r.Err != nil:
		c.Reason, c.Message = smv1.ReasonBackendRejected, r.Err.Error()
	case r.Rejected:
		c.Reason, c.Message = smv1.ReasonBackendRejected, r.From+": "+r.Message
	case r.Pending:
		c.Reason, c.Message = smv1.ReasonRoutesPending, r.From+": "+r.Message
	default:
		c.Status, c.Reason, c.Message = metav1.ConditionTrue, smv1.ReasonRoutesApplied, "routes applied by "+r.Backends
	}
	return c
}

type verdict struct{ ready, degraded, progressing metav1.Condition }

// readiness is the chain: blocked by a problem the user must fix, else still
// on its way, else ready.
var readiness = []func([]Problem, Observed) (verdict, bool){blocked, waiting, ready}

func blocked(ps []Problem, _ Observed) (verdict, bool) {
	first, msg := pick(ps, true)
	if first == nil {
		return verdict{}, false
	}
	r := first.Kind.Reason()
	return verdict{
		ready:       cond(smv1.ConditionReady, metav1.ConditionFalse, r, msg),
		degraded:    cond(smv1.ConditionDegraded, metav1.ConditionTrue, r, msg),
		progressing: cond(smv1.ConditionProgressing, metav1.ConditionFalse, r, "blocked until the problem is fixed"),
	}, true
}

func waiting(ps []Problem, _ Observed) (verdict, bool) {
	first, msg := pick(ps, false)
	if first == nil {
		return verdict{}, false
	}
	r := first.Kind.Reason()
	return verdict{
		ready:       cond(smv1.ConditionReady, metav1.ConditionFalse, r, msg),
		degraded:    cond(smv1.ConditionDegraded, metav1.ConditionFalse, smv1.ReasonAsExpected, ""),
		progressing: cond(smv1.ConditionProgressing, metav1.ConditionTrue, r, msg),
	}, true
}

func ready(_ []Problem, o Observed) (verdict, bool) {
	return verdict{
		ready:       cond(smv1.ConditionReady, metav1.ConditionTrue, o.ReadyReason, o.ReadyMessage),
		degraded:    cond(smv1.ConditionDegraded, metav1.ConditionFalse, smv1.ReasonAsExpected, ""),
		progressing: cond(smv1.ConditionProgressing, metav1.ConditionFalse, o.ReadyReason, ""),
	}, true
}

// pick returns the first problem that is (or is not) blocking and the joined
// messages of all such problems.
func pick(ps []Problem, blocking bool) (*Problem, string) {
	var first *Problem
	var msgs []string
	for i := range ps {
		if ps[i].Kind.Blocking() != blocking {
			continue
		}
		if first == nil {
			first = &ps[i]
		}
		msgs = append(msgs, ps[i].Message)
	}
	return first, strings.Join(msgs, "; ")
}

func cond(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg}
}

func truncate(s string) string {
	if len(s) > MaxMessage {
		return s[:MaxMessage-3] + "..."
	}
	return s
}

// ResourcesCondition is the ResourcesReady condition of a Sandbox whose
// resources are rs (set only when spec.resources is not empty): True once
// every resource is Ready, else the reason of the first that is not.
func ResourcesCondition(gen int64, rs []smv1.ResourceStatus) metav1.Condition {
	c := metav1.Condition{Type: smv1.ConditionResourcesReady, Status: metav1.ConditionTrue, Reason: smv1.ReasonCreated,
		Message: "all resources created", ObservedGeneration: gen}
	for _, r := range rs {
		var reason string
		switch r.Phase {
		case smv1.ResourceReady:
			continue
		case smv1.ResourceCreateFailed:
			reason = smv1.ReasonCreateFailed
		case smv1.ResourceDeleting:
			reason = smv1.ReasonDeleting
		case smv1.ResourceDeleteFailed:
			reason = smv1.ReasonDeleteFailed
		case smv1.ResourcePending:
			reason = smv1.ReasonResourcesCreating
			if strings.Contains(r.Message, "not found") {
				reason = smv1.ReasonPluginNotFound
			}
		default:
			reason = smv1.ReasonCreating
		}
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, reason, truncate("resource "+r.Name+": "+r.Message)
		return c
	}
	return c
}
