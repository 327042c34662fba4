package manager_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/local"
	"github.com/sandboxmesh/sandboxmesh/operator/manager"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

var (
	env      *testenv.Env
	op       *manager.Operator
	clockOff atomic.Int64 // nanoseconds added to the operator's clock
	c        client.Client
	// lookupAddr is where the operator serves the routes lookup API (127.0.0.1).
	lookupAddr string
	// gatewayAddr is where the local-workload gateway accepts machines (127.0.0.1); localRouter is the
	// operator's cluster end of local workloads.
	gatewayAddr string
	localRouter *local.Router
)

func now() time.Time { return time.Now().Add(time.Duration(clockOff.Load())) }

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) int {
		env, c = e, e.Client
		var err error
		if lookupAddr, err = freeAddr(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		if localRouter, gatewayAddr, err = startLocalGateway(e); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		op, err = manager.New(e.Config, manager.Options{
			Local:       localRouter,
			Backends:    []string{meshadapters.BackendDevmesh, meshadapters.BackendIstio},
			MetricsAddr: "0", ProbeAddr: "0",
			RouteLookupAddr: lookupAddr, RoutesURL: "http://" + lookupAddr,
			RunnerImage: testRunnerImage,
			Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
			Now:         now,
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- op.Manager.Start(ctx) }()
		code := m.Run()
		cancel()
		if err := <-done; err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
		return code
	})
}

func eventually(t *testing.T, what string, f func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := f()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s: %s", what, last)
}

// world creates a namespace with a baseline Deployment and Service.
func world(t *testing.T, ns string, apps ...string) {
	t.Helper()
	ctx := context.Background()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for _, app := range apps {
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
		if err := c.Create(ctx, d); err != nil {
			t.Fatal(err)
		}
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
		}
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
}

func sandbox(ns, name string, forks ...string) *smv1.Sandbox {
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: smv1.SandboxSpec{Labels: map[string]string{"feature": "checkout"}}}
	for _, f := range forks {
		sb.Spec.Forks = append(sb.Spec.Forks, smv1.Fork{ForkOf: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: f},
			Customizations: &smv1.Customizations{Images: []smv1.ImageCustomization{{Image: "example.com/" + f + ":v2"}},
				Env: []smv1.EnvCustomization{{Name: "MODE", Value: ptr("fork")}}}})
	}
	return sb
}

func ptr[T any](v T) *T { return &v }

