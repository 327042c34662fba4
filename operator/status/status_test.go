package status

import (
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

type want struct{ status, reason, message string }

func TestConditions(t *testing.T) {
	ok := Routes{Backends: "devmesh,istio"}
	sandbox := func(ps []Problem, r Routes) Observed {
		return Observed{Generation: 3, Problems: ps, Routes: r, ReadyReason: smv1.ReasonAvailable,
			ReadyMessage: "all forks available and routes in place", Progressing: true}
	}
	for _, tc := range []struct {
		name string
		obs  Observed
		want map[string]want // by condition type; absent types must be absent
	}{
		{"ready", sandbox(nil, ok), map[string]want{
			smv1.ConditionReady:            {"True", smv1.ReasonAvailable, "all forks available and routes in place"},
			smv1.ConditionProgressing:      {"False", smv1.ReasonAvailable, ""},
			smv1.ConditionDegraded:         {"False", smv1.ReasonAsExpected, ""},
			smv1.ConditionRoutesConfigured: {"True", smv1.ReasonRoutesApplied, "routes applied by devmesh,istio"},
		}},
		{"waiting for a fork, then a local tunnel: the first gives the reason", sandbox([]Problem{
			{ForkNotReady, "fork a: 0 available"}, {LocalNotConnected, "local l: no local connection"}}, ok), map[string]want{
			smv1.ConditionReady:       {"False", smv1.ReasonForksNotReady, "fork a: 0 available; local l: no local connection"},
			smv1.ConditionProgressing: {"True", smv1.ReasonForksNotReady, "fork a: 0 available; local l: no local connection"},
			smv1.ConditionDegraded:    {"False", smv1.ReasonAsExpected, ""},
		}},
		{"local only: the kind, not the message, gives the reason", sandbox([]Problem{{LocalNotConnected, "fork-like text"}}, ok), map[string]want{
			smv1.ConditionReady: {"False", smv1.ReasonLocalNotConnected, "fork-like text"},
		}},
		{"a blocking problem wins over waiting ones, whatever the order", sandbox([]Problem{
			{ForkNotReady, "fork a: waiting"}, {NameConflict, "Service x is not this sandbox's fork"}, {BaselineNotFound, "b not found"}}, ok), map[string]want{
			smv1.ConditionReady:       {"False", smv1.ReasonNameConflict, "Service x is not this sandbox's fork; b not found"},
			smv1.ConditionDegraded:    {"True", smv1.ReasonNameConflict, "Service x is not this sandbox's fork; b not found"},
			smv1.ConditionProgressing: {"False", smv1.ReasonNameConflict, "blocked until the problem is fixed"},
		}},
		{"backend error comes after the spec's problems", sandbox([]Problem{{EndpointUnresolved, "endpoint e: bad"}},
			Routes{Err: errors.New("istio: boom"), Backends: "istio"}), map[string]want{
			smv1.ConditionDegraded:         {"True", smv1.ReasonEndpointUnresolved, "endpoint e: bad; istio: boom"},
			smv1.ConditionRoutesConfigured: {"False", smv1.ReasonBackendRejected, "istio: boom"},
		}},
		{"backend refused the routes", sandbox(nil, Routes{Rejected: true, From: "istio on Service ns/x", Message: "conflict"}), map[string]want{
			smv1.ConditionDegraded:         {"True", smv1.ReasonBackendRejected, "istio on Service ns/x: conflict"},
			smv1.ConditionRoutesConfigured: {"False", smv1.ReasonBackendRejected, "istio on Service ns/x: conflict"},
		}},
		{"pending routes with acceptance required", sandbox(nil, Routes{Pending: true, RequireAcceptance: true, From: "istio on Service ns/x", Message: "not yet"}), map[string]want{
			smv1.ConditionReady:            {"False", smv1.ReasonRoutesPending, "waiting for the mesh to accept the routes (istio on Service ns/x: not yet)"},
			smv1.ConditionProgressing:      {"True", smv1.ReasonRoutesPending, "waiting for the mesh to accept the routes (istio on Service ns/x: not yet)"},
			smv1.ConditionRoutesConfigured: {"False", smv1.ReasonRoutesPending, "istio on Service ns/x: not yet"},
		}},
		{"pending routes without acceptance required", sandbox(nil, Routes{Pending: true, From: "istio on Service ns/x", Message: "not yet", Backends: "istio"}), map[string]want{
			smv1.ConditionReady:            {"True", smv1.ReasonAvailable, "all forks available and routes in place"},
			smv1.ConditionRoutesConfigured: {"False", smv1.ReasonRoutesPending, "istio on Service ns/x: not yet"},
		}},
		{"route group: no Progressing condition", Observed{Problems: []Problem{{NoMatchedSandboxes, "no sandbox matches"}}, Routes: ok,
			ReadyReason: smv1.ReasonMatched}, map[string]want{
			smv1.ConditionReady:            {"False", smv1.ReasonNoMatchedSandboxes, "no sandbox matches"},
			smv1.ConditionDegraded:         {"False", smv1.ReasonAsExpected, ""},
			smv1.ConditionRoutesConfigured: {"True", smv1.ReasonRoutesApplied, "routes applied by devmesh,istio"},
		}},
		{"route group over sandboxes not ready", Observed{Problems: []Problem{{SandboxesNotReady, "sandboxes not ready: a"}}, Routes: ok}, map[string]want{
			smv1.ConditionReady: {"False", smv1.ReasonForksNotReady, "sandboxes not ready: a"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Conditions(tc.obs)
			if _, has := tc.want[smv1.ConditionProgressing]; !has && !tc.obs.Progressing && meta.FindStatusCondition(got, smv1.ConditionProgressing) != nil {
				t.Errorf("Progressing set for a kind without it")
			}
			for typ, w := range tc.want {
				c := meta.FindStatusCondition(got, typ)
				if c == nil {
					t.Errorf("%s missing", typ)
					continue
				}
				if string(c.Status) != w.status || c.Reason != w.reason || c.Message != w.message {
					t.Errorf("%s = %s/%s %q, want %s/%s %q", typ, c.Status, c.Reason, c.Message, w.status, w.reason, w.message)
				}
				if c.ObservedGeneration != tc.obs.Generation {
					t.Errorf("%s observedGeneration %d", typ, c.ObservedGeneration)
				}
			}
		})
	}
}

// TestKinds: every kind has a reason, and exactly the kinds a user must act on are blocking.
func TestKinds(t *testing.T) {
	waitingKinds := map[Kind]bool{ForkNotReady: true, LocalNotConnected: true, RoutesPending: true, NoMatchedSandboxes: true, SandboxesNotReady: true, ResourcesNotReady: true}
	for k := ForkNotReady; k <= PluginNotFound; k++ {
		if k.Reason() == "" {
			t.Errorf("kind %d has no reason", k)
		}
		if k.Blocking() == waitingKinds[k] {
			t.Errorf("kind %s: Blocking() = %v", k.Reason(), k.Blocking())
		}
	}
}

// TestSetReportsChange: Set keeps transition times and reports no change when
// nothing changed, so callers write status only on change.
func TestSetReportsChange(t *testing.T) {
	obs := Observed{Generation: 1, Routes: Routes{Backends: "devmesh"}, ReadyReason: smv1.ReasonAvailable, Progressing: true}
	var conds []metav1.Condition
	if !Set(&conds, obs) {
		t.Fatal("first Set reported no change")
	}
	before := append([]metav1.Condition(nil), conds...)
	if Set(&conds, obs) {
		t.Fatal("second Set with the same observation reported a change")
	}
	obs.Problems = []Problem{{ForkNotReady, "fork a: rolling"}}
	if !Set(&conds, obs) {
		t.Fatal("a new problem reported no change")
	}
	if c := meta.FindStatusCondition(conds, smv1.ConditionDegraded); !c.LastTransitionTime.Equal(&meta.FindStatusCondition(before, smv1.ConditionDegraded).LastTransitionTime) {
		t.Error("Degraded's transition time moved without a transition")
	}
}

func TestTruncate(t *testing.T) {
	c := Conditions(Observed{Problems: []Problem{{BaselineNotFound, strings.Repeat("x", 5000)}}})
	if m := meta.FindStatusCondition(c, smv1.ConditionReady).Message; len(m) != MaxMessage || !strings.HasSuffix(m, "...") {
		t.Errorf("message of %d bytes", len(m))
	}
}

func TestResourcesCondition(t *testing.T) {
	for _, tc := range []struct {
		rs     []smv1.ResourceStatus
		status metav1.ConditionStatus
		reason string
	}{
		{[]smv1.ResourceStatus{{Name: "db", Phase: smv1.ResourceReady}}, metav1.ConditionTrue, smv1.ReasonCreated},
		{[]smv1.ResourceStatus{{Name: "db", Phase: smv1.ResourceReady}, {Name: "q", Phase: smv1.ResourceCreating, Message: "step a"}}, metav1.ConditionFalse, smv1.ReasonCreating},
		{[]smv1.ResourceStatus{{Name: "db", Phase: smv1.ResourceCreateFailed, Message: "step a failed"}}, metav1.ConditionFalse, smv1.ReasonCreateFailed},
		{[]smv1.ResourceStatus{{Name: "db", Phase: smv1.ResourcePending, Message: "ResourcePlugin ns/x not found"}}, metav1.ConditionFalse, smv1.ReasonPluginNotFound},
		{[]smv1.ResourceStatus{{Name: "db", Phase: smv1.ResourceDeleteFailed}}, metav1.ConditionFalse, smv1.ReasonDeleteFailed},
	} {
		c := ResourcesCondition(4, tc.rs)
		if c.Status != tc.status || c.Reason != tc.reason || c.ObservedGeneration != 4 || c.Type != smv1.ConditionResourcesReady {
			t.Errorf("%+v: %+v", tc.rs, c)
		}
	}
}
