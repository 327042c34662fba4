package controllers_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/yaml"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/controllers"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const runnerImage = "sandboxmesh.dev/sandboxmesh-runner:dev"

func jrgFixture(ns, name string) *smv1.JobRunnerGroup {
	return &smv1.JobRunnerGroup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: smv1.JobRunnerGroupSpec{
			Namespace: ns + "-jobs",
			Image:     "example.com/e2e:v1",
			ControlPlane: smv1.RunnerControlPlane{
				URL: "http://sandboxmesh-controlplane.sandboxmesh-system.svc", Org: "acme", TokenSecretName: smv1.RunnerObjectName(name),
			},
		},
	}
}

func int32p(v int32) *int32 { return &v }

// TestRunnerDeploymentGolden renders the runner Deployment of typical
// groups; review a diff of testdata/golden/runner-*.yaml like code.
func TestRunnerDeploymentGolden(t *testing.T) {
	withTemplate := jrgFixture("sandboxmesh-system", "e2e")
	withTemplate.Spec.Image = ""
	withTemplate.Annotations = map[string]string{smv1.AnnotationRunnerTokenHash: "0123456789abcdef"}
	withTemplate.Spec.Scaling = &smv1.JobRunnerGroupScaling{Manual: &smv1.ManualScaling{DesiredPods: int32p(3)}}
	withTemplate.Spec.PodTemplate = &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"team": "qa"}, Annotations: map[string]string{"example.com/note": "kept"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "e2e",
			Containers: []corev1.Container{
				{Name: "suite", Image: "example.com/suite:v7", Command: []string{"/bin/suite"}, Args: []string{"--all"},
					Env:       []corev1.EnvVar{{Name: "BASE_URL", Value: "http://frontend.hotrod.svc:8080"}, {Name: smv1.EnvOrg, Value: "overridden"}},
					Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}},
				{Name: "db", Image: "example.com/postgres:17"},
			},
		},
	}
	for _, tc := range []struct {
		golden string
		jrg    *smv1.JobRunnerGroup
	}{
		{"runner-image-only.yaml", jrgFixture("sandboxmesh-system", "smoke")},
		{"runner-pod-template.yaml", withTemplate},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			d, err := controllers.RunnerDeployment(tc.jrg, runnerImage)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, render(t, d))
		})
	}
}

func render(t *testing.T, obj any) []byte {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "status")
	delete(m["metadata"].(map[string]any), "creationTimestamp")
	delete(m["spec"].(map[string]any)["template"].(map[string]any)["metadata"].(map[string]any), "creationTimestamp")
	y, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./operator/controllers -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the rendering (run go test ./operator/controllers -run Golden -update and review the diff):\n%s", path, got)
	}
}

// TestRunnerDeploymentRefusesBadSpecs: a spec that cannot make a runner pod
// is an error naming the field, never a Deployment the API server or the
// kubelet would refuse later.
func TestRunnerDeploymentRefusesBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name, image, want string
		mutate            func(*smv1.JobRunnerGroup)
	}{
		{"no image and no template", runnerImage, "spec.image: required when spec.podTemplate has no containers", func(j *smv1.JobRunnerGroup) { j.Spec.Image = "" }},
		{"template without containers and no image", runnerImage, "spec.image: required", func(j *smv1.JobRunnerGroup) {
			j.Spec.Image, j.Spec.PodTemplate = "", &corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "x"}}
		}},
		{"first container without image and no spec.image", runnerImage, "spec.podTemplate.spec.containers[0].image: required", func(j *smv1.JobRunnerGroup) {
			j.Spec.Image, j.Spec.PodTemplate = "", &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "suite"}}}}
		}},
		{"reserved init container name", runnerImage, "spec.podTemplate.spec.initContainers", func(j *smv1.JobRunnerGroup) {
			j.Spec.PodTemplate = &corev1.PodTemplateSpec{Spec: corev1.PodSpec{InitContainers: []corev1.Container{{Name: smv1.RunnerContainerInstall, Image: "x"}}}}
		}},
		{"reserved volume name", runnerImage, "spec.podTemplate.spec.volumes", func(j *smv1.JobRunnerGroup) {
			j.Spec.PodTemplate = &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Volumes: []corev1.Volume{{Name: smv1.RunnerVolume}}}}
		}},
		{"operator without runner image", "", "--runner-image", func(*smv1.JobRunnerGroup) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jrgFixture("ns", "bad")
			tc.mutate(j)
			d, err := controllers.RunnerDeployment(j, tc.image)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("RunnerDeployment = %v, %v; want an error containing %q", d, err, tc.want)
			}
		})
	}
}

