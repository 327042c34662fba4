package agent_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	smclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/manager"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// e2eOperator is the real operator (operator/manager) running in-process
// against the test API server; stop kills it (cancels its context and waits
// for the manager to return), as a pod kill would.
type e2eOperator struct {
	*manager.Operator
	stop func()
}

func startOperator(t *testing.T, namespaces ...string) *e2eOperator {
	t.Helper()
	op, err := manager.New(testenvConfig, manager.Options{
		Backends:    []string{meshadapters.BackendDevmesh},
		Namespaces:  namespaces,
		MetricsAddr: "0", ProbeAddr: "0",
		RunnerImage: e2eRunnerImage,
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		// The test kills the operator and builds a new one in the same process.
		SkipControllerNameValidation: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- op.Manager.Start(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("operator: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("operator did not stop within a minute")
			}
		})
	}
	t.Cleanup(stop)
	return &e2eOperator{Operator: op, stop: stop}
}

// startAgentIn runs the real agent with its CRs in namespace.
func startAgentIn(t *testing.T, cp *controlPlane, token, namespace string) func() {
	t.Helper()
	a, err := agent.New(agent.Config{
		ControlPlaneURL: cp.url(), Token: token, Namespace: namespace, Client: kube,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		PollWait: 2 * time.Second, StatusInterval: 100 * time.Millisecond, EventsInterval: 200 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, OperatorVersion: "e2e",
		DisableTunnel: true, // the preview tunnel is TestAgentEndToEnd's subject
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// e2eWorld creates namespace ns with a baseline Deployment and Service app
// (container port 8080 named http, Service port 80).
func e2eWorld(t *testing.T, ns, app string) {
	t.Helper()
	ctx := context.Background()
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	two := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &two,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app, "version": "v1"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: app, Image: "example.com/" + app + ":v1",
					Env:   []corev1.EnvVar{{Name: "MODE", Value: "baseline"}},
					Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}}},
			},
		},
	}
	if err := kube.Create(ctx, d); err != nil {
		t.Fatal(err)
	}
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
	}
	if err := kube.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
}

var e2eRuns atomic.Int32

func envOf(c corev1.Container) map[string]string {
	out := map[string]string{}
	for _, e := range c.Env {
		out[e.Name] = e.Value
	}
	return out
}