func get[T client.Object](t *testing.T, key types.NamespacedName, o T) (T, bool) {
	t.Helper()
	err := c.Get(context.Background(), key, o)
	if apierrors.IsNotFound(err) {
		return o, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return o, true
}

// makeAvailable plays the Deployment controller, which does not run in envtest.
func makeAvailable(t *testing.T, ns, name string) {
	t.Helper()
	eventually(t, "fork Deployment "+name, func() (bool, string) {
		d, ok := get(t, types.NamespacedName{Namespace: ns, Name: name}, &appsv1.Deployment{})
		if !ok {
			return false, "not created"
		}
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1, AvailableReplicas: 1}
		if err := c.Status().Update(context.Background(), d); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

func condition(sb *smv1.Sandbox, typ string) *metav1.Condition {
	return meta.FindStatusCondition(sb.Status.Conditions, typ)
}

func waitCondition(t *testing.T, key types.NamespacedName, typ string, status metav1.ConditionStatus, reason string) *smv1.Sandbox {
	t.Helper()
	var sb *smv1.Sandbox
	eventually(t, fmt.Sprintf("%s %s=%s/%s", key, typ, status, reason), func() (bool, string) {
		s, ok := get(t, key, &smv1.Sandbox{})
		if !ok {
			return false, "sandbox missing"
		}
		sb = s
		cnd := condition(s, typ)
		if cnd == nil {
			return false, "no condition"
		}
		return cnd.Status == status && (reason == "" || cnd.Reason == reason) && s.Status.ObservedGeneration == s.Generation, fmt.Sprintf("%+v", s.Status.Conditions)
	})
	return sb
}

func routeTarget(ns, workload, key string) (routeapi.Target, bool) {
	return op.RouteServer.Table().Lookup(routeapi.WorkloadRef{Namespace: ns, Kind: "Deployment", Name: workload}, key, 8080)
}

func TestSandboxLifecycle(t *testing.T) {
	ctx := context.Background()
	ns := "lifecycle"
	world(t, ns, "route", "driver")
	sb := sandbox(ns, "feature-x", "route")
	sb.Spec.DefaultRouteGroup = &smv1.DefaultRouteGroup{Endpoints: []smv1.Endpoint{
		{Name: "route", Target: "http://route." + ns + ".deploy:80"}, {Name: "driver", Target: "http://driver." + ns + ".svc:80"}}}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	forkName := naming.ForkName(ns, "feature-x", ns, "route")

	s := waitCondition(t, key, smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonForksNotReady)
	rk := s.Status.RoutingKey
	if rk == "" || s.Annotations[smv1.AnnotationRoutingKey] != rk {
		t.Fatalf("routing key: status %q annotation %q", rk, s.Annotations[smv1.AnnotationRoutingKey])
	}
	if len(s.Finalizers) != 1 {
		t.Fatalf("finalizers = %v", s.Finalizers)
	}
	// The fork: customizations applied, never selectable by the baseline Service.
	d, _ := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{})
	ctr := d.Spec.Template.Spec.Containers[0]
	if ctr.Image != "example.com/route:v2" || *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Errorf("fork spec: image %s replicas %d strategy %s", ctr.Image, *d.Spec.Replicas, d.Spec.Strategy.Type)
	}
	if d.Spec.Template.Labels["app"] != "" {
		t.Errorf("fork pods carry the baseline selector label: %v", d.Spec.Template.Labels)
	}
	envs := map[string]string{}
	for _, e := range ctr.Env {
		envs[e.Name] = e.Value
	}
	if envs["MODE"] != "fork" || envs[naming.EnvRoutingKey] != rk || envs[naming.EnvSandboxName] != "feature-x" {
		t.Errorf("fork env = %v", envs)
	}
	if len(d.OwnerReferences) != 1 || d.OwnerReferences[0].Name != "feature-x" {
		t.Errorf("owner refs = %v", d.OwnerReferences)
	}
	svc, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &corev1.Service{})
	if !ok || svc.Spec.Ports[0].Port != 80 || svc.Spec.Selector[naming.LabelFork] != forkName {
		t.Fatalf("fork Service = %+v", svc.Spec)
	}
	// No route before the fork is ready.
	if _, ok := routeTarget(ns, "route", rk); ok {
		t.Fatal("route published before the fork was ready")
	}
	makeAvailable(t, ns, forkName)
	s = waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
	tgt, ok := routeTarget(ns, "route", rk)
	if !ok || !strings.HasPrefix(tgt.Addr, forkName+"."+ns+".svc") {
		t.Fatalf("devmesh route = %+v %v", tgt, ok)
	}
	vs, ok := get(t, types.NamespacedName{Namespace: ns, Name: "sandboxmesh-route"}, &istionetworkingv1.VirtualService{})
	if !ok {
		var list istionetworkingv1.VirtualServiceList
		_ = c.List(ctx, &list, client.InNamespace(ns))
		if len(list.Items) != 1 {
			t.Fatalf("want one VirtualService, have %d", len(list.Items))
		}
		vs = list.Items[0]
	}
	if !strings.Contains(fmt.Sprint(vs.Spec.Http), rk) {
		t.Errorf("VirtualService has no route for %s", rk)
	}
	if len(s.Status.Endpoints) != 2 || s.Status.Endpoints[0].URL != "http://"+forkName+"."+ns+".svc:80" || s.Status.Endpoints[1].URL != "http://driver."+ns+".svc:80" {
		t.Errorf("endpoints = %+v", s.Status.Endpoints)
	}
	if len(s.Status.Forks) != 1 || !s.Status.Forks[0].Ready || s.Status.Forks[0].Service != forkName {
		t.Errorf("fork status = %+v", s.Status.Forks)
	}
	// Events on transitions only: the fork created, then Ready; no noise for
	// "not degraded" or the first "not ready yet".
	eventually(t, "events ForkCreated and Available", func() (bool, string) {
		var evs eventsv1.EventList
		if err := c.List(ctx, &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var reasons []string
		for _, e := range evs.Items {
			if e.Regarding.Name == "feature-x" {
				reasons = append(reasons, e.Reason)
			}
		}
		sort.Strings(reasons)
		return strings.Join(reasons, ",") == "Available,ForkCreated", strings.Join(reasons, ",")
	})

	// Update: a new env value rolls the fork in place.
	s.Spec.Forks[0].Customizations.Env[0].Value = ptr("fork-v2")
	if err := c.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "fork updated", func() (bool, string) {
		d, _ := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{})
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "MODE" {
				return e.Value == "fork-v2", e.Value
			}
		}
		return false, "no MODE"
	})
	// While the fork rolls (new generation not observed yet, the old pod still
	// available) the sandbox is not Ready, but its route stays: requests with
	// its key never fall back to the baseline during an update.
	waitCondition(t, key, smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonForksNotReady)
	if _, ok := routeTarget(ns, "route", rk); !ok {
		t.Fatal("route withdrawn while the fork rolls out")
	}
	makeAvailable(t, ns, forkName)
	waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)

	// Delete: routes go, then forks, then the finalizer.
	if err := c.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	eventually(t, "sandbox gone", func() (bool, string) {
		_, ok := get(t, key, &smv1.Sandbox{})
		return !ok, "still there"
	})
	if _, ok := routeTarget(ns, "route", rk); ok {
		t.Error("devmesh route left behind")
	}
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{}); ok {
		// Deleted with background propagation; the object goes at once without a garbage collector only if no finalizers.
		d, _ := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{})
		if d.DeletionTimestamp.IsZero() {
			t.Error("fork Deployment not deleted")
		}
	}
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &corev1.Service{}); ok {
		t.Error("fork Service left behind")
	}
	var vsl istionetworkingv1.VirtualServiceList
	if err := c.List(ctx, &vsl, client.InNamespace(ns)); err != nil || len(vsl.Items) != 0 {
		t.Errorf("VirtualServices left behind: %d %v", len(vsl.Items), err)
	}
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: "route"}, &appsv1.Deployment{}); !ok {
		t.Error("baseline deleted")
	}
}

