package manager_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/manager"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// The tests of sandbox resources play the kubelet: no pod runs in envtest,
// so each test sets the status a step pod's kubelet would write (phase and
// the main container's termination message, as `sandboxmesh-runner step`
// leaves it).

const secretURL = "postgres://u:s3cret-pw@db.example:5432/x"

// pgPlugin is a plugin with two create steps (the second reads the
// first's output) and one delete step.
func pgPlugin(ns, name string) *smv1.ResourcePlugin {
	return &smv1.ResourcePlugin{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: smv1.ResourcePluginSpec{
			Runner: smv1.PluginRunner{Image: "example.com/runner:db"},
			Create: []smv1.PluginStep{
				{Name: "provision", Script: "#!/bin/sh\n", Inputs: []smv1.StepInput{{Name: "dbname", ValueFromSandbox: true}},
					Outputs: []smv1.StepOutput{{Name: "host", ValueFromPath: "/tmp/host"}, {Name: "url", ValueFromPath: "/tmp/url"}}},
				{Name: "seed", Script: "#!/bin/sh\n", Inputs: []smv1.StepInput{{Name: "url", ValueFromStep: &smv1.StepOutputRef{Name: "provision", Output: "url"}}}},
			},
			Delete: []smv1.PluginStep{{Name: "drop", Script: "#!/bin/sh\n", Inputs: []smv1.StepInput{{Name: "url", ValueFromStep: &smv1.StepOutputRef{Name: "provision", Output: "url"}}}}},
		},
	}
}

func resourceWorld(t *testing.T, cl client.Client, ns string) {
	t.Helper()
	ctx := context.Background()
	for _, n := range []string{ns, smv1.DefaultPluginNamespace} {
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if err := cl.Create(ctx, pgPlugin(ns, "pg")); err != nil {
		t.Fatal(err)
	}
}

// dbSandbox forks route with DATABASE_URL from the resource db's provision.url.
func dbSandbox(ns, name string) *smv1.Sandbox {
	sb := sandbox(ns, name, "route")
	sb.Spec.Resources = []smv1.Resource{{Name: "db", Plugin: "pg", Params: map[string]string{"dbname": "orders"}}}
	sb.Spec.Forks[0].Customizations.Env = append(sb.Spec.Forks[0].Customizations.Env, smv1.EnvCustomization{Name: "DATABASE_URL",
		ValueFrom: &smv1.EnvValueFrom{Resource: &smv1.EnvValueFromResource{Name: "db", OutputKey: "provision.url"}}})
	return sb
}

// stepPods lists the step pods of a sandbox.
func stepPods(t *testing.T, cl client.Client, sb *smv1.Sandbox) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	if err := cl.List(context.Background(), &pods, client.InNamespace(smv1.DefaultPluginNamespace),
		client.MatchingLabels{naming.LabelSandbox: sb.Name, naming.LabelSandboxNamespace: sb.Namespace}); err != nil {
		t.Fatal(err)
	}
	return pods.Items
}

// waitStepPod waits for the pod of step (the only live one of the sandbox) and returns it.
func waitStepPod(t *testing.T, cl client.Client, sb *smv1.Sandbox, step string, attempt int) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	eventually(t, "step pod "+step, func() (bool, string) {
		var names []string
		for _, p := range stepPods(t, cl, sb) {
			names = append(names, p.Name+"/"+p.Labels[smv1.LabelStep]+"/"+string(p.Status.Phase))
			if p.Labels[smv1.LabelStep] == step && p.DeletionTimestamp.IsZero() && strings.HasSuffix(p.Name, "-"+itoa(attempt)) && (p.Status.Phase == "" || p.Status.Phase == corev1.PodPending) {
				found = &p
			}
		}
		return found != nil, strings.Join(names, ", ")
	})
	return found
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// finishStep plays the kubelet: the step pod's main container terminated
// with exit and the termination message term, and the pod's phase says so.
func finishStep(t *testing.T, cl client.Client, pod *corev1.Pod, exit int32, term smv1.StepTermination) {
	t.Helper()
	phase := corev1.PodSucceeded
	if exit != 0 {
		phase = corev1.PodFailed
	}
	endMain(t, cl, pod, exit, term, phase)
}

