package agent_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func plugin(name string, version int64, image string) apitypes.AgentObject {
	spec := `{"description":"a schema per sandbox","runner":{"image":"` + image + `","namespace":"sandboxmesh-plugins"},
		"create":[{"name":"provision","script":"#!/bin/sh\necho","outputs":[{"name":"host","valueFromPath":"/tmp/host"}]}],
		"delete":[{"name":"drop","script":"#!/bin/sh\necho","inputs":[{"name":"host","valueFromStep":{"name":"provision","output":"host"},"as":{"env":"HOST"}}]}]}`
	return apitypes.AgentObject{Kind: "resourceplugin", Org: "acme", Name: name, Version: version, Spec: json.RawMessage(spec)}
}

// TestAgentResourcePlugins: the agent applies a resourceplugin object as a
// ResourcePlugin CR in its namespace (with the RBAC the chart gives it),
// labelled like its other CRs and without a routing key; deletes it on a
// tombstone; prunes it from a full state; never reports a status for it.
func TestAgentResourcePlugins(t *testing.T) {
	ctx := context.Background()
	namespaces(t, ns)
	agentRBAC(t)
	agentClient := asAgent(t)
	sink := &statusSink{}
	cp := httptest.NewServer(sink)
	defer cp.Close()
	a, err := agent.New(agent.Config{ControlPlaneURL: cp.URL, Token: "smc_test", Namespace: ns, Client: agentClient, DisableTunnel: true})
	if err != nil {
		t.Fatal(err)
	}
	get := func(name string) (*v1alpha1.ResourcePlugin, error) {
		var rp v1alpha1.ResourcePlugin
		err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &rp)
		return &rp, err
	}
	t.Cleanup(func() {
		for _, n := range []string{"rp-pg", "rp-redis", "rp-other-cluster"} {
			kube.Delete(ctx, &v1alpha1.ResourcePlugin{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: n}})
		}
	})

	pg, redis := plugin("rp-pg", 1, "example.com/db:1"), plugin("rp-redis", 1, "example.com/redis:1")
	if err := a.ApplyState(ctx, apitypes.AgentState{Org: "acme", Cluster: "c1", Revision: 1, Full: true, Objects: []apitypes.AgentObject{pg, redis}}); err != nil {
		t.Fatal(err)
	}
	cr, err := get("rp-pg")
	if err != nil {
		t.Fatal(err)
	}
	if l := cr.Labels; l[agent.LabelManagedBy] != agent.FieldManager || l[agent.LabelOrg] != "acme" || l[agent.LabelCluster] != "c1" {
		t.Fatalf("labels: %v", l)
	}
	if an := cr.Annotations; an[agent.AnnotationVersion] != "1" {
		t.Fatalf("annotations: %v", an)
	}
	if _, ok := cr.Annotations[apitypes.AnnotationRoutingKey]; ok {
		t.Fatalf("a plugin has no routing key: %v", cr.Annotations)
	}
	if cr.Spec.Runner.Image != "example.com/db:1" || len(cr.Spec.Create) != 1 || cr.Spec.Create[0].Outputs[0].Name != "host" ||
		cr.Spec.Delete[0].Inputs[0].ValueFromStep == nil || cr.Spec.Delete[0].Inputs[0].As.Env != "HOST" {
		t.Fatalf("spec: %+v", cr.Spec)
	}

	// No status report, even once the operator wrote a status.
	cr.Status.Sandboxes = []string{"sb1"}
	cr.Status.Conditions = []metav1.Condition{{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Valid", LastTransitionTime: metav1.Now()}}
	if err := kube.Status().Update(ctx, cr); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := a.Observe(ctx, pg); ok || err != nil {
		t.Fatalf("observe plugin: ok=%v err=%v", ok, err)
	}
	if err := a.ReportStatus(ctx); err != nil {
		t.Fatal(err)
	}
	if it := sink.last("rp-pg"); it != nil {
		t.Fatalf("status reported for a plugin: %v", it)
	}

	// A sandbox's resources reach its status report.
	sbSpecJSON, _ := json.Marshal(v1alpha1.SandboxSpec{Cluster: "c1", Resources: []v1alpha1.Resource{{Name: "db", Plugin: "rp-pg"}},
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}}})
	sbObj := apitypes.AgentObject{Kind: "sandbox", Org: "acme", Name: "rp-user", Version: 1, RoutingKey: "rk1", Spec: sbSpecJSON}
	if err := a.ApplyState(ctx, apitypes.AgentState{Revision: 2, Objects: []apitypes.AgentObject{sbObj}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		kube.Delete(ctx, &v1alpha1.Sandbox{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rp-user"}})
	})
	var sb v1alpha1.Sandbox
	if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rp-user"}, &sb); err != nil {
		t.Fatal(err)
	}
	sb.Status.ObservedGeneration = sb.Generation
	sb.Status.Resources = []v1alpha1.ResourceStatus{{Name: "db", Plugin: "rp-pg", Phase: v1alpha1.ResourceReady, OutputKeys: []string{"provision.host"}}}
	if err := kube.Status().Update(ctx, &sb); err != nil {
		t.Fatal(err)
	}
	if st, ok, err := a.Observe(ctx, sbObj); err != nil || !ok || len(st.Resources) != 1 || st.Resources[0].Phase != v1alpha1.ResourceReady || st.Resources[0].OutputKeys[0] != "provision.host" {
		t.Fatalf("observe sandbox: %+v %v %v", st, ok, err)
	}

	// A tombstone deletes the CR.
	if err := a.ApplyState(ctx, apitypes.AgentState{Revision: 3, Objects: []apitypes.AgentObject{{Kind: "resourceplugin", Org: "acme", Name: "rp-redis", Version: 1, Deleted: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("rp-redis"); !apierrors.IsNotFound(err) {
		t.Fatalf("rp-redis after its tombstone: %v", err)
	}

	// A full state without rp-pg prunes it; another cluster's CR stays.
	other := &v1alpha1.ResourcePlugin{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "rp-other-cluster",
		Labels: map[string]string{agent.LabelManagedBy: agent.FieldManager, agent.LabelOrg: "acme", agent.LabelCluster: "c2"}},
		Spec: v1alpha1.ResourcePluginSpec{Runner: v1alpha1.PluginRunner{Image: "example.com/x"}}}
	if err := kube.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	if err := a.ApplyState(ctx, apitypes.AgentState{Org: "acme", Cluster: "c1", Revision: 4, Full: true, Objects: []apitypes.AgentObject{sbObj}}); err != nil {
		t.Fatal(err)
	}
	if _, err := get("rp-pg"); !apierrors.IsNotFound(err) {
		t.Fatalf("rp-pg after a full state without it: %v", err)
	}
	if _, err := get("rp-other-cluster"); err != nil {
		t.Fatalf("another cluster's plugin was pruned: %v", err)
	}
}
