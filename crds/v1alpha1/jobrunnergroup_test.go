package v1alpha1_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func validJobRunnerGroup(name string) *smv1.JobRunnerGroup {
	return &smv1.JobRunnerGroup{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: smv1.JobRunnerGroupSpec{
			Cluster:    "dev",
			Namespace:  "jobs",
			Image:      "example.com/e2e:v1",
			JobTimeout: "1h30m",
			PodTemplate: &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "suite",
				Env: []corev1.EnvVar{{Name: "A", Value: "b"}}}}}},
			Scaling:      &smv1.JobRunnerGroupScaling{Manual: &smv1.ManualScaling{DesiredPods: ptr(int32(2))}},
			Labels:       map[string]string{"team": "qa"},
			ControlPlane: smv1.RunnerControlPlane{URL: "https://cp.example.com/base", Org: "acme", TokenSecretName: smv1.RunnerObjectName(name)},
		},
	}
}

// TestJobRunnerGroupValidation: the schema refuses what the operator cannot
// use, with the field path, and keeps the pod template as written.
func TestJobRunnerGroupValidation(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		mutate  func(*smv1.JobRunnerGroup)
		wantErr []string
	}{
		{name: "valid", mutate: func(*smv1.JobRunnerGroup) {}},
		{name: "valid minimal", mutate: func(j *smv1.JobRunnerGroup) {
			j.Spec = smv1.JobRunnerGroupSpec{Image: "x", ControlPlane: j.Spec.ControlPlane}
		}},
		{name: "name too long", mutate: func(j *smv1.JobRunnerGroup) { j.Name = "a234567890123456789012345678901" },
			wantErr: []string{"metadata.name must be at most 30 characters"}},
		{name: "bad namespace", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.Namespace = "Jobs_NS" },
			wantErr: []string{"spec.namespace"}},
		{name: "bad job timeout", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.JobTimeout = "30 minutes" },
			wantErr: []string{"spec.jobTimeout"}},
		// Everything time.ParseDuration reads (the control plane parses it so).
		{name: "job timeout with a leading dot", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.JobTimeout = ".5h" }},
		{name: "job timeout in microseconds", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.JobTimeout = "1h2m3s4ms5µs6ns" }},
		{name: "job timeout without unit", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.JobTimeout = "30" },
			wantErr: []string{"spec.jobTimeout"}},
		{name: "too many pods", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.Scaling.Manual.DesiredPods = ptr(int32(101)) },
			wantErr: []string{"spec.scaling.manual.desiredPods"}},
		{name: "negative pods", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.Scaling.Manual.DesiredPods = ptr(int32(-1)) },
			wantErr: []string{"spec.scaling.manual.desiredPods"}},
		{name: "control plane url not http", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.ControlPlane.URL = "ftp://cp" },
			wantErr: []string{"spec.controlPlane.url"}},
		{name: "no org", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.ControlPlane.Org = "" },
			wantErr: []string{"spec.controlPlane.org"}},
		{name: "bad secret name", mutate: func(j *smv1.JobRunnerGroup) { j.Spec.ControlPlane.TokenSecretName = "Token" },
			wantErr: []string{"spec.controlPlane.tokenSecretName"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j := validJobRunnerGroup("jrg-" + strconv.Itoa(i))
			tc.mutate(j)
			err := env.Client.Create(ctx, j)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("valid group rejected: %v", err)
				}
				t.Cleanup(func() { _ = env.Client.Delete(ctx, j) })
				return
			}
			if err == nil {
				_ = env.Client.Delete(ctx, j)
				t.Fatalf("invalid group accepted, want an error containing %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err.Error(), want)
				}
			}
		})
	}
}

// TestJobRunnerGroupDefaultsAndImmutability: spec.namespace defaults to
// DefaultJobNamespace and cannot change (the Deployment and Secret would be
// left behind in the old one); the pod template round-trips unpruned.
func TestJobRunnerGroupDefaultsAndImmutability(t *testing.T) {
	ctx := context.Background()
	j := validJobRunnerGroup("jrg-defaults")
	j.Spec.Namespace = ""
	if err := env.Client.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, j) })
	if j.Spec.Namespace != smv1.DefaultJobNamespace {
		t.Fatalf("spec.namespace = %q, want the default %s", j.Spec.Namespace, smv1.DefaultJobNamespace)
	}
	if got := j.Spec.PodTemplate.Spec.Containers[0].Env; len(got) != 1 || got[0].Value != "b" {
		t.Fatalf("pod template pruned: %+v", j.Spec.PodTemplate)
	}
	j.Spec.Namespace = "elsewhere"
	err := env.Client.Update(ctx, j)
	if err == nil || !strings.Contains(err.Error(), "namespace is immutable") {
		t.Fatalf("namespace change: %v, want namespace is immutable", err)
	}
}

// TestJobRunnerGroupPrinterColumns checks what `kubectl get jrg` shows.
func TestJobRunnerGroupPrinterColumns(t *testing.T) {
	ctx := context.Background()
	j := validJobRunnerGroup("jrg-columns")
	if err := env.Client.Create(ctx, j); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(ctx, j) })
	j.Status.Pods = smv1.RunnerPods{Ready: 2, NotReady: 1}
	j.Status.Conditions = []metav1.Condition{{Type: smv1.ConditionReady, Status: metav1.ConditionFalse, Reason: smv1.ReasonPodsNotReady, LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(ctx, j); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/apis/sandboxmesh.dev/v1alpha1/namespaces/default/jobrunnergroups").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatalf("decode table %s: %v", raw, err)
	}
	var names []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			names = append(names, c.Name)
		}
	}
	if got, want := strings.Join(names, ","), "Name,Ready,Pod Namespace,Pods Ready,Not Ready,Age"; got != want {
		t.Fatalf("columns = %s, want %s", got, want)
	}
	for _, row := range table.Rows {
		if row.Cells[0] == "jrg-columns" {
			if row.Cells[1] != "False" || row.Cells[2] != "jobs" || row.Cells[3] != float64(2) || row.Cells[4] != float64(1) {
				t.Errorf("row = %v", row.Cells)
			}
			return
		}
	}
	t.Fatalf("group not in table: %+v", table.Rows)
}