func TestFailureReasons(t *testing.T) {
	ctx := context.Background()
	ns := "failures"
	world(t, ns, "route")
	cases := []struct {
		name   string
		mutate func(*smv1.Sandbox)
		reason string
	}{
		{"baseline-missing", func(s *smv1.Sandbox) { s.Spec.Forks[0].ForkOf.Name = "nope" }, smv1.ReasonBaselineNotFound},
		{"bad-patch", func(s *smv1.Sandbox) {
			s.Spec.Forks[0].Customizations.Patch = &smv1.Patch{Type: smv1.PatchJSON, Value: `[{"op":"replace","path":"/spec/nothing","value":1}]`}
		}, smv1.ReasonInvalidPatch},
		{"bad-container", func(s *smv1.Sandbox) { s.Spec.Forks[0].Customizations.Images[0].Container = "nope" }, smv1.ReasonInvalidCustomization},
		{"rollout-missing", func(s *smv1.Sandbox) { s.Spec.Forks[0].ForkOf.Kind = smv1.KindRollout }, smv1.ReasonBaselineNotFound},
		{"bad-endpoint", func(s *smv1.Sandbox) {
			s.Spec.DefaultRouteGroup = &smv1.DefaultRouteGroup{Endpoints: []smv1.Endpoint{{Name: "x", Target: "http://driver." + ns + ".deploy:80"}}}
		}, smv1.ReasonEndpointUnresolved},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sb := sandbox(ns, tc.name, "route")
			tc.mutate(sb)
			if err := c.Create(ctx, sb); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = c.Delete(ctx, sb) })
			s := waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionDegraded, metav1.ConditionTrue, tc.reason)
			if r := condition(s, smv1.ConditionReady); r.Status != metav1.ConditionFalse || r.Message == "" {
				t.Errorf("Ready = %+v", r)
			}
		})
	}

	t.Run("image-pull", func(t *testing.T) {
		sb := sandbox(ns, "image-pull", "route")
		if err := c.Create(ctx, sb); err != nil {
			t.Fatal(err)
		}
		forkName := naming.ForkName(ns, sb.Name, ns, "route")
		// The kubelet would report this on the fork's pod.
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: forkName + "-abc", Namespace: ns,
			Labels: map[string]string{naming.LabelFork: forkName, naming.LabelSandbox: sb.Name, naming.LabelSandboxNamespace: ns, smv1.LabelManagedBy: smv1.ManagedBy}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "route", Image: "example.com/route:v2"}}}}
		eventually(t, "fork created", func() (bool, string) {
			_, ok := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{})
			return ok, ""
		})
		if err := c.Create(ctx, pod); err != nil {
			t.Fatal(err)
		}
		pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "route", Image: "example.com/route:v2",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "not found"}}}}
		if err := c.Status().Update(ctx, pod); err != nil {
			t.Fatal(err)
		}
		s := waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonImagePullFailed)
		if !strings.Contains(condition(s, smv1.ConditionDegraded).Message, "example.com/route:v2") {
			t.Errorf("message does not name the image: %s", condition(s, smv1.ConditionDegraded).Message)
		}
		_ = c.Delete(ctx, pod)
		_ = c.Delete(ctx, sb)
	})

	t.Run("baseline-deleted", func(t *testing.T) {
		world(t, ns, "driver")
		sb := sandbox(ns, "baseline-gone", "driver")
		if err := c.Create(ctx, sb); err != nil {
			t.Fatal(err)
		}
		makeAvailable(t, ns, naming.ForkName(ns, sb.Name, ns, "driver"))
		waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionReady, metav1.ConditionTrue, "")
		if err := c.Delete(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "driver"}}); err != nil {
			t.Fatal(err)
		}
		waitCondition(t, client.ObjectKeyFromObject(sb), smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonBaselineNotFound)
		if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: "driver"}, &corev1.Service{}); !ok {
			t.Error("the operator deleted the user's Service")
		}
		_ = c.Delete(ctx, sb)
	})
}