// endMain plays the kubelet: the step pod's main container terminated with
// exit and the termination message term; the pod is in phase (Running: the
// kubelet has not torn it down yet, or another container still runs).
func endMain(t *testing.T, cl client.Client, pod *corev1.Pod, exit int32, term smv1.StepTermination, phase corev1.PodPhase) {
	t.Helper()
	term.ExitCode = int(exit)
	msg, err := smv1.EncodeStepTermination(term)
	if err != nil {
		t.Fatal(err)
	}
	now := metav1.Now()
	pod.Status = corev1.PodStatus{Phase: phase, ContainerStatuses: []corev1.ContainerStatus{{Name: smv1.StepContainer, Image: pod.Spec.Containers[0].Image,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: exit, Message: string(msg), StartedAt: now, FinishedAt: now, Reason: "Completed"}}}}}
	if err := cl.Status().Update(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

func noSecretsIn(t *testing.T, cl client.Client, sb *smv1.Sandbox) {
	t.Helper()
	s, _ := get(t, client.ObjectKeyFromObject(sb), &smv1.Sandbox{})
	b, _ := json.Marshal(s.Status)
	if strings.Contains(string(b), "s3cret") {
		t.Fatalf("an output value is in the status: %s", b)
	}
	var evs corev1.EventList
	_ = cl.List(context.Background(), &evs, client.InNamespace(sb.Namespace))
	for _, e := range evs.Items {
		if strings.Contains(e.Message, "s3cret") {
			t.Fatalf("an output value is in an event: %s", e.Message)
		}
	}
}

// TestResourcesBeforeForks: the steps run one pod at a time in order, no
// fork exists until every step succeeded, and the fork reads the output
// through a secretKeyRef on the outputs Secret in its namespace.
func TestResourcesBeforeForks(t *testing.T) {
	ctx := context.Background()
	ns := "res-forks"
	world(t, ns, "route")
	resourceWorld(t, c, ns)
	sb := dbSandbox(ns, "db-first")
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	forkName := naming.ForkName(ns, sb.Name, ns, "route")

	p := waitStepPod(t, c, sb, "provision", 1)
	s := waitCondition(t, key, smv1.ConditionResourcesReady, metav1.ConditionFalse, smv1.ReasonCreating)
	if cnd := condition(s, smv1.ConditionReady); cnd.Reason != smv1.ReasonResourcesCreating {
		t.Errorf("Ready = %+v", cnd)
	}
	if len(s.Status.Resources) != 1 || s.Status.Resources[0].Phase != smv1.ResourceCreating || s.Status.Resources[0].Step != "provision" {
		t.Errorf("resources = %+v", s.Status.Resources)
	}
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{}); ok {
		t.Fatal("fork created before its resources")
	}
	state, ok := get(t, types.NamespacedName{Namespace: smv1.DefaultPluginNamespace, Name: naming.ResourceStateName(ns, sb.Name, string(s.UID), "db")}, &corev1.Secret{})
	if !ok || string(state.Data["param.dbname"]) != "orders" {
		t.Fatalf("state Secret: %v %v", ok, state.Data)
	}
	finishStep(t, c, p, 0, smv1.StepTermination{Outputs: map[string]string{"host": "db.example", "url": secretURL}})

	p = waitStepPod(t, c, sb, "seed", 1)
	if pods := stepPods(t, c, sb); len(pods) != 1 {
		eventually(t, "the provision pod deleted", func() (bool, string) { return len(stepPods(t, c, sb)) == 1, "" })
	}
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{}); ok {
		t.Fatal("fork created before the last step")
	}
	finishStep(t, c, p, 0, smv1.StepTermination{})

	makeAvailable(t, ns, forkName)
	s = waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
	if cnd := condition(s, smv1.ConditionResourcesReady); cnd == nil || cnd.Status != metav1.ConditionTrue || cnd.Reason != smv1.ReasonCreated {
		t.Errorf("ResourcesReady = %+v", cnd)
	}
	secretName := naming.ResourceSecretName(ns, sb.Name)
	if r := s.Status.Resources; len(r) != 1 || r[0].Phase != smv1.ResourceReady || !slices.Equal(r[0].OutputKeys, []string{"provision.host", "provision.url"}) || r[0].SecretName != secretName {
		t.Errorf("resources = %+v", r)
	}
	out, ok := get(t, types.NamespacedName{Namespace: ns, Name: secretName}, &corev1.Secret{})
	if !ok || string(out.Data["db.provision.url"]) != secretURL || string(out.Data["db.provision.host"]) != "db.example" {
		t.Fatalf("outputs Secret: %v %v", ok, out.Data)
	}
	d, _ := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{})
	var env *corev1.EnvVar
	for i, e := range d.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "DATABASE_URL" {
			env = &d.Spec.Template.Spec.Containers[0].Env[i]
		}
	}
	if env == nil || env.Value != "" || env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil ||
		env.ValueFrom.SecretKeyRef.Name != secretName || env.ValueFrom.SecretKeyRef.Key != "db.provision.url" {
		t.Fatalf("DATABASE_URL = %+v", env)
	}
	eventually(t, "no step pod left", func() (bool, string) { return len(stepPods(t, c, sb)) == 0, "" })
	noSecretsIn(t, c, sb)

	// Deletion runs the delete step before the finalizer goes.
	if err := c.Delete(ctx, sb); err != nil {
		t.Fatal(err)
	}
	p = waitStepPod(t, c, sb, "drop", 1)
	var spec smv1.StepSpec
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == smv1.EnvStepSpec {
			_ = json.Unmarshal([]byte(e.Value), &spec)
		}
	}
	if len(spec.Inputs) != 1 || spec.Inputs[0].Key != "out.provision.url" || spec.Inputs[0].Env != "URL" {
		t.Fatalf("drop step spec = %+v", spec)
	}
	s = waitCondition(t, key, smv1.ConditionResourcesReady, metav1.ConditionFalse, "")
	if s.DeletionTimestamp.IsZero() || condition(s, smv1.ConditionReady).Reason != smv1.ReasonDeleting {
		t.Fatalf("deleting sandbox: %+v", s.Status.Conditions)
	}
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: secretName}, &corev1.Secret{}); ok {
		t.Error("outputs Secret still there while the delete steps run")
	}
	finishStep(t, c, p, 0, smv1.StepTermination{})
	eventually(t, "sandbox gone", func() (bool, string) {
		_, ok := get(t, key, &smv1.Sandbox{})
		return !ok, "still there"
	})
	if _, ok := get(t, types.NamespacedName{Namespace: smv1.DefaultPluginNamespace, Name: state.Name}, &corev1.Secret{}); ok {
		t.Error("state Secret left behind")
	}
	eventually(t, "no step pod left", func() (bool, string) { return len(stepPods(t, c, sb)) == 0, "" })
}

