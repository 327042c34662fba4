package workload

import (
	"context"
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func scheme(t *testing.T, rollouts bool) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	adds := []func(*runtime.Scheme) error{clientgoscheme.AddToScheme}
	if rollouts {
		adds = append(adds, AddToScheme)
	}
	for _, add := range adds {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func template(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: image}}}}
}

// TestGet: each kind is read into a Baseline with the right pod template and
// selector, and each way a workload can be unusable says so.
func TestGet(t *testing.T) {
	three := int32(3)
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "pay-template", Generation: 9},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "pay"}}, Template: template("pay", "pay:v1")}}
	objs := []client.Object{dep,
		&Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart", Generation: 4, Labels: map[string]string{"team": "a"}},
			Spec: RolloutSpec{Replicas: &three, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}, Template: template("cart", "cart:v1")}},
		&Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "pay", Generation: 2},
			Spec: RolloutSpec{WorkloadRef: &RolloutWorkloadRef{APIVersion: "apps/v1", Kind: "Deployment", Name: "pay-template"}}},
		&Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "dangling"},
			Spec: RolloutSpec{WorkloadRef: &RolloutWorkloadRef{Kind: "Deployment", Name: "gone"}}},
		&Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "odd"},
			Spec: RolloutSpec{WorkloadRef: &RolloutWorkloadRef{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "x"}}},
	}
	c := fake.NewClientBuilder().WithScheme(scheme(t, true)).WithObjects(objs...).Build()
	ref := func(kind smv1.WorkloadKind, name string) smv1.WorkloadRef {
		return smv1.WorkloadRef{Kind: kind, Namespace: "shop", Name: name}
	}
	for _, tc := range []struct {
		name      string
		ref       smv1.WorkloadRef
		rollouts  bool
		image     string
		selector  string
		wantErr   error
		errSubstr string
	}{
		{name: "Deployment (default kind)", ref: ref("", "pay-template"), image: "pay:v1", selector: "pay"},
		{name: "Rollout spec.template", ref: ref(smv1.KindRollout, "cart"), rollouts: true, image: "cart:v1", selector: "cart"},
		{name: "Rollout spec.workloadRef", ref: ref(smv1.KindRollout, "pay"), rollouts: true, image: "pay:v1", selector: "pay"},
		{name: "missing Deployment", ref: ref(smv1.KindDeployment, "nope"), wantErr: ErrNotFound, errSubstr: "Deployment shop/nope not found"},
		{name: "missing Rollout", ref: ref(smv1.KindRollout, "nope"), rollouts: true, wantErr: ErrNotFound, errSubstr: "Rollout shop/nope not found"},
		{name: "missing workloadRef", ref: ref(smv1.KindRollout, "dangling"), rollouts: true, wantErr: ErrNotFound,
			errSubstr: "Rollout shop/dangling: spec.workloadRef: Deployment shop/gone not found"},
		{name: "workloadRef of another kind", ref: ref(smv1.KindRollout, "odd"), rollouts: true, wantErr: ErrUnsupported, errSubstr: `kind "ReplicaSet"`},
		{name: "Rollouts not installed", ref: ref(smv1.KindRollout, "cart"), wantErr: ErrNotFound, errSubstr: "Argo Rollouts are not installed"},
		{name: "unknown kind", ref: ref("StatefulSet", "db"), wantErr: ErrUnsupported, errSubstr: `kind "StatefulSet" not supported`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Get(context.Background(), c, tc.ref, tc.rollouts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errSubstr) {
					t.Fatalf("error %v, want %v saying %q", err, tc.wantErr, tc.errSubstr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Kind != Kind(tc.ref) || b.Name != tc.ref.Name || b.Spec.Template.Spec.Containers[0].Image != tc.image ||
				b.Spec.Selector.MatchLabels["app"] != tc.selector || b.Ref() != (smv1.WorkloadRef{Kind: Kind(tc.ref), Namespace: "shop", Name: tc.ref.Name}) {
				t.Errorf("baseline = %s %s/%s %+v", b.Kind, b.Namespace, b.Name, b.Spec)
			}
		})
	}
	// The Rollout's own metadata, not the workloadRef Deployment's.
	b, _ := Get(context.Background(), c, ref(smv1.KindRollout, "pay"), true)
	if b.Generation != 2 {
		t.Errorf("generation = %d, want the Rollout's", b.Generation)
	}
	if b, _ := Get(context.Background(), c, ref(smv1.KindRollout, "cart"), true); *b.Spec.Replicas != 3 || b.Labels["team"] != "a" {
		t.Errorf("cart = %+v", b.ObjectMeta)
	}
}

// TestListRollouts: the typed list (the operator's cache) and the
// unstructured one (the agent's client, whose scheme lacks Rollout) give the
// same usable Rollouts, without SandboxMesh's objects and unusable ones.
func TestListRollouts(t *testing.T) {
	objs := []client.Object{
		&Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cart"},
			Spec: RolloutSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "cart"}}, Template: template("cart", "cart:v1")}},
		&Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "ours", Labels: map[string]string{smv1.LabelManagedBy: smv1.ManagedBy}},
			Spec: RolloutSpec{Template: template("cart", "cart:v2")}},
		&Rollout{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "dangling"},
			Spec: RolloutSpec{WorkloadRef: &RolloutWorkloadRef{Kind: "Deployment", Name: "gone"}}},
	}
	typed := fake.NewClientBuilder().WithScheme(scheme(t, true)).WithObjects(objs...).Build()
	for _, tc := range []struct {
		name string
		list func(context.Context, client.Reader, ...client.ListOption) ([]*Baseline, error)
	}{{"typed", ListRollouts}, {"unstructured", ListRolloutsUnstructured}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.list(context.Background(), typed, client.InNamespace("shop"))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Name != "cart" || got[0].Kind != smv1.KindRollout || got[0].Spec.Template.Spec.Containers[0].Image != "cart:v1" {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

// TestRolloutDeepCopy: a copy shares nothing with its original.
func TestRolloutDeepCopy(t *testing.T) {
	two := int32(2)
	r := &Rollout{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "1"}},
		Spec: RolloutSpec{Replicas: &two, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "x"}}, Template: template("x", "x:v1"),
			WorkloadRef: &RolloutWorkloadRef{Name: "d"}, RevisionHistoryLimit: &two, ProgressDeadlineSeconds: &two}}
	cp := r.DeepCopyObject().(*Rollout)
	cp.Labels["a"] = "2"
	*cp.Spec.Replicas = 5
	cp.Spec.Selector.MatchLabels["app"] = "y"
	cp.Spec.Template.Spec.Containers[0].Image = "x:v2"
	cp.Spec.WorkloadRef.Name = "e"
	*cp.Spec.RevisionHistoryLimit = 7
	if r.Labels["a"] != "1" || *r.Spec.Replicas != 2 || r.Spec.Selector.MatchLabels["app"] != "x" || r.Spec.Template.Spec.Containers[0].Image != "x:v1" ||
		r.Spec.WorkloadRef.Name != "d" || *r.Spec.ProgressDeadlineSeconds != 2 {
		t.Errorf("the copy shares state: %+v", r)
	}
	l := &RolloutList{Items: []Rollout{*r}}
	lc := l.DeepCopyObject().(*RolloutList)
	lc.Items[0].Labels["a"] = "3"
	if l.Items[0].Labels["a"] != "1" {
		t.Error("the list copy shares state")
	}
}
