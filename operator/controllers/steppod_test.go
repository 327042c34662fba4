package controllers_test

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/operator/controllers"
)

func stepFixture(overlay string) controllers.StepPodInput {
	rp := &smv1.ResourcePlugin{
		ObjectMeta: metav1.ObjectMeta{Name: "postgres-schema", Namespace: "sandboxes"},
		Spec: smv1.ResourcePluginSpec{
			Runner: smv1.PluginRunner{Image: "sandboxmesh.dev/sandboxmesh-runner:db", Namespace: smv1.DefaultPluginNamespace, PodTemplateOverlay: overlay},
			Create: []smv1.PluginStep{
				{Name: "provision", Script: "#!/bin/sh\nset -e\necho db > /tmp/out/host\n", Inputs: []smv1.StepInput{
					{Name: "seed-sql", ValueFromSandbox: true, As: &smv1.InputAs{Path: "/tmp/seed.sql"}},
					{Name: "db-name", ValueFromSandbox: true},
				}, Outputs: []smv1.StepOutput{{Name: "host", ValueFromPath: "/tmp/out/host"}, {Name: "url", ValueFromPath: "/tmp/out/url"}}},
				{Name: "seed", Script: "#!/bin/sh\n", Inputs: []smv1.StepInput{
					{Name: "url", ValueFromStep: &smv1.StepOutputRef{Name: "provision", Output: "url"}, As: &smv1.InputAs{Env: "DATABASE_URL", Path: "/tmp/url"}},
				}},
			},
		},
	}
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "feature-x", Namespace: "sandboxes", UID: "0b6f3c1e-1111-2222-3333-444455556666"}}
	return controllers.StepPodInput{Sandbox: sb, RoutingKey: "k3y0000000000001", Resource: "db", Plugin: rp, Step: &rp.Spec.Create[0],
		Attempt: 1, StateSecret: "sm-rs-feature-x-db-12345678", RunnerImage: runnerImage}
}

func renderPod(t *testing.T, p *corev1.Pod) []byte {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "status")
	delete(m["metadata"].(map[string]any), "creationTimestamp")
	y, err := yaml.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return y
}

// TestStepPodGolden pins the step pod of a resource plugin step; review a
// diff of testdata/golden/step-*.yaml like code.
func TestStepPodGolden(t *testing.T) {
	inputs := stepFixture("")
	inputs.Step = &inputs.Plugin.Spec.Create[1]
	inputs.Attempt = 3
	for _, tc := range []struct {
		golden string
		in     controllers.StepPodInput
	}{
		{"step-default.yaml", stepFixture("")},
		{"step-overlay.yaml", stepFixture(`
metadata: {labels: {team: db}, annotations: {note: x}}
spec:
  serviceAccountName: plugins
  activeDeadlineSeconds: 120
  containers:
  - name: main
    args: [ignored]
    envFrom: [{secretRef: {name: postgres-schema-admin}}]
    env: [{name: SANDBOXMESH_RESOURCE_NAME, value: overridden}, {name: PGCONNECT_TIMEOUT, value: "5"}]
    resources: {limits: {memory: 128Mi}}
  - name: proxy
    image: example.com/proxy:1
  volumes: [{name: ca, configMap: {name: ca}}]
`)},
		{"step-inputs.yaml", inputs},
		{"step-runner-path.yaml", runnerPathFixture()},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			p, err := controllers.StepPod(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tc.golden, renderPod(t, p))
		})
	}
}