// TestResourceCreateFailsAndRetries: a failed step is CreateFailed with its
// exit code and last log lines (Degraded), and runs again after its backoff.
func TestResourceCreateFailsAndRetries(t *testing.T) {
	ctx := context.Background()
	ns := "res-retry"
	world(t, ns, "route")
	resourceWorld(t, c, ns)
	sb := dbSandbox(ns, "db-retry")
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	p := waitStepPod(t, c, sb, "provision", 1)
	finishStep(t, c, p, 3, smv1.StepTermination{LogTail: "connecting\npsql: connection refused\n"})
	s := waitCondition(t, key, smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonCreateFailed)
	msg := condition(s, smv1.ConditionDegraded).Message
	for _, want := range []string{"resource db: step provision failed (exit 3, attempt 1, next try in", "psql: connection refused"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Degraded message %q lacks %q", msg, want)
		}
	}
	if r := s.Status.Resources; len(r) != 1 || r[0].Phase != smv1.ResourceCreateFailed || r[0].Attempt != 1 {
		t.Errorf("resources = %+v", r)
	}
	if cnd := condition(s, smv1.ConditionResourcesReady); cnd.Reason != smv1.ReasonCreateFailed {
		t.Errorf("ResourcesReady = %+v", cnd)
	}
	// The backoff of a first failure is 5 s.
	p = waitStepPod(t, c, sb, "provision", 2)
	finishStep(t, c, p, 0, smv1.StepTermination{Outputs: map[string]string{"host": "h", "url": secretURL}})
	p = waitStepPod(t, c, sb, "seed", 1)
	finishStep(t, c, p, 0, smv1.StepTermination{})
	waitCondition(t, key, smv1.ConditionResourcesReady, metav1.ConditionTrue, smv1.ReasonCreated)
	makeAvailable(t, ns, naming.ForkName(ns, sb.Name, ns, "route"))
	waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
	var evs corev1.EventList
	_ = c.List(ctx, &evs, client.InNamespace(ns))
	_ = c.Delete(ctx, sb)
	p = waitStepPod(t, c, sb, "drop", 1)
	finishStep(t, c, p, 0, smv1.StepTermination{})
	eventually(t, "sandbox gone", func() (bool, string) { _, ok := get(t, key, &smv1.Sandbox{}); return !ok, "" })
}

