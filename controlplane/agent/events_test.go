package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestAgentReportsConditionsAndEvents: against a real API server and with
// only the chart's RBAC, a sandbox's report carries its CR's conditions and
// the newest 10 Events about the CR, newest first: events.k8s.io Events
// (as the operator writes them, a series among them) and a core/v1 one
// alike; never the events of another sandbox, of a Pod, or of an earlier CR
// of the same name. Events are listed once per EventsInterval, so new ones
// do not make the agent report again before it.
func TestAgentReportsConditionsAndEvents(t *testing.T) {
	ctx := context.Background()
	namespaces(t, ns)
	agentRBAC(t)
	agentClient := asAgent(t)
	sink := &statusSink{}
	cp := httptest.NewServer(sink)
	defer cp.Close()
	a, err := agent.New(agent.Config{ControlPlaneURL: cp.URL, Token: "smc_test", Namespace: ns, Client: agentClient, DisableTunnel: true,
		StatusInterval: time.Hour, EventsInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	spec, _ := json.Marshal(v1alpha1.SandboxSpec{Cluster: "c1", Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}}})
	mine := apitypes.AgentObject{Kind: "sandbox", Org: "acme", Name: "ev-mine", Version: 1, RoutingKey: "rk1", Spec: spec}
	theirs := apitypes.AgentObject{Kind: "sandbox", Org: "acme", Name: "ev-theirs", Version: 1, RoutingKey: "rk2", Spec: spec}
	if err := a.ApplyState(ctx, apitypes.AgentState{Org: "acme", Cluster: "c1", Revision: 1, Full: true, Objects: []apitypes.AgentObject{mine, theirs}}); err != nil {
		t.Fatal(err)
	}
	var evNames []string
	t.Cleanup(func() {
		for _, n := range []string{"ev-mine", "ev-theirs"} {
			kube.Delete(ctx, &v1alpha1.Sandbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}})
		}
		for _, n := range evNames {
			kube.Delete(ctx, &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}})
		}
		kube.Delete(ctx, &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ev-core"}})
	})
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	crs := map[string]*v1alpha1.Sandbox{}
	for _, n := range []string{"ev-mine", "ev-theirs"} {
		var sb v1alpha1.Sandbox
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: n}, &sb); err != nil {
			t.Fatal(err)
		}
		sb.Status.ObservedGeneration = sb.Generation
		sb.Status.Conditions = []metav1.Condition{
			{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "ForksNotReady", Message: "waiting for cart", LastTransitionTime: metav1.NewTime(base)},
			{Type: v1alpha1.ConditionDegraded, Status: metav1.ConditionTrue, Reason: "ImagePullBackOff", Message: "cart: image not found", LastTransitionTime: metav1.NewTime(base.Add(time.Minute))},
		}
		if err := kube.Status().Update(ctx, &sb); err != nil {
			t.Fatal(err)
		}
		crs[n] = &sb
	}
	ref := func(name string, uid types.UID) corev1.ObjectReference {
		return corev1.ObjectReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: "Sandbox", Namespace: ns, Name: name, UID: uid}
	}
	event := func(name, typ, reason string, regarding corev1.ObjectReference, at time.Time, series *eventsv1.EventSeries) {
		t.Helper()
		ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, EventTime: metav1.NewMicroTime(at),
			ReportingController: "sandboxmesh-operator", ReportingInstance: "sandboxmesh-operator-0", Action: "Reconcile",
			Type: typ, Reason: reason, Note: "note of " + name, Regarding: regarding, Series: series}
		if err := kube.Create(ctx, ev); err != nil {
			t.Fatal(err)
		}
		evNames = append(evNames, name)
	}
	uid := crs["ev-mine"].UID
	// e00..e10 a minute apart; e10 is a Warning series last seen at +20m.
	for i := range 10 {
		event(fmt.Sprintf("ev-mine-e%02d", i), corev1.EventTypeNormal, fmt.Sprintf("Step%02d", i), ref("ev-mine", uid), base.Add(time.Duration(i)*time.Minute), nil)
	}
	event("ev-mine-e10", corev1.EventTypeWarning, "ResourceStepFailed", ref("ev-mine", uid), base.Add(10*time.Minute),
		&eventsv1.EventSeries{Count: 3, LastObservedTime: metav1.NewMicroTime(base.Add(20 * time.Minute))})
	// Newer, but about another sandbox, a Pod, and an earlier ev-mine.
	event("ev-theirs-e", corev1.EventTypeWarning, "NotMine", ref("ev-theirs", crs["ev-theirs"].UID), base.Add(30*time.Minute), nil)
	event("ev-pod-e", corev1.EventTypeWarning, "PodEvent", corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: ns, Name: "ev-mine"}, base.Add(30*time.Minute), nil)
	event("ev-mine-old", corev1.EventTypeWarning, "EarlierIncarnation", ref("ev-mine", "00000000-0000-0000-0000-000000000000"), base.Add(30*time.Minute), nil)
	// A core/v1 Event (as kubectl or an older recorder writes it), last seen at +15m.
	core := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ev-core"}, InvolvedObject: ref("ev-mine", uid),
		Type: corev1.EventTypeNormal, Reason: "LegacyEvent", Message: "written as core/v1", Count: 4, Source: corev1.EventSource{Component: "legacy-controller"},
		FirstTimestamp: metav1.NewTime(base.Add(5*time.Minute + 30*time.Second)), LastTimestamp: metav1.NewTime(base.Add(15 * time.Minute))}
	if err := kube.Create(ctx, core); err != nil {
		t.Fatal(err)
	}

	if err := a.ReportStatus(ctx); err != nil {
		t.Fatal(err)
	}
	got := reported(t, sink, "ev-mine")
	wantConds := []apitypes.Condition{
		{Type: "Ready", Status: "False", Reason: "ForksNotReady", Message: "waiting for cart", LastTransitionTime: "2026-03-01T10:00:00Z"},
		{Type: "Degraded", Status: "True", Reason: "ImagePullBackOff", Message: "cart: image not found", LastTransitionTime: "2026-03-01T10:01:00Z"},
	}
	if g, w := mustJSON(got.Conditions), mustJSON(wantConds); g != w {
		t.Errorf("conditions:\n got %s\nwant %s", g, w)
	}
	if got.Reason != "ImagePullBackOff" || got.Ready {
		t.Errorf("summary: ready=%v reason=%q", got.Ready, got.Reason)
	}
	var reasons []string
	for _, e := range got.Events {
		reasons = append(reasons, e.Reason)
	}
	want := []string{"ResourceStepFailed", "LegacyEvent", "Step09", "Step08", "Step07", "Step06", "Step05", "Step04", "Step03", "Step02"}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Fatalf("events, newest first:\n got %v\nwant %v", reasons, want)
	}
	series := got.Events[0]
	if series.Type != "Warning" || series.Count != 3 || series.FirstTimestamp != "2026-03-01T10:10:00Z" || series.LastTimestamp != "2026-03-01T10:20:00Z" ||
		series.ReportingController != "sandboxmesh-operator" || series.Message != "note of ev-mine-e10" {
		t.Errorf("series event: %+v", series)
	}
	legacy := got.Events[1]
	if legacy.Type != "Normal" || legacy.Count != 4 || legacy.FirstTimestamp != "2026-03-01T10:05:30Z" || legacy.LastTimestamp != "2026-03-01T10:15:00Z" ||
		legacy.ReportingController != "legacy-controller" || legacy.Message != "written as core/v1" {
		t.Errorf("core/v1 event: %+v", legacy)
	}
	if th := reported(t, sink, "ev-theirs"); len(th.Events) != 1 || th.Events[0].Reason != "NotMine" {
		t.Errorf("ev-theirs events: %+v", th.Events)
	}

	// Nothing changed: no report. A new event waits for the next list
	// (EventsInterval), then is reported once.
	n := sink.count()
	event("ev-mine-e11", corev1.EventTypeNormal, "Newest", ref("ev-mine", uid), base.Add(40*time.Minute), nil)
	for range 3 {
		if err := a.ReportStatus(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if sink.count() != n {
		t.Fatalf("reported again before the events were listed again: %d items after %d", sink.count(), n)
	}
	a.ExpireEvents()
	if err := a.ReportStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if sink.count() != n+1 {
		t.Fatalf("after a new list: %d items, want %d (only ev-mine)", sink.count(), n+1)
	}
	if got := reported(t, sink, "ev-mine"); len(got.Events) != 10 || got.Events[0].Reason != "Newest" || got.Events[9].Reason != "Step03" {
		t.Fatalf("after the new event: %+v", got.Events)
	}
}

// reported decodes the last status reported for name.
func reported(t *testing.T, sink *statusSink, name string) apitypes.ObservedStatus {
	t.Helper()
	it := sink.last(name)
	if it == nil {
		t.Fatalf("no status reported for %s", name)
	}
	b, _ := json.Marshal(it["status"])
	var st apitypes.ObservedStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