// TestRunnerGroupStatus: the status is a pure function of the observation;
// an unchanged Ready keeps its transition time.
func TestRunnerGroupStatus(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	dep := func(gen, obsGen, replicas, ready, updated int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "sandboxmesh-runner-g", Namespace: "jobs", Generation: int64(gen)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: int64(obsGen), Replicas: replicas, ReadyReplicas: ready, UpdatedReplicas: updated, Conditions: conds}}
	}
	for _, tc := range []struct {
		name       string
		desired    *int32
		obs        controllers.RunnerObservation
		wantStatus metav1.ConditionStatus
		wantReason string
		wantPods   smv1.RunnerPods
	}{
		{"no Deployment yet", nil, controllers.RunnerObservation{}, metav1.ConditionFalse, smv1.ReasonCreating, smv1.RunnerPods{}},
		{"Deployment not observed", nil, controllers.RunnerObservation{Deployment: dep(2, 1, 1, 1, 1)}, metav1.ConditionFalse, smv1.ReasonCreating, smv1.RunnerPods{Ready: 1}},
		{"all ready", int32p(2), controllers.RunnerObservation{Deployment: dep(1, 1, 2, 2, 2)}, metav1.ConditionTrue, smv1.ReasonAvailable, smv1.RunnerPods{Ready: 2}},
		{"some ready", int32p(3), controllers.RunnerObservation{Deployment: dep(1, 1, 3, 1, 3)}, metav1.ConditionFalse, smv1.ReasonPodsNotReady, smv1.RunnerPods{Ready: 1, NotReady: 2}},
		{"old pods ready, new not", int32p(1), controllers.RunnerObservation{Deployment: dep(2, 2, 2, 1, 0)}, metav1.ConditionFalse, smv1.ReasonPodsNotReady, smv1.RunnerPods{Ready: 1, NotReady: 1}},
		{"scaled to zero", int32p(0), controllers.RunnerObservation{Deployment: dep(1, 1, 0, 0, 0)}, metav1.ConditionTrue, smv1.ReasonScaledToZero, smv1.RunnerPods{}},
		{"quota refuses pods", nil, controllers.RunnerObservation{Deployment: dep(1, 1, 0, 0, 0, appsv1.DeploymentCondition{
			Type: appsv1.DeploymentReplicaFailure, Status: corev1.ConditionTrue, Reason: "FailedCreate", Message: "exceeded quota"})}, metav1.ConditionFalse, smv1.ReasonRolloutFailed, smv1.RunnerPods{}},
		{"progress deadline", nil, controllers.RunnerObservation{Deployment: dep(1, 1, 1, 0, 1, appsv1.DeploymentCondition{
			Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded"})}, metav1.ConditionFalse, smv1.ReasonRolloutFailed, smv1.RunnerPods{NotReady: 1}},
		{"problem wins", nil, controllers.RunnerObservation{Reason: smv1.ReasonNameConflict, Message: "taken"}, metav1.ConditionFalse, smv1.ReasonNameConflict, smv1.RunnerPods{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jrgFixture("ns", "g")
			j.Generation = 4
			if tc.desired != nil {
				j.Spec.Scaling = &smv1.JobRunnerGroupScaling{Manual: &smv1.ManualScaling{DesiredPods: tc.desired}}
			}
			st := controllers.RunnerGroupStatus(j, tc.obs, t0)
			c := meta.FindStatusCondition(st.Conditions, smv1.ConditionReady)
			if c == nil || c.Status != tc.wantStatus || c.Reason != tc.wantReason || st.Pods != tc.wantPods || st.ObservedGeneration != 4 {
				t.Fatalf("status = %+v, want Ready=%s %s pods %+v", st, tc.wantStatus, tc.wantReason, tc.wantPods)
			}
			j.Status = st
			again := controllers.RunnerGroupStatus(j, tc.obs, t0.Add(time.Hour))
			if c2 := meta.FindStatusCondition(again.Conditions, smv1.ConditionReady); !c2.LastTransitionTime.Equal(&c.LastTransitionTime) {
				t.Fatalf("unchanged Ready moved its transition time: %v -> %v", c.LastTransitionTime, c2.LastTransitionTime)
			}
		})
	}
}

// jrgEnv creates the group's namespace and its jobs namespace.
func jrgEnv(t *testing.T, ns string) {
	t.Helper()
	for _, n := range []string{ns, ns + "-jobs"} {
		if err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}

func reconcileJRG(t *testing.T, r *controllers.JobRunnerGroupReconciler, j *smv1.JobRunnerGroup) reconcile.Result {
	t.Helper()
	res, err := r.Reconcile(context.Background(), reconcile.Request{NamespacedName: client.ObjectKeyFromObject(j)})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func getJRG(t *testing.T, j *smv1.JobRunnerGroup) *smv1.JobRunnerGroup {
	t.Helper()
	var out smv1.JobRunnerGroup
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(j), &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

func runnerDeployment(t *testing.T, j *smv1.JobRunnerGroup) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: j.Spec.Namespace, Name: smv1.RunnerObjectName(j.Name)}, &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

// playDeploymentController sets the Deployment's status as the Deployment
// controller would (envtest has none, and no kubelet).
func playDeploymentController(t *testing.T, d *appsv1.Deployment, replicas, ready int32) {
	t.Helper()
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: replicas, UpdatedReplicas: replicas, ReadyReplicas: ready, AvailableReplicas: ready}
	if err := env.Client.Status().Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
}

func wantReady(t *testing.T, j *smv1.JobRunnerGroup, status metav1.ConditionStatus, reason string, pods smv1.RunnerPods) *smv1.JobRunnerGroup {
	t.Helper()
	got := getJRG(t, j)
	c := meta.FindStatusCondition(got.Status.Conditions, smv1.ConditionReady)
	if c == nil || c.Status != status || c.Reason != reason || got.Status.Pods != pods || got.Status.ObservedGeneration != got.Generation {
		t.Fatalf("status = %+v (generation %d), want Ready=%s %s, pods %+v", got.Status, got.Generation, status, reason, pods)
	}
	return got
}

// TestJobRunnerGroupLifecycle drives one group through create, readiness,
// scaling, an image change, a converged reconcile and deletion against a
// real API server.
func TestJobRunnerGroupLifecycle(t *testing.T) {
	ctx := context.Background()
	ns := "jrg-life"
	jrgEnv(t, ns)
	r := &controllers.JobRunnerGroupReconciler{Client: env.Client, RunnerImage: runnerImage}
	j := jrgFixture(ns, "e2e")
	if err := env.Client.Create(ctx, j); err != nil {
		t.Fatal(err)
	}

	t.Run("create makes the Deployment", func(t *testing.T) {
		reconcileJRG(t, r, j)
		d := runnerDeployment(t, j)
		if len(d.OwnerReferences) != 0 {
			t.Errorf("cross-namespace Deployment has owner references %v", d.OwnerReferences)
		}
		if !controllerutilContains(getJRG(t, j).Finalizers, naming.Finalizer) {
			t.Errorf("finalizer missing")
		}
		want := map[string]string{smv1.LabelManagedBy: smv1.ManagedBy, smv1.LabelRunnerGroup: "e2e", smv1.LabelRunnerGroupNamespace: ns}
		for k, v := range want {
			if d.Labels[k] != v || d.Spec.Template.Labels[k] != v {
				t.Errorf("label %s = %q (pod %q), want %q", k, d.Labels[k], d.Spec.Template.Labels[k], v)
			}
		}
		if *d.Spec.Replicas != 1 {
			t.Errorf("replicas = %d, want the default 1", *d.Spec.Replicas)
		}
		pod := d.Spec.Template.Spec
		if d.Spec.Template.Annotations[smv1.AnnotationInject] != "false" {
			t.Errorf("pods do not opt out of devmesh injection: %v", d.Spec.Template.Annotations)
		}
		if len(pod.InitContainers) != 1 || pod.InitContainers[0].Image != runnerImage || strings.Join(pod.InitContainers[0].Command, " ") != "sandboxmesh-runner install /sandboxmesh/bin" {
			t.Errorf("init containers = %+v", pod.InitContainers)
		}
		main := pod.Containers[0]
		if main.Image != "example.com/e2e:v1" || strings.Join(main.Command, " ") != "/sandboxmesh/bin/sandboxmesh-runner run" {
			t.Errorf("main container = %s %v", main.Image, main.Command)
		}
		env := map[string]corev1.EnvVar{}
		for _, e := range main.Env {
			env[e.Name] = e
		}
		if env[smv1.EnvControlPlaneURL].Value != j.Spec.ControlPlane.URL || env[smv1.EnvOrg].Value != "acme" || env[smv1.EnvRunnerGroup].Value != "e2e" ||
			env[smv1.EnvPodName].ValueFrom.FieldRef.FieldPath != "metadata.name" || env[smv1.EnvPodNamespace].ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
			t.Errorf("env = %+v", main.Env)
		}
		if ref := env[smv1.EnvRunnerToken].ValueFrom.SecretKeyRef; ref == nil || ref.Name != "sandboxmesh-runner-e2e" || ref.Key != "token" {
			t.Errorf("token env = %+v", env[smv1.EnvRunnerToken])
		}
		wantReady(t, j, metav1.ConditionFalse, smv1.ReasonCreating, smv1.RunnerPods{})
	})

	t.Run("status counts the pods", func(t *testing.T) {
		playDeploymentController(t, runnerDeployment(t, j), 1, 0)
		reconcileJRG(t, r, j)
		wantReady(t, j, metav1.ConditionFalse, smv1.ReasonPodsNotReady, smv1.RunnerPods{NotReady: 1})
		playDeploymentController(t, runnerDeployment(t, j), 1, 1)
		reconcileJRG(t, r, j)
		wantReady(t, j, metav1.ConditionTrue, smv1.ReasonAvailable, smv1.RunnerPods{Ready: 1})
	})

	t.Run("scaling changes replicas", func(t *testing.T) {
		cur := getJRG(t, j)
		cur.Spec.Scaling = &smv1.JobRunnerGroupScaling{Manual: &smv1.ManualScaling{DesiredPods: int32p(3)}}
		if err := env.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		reconcileJRG(t, r, j)
		d := runnerDeployment(t, j)
		if *d.Spec.Replicas != 3 {
			t.Fatalf("replicas = %d, want 3", *d.Spec.Replicas)
		}
		wantReady(t, j, metav1.ConditionFalse, smv1.ReasonCreating, smv1.RunnerPods{Ready: 1})
		playDeploymentController(t, d, 3, 2)
		reconcileJRG(t, r, j)
		wantReady(t, j, metav1.ConditionFalse, smv1.ReasonPodsNotReady, smv1.RunnerPods{Ready: 2, NotReady: 1})
	})

	t.Run("someone scales the Deployment by hand", func(t *testing.T) {
		d := runnerDeployment(t, j)
		d.Spec.Replicas = int32p(7)
		if err := env.Client.Update(ctx, d); err != nil {
			t.Fatal(err)
		}
		reconcileJRG(t, r, j)
		if got := *runnerDeployment(t, j).Spec.Replicas; got != 3 {
			t.Fatalf("replicas = %d, want the group's 3 back", got)
		}
	})

	t.Run("image change updates the container", func(t *testing.T) {
		cur := getJRG(t, j)
		cur.Spec.Image = "example.com/e2e:v2"
		if err := env.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		reconcileJRG(t, r, j)
		d := runnerDeployment(t, j)
		if got := d.Spec.Template.Spec.Containers[0].Image; got != "example.com/e2e:v2" {
			t.Fatalf("image = %s", got)
		}
		playDeploymentController(t, d, 3, 3)
		reconcileJRG(t, r, j)
		wantReady(t, j, metav1.ConditionTrue, smv1.ReasonAvailable, smv1.RunnerPods{Ready: 3})
	})

	t.Run("a new runner token rolls the pods", func(t *testing.T) {
		cur := getJRG(t, j)
		cur.Annotations = map[string]string{smv1.AnnotationRunnerTokenHash: "fedcba9876543210"}
		if err := env.Client.Update(ctx, cur); err != nil {
			t.Fatal(err)
		}
		reconcileJRG(t, r, j)
		d := runnerDeployment(t, j)
		if got := d.Spec.Template.Annotations[smv1.AnnotationRunnerTokenHash]; got != "fedcba9876543210" {
			t.Fatalf("pod template token hash = %q", got)
		}
		playDeploymentController(t, d, 3, 3)
		reconcileJRG(t, r, j)
	})

	t.Run("converged reconcile writes nothing", func(t *testing.T) {
		var writes []string
		base, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		count := func(what string, o client.Object) { writes = append(writes, what+" "+o.GetName()) }
		c := interceptor.NewClient(base, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
				count("create", o)
				return c.Create(ctx, o, opts...)
			},
			Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
				count("update", o)
				return c.Update(ctx, o, opts...)
			},
			Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
				count("patch", o)
				return c.Patch(ctx, o, p, opts...)
			},
			SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
				count(sub+" patch", o)
				return c.SubResource(sub).Patch(ctx, o, p, opts...)
			},
		})
		quiet := &controllers.JobRunnerGroupReconciler{Client: c, RunnerImage: runnerImage}
		reconcileJRG(t, quiet, j)
		reconcileJRG(t, quiet, j)
		if len(writes) != 0 {
			t.Fatalf("a converged group's reconcile wrote %v", writes)
		}
	})

	t.Run("runner image change rolls the pods", func(t *testing.T) {
		r2 := &controllers.JobRunnerGroupReconciler{Client: env.Client, RunnerImage: "registry.example.com/sandboxmesh-runner:v2"}
		reconcileJRG(t, r2, j)
		if got := runnerDeployment(t, j).Spec.Template.Spec.InitContainers[0].Image; got != "registry.example.com/sandboxmesh-runner:v2" {
			t.Fatalf("init image = %s", got)
		}
		reconcileJRG(t, r, j)
	})

	t.Run("delete removes the Deployment, then the finalizer", func(t *testing.T) {
		if err := env.Client.Delete(ctx, getJRG(t, j)); err != nil {
			t.Fatal(err)
		}
		reconcileJRG(t, r, j)
		var d appsv1.Deployment
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: j.Spec.Namespace, Name: smv1.RunnerObjectName(j.Name)}, &d)
		if err == nil && d.DeletionTimestamp.IsZero() {
			t.Fatalf("runner Deployment still there")
		}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(j), &smv1.JobRunnerGroup{}); !apierrors.IsNotFound(err) {
			t.Fatalf("JobRunnerGroup not gone: %v", err)
		}
		reconcileJRG(t, r, j) // gone: nothing to do, no error
	})
}