// TestResourceStepEndsWithItsMainContainer: a step's result is its main
// container's as soon as that terminates (restartPolicy Never), while the
// pod is still Running: success records the outputs and starts the next
// step, a non-zero exit is a failed attempt with its backoff.
func TestResourceStepEndsWithItsMainContainer(t *testing.T) {
	ctx := context.Background()
	ns := "res-main-ends"
	world(t, ns, "route")
	resourceWorld(t, c, ns)
	sb := dbSandbox(ns, "db-main")
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	p := waitStepPod(t, c, sb, "provision", 1)
	endMain(t, c, p, 0, smv1.StepTermination{Outputs: map[string]string{"host": "h", "url": secretURL}}, corev1.PodRunning)
	p = waitStepPod(t, c, sb, "seed", 1)
	state, ok := get(t, types.NamespacedName{Namespace: smv1.DefaultPluginNamespace, Name: naming.ResourceStateName(ns, sb.Name, p.Labels[smv1.LabelSandboxUID], "db")}, &corev1.Secret{})
	if !ok || string(state.Data["done.provision"]) != "1" || string(state.Data["out.provision.url"]) != secretURL {
		t.Fatalf("state Secret after provision: %v %v", ok, state.Data)
	}
	endMain(t, c, p, 2, smv1.StepTermination{LogTail: "seed failed\n"}, corev1.PodRunning)
	s := waitCondition(t, key, smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonCreateFailed)
	if msg := condition(s, smv1.ConditionDegraded).Message; !strings.Contains(msg, "step seed failed (exit 2, attempt 1, next try in") {
		t.Errorf("Degraded message %q", msg)
	}
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: naming.ForkName(ns, sb.Name, ns, "route")}, &appsv1.Deployment{}); ok {
		t.Fatal("fork created although a step failed")
	}
	p = waitStepPod(t, c, sb, "seed", 2)
	endMain(t, c, p, 0, smv1.StepTermination{}, corev1.PodRunning)
	waitCondition(t, key, smv1.ConditionResourcesReady, metav1.ConditionTrue, smv1.ReasonCreated)
	_ = c.Delete(ctx, sb)
	p = waitStepPod(t, c, sb, "drop", 1)
	endMain(t, c, p, 0, smv1.StepTermination{}, corev1.PodRunning)
	eventually(t, "sandbox gone", func() (bool, string) { _, ok := get(t, key, &smv1.Sandbox{}); return !ok, "" })
}

// TestResourceDeleteFails: a failed delete step keeps the finalizer
// (DeleteFailed, Degraded) and is retried.
func TestResourceDeleteFails(t *testing.T) {
	ctx := context.Background()
	ns := "res-delfail"
	world(t, ns, "route")
	resourceWorld(t, c, ns)
	sb := dbSandbox(ns, "db-delfail")
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	finishStep(t, c, waitStepPod(t, c, sb, "provision", 1), 0, smv1.StepTermination{Outputs: map[string]string{"host": "h", "url": secretURL}})
	finishStep(t, c, waitStepPod(t, c, sb, "seed", 1), 0, smv1.StepTermination{})
	waitCondition(t, key, smv1.ConditionResourcesReady, metav1.ConditionTrue, smv1.ReasonCreated)
	if err := c.Delete(ctx, sb); err != nil {
		t.Fatal(err)
	}
	finishStep(t, c, waitStepPod(t, c, sb, "drop", 1), 1, smv1.StepTermination{LogTail: "DROP DATABASE failed"})
	s := waitCondition(t, key, smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonDeleteFailed)
	if msg := condition(s, smv1.ConditionDegraded).Message; !strings.Contains(msg, "DROP DATABASE failed") {
		t.Errorf("Degraded message %q", msg)
	}
	finishStep(t, c, waitStepPod(t, c, sb, "drop", 2), 0, smv1.StepTermination{})
	eventually(t, "sandbox gone", func() (bool, string) { _, ok := get(t, key, &smv1.Sandbox{}); return !ok, "" })
}