func TestTwoSandboxesAndRouteGroup(t *testing.T) {
	ctx := context.Background()
	ns := "shared"
	world(t, ns, "route", "driver")
	a, b := sandbox(ns, "alpha", "route"), sandbox(ns, "beta", "route", "driver")
	for _, sb := range []*smv1.Sandbox{a, b} {
		if err := c.Create(ctx, sb); err != nil {
			t.Fatal(err)
		}
	}
	rg := &smv1.RouteGroup{ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns},
		Spec: smv1.RouteGroupSpec{Match: smv1.RouteGroupMatch{Label: &smv1.LabelMatch{Key: "feature", Value: "check*"}}}}
	if err := c.Create(ctx, rg); err != nil {
		t.Fatal(err)
	}
	makeAvailable(t, ns, naming.ForkName(ns, "alpha", ns, "route"))
	makeAvailable(t, ns, naming.ForkName(ns, "beta", ns, "route"))
	makeAvailable(t, ns, naming.ForkName(ns, "beta", ns, "driver"))
	sa := waitCondition(t, client.ObjectKeyFromObject(a), smv1.ConditionReady, metav1.ConditionTrue, "")
	sbb := waitCondition(t, client.ObjectKeyFromObject(b), smv1.ConditionReady, metav1.ConditionTrue, "")
	if sa.Status.RoutingKey == sbb.Status.RoutingKey {
		t.Fatal("two sandboxes share a routing key")
	}
	ta, _ := routeTarget(ns, "route", sa.Status.RoutingKey)
	tb, _ := routeTarget(ns, "route", sbb.Status.RoutingKey)
	if !strings.HasPrefix(ta.Addr, naming.ForkName(ns, "alpha", ns, "route")) || !strings.HasPrefix(tb.Addr, naming.ForkName(ns, "beta", ns, "route")) {
		t.Fatalf("routes: alpha %q beta %q", ta.Addr, tb.Addr)
	}
	var rgKey string
	eventually(t, "route group matched", func() (bool, string) {
		g, _ := get(t, client.ObjectKeyFromObject(rg), &smv1.RouteGroup{})
		rgKey = g.Status.RoutingKey
		return strings.Join(g.Status.MatchedSandboxes, ",") == "alpha,beta" && meta.IsStatusConditionTrue(g.Status.Conditions, smv1.ConditionReady), fmt.Sprintf("%+v", g.Status)
	})
	// The group's key reaches a fork at every hop where a matched sandbox has one.
	eventually(t, "route group routes", func() (bool, string) {
		r1, ok1 := routeTarget(ns, "route", rgKey)
		r2, ok2 := routeTarget(ns, "driver", rgKey)
		return ok1 && ok2 && strings.HasPrefix(r2.Addr, naming.ForkName(ns, "beta", ns, "driver")), fmt.Sprintf("%v %v %v", r1, ok1, ok2)
	})
	// Deleting one sandbox leaves the other's routes alone.
	if err := c.Delete(ctx, a); err != nil {
		t.Fatal(err)
	}
	eventually(t, "alpha routes gone", func() (bool, string) {
		_, ok := routeTarget(ns, "route", sa.Status.RoutingKey)
		return !ok, ""
	})
	if _, ok := routeTarget(ns, "route", sbb.Status.RoutingKey); !ok {
		t.Error("beta's route removed with alpha")
	}
	if err := c.Delete(ctx, rg); err != nil {
		t.Fatal(err)
	}
	eventually(t, "route group routes gone", func() (bool, string) {
		_, ok := routeTarget(ns, "driver", rgKey)
		return !ok, ""
	})
	_ = c.Delete(ctx, b)
}