func controllerutilContains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestJobRunnerGroupProblems: what the user must fix shows as Ready=False
// with a reason and a message naming the field; nothing foreign is touched.
func TestJobRunnerGroupProblems(t *testing.T) {
	ctx := context.Background()
	ns := "jrg-problems"
	jrgEnv(t, ns)
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: smv1.RunnerObjectName("taken"), Namespace: ns + "-jobs", Labels: map[string]string{"app": "mine"}},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "mine"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "mine"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "mine", Image: "mine:v1"}}}}}}
	if err := env.Client.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name        string
		mutate      func(*smv1.JobRunnerGroup)
		namespaces  []string
		wantReason  string
		wantMessage string
		wantRequeue bool
	}{
		{name: "template without containers and no image", mutate: func(j *smv1.JobRunnerGroup) {
			j.Spec.Image, j.Spec.PodTemplate = "", &corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "e2e"}}
		}, wantReason: smv1.ReasonInvalidSpec, wantMessage: "spec.image: required when spec.podTemplate has no containers"},
		{name: "template the API server refuses", mutate: func(j *smv1.JobRunnerGroup) {
			j.Spec.PodTemplate = &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "Not_A_DNS_Label"}}}}
		}, wantReason: smv1.ReasonInvalidSpec, wantMessage: "spec.template.spec.containers[0].name"},
		{name: "namespace missing", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.Namespace = "jrg-nowhere" },
			wantReason: smv1.ReasonNamespaceNotFound, wantMessage: "spec.namespace: namespace jrg-nowhere does not exist", wantRequeue: true},
		{name: "namespace not watched", namespaces: []string{ns}, mutate: func(*smv1.JobRunnerGroup) {},
			wantReason: smv1.ReasonNamespaceNotWatched, wantMessage: "add jrg-problems-jobs to its --namespaces"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := jrgFixture(ns, "p"+strconv.Itoa(i))
			tc.mutate(j)
			if err := env.Client.Create(ctx, j); err != nil {
				t.Fatal(err)
			}
			r := &controllers.JobRunnerGroupReconciler{Client: env.Client, RunnerImage: runnerImage, Namespaces: tc.namespaces}
			res := reconcileJRG(t, r, j)
			if tc.wantRequeue != (res.RequeueAfter > 0) {
				t.Errorf("result = %+v, want requeue %v", res, tc.wantRequeue)
			}
			got := getJRG(t, j)
			c := meta.FindStatusCondition(got.Status.Conditions, smv1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tc.wantReason || !strings.Contains(c.Message, tc.wantMessage) {
				t.Fatalf("Ready = %+v, want False %s containing %q", c, tc.wantReason, tc.wantMessage)
			}
			// Deleting a group that never made a Deployment completes.
			if err := env.Client.Delete(ctx, got); err != nil {
				t.Fatal(err)
			}
			reconcileJRG(t, r, j)
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(j), &smv1.JobRunnerGroup{}); !apierrors.IsNotFound(err) {
				t.Fatalf("not deleted: %v", err)
			}
		})
	}

	t.Run("a foreign Deployment with the name is left alone", func(t *testing.T) {
		j := jrgFixture(ns, "taken")
		if err := env.Client.Create(ctx, j); err != nil {
			t.Fatal(err)
		}
		r := &controllers.JobRunnerGroupReconciler{Client: env.Client, RunnerImage: runnerImage}
		reconcileJRG(t, r, j)
		wantReady(t, j, metav1.ConditionFalse, smv1.ReasonNameConflict, smv1.RunnerPods{})
		if err := env.Client.Delete(ctx, getJRG(t, j)); err != nil {
			t.Fatal(err)
		}
		reconcileJRG(t, r, j)
		var d appsv1.Deployment
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(foreign), &d); err != nil || !d.DeletionTimestamp.IsZero() || d.Spec.Template.Spec.Containers[0].Image != "mine:v1" {
			t.Fatalf("foreign Deployment touched: %v %+v", err, d.Spec.Template.Spec.Containers)
		}
	})
}
