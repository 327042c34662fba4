package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

const agentUser = "runner-groups-agent"

// asAgent is a client of the test API server that acts as agentUser (with
// what agentRBAC granted it).
func asAgent(t *testing.T) client.Client {
	t.Helper()
	cfg := rest.CopyConfig(testenvConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: agentUser}
	c, err := client.New(cfg, client.Options{Scheme: kube.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// agentRBAC gives agentUser what the chart gives the agent: the CRs in its
// namespace, list on its namespace's Events, and Secrets create/patch/update/delete (no get, no list) in
// the job namespaces.
func agentRBAC(t *testing.T, jobNamespaces ...string) {
	t.Helper()
	ctx := context.Background()
	role := func(namespace string, rules []rbacv1.PolicyRule) {
		name := "test-" + agentUser
		r := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Rules: rules}
		if err := kube.Create(ctx, r); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
		b := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: agentUser}}}
		if err := kube.Create(ctx, b); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	role(ns, []rbacv1.PolicyRule{
		{APIGroups: []string{"sandboxmesh.dev"}, Resources: []string{"sandboxes", "routegroups", "jobrunnergroups", "resourceplugins"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"sandboxmesh.dev"}, Resources: []string{"sandboxes/status", "routegroups/status", "jobrunnergroups/status"}, Verbs: []string{"get"}},
		{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"list"}},
	})
	for _, n := range jobNamespaces {
		role(n, []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "patch", "update", "delete"}}})
	}
}

func namespaces(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := kube.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

// statusSink records the agent's status reports: the control plane's
// status endpoint, as far as the agent can see it.
type statusSink struct {
	mu    sync.Mutex
	items []map[string]any
}

func (s *statusSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/api/v2/agent/status" {
		http.NotFound(w, r)
		return
	}
	var body struct {
		Items []map[string]any `json:"items"`
	}
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.items = append(s.items, body.Items...)
	s.mu.Unlock()
	w.Write([]byte(`{}`))
}

func (s *statusSink) last(name string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := len(s.items) - 1; i >= 0; i-- {
		if s.items[i]["name"] == name {
			return s.items[i]
		}
	}
	return nil
}

func runnerGroup(name string, version int64, token, spec string) apitypes.AgentObject {
	return apitypes.AgentObject{Kind: "runnergroup", Org: "acme", Name: name, Version: version, RunnerToken: token, Spec: json.RawMessage(spec)}
}

func secretToken(t *testing.T, namespace, name string) (string, map[string]string) {
	t.Helper()
	var s corev1.Secret
	err := kube.Get(context.Background(), client.ObjectKey{Namespace: namespace, Name: name}, &s)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(s.Data["token"]), s.Labels
}