// TestPluginMissing: a resource whose plugin does not exist is
// PluginNotFound; creating the plugin starts the steps.
func TestPluginMissing(t *testing.T) {
	ctx := context.Background()
	ns := "res-missing"
	world(t, ns, "route")
	sb := dbSandbox(ns, "db-missing")
	sb.Spec.Resources[0].Plugin = "later"
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	waitCondition(t, key, smv1.ConditionResourcesReady, metav1.ConditionFalse, smv1.ReasonPluginNotFound)
	waitCondition(t, key, smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonPluginNotFound)
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: smv1.DefaultPluginNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	if err := c.Create(ctx, pgPlugin(ns, "later")); err != nil {
		t.Fatal(err)
	}
	waitStepPod(t, c, sb, "provision", 1)
	// A sandbox whose resources were never created is deleted at once
	// once its create pod is gone (here: it did not finish, so drop runs).
	_ = c.Delete(ctx, sb)
	finishStep(t, c, waitStepPod(t, c, sb, "drop", 1), 0, smv1.StepTermination{})
	eventually(t, "sandbox gone", func() (bool, string) { _, ok := get(t, key, &smv1.Sandbox{}); return !ok, "" })
}

// TestResourceOperatorRestart: an operator stopped after it created a step
// pod is replaced by a new one, which finds that pod (no second one) and
// carries on, during create and during delete.
func TestResourceOperatorRestart(t *testing.T) {
	e, err := testenv.Start(testenv.Options{WithoutMeshCRDs: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	start := func() (stop func()) {
		o, err := manager.New(e.Config, manager.Options{Backends: []string{meshadapters.BackendDevmesh}, MetricsAddr: "0", ProbeAddr: "0",
			RunnerImage: testRunnerImage, Logger: slog.New(slog.DiscardHandler), SkipControllerNameValidation: true})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- o.Manager.Start(ctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager: %v", err)
			}
		}
	}
	cl := e.Client
	ctx := context.Background()
	ns := "res-restart"
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	resourceWorld(t, cl, ns)
	sb := dbSandbox(ns, "db-restart")
	sb.Spec.Forks = nil
	sb.Spec.Virtual = []smv1.Virtual{{Name: "x", Workload: smv1.WorkloadRef{Namespace: ns, Name: "x"}}}
	if err := cl.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	stop := start()
	p := waitStepPod(t, cl, sb, "provision", 1)
	stop()
	stop = start()
	time.Sleep(2 * time.Second) // the new operator has reconciled by now
	if pods := stepPods(t, cl, sb); len(pods) != 1 || pods[0].Name != p.Name {
		t.Fatalf("after restart: %d step pods", len(pods))
	}
	finishStep(t, cl, p, 0, smv1.StepTermination{Outputs: map[string]string{"host": "h", "url": secretURL}})
	finishStep(t, cl, waitStepPod(t, cl, sb, "seed", 1), 0, smv1.StepTermination{})
	eventually(t, "resources created", func() (bool, string) {
		var s smv1.Sandbox
		_ = cl.Get(ctx, client.ObjectKeyFromObject(sb), &s)
		return len(s.Status.Resources) == 1 && s.Status.Resources[0].Phase == smv1.ResourceReady, ""
	})
	if err := cl.Delete(ctx, sb); err != nil {
		t.Fatal(err)
	}
	p = waitStepPod(t, cl, sb, "drop", 1)
	stop()
	stop = start()
	defer func() { stop() }()
	time.Sleep(2 * time.Second)
	if pods := stepPods(t, cl, sb); len(pods) != 1 || pods[0].Name != p.Name {
		t.Fatalf("after restart during delete: %d step pods", len(pods))
	}
	finishStep(t, cl, p, 0, smv1.StepTermination{})
	eventually(t, "sandbox gone", func() (bool, string) {
		err := cl.Get(ctx, client.ObjectKeyFromObject(sb), &smv1.Sandbox{})
		return apierrors.IsNotFound(err), ""
	})
}

// TestResourceTTLCleansUp: an expired sandbox goes through the same
// deletion: the delete steps run before it is gone.
func TestResourceTTLCleansUp(t *testing.T) {
	ctx := context.Background()
	ns := "res-ttl"
	world(t, ns, "route")
	resourceWorld(t, c, ns)
	sb := dbSandbox(ns, "db-ttl")
	sb.Spec.TTL = &smv1.TTL{Duration: "10m"}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	finishStep(t, c, waitStepPod(t, c, sb, "provision", 1), 0, smv1.StepTermination{Outputs: map[string]string{"host": "h", "url": secretURL}})
	finishStep(t, c, waitStepPod(t, c, sb, "seed", 1), 0, smv1.StepTermination{})
	waitCondition(t, key, smv1.ConditionResourcesReady, metav1.ConditionTrue, smv1.ReasonCreated)
	clockOff.Store(int64(11 * time.Minute))
	defer clockOff.Store(0)
	touch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"touch":"1"}}}`))
	if err := c.Patch(ctx, sb.DeepCopy(), touch); err != nil {
		t.Fatal(err)
	}
	p := waitStepPod(t, c, sb, "drop", 1)
	if _, ok := get(t, key, &smv1.Sandbox{}); !ok {
		t.Fatal("the expired sandbox went before its delete step ran")
	}
	finishStep(t, c, p, 0, smv1.StepTermination{})
	eventually(t, "expired sandbox deleted", func() (bool, string) { _, ok := get(t, key, &smv1.Sandbox{}); return !ok, "" })
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets, client.MatchingLabels{naming.LabelSandbox: sb.Name, naming.LabelSandboxNamespace: ns}); err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 0 {
		t.Errorf("%d resource Secrets left", len(secrets.Items))
	}
}

// TestResourceOutputsInForkNamespace: a fork in another namespace than its
// Sandbox gets its own copy of the outputs Secret (secretKeyRef reads the
// pod's namespace); deleting the sandbox removes every copy.
func TestResourceOutputsInForkNamespace(t *testing.T) {
	ctx := context.Background()
	sbNs, forkNs := "res-sbns", "res-forkns"
	world(t, forkNs, "route")
	resourceWorld(t, c, sbNs)
	sb := dbSandbox(forkNs, "db-cross")
	sb.Namespace = sbNs
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	finishStep(t, c, waitStepPod(t, c, sb, "provision", 1), 0, smv1.StepTermination{Outputs: map[string]string{"host": "h", "url": secretURL}})
	finishStep(t, c, waitStepPod(t, c, sb, "seed", 1), 0, smv1.StepTermination{})
	forkName := naming.ForkName(sbNs, sb.Name, forkNs, "route")
	makeAvailable(t, forkNs, forkName)
	waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
	secretName := naming.ResourceSecretName(sbNs, sb.Name)
	for _, ns := range []string{sbNs, forkNs} {
		s, ok := get(t, types.NamespacedName{Namespace: ns, Name: secretName}, &corev1.Secret{})
		if !ok || string(s.Data["db.provision.url"]) != secretURL {
			t.Fatalf("outputs Secret in %s: %v %v", ns, ok, s.Data)
		}
		if owned := len(s.OwnerReferences) > 0; owned != (ns == sbNs) {
			t.Errorf("outputs Secret in %s: owner references %v", ns, s.OwnerReferences)
		}
	}
	if err := c.Delete(ctx, sb); err != nil {
		t.Fatal(err)
	}
	finishStep(t, c, waitStepPod(t, c, sb, "drop", 1), 0, smv1.StepTermination{})
	eventually(t, "sandbox gone", func() (bool, string) { _, ok := get(t, key, &smv1.Sandbox{}); return !ok, "" })
	if _, ok := get(t, types.NamespacedName{Namespace: forkNs, Name: secretName}, &corev1.Secret{}); ok {
		t.Error("outputs Secret left in the fork namespace")
	}
}