func TestTTL(t *testing.T) {
	ctx := context.Background()
	ns := "ttl"
	world(t, ns, "route")
	sb := sandbox(ns, "short-lived", "route")
	sb.Spec.TTL = &smv1.TTL{Duration: "10m"}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	eventually(t, "scheduled delete time", func() (bool, string) {
		s, _ := get(t, client.ObjectKeyFromObject(sb), &smv1.Sandbox{})
		return s.Status.ScheduledDeleteTime != nil && s.Status.ScheduledDeleteTime.Sub(s.CreationTimestamp.Time) == 10*time.Minute, fmt.Sprint(s.Status.ScheduledDeleteTime)
	})
	clockOff.Store(int64(11 * time.Minute))
	defer clockOff.Store(0)
	// Any event re-runs the reconcile; touch a label to trigger it now rather than at the requeue.
	// A merge patch, not an Update: the controller writes status concurrently.
	touch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"touch":"1"}}}`))
	if err := c.Patch(ctx, sb.DeepCopy(), touch); err != nil {
		t.Fatal(err)
	}
	eventually(t, "expired sandbox deleted", func() (bool, string) {
		_, ok := get(t, client.ObjectKeyFromObject(sb), &smv1.Sandbox{})
		return !ok, ""
	})
	if _, ok := get(t, types.NamespacedName{Namespace: ns, Name: naming.ForkName(ns, sb.Name, ns, "route")}, &corev1.Service{}); ok {
		t.Error("fork Service left after TTL")
	}
}

// TestEnvValueFromFork: Signadot's sandbox service references. One fork's env
// points at the Service of another fork of the same sandbox; a resource
// reference is reported as unsupported.
func TestEnvValueFromFork(t *testing.T) {
	ctx := context.Background()
	ns := "refs"
	world(t, ns, "frontend", "route")
	sb := sandbox(ns, "refs", "frontend", "route")
	sb.Spec.Forks[0].Customizations.Env = append(sb.Spec.Forks[0].Customizations.Env, smv1.EnvCustomization{Name: "ROUTE_ADDR",
		ValueFrom: &smv1.EnvValueFrom{Fork: &smv1.EnvValueFromFork{ForkOf: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: "route"},
			Expression: "http://{{ .Service.Host }}:{{ .Service.Port }}"}}})
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	frontendFork := naming.ForkName(ns, "refs", ns, "frontend")
	routeFork := naming.ForkName(ns, "refs", ns, "route")
	eventually(t, "ROUTE_ADDR on the frontend fork", func() (bool, string) {
		d, ok := get(t, types.NamespacedName{Namespace: ns, Name: frontendFork}, &appsv1.Deployment{})
		if !ok {
			return false, "no fork"
		}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "ROUTE_ADDR" {
				want := "http://" + routeFork + "." + ns + ".svc:8080"
				return e.Value == want, e.Value
			}
		}
		return false, "no ROUTE_ADDR"
	})
	// The CRD schema rejects two sources at once, with the field path.
	bad := sandbox(ns, "two-sources", "route")
	bad.Spec.Forks[0].Customizations.Env[0] = smv1.EnvCustomization{Name: "X", ValueFrom: &smv1.EnvValueFrom{
		Fork: &smv1.EnvValueFromFork{ForkOf: smv1.WorkloadRef{Namespace: ns, Name: "route"}, Expression: "x"}, FieldRef: &smv1.FieldSelector{FieldPath: "metadata.name"}}}
	if err := c.Create(ctx, bad); err == nil || !strings.Contains(err.Error(), "exactly one of secret, configMap, fieldRef, fork, resource") {
		t.Fatalf("two sources: %v", err)
	}
	// A reference to a resource the sandbox does not have passes the schema
	// and is reported by the operator, with the field path.
	res := sandbox(ns, "resource", "route")
	res.Spec.Forks[0].Customizations.Env[0] = smv1.EnvCustomization{Name: "DB", ValueFrom: &smv1.EnvValueFrom{Resource: &smv1.EnvValueFromResource{Name: "db", OutputKey: "provision.host"}}}
	if err := c.Create(ctx, res); err != nil {
		t.Fatal(err)
	}
	s := waitCondition(t, client.ObjectKeyFromObject(res), smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonInvalidCustomization)
	if cnd := condition(s, smv1.ConditionDegraded); !strings.Contains(cnd.Message, "spec.forks[0].customizations.env[0].valueFrom.resource: the sandbox has no resource db") {
		t.Errorf("message: %s", cnd.Message)
	}
	// Admission refuses an expression using anything but .Service.Host/.Port, with the field path.
	unk := sandbox(ns, "unknown-var", "route")
	unk.Spec.Forks[0].Customizations.Env[0] = smv1.EnvCustomization{Name: "X", ValueFrom: &smv1.EnvValueFrom{
		Fork: &smv1.EnvValueFromFork{ForkOf: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: "route"}, Expression: "{{ .Deployment.Name }}"}}}
	if err := c.Create(ctx, unk); err == nil || !strings.Contains(err.Error(), "spec.forks[0].customizations.env[0].valueFrom.fork.expression") {
		t.Fatalf("unknown variable: %v", err)
	}
	// A reference to a workload the sandbox does not fork passes the schema
	// (CEL cannot afford the cross-check) and is reported by the operator.
	notFork := sandbox(ns, "not-a-fork", "route")
	notFork.Spec.Forks[0].Customizations.Env[0] = smv1.EnvCustomization{Name: "X", ValueFrom: &smv1.EnvValueFrom{
		Fork: &smv1.EnvValueFromFork{ForkOf: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: "frontend"}, Expression: "{{ .Service.Host }}"}}}
	if err := c.Create(ctx, notFork); err != nil {
		t.Fatal(err)
	}
	s = waitCondition(t, client.ObjectKeyFromObject(notFork), smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonInvalidCustomization)
	if cnd := condition(s, smv1.ConditionDegraded); !strings.Contains(cnd.Message, "spec.forks[0].customizations.env[0].valueFrom.fork.forkOf") {
		t.Errorf("message: %s", cnd.Message)
	}
	_ = c.Delete(ctx, sb)
	_ = c.Delete(ctx, res)
	_ = c.Delete(ctx, notFork)
}