// TestAgentRunnerGroups: a runner group becomes a JobRunnerGroup CR in the
// agent's namespace and a token Secret in its own namespace, written with
// only the RBAC the chart gives (no get or list on Secrets); its status and
// pods are reported; a namespace the agent may not write in, or a pod
// template that is not one, is reported instead of applied, and retried;
// delete and prune remove both objects.
func TestAgentRunnerGroups(t *testing.T) {
	ctx := context.Background()
	allowed, later := "rg-allowed-jobs", "rg-later-jobs"
	namespaces(t, ns, allowed, later)
	agentRBAC(t, allowed)
	agentClient := asAgent(t)
	sink := &statusSink{}
	cp := httptest.NewServer(sink)
	defer cp.Close()
	a, err := agent.New(agent.Config{ControlPlaneURL: cp.URL, Token: "smc_test", Namespace: ns, Client: agentClient, DisableTunnel: true, ProblemRetry: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	suiteSpec := `{"cluster":"c1","namespace":"` + allowed + `","image":"example.com/e2e:v1","jobTimeout":"45m",
		"podTemplate":{"metadata":{"labels":{"team":"qa"}},"spec":{"containers":[{"name":"suite","env":[{"name":"A","value":"b"}]}]}},
		"scaling":{"manual":{"desiredPods":2}},"labels":{"owner":"qa"}}`
	suite := runnerGroup("suite", 1, "smr_first", suiteSpec)
	if err := a.ApplyState(ctx, apitypes.AgentState{Org: "acme", Cluster: "c1", Revision: 1, Full: true, Objects: []apitypes.AgentObject{suite}}); err != nil {
		t.Fatal(err)
	}

	t.Run("CR in the agent's namespace", func(t *testing.T) {
		var cr v1alpha1.JobRunnerGroup
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "suite"}, &cr); err != nil {
			t.Fatal(err)
		}
		want := v1alpha1.RunnerControlPlane{URL: cp.URL, Org: "acme", TokenSecretName: "sandboxmesh-runner-suite"}
		if cr.Spec.ControlPlane != want || cr.Spec.Namespace != allowed || cr.Spec.Image != "example.com/e2e:v1" || cr.Spec.JobTimeout != "45m" || cr.Spec.DesiredPods() != 2 || cr.Spec.Labels["owner"] != "qa" {
			t.Fatalf("spec = %+v", cr.Spec)
		}
		if c := cr.Spec.PodTemplate; c == nil || c.Labels["team"] != "qa" || c.Spec.Containers[0].Env[0].Value != "b" {
			t.Fatalf("pod template = %+v", c)
		}
		if cr.Labels[agent.LabelManagedBy] != agent.FieldManager || cr.Labels[agent.LabelOrg] != "acme" || cr.Labels[agent.LabelCluster] != "c1" || cr.Annotations[agent.AnnotationVersion] != "1" {
			t.Fatalf("metadata = %v %v", cr.Labels, cr.Annotations)
		}
	})

	t.Run("token Secret in the group's namespace", func(t *testing.T) {
		tok, labels := secretToken(t, allowed, "sandboxmesh-runner-suite")
		if tok != "smr_first" || labels[agent.LabelManagedBy] != agent.FieldManager || labels[agent.LabelOrg] != "acme" || labels[agent.LabelCluster] != "c1" || labels[v1alpha1.LabelRunnerGroup] != "suite" {
			t.Fatalf("secret token %q labels %v", tok, labels)
		}
	})

	t.Run("status and pods reported", func(t *testing.T) {
		st, ok, err := a.Observe(ctx, suite)
		if err != nil || !ok || st.Ready || st.Reason != "Pending" || st.Pods == nil || *st.Pods != (apitypes.RunnerGroupPods{}) {
			t.Fatalf("before the operator: %+v %v %v", st, ok, err)
		}
		// Act as the operator.
		var cr v1alpha1.JobRunnerGroup
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "suite"}, &cr); err != nil {
			t.Fatal(err)
		}
		cr.Status.ObservedGeneration = cr.Generation
		cr.Status.Pods = v1alpha1.RunnerPods{Ready: 1, NotReady: 1}
		meta.SetStatusCondition(&cr.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonPodsNotReady, Message: "1 of 2 runner pods ready"})
		if err := kube.Status().Update(ctx, &cr); err != nil {
			t.Fatal(err)
		}
		if err := a.ReportStatus(ctx); err != nil {
			t.Fatal(err)
		}
		got := sink.last("suite")
		st2, _ := got["status"].(map[string]any)
		pods, _ := st2["pods"].(map[string]any)
		if got["kind"] != "runnergroup" || got["version"] != float64(1) || st2["reason"] != v1alpha1.ReasonPodsNotReady || st2["ready"] != false || pods["ready"] != float64(1) || pods["notReady"] != float64(1) {
			t.Fatalf("reported %v", got)
		}
	})

	t.Run("a new version rotates the token", func(t *testing.T) {
		hash := func() string {
			var cr v1alpha1.JobRunnerGroup
			if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "suite"}, &cr); err != nil {
				t.Fatal(err)
			}
			return cr.Annotations[v1alpha1.AnnotationRunnerTokenHash]
		}
		before := hash()
		suite = runnerGroup("suite", 2, "smr_second", suiteSpec)
		if err := a.ApplyState(ctx, apitypes.AgentState{Revision: 2, Objects: []apitypes.AgentObject{suite}}); err != nil {
			t.Fatal(err)
		}
		if tok, _ := secretToken(t, allowed, "sandboxmesh-runner-suite"); tok != "smr_second" {
			t.Fatalf("token = %q", tok)
		}
		// The operator copies the hash onto the pods: a new token rolls them.
		if after := hash(); before == "" || after == "" || after == before || strings.Contains(after, "smr_") {
			t.Fatalf("token hash annotation %q -> %q", before, after)
		}
	})

	t.Run("namespace not allowed, then allowed", func(t *testing.T) {
		elsewhere := runnerGroup("elsewhere", 1, "smr_x", `{"namespace":"`+later+`","image":"x"}`)
		if err := a.ApplyState(ctx, apitypes.AgentState{Revision: 3, Objects: []apitypes.AgentObject{elsewhere}}); err != nil {
			t.Fatalf("a problem of one group must not fail the sync: %v", err)
		}
		st, ok, err := a.Observe(ctx, elsewhere)
		if err != nil || !ok || st.Ready || st.Reason != agent.ReasonNamespaceNotAllowed || !strings.Contains(st.Message, "jobs.namespaces") || !strings.Contains(st.Message, later) {
			t.Fatalf("status = %+v %v %v", st, ok, err)
		}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "elsewhere"}, &v1alpha1.JobRunnerGroup{}); !apierrors.IsNotFound(err) {
			t.Fatalf("CR applied without its Secret: %v", err)
		}
		if err := a.ReportStatus(ctx); err != nil {
			t.Fatal(err)
		}
		if got := sink.last("elsewhere"); got["status"].(map[string]any)["reason"] != agent.ReasonNamespaceNotAllowed {
			t.Fatalf("reported %v", got)
		}
		// The chart now lists the namespace: the next retry applies the group.
		agentRBAC(t, later)
		a.RetryProblems(ctx)
		if tok, _ := secretToken(t, later, "sandboxmesh-runner-elsewhere"); tok != "smr_x" {
			t.Fatalf("token after retry = %q", tok)
		}
		if st, _, err := a.Observe(ctx, elsewhere); err != nil || st.Reason != "Pending" {
			t.Fatalf("status after retry = %+v %v", st, err)
		}
	})

	t.Run("bad specs are reported, not applied", func(t *testing.T) {
		for _, tc := range []struct{ name, token, spec, reason, message string }{
			{"badtpl", "smr_y", `{"namespace":"` + allowed + `","podTemplate":{"spec":{"containers":"suite"}}}`, agent.ReasonInvalidSpec, "spec.podTemplate: not a Kubernetes PodTemplateSpec"},
			{"badspec", "smr_y", `{"namespace":"` + allowed + `","scaling":{"manual":{"desiredPods":"two"}}}`, agent.ReasonInvalidSpec, "spec:"},
			{"notoken", "", `{"namespace":"` + allowed + `","image":"x"}`, agent.ReasonNoRunnerToken, "no runner token"},
			{"refused", "smr_y", `{"namespace":"` + allowed + `","image":"x","scaling":{"manual":{"desiredPods":1000}}}`, agent.ReasonInvalidSpec, "spec.scaling.manual.desiredPods"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				o := runnerGroup(tc.name, 1, tc.token, tc.spec)
				if err := a.ApplyState(ctx, apitypes.AgentState{Revision: 4, Objects: []apitypes.AgentObject{o}}); err != nil {
					t.Fatalf("a problem of one group must not fail the sync: %v", err)
				}
				st, ok, err := a.Observe(ctx, o)
				if err != nil || !ok || st.Reason != tc.reason || !strings.Contains(st.Message, tc.message) {
					t.Fatalf("status = %+v %v %v, want %s containing %q", st, ok, err, tc.reason, tc.message)
				}
				if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: tc.name}, &v1alpha1.JobRunnerGroup{}); !apierrors.IsNotFound(err) {
					t.Fatalf("CR applied: %v", err)
				}
				if tok, _ := secretToken(t, allowed, v1alpha1.RunnerObjectName(tc.name)); tok != "" {
					t.Fatal("token Secret written for a group that was not applied")
				}
			})
		}
	})

	t.Run("delete removes the Secret and the CR", func(t *testing.T) {
		if err := a.ApplyState(ctx, apitypes.AgentState{Revision: 5, Objects: []apitypes.AgentObject{{Kind: "runnergroup", Org: "acme", Name: "suite", Version: 3, Deleted: true}}}); err != nil {
			t.Fatal(err)
		}
		if tok, _ := secretToken(t, allowed, "sandboxmesh-runner-suite"); tok != "" {
			t.Fatal("token Secret left")
		}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "suite"}, &v1alpha1.JobRunnerGroup{}); !apierrors.IsNotFound(err) {
			t.Fatalf("CR left: %v", err)
		}
	})

	t.Run("a full state prunes both", func(t *testing.T) {
		if err := a.ApplyState(ctx, apitypes.AgentState{Org: "acme", Cluster: "c1", Revision: 6, Full: true}); err != nil {
			t.Fatal(err)
		}
		if tok, _ := secretToken(t, later, "sandboxmesh-runner-elsewhere"); tok != "" {
			t.Fatal("token Secret left")
		}
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "elsewhere"}, &v1alpha1.JobRunnerGroup{}); !apierrors.IsNotFound(err) {
			t.Fatalf("CR left: %v", err)
		}
	})
}