func TestStepPodInvariants(t *testing.T) {
	in := stepFixture("spec: {restartPolicy: Always, containers: [{name: main, command: [/bin/evil]}]}")
	p, err := controllers.StepPod(in)
	if err != nil {
		t.Fatal(err)
	}
	main := p.Spec.Containers[0]
	if p.Spec.RestartPolicy != corev1.RestartPolicyNever || strings.Join(main.Command, " ") != "/sandboxmesh/bin/sandboxmesh-runner step" {
		t.Fatalf("invariants lost: %s %v", p.Spec.RestartPolicy, main.Command)
	}
	var spec smv1.StepSpec
	for _, e := range main.Env {
		if e.Name == smv1.EnvStepSpec {
			if err := json.Unmarshal([]byte(e.Value), &spec); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := []smv1.StepSpecInput{{Key: "param.seed-sql", Path: "/tmp/seed.sql"}, {Key: "param.db-name", Env: "DB_NAME"}}
	if len(spec.Inputs) != 2 || spec.Inputs[0] != want[0] || spec.Inputs[1] != want[1] || len(spec.Outputs) != 2 || spec.Script != in.Step.Script {
		t.Fatalf("step spec = %+v", spec)
	}
	if p.Name != "sm-step-"+p.Name[8:20]+"-1" || p.Namespace != smv1.DefaultPluginNamespace {
		t.Fatalf("name %s/%s", p.Namespace, p.Name)
	}
	again, _ := controllers.StepPod(in)
	if again.Name != p.Name {
		t.Fatal("step pod name not deterministic")
	}
	in.Attempt = 2
	if second, _ := controllers.StepPod(in); second.Name == p.Name {
		t.Fatal("a second attempt has the same pod name")
	}
}

// runnerPathFixture is a step of a plugin whose image ships the runner, on
// an operator without a runner image.
func runnerPathFixture() controllers.StepPodInput {
	in := stepFixture("spec: {initContainers: [{name: warm, image: example.com/warm:1}]}")
	in.Plugin.Spec.Runner.RunnerPath = "/usr/local/bin/sandboxmesh-runner"
	in.RunnerImage = ""
	return in
}

// TestStepPodRunnerPath: a plugin whose image ships the runner gets step
// pods that run it from there: no install init container, no runner
// volume; the overlay's own init containers and the inputs stay.
func TestStepPodRunnerPath(t *testing.T) {
	p, err := controllers.StepPod(runnerPathFixture())
	if err != nil {
		t.Fatal(err)
	}
	main := p.Spec.Containers[0]
	if strings.Join(main.Command, " ") != "/usr/local/bin/sandboxmesh-runner step" {
		t.Errorf("command %v", main.Command)
	}
	if len(p.Spec.InitContainers) != 1 || p.Spec.InitContainers[0].Name != "warm" {
		t.Errorf("init containers %+v", p.Spec.InitContainers)
	}
	for _, v := range p.Spec.Volumes {
		if v.Name == smv1.RunnerVolume {
			t.Errorf("runner volume %+v", v)
		}
	}
	var mounts []string
	for _, m := range main.VolumeMounts {
		mounts = append(mounts, m.MountPath)
	}
	if strings.Join(mounts, ",") != smv1.StepInputsDir {
		t.Errorf("mounts %v", mounts)
	}
	// Without runnerPath the operator's runner image is required.
	in := runnerPathFixture()
	in.Plugin.Spec.Runner.RunnerPath = ""
	if _, err := controllers.StepPod(in); err == nil || !strings.Contains(err.Error(), "--runner-image") {
		t.Errorf("no runner image: %v", err)
	}
}

// TestStepPodRefusesBadOverlays: an overlay that cannot make a step pod is
// an error naming the field, never a pod the API server refuses later.
func TestStepPodRefusesBadOverlays(t *testing.T) {
	for _, tc := range []struct{ overlay, want string }{
		{"spec: [", "spec.runner.podTemplateOverlay: not YAML"},
		{"spec: {containerz: []}", "spec.runner.podTemplateOverlay: not a pod template"},
		{"spec: {containers: [{name: other, image: x}], $setElementOrder/containers: [{name: other}, {name: main}]}", "not a pod template: json: unknown field \"$setElementOrder/containers\""},
		{"spec: {initContainers: [{name: sandboxmesh-runner-install, image: x}]}", "the name sandboxmesh-runner-install is reserved"},
		{"spec: {volumes: [{name: sandboxmesh-inputs, emptyDir: {}}]}", "the name sandboxmesh-inputs is reserved"},
		{"spec: {volumes: [{name: sandboxmesh-runner-bin, emptyDir: {}}]}", "the name sandboxmesh-runner-bin is reserved"},
		{"spec: {containers: [{name: main, image: ''}]}", "spec.containers[0].image: empty"},
	} {
		_, err := controllers.StepPod(stepFixture(tc.overlay))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("overlay %q: %v, want %q", tc.overlay, err, tc.want)
		}
	}
	in := stepFixture("")
	in.RunnerImage = ""
	if _, err := controllers.StepPod(in); err == nil {
		t.Error("no runner image accepted")
	}
}

// FuzzStepPod: any overlay builds a pod with the invariants or fails cleanly.
func FuzzStepPod(f *testing.F) {
	f.Add("spec: {containers: [{name: main, envFrom: [{secretRef: {name: admin}}]}]}")
	f.Add("spec: {containers: [{name: main, env: {name: x}}]}")
	f.Add("")
	f.Fuzz(func(t *testing.T, overlay string) {
		p, err := controllers.StepPod(stepFixture(overlay))
		if err != nil {
			return
		}
		if p.Spec.Containers[0].Name != smv1.StepContainer || p.Spec.RestartPolicy != corev1.RestartPolicyNever || p.Spec.InitContainers[0].Name != smv1.RunnerContainerInstall {
			t.Fatalf("invariants broken for %q", overlay)
		}
	})
}
