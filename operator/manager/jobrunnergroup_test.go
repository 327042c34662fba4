package manager_test

import (
	"context"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

const testRunnerImage = "registry.example.com/sandboxmesh-runner:test"

// TestJobRunnerGroupInOperator: the assembled operator runs the
// JobRunnerGroup controller with its --runner-image, a change of the runner
// Deployment's status (in another namespace, no owner reference) reaches the
// group through its labels, and deleting the group deletes the Deployment.
func TestJobRunnerGroupInOperator(t *testing.T) {
	ctx := context.Background()
	ns, jobs := "jrg-op", "jrg-op-jobs"
	for _, n := range []string{ns, jobs} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	j := &smv1.JobRunnerGroup{ObjectMeta: metav1.ObjectMeta{Name: "suite", Namespace: ns}, Spec: smv1.JobRunnerGroupSpec{
		Namespace: jobs, Image: "example.com/suite:v1",
		ControlPlane: smv1.RunnerControlPlane{URL: "https://cp.example.com", Org: "acme", TokenSecretName: smv1.RunnerObjectName("suite")},
	}}
	if err := c.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKey{Namespace: jobs, Name: smv1.RunnerObjectName("suite")}
	var d appsv1.Deployment
	eventually(t, "the runner Deployment", func() (bool, string) {
		err := c.Get(ctx, key, &d)
		return err == nil, fmt.Sprint(err)
	})
	if got := d.Spec.Template.Spec.InitContainers[0].Image; got != testRunnerImage {
		t.Fatalf("init container image = %s, want the operator's --runner-image %s", got, testRunnerImage)
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
	if err := c.Status().Update(ctx, &d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Ready with one ready pod", func() (bool, string) {
		var got smv1.JobRunnerGroup
		if err := c.Get(ctx, client.ObjectKeyFromObject(j), &got); err != nil {
			return false, err.Error()
		}
		return meta.IsStatusConditionTrue(got.Status.Conditions, smv1.ConditionReady) && got.Status.Pods.Ready == 1, fmt.Sprintf("%+v", got.Status)
	})
	if err := c.Delete(ctx, j); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the group and its Deployment gone", func() (bool, string) {
		errG := c.Get(ctx, client.ObjectKeyFromObject(j), &smv1.JobRunnerGroup{})
		var dd appsv1.Deployment
		errD := c.Get(ctx, key, &dd)
		gone := apierrors.IsNotFound(errG) && (apierrors.IsNotFound(errD) || !dd.DeletionTimestamp.IsZero())
		return gone, fmt.Sprintf("group: %v, Deployment: %v", errG, errD)
	})
}