// TestOperatorEndToEnd: REST → control plane → agent → Sandbox CR → the real
// operator → fork Deployment and Service and devmesh routes → status → REST,
// with the operator killed right after it created the fork, the agent killed
// while the spec changes, and the control plane restarted before the fork is
// ready; then DELETE over REST removes the CR, the fork and the routes and
// leaves the baseline alone.
func TestOperatorEndToEnd(t *testing.T) {
	ctx := context.Background()
	const (
		app    = "cart"
		sbName = "feat"
	)
	// Fresh namespaces per run (-count=N): envtest cannot delete a namespace.
	run := e2eRuns.Add(1)
	agentNS := fmt.Sprintf("sandboxmesh-e2e-%d", run) // the agent's CRs
	appNS := fmt.Sprintf("e2e-shop-%d", run)          // baseline and fork
	started := time.Now()
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	e2eWorld(t, appNS, app)
	var baseline appsv1.Deployment
	if err := kube.Get(ctx, client.ObjectKey{Namespace: appNS, Name: app}, &baseline); err != nil {
		t.Fatal(err)
	}
	forkName := naming.ForkName(agentNS, sbName, appNS, app)
	forkKey := client.ObjectKey{Namespace: appNS, Name: forkName}
	crKey := client.ObjectKey{Namespace: agentNS, Name: sbName}
	workload := routeapi.WorkloadRef{Namespace: appNS, Kind: "Deployment", Name: app}

	cp := &controlPlane{t: t, st: storetest.Open(t, store.DriverSQLite)}
	cp.start()
	t.Cleanup(func() { cp.stop() })
	adminKey, _, err := api.Bootstrap(ctx, cp.st, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	sdk, _ := smclient.New(cp.url(), adminKey)
	if _, err := sdk.RegisterCluster(ctx, "acme", "e2e"); err != nil {
		t.Fatal(err)
	}
	tok, err := sdk.CreateClusterToken(ctx, "acme", "e2e")
	if err != nil {
		t.Fatal(err)
	}
	// Limited to the test's namespaces so CRs other tests leave behind are not its business.
	op := startOperator(t, agentNS, appNS)
	stopAgent := startAgentIn(t, cp, tok.Token, agentNS)

	spec := func(mode string) *smclient.Sandbox {
		return &smclient.Sandbox{Name: sbName, Spec: v1alpha1.SandboxSpec{Cluster: "e2e",
			Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: appNS, Name: app},
				Customizations: &v1alpha1.Customizations{
					Images: []v1alpha1.ImageCustomization{{Image: "example.com/" + app + ":v2"}},
					Env:    []v1alpha1.EnvCustomization{{Name: "MODE", Value: &mode}}}}},
			DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{
				{Name: "web", Target: "http://" + app + "." + appNS + ".deploy:80"}}}}}
	}
	notReady := func(what string) {
		t.Helper()
		got, err := sdk.GetSandbox(ctx, "acme", sbName)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got.Status.Ready {
			t.Fatalf("%s: ready over REST before the fork is available: %+v", what, got.Status)
		}
	}

	// 1. PUT over REST → CR → the operator creates the fork.
	sb, err := sdk.ApplySandbox(ctx, "acme", spec("fork"))
	if err != nil {
		t.Fatal(err)
	}
	key := sb.RoutingKey
	if key == "" {
		t.Fatal("the control plane generated no routing key")
	}
	eventually(t, "fork Deployment created by the operator", func() error {
		return kube.Get(ctx, forkKey, &appsv1.Deployment{})
	})

	// 2a. Kill the operator right after it created the fork, before it is ready.
	op.stop()
	var cr v1alpha1.Sandbox
	if err := kube.Get(ctx, crKey, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Annotations[v1alpha1.AnnotationRoutingKey] != key || cr.Labels[agent.LabelManagedBy] != agent.FieldManager {
		t.Fatalf("CR metadata: %+v", cr.ObjectMeta)
	}
	if _, ok := op.RouteServer.Table().Lookup(workload, key, 8080); ok {
		t.Fatal("route published before the fork was ready")
	}
	notReady("operator killed")

	// 2b. Kill the agent; change the spec over REST while it is down.
	stopAgent()
	sb2, err := sdk.ApplySandbox(ctx, "acme", spec("fork-v2"))
	if err != nil {
		t.Fatal(err)
	}
	if sb2.RoutingKey != key || sb2.Version <= sb.Version {
		t.Fatalf("update: key %q (was %q) version %d (was %d)", sb2.RoutingKey, key, sb2.Version, sb.Version)
	}
	notReady("agent down")

	// 2c. A new operator and a new agent: the new spec reaches the CR and the fork.
	op = startOperator(t, agentNS, appNS)
	stopAgent = startAgentIn(t, cp, tok.Token, agentNS)
	var fork appsv1.Deployment
	eventually(t, "fork updated to the spec applied while the agent was down", func() error {
		if err := kube.Get(ctx, forkKey, &fork); err != nil {
			return err
		}
		if m := envOf(fork.Spec.Template.Spec.Containers[0])["MODE"]; m != "fork-v2" {
			return fmt.Errorf("MODE=%q", m)
		}
		return nil
	})
	notReady("fork not available yet")

	// 2d. Restart the control plane, then play the Deployment controller
	// (none runs in envtest) while it is down: readiness still reaches REST.
	cp.stop()
	eventually(t, "fork Deployment available", func() error {
		var d appsv1.Deployment
		if err := kube.Get(ctx, forkKey, &d); err != nil {
			return err
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		return kube.Status().Update(ctx, &d)
	})
	cp.start()

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	ready, err := sdk.WaitForReady(wctx, "acme", sbName, &smclient.WaitOptions{Interval: 100 * time.Millisecond})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if ready.RoutingKey != key || ready.Status.Reason != v1alpha1.ReasonAvailable || ready.Version != sb2.Version {
		t.Fatalf("ready over REST: key %q (want %q) version %d (want %d) status %+v", ready.RoutingKey, key, ready.Version, sb2.Version, ready.Status)
	}
	if len(ready.Endpoints) != 1 {
		t.Fatalf("endpoints: %+v", ready.Endpoints)
	}
	ep := ready.Endpoints[0]
	if ep.Name != "web" || !strings.HasPrefix(ep.URL, "http://") || !strings.Contains(ep.URL, sbName) ||
		ep.Host != forkName+"."+appNS+".svc" || ep.Port != 80 || ep.Protocol != "http" {
		t.Fatalf("endpoint: %+v", ep)
	}
	if len(ready.Status.Forks) != 1 || !ready.Status.Forks[0].Ready || ready.Status.Forks[0].Deployment != forkName {
		t.Fatalf("fork status over REST: %+v", ready.Status.Forks)
	}
	// The CR's conditions and the events the operator recorded reach the API.
	eventually(t, "the operator's conditions and events over REST", func() error {
		got, err := sdk.GetSandbox(ctx, "acme", sbName)
		if err != nil {
			return err
		}
		ready := false
		for _, c := range got.Status.Conditions {
			ready = ready || (c.Type == v1alpha1.ConditionReady && c.Status == "True" && c.LastTransitionTime != "")
		}
		created := false
		for _, e := range got.Status.Events {
			created = created || (e.Reason == "ForkCreated" && e.ReportingController == "sandboxmesh-operator" && e.Count >= 1 && e.LastTimestamp != "")
		}
		if !ready || !created {
			return fmt.Errorf("conditions %+v events %+v", got.Status.Conditions, got.Status.Events)
		}
		return nil
	})
	// The operator used the control plane's key: on the CR, in the fork, in the routes.
	if err := kube.Get(ctx, crKey, &cr); err != nil {
		t.Fatal(err)
	}
	if cr.Status.RoutingKey != key {
		t.Fatalf("CR status routing key %q, want %q", cr.Status.RoutingKey, key)
	}
	if err := kube.Get(ctx, forkKey, &fork); err != nil {
		t.Fatal(err)
	}
	ctr := fork.Spec.Template.Spec.Containers[0]
	env := envOf(ctr)
	if env[naming.EnvRoutingKey] != key || env[naming.EnvSandboxName] != sbName || env["MODE"] != "fork-v2" || ctr.Image != "example.com/"+app+":v2" {
		t.Fatalf("fork container: image %s env %v", ctr.Image, env)
	}
	var forkSvc corev1.Service
	if err := kube.Get(ctx, forkKey, &forkSvc); err != nil {
		t.Fatalf("fork Service: %v", err)
	}
	eventually(t, "devmesh route for the control plane's key", func() error {
		tgt, ok := op.RouteServer.Table().Lookup(workload, key, 8080)
		if !ok || !strings.HasPrefix(tgt.Addr, forkName+"."+appNS+".svc") {
			return fmt.Errorf("route %+v %v", tgt, ok)
		}
		return nil
	})

	// 3. DELETE over REST → CR gone → fork and route gone; baseline untouched.
	if err := sdk.DeleteSandbox(ctx, "acme", sbName); err != nil {
		t.Fatal(err)
	}
	if _, err := sdk.GetSandbox(ctx, "acme", sbName); !errors.Is(err, smclient.ErrNotFound) {
		t.Fatalf("GET after DELETE: %v", err)
	}
	eventually(t, "CR deleted (operator finalizer done)", func() error {
		err := kube.Get(ctx, crKey, &v1alpha1.Sandbox{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})
	eventually(t, "fork Deployment and Service deleted", func() error {
		for _, o := range []client.Object{&appsv1.Deployment{}, &corev1.Service{}} {
			if err := kube.Get(ctx, forkKey, o); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%T: %v", o, err)
			}
		}
		return nil
	})
	if tgt, ok := op.RouteServer.Table().Lookup(workload, key, 8080); ok {
		t.Fatalf("route left behind: %+v", tgt)
	}
	var base appsv1.Deployment
	if err := kube.Get(ctx, client.ObjectKey{Namespace: appNS, Name: app}, &base); err != nil {
		t.Fatalf("baseline Deployment: %v", err)
	}
	if !base.DeletionTimestamp.IsZero() || base.Generation != baseline.Generation || base.Spec.Template.Spec.Containers[0].Image != "example.com/"+app+":v1" ||
		envOf(base.Spec.Template.Spec.Containers[0])["MODE"] != "baseline" {
		t.Fatalf("baseline Deployment changed: generation %d→%d %+v", baseline.Generation, base.Generation, base.Spec.Template.Spec.Containers[0])
	}
	var baseSvc corev1.Service
	if err := kube.Get(ctx, client.ObjectKey{Namespace: appNS, Name: app}, &baseSvc); err != nil || !baseSvc.DeletionTimestamp.IsZero() || baseSvc.Spec.Selector["app"] != app {
		t.Fatalf("baseline Service: %v %+v", err, baseSvc.Spec)
	}
	stopAgent()
	op.stop()
	t.Logf("REST → agent → operator → ready with restarts and delete in %s", time.Since(started).Round(time.Millisecond))
}