// TestAgentRunnerGroupMissingNamespace: a group whose namespace does not
// exist says so (the agent here may write Secrets anywhere).
func TestAgentRunnerGroupMissingNamespace(t *testing.T) {
	ctx := context.Background()
	namespaces(t, ns)
	a, err := agent.New(agent.Config{ControlPlaneURL: "http://127.0.0.1:1", Token: "smc_test", Namespace: ns, Client: kube, DisableTunnel: true})
	if err != nil {
		t.Fatal(err)
	}
	o := runnerGroup("nowhere", 1, "smr_z", `{"namespace":"rg-does-not-exist","image":"x"}`)
	if err := a.ApplyState(ctx, apitypes.AgentState{Org: "acme", Cluster: "c1", Revision: 1, Full: true, Objects: []apitypes.AgentObject{o}}); err != nil {
		t.Fatal(err)
	}
	st, ok, err := a.Observe(ctx, o)
	if err != nil || !ok || st.Reason != v1alpha1.ReasonNamespaceNotFound || !strings.Contains(st.Message, "rg-does-not-exist") {
		t.Fatalf("status = %+v %v %v", st, ok, err)
	}
}

const e2eRunnerImage = "sandboxmesh.dev/sandboxmesh-runner:e2e"

// TestAgentRunnerGroupWithOperator: the agent's CR and Secret and the real
// operator's runner Deployment fit together (the pods read the Secret the
// agent wrote, under the key it wrote), the operator's pod counts reach the
// agent's report, and a delete removes the Deployment, the Secret and the CR.
func TestAgentRunnerGroupWithOperator(t *testing.T) {
	ctx := context.Background()
	agentNS, jobs := "rg-op-system", "rg-op-jobs"
	namespaces(t, agentNS, jobs)
	startOperator(t)
	a, err := agent.New(agent.Config{ControlPlaneURL: "http://127.0.0.1:1", Token: "smc_test", Namespace: agentNS, Client: kube, DisableTunnel: true})
	if err != nil {
		t.Fatal(err)
	}
	o := runnerGroup("e2e", 1, "smr_e2e", `{"namespace":"`+jobs+`","image":"example.com/suite:v1"}`)
	if err := a.ApplyState(ctx, apitypes.AgentState{Org: "acme", Cluster: "c1", Revision: 1, Full: true, Objects: []apitypes.AgentObject{o}}); err != nil {
		t.Fatal(err)
	}
	var d appsv1.Deployment
	eventually(t, "runner Deployment", func() error {
		return kube.Get(ctx, client.ObjectKey{Namespace: jobs, Name: "sandboxmesh-runner-e2e"}, &d)
	})
	var tokenEnv *corev1.EnvVar
	for i, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == v1alpha1.EnvRunnerToken {
			tokenEnv = &d.Spec.Template.Spec.Containers[0].Env[i]
		}
	}
	if tokenEnv == nil || tokenEnv.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("no token env: %+v", d.Spec.Template.Spec.Containers[0].Env)
	}
	var sec corev1.Secret
	if err := kube.Get(ctx, client.ObjectKey{Namespace: jobs, Name: tokenEnv.ValueFrom.SecretKeyRef.Name}, &sec); err != nil {
		t.Fatalf("the pods' Secret: %v", err)
	}
	if string(sec.Data[tokenEnv.ValueFrom.SecretKeyRef.Key]) != "smr_e2e" {
		t.Fatalf("the pods' token = %q", sec.Data[tokenEnv.ValueFrom.SecretKeyRef.Key])
	}
	var cr v1alpha1.JobRunnerGroup
	if err := kube.Get(ctx, client.ObjectKey{Namespace: agentNS, Name: "e2e"}, &cr); err != nil {
		t.Fatal(err)
	}
	if h := cr.Annotations[v1alpha1.AnnotationRunnerTokenHash]; h == "" || d.Spec.Template.Annotations[v1alpha1.AnnotationRunnerTokenHash] != h {
		t.Fatalf("token hash: CR %q, pods %q", h, d.Spec.Template.Annotations[v1alpha1.AnnotationRunnerTokenHash])
	}
	if got := d.Spec.Template.Spec.InitContainers[0].Image; got != e2eRunnerImage {
		t.Fatalf("init image %s", got)
	}
	// Play the Deployment controller.
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	if err := kube.Status().Update(ctx, &d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ready pods observed", func() error {
		st, ok, err := a.Observe(ctx, o)
		if err != nil || !ok || !st.Ready || st.Pods == nil || st.Pods.Ready != 1 {
			return fmt.Errorf("%+v %v %v", st, ok, err)
		}
		return nil
	})
	if err := a.ApplyState(ctx, apitypes.AgentState{Revision: 2, Objects: []apitypes.AgentObject{{Kind: "runnergroup", Org: "acme", Name: "e2e", Version: 2, Deleted: true}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "all gone", func() error {
		var dd appsv1.Deployment
		errD := kube.Get(ctx, client.ObjectKey{Namespace: jobs, Name: "sandboxmesh-runner-e2e"}, &dd)
		errS := kube.Get(ctx, client.ObjectKey{Namespace: jobs, Name: "sandboxmesh-runner-e2e"}, &corev1.Secret{})
		errC := kube.Get(ctx, client.ObjectKey{Namespace: agentNS, Name: "e2e"}, &v1alpha1.JobRunnerGroup{})
		if (apierrors.IsNotFound(errD) || !dd.DeletionTimestamp.IsZero()) && apierrors.IsNotFound(errS) && apierrors.IsNotFound(errC) {
			return nil
		}
		return fmt.Errorf("Deployment %v, Secret %v, CR %v", errD, errS, errC)
	})
}

// FuzzRunnerGroupSpec: whatever spec the control plane sends, the agent
// either reports a problem or builds a CR that the operator's typed client
// decodes (a CR it cannot decode would stop the operator from reading any
// JobRunnerGroup), in the group's namespace, with the agent's control plane.
func FuzzRunnerGroupSpec(f *testing.F) {
	for _, s := range []string{
		`{"namespace":"jobs","image":"x","podTemplate":{"spec":{"containers":[{"name":"a","resources":{"limits":{"cpu":"1"}}}]}}}`,
		`{"podTemplate":{"spec":{"containers":"a"}}}`,
		`{"podTemplate":{"spec":{"containers":[{"resources":{"limits":{"cpu":"abc"}}}]}}}`,
		`{"podTemplate":null,"scaling":{"manual":{"desiredPods":3}},"labels":{"a":"b"}}`,
		`{"Spec":{},"podtemplate":{"Spec":{"Containers":"x"}}}`,
		`[]`, `null`, `{"podTemplate":[1]}`, `{"podTemplate":{"metadata":{"creationTimestamp":"yesterday"}}}`,
	} {
		f.Add([]byte(s))
	}
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		f.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	a, err := agent.New(agent.Config{ControlPlaneURL: "https://cp.example.com", Token: "smc_x", Namespace: ns, Client: fake.NewClientBuilder().Build()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, spec []byte) {
		cr, runnerNS, problem, err := a.RunnerGroupCR(apitypes.AgentObject{Kind: "runnergroup", Org: "acme", Name: "g", Version: 1, RunnerToken: "smr_x", Spec: spec}, "c1")
		if err != nil {
			if !problem {
				t.Fatalf("%s: error that is not a problem: %v", spec, err)
			}
			return
		}
		b, err := cr.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj, _, err := decoder.Decode(b, nil, nil)
		if err != nil {
			t.Fatalf("%s: the operator could not decode the CR: %v\n%s", spec, err, b)
		}
		jrg := obj.(*v1alpha1.JobRunnerGroup)
		if runnerNS == "" || jrg.Spec.Namespace != runnerNS || jrg.Spec.ControlPlane.URL != "https://cp.example.com" || jrg.Spec.ControlPlane.TokenSecretName != "sandboxmesh-runner-g" {
			t.Fatalf("%s: CR %+v in %q", spec, jrg.Spec, runnerNS)
		}
	})
}

func (s *statusSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.items)
}
