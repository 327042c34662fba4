package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	istionetworkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/meshadapters"
	"github.com/sandboxmesh/sandboxmesh/operator/controllers"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
	"github.com/sandboxmesh/sandboxmesh/operator/routing"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{}, func(e *testenv.Env) int {
		env = e
		return m.Run()
	})
}

var errCrash = errors.New("simulated crash")

// crashingClient fails the n-th write (create, update, patch, delete, status
// write) and every write after it, like a process that died at that point.
func crashingClient(t *testing.T, n int) client.Client {
	t.Helper()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	fail := func() error {
		writes++
		if writes >= n {
			return errCrash
		}
		return nil
	}
	return interceptor.NewClient(c, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.CreateOption) error {
			if err := fail(); err != nil {
				return err
			}
			return c.Create(ctx, o, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.UpdateOption) error {
			if err := fail(); err != nil {
				return err
			}
			return c.Update(ctx, o, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, o client.Object, p client.Patch, opts ...client.PatchOption) error {
			if err := fail(); err != nil {
				return err
			}
			return c.Patch(ctx, o, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, o client.Object, opts ...client.DeleteOption) error {
			if err := fail(); err != nil {
				return err
			}
			return c.Delete(ctx, o, opts...)
		},
		SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
			if err := fail(); err != nil {
				return err
			}
			return c.SubResource(sub).Patch(ctx, o, p, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, o client.Object, opts ...client.SubResourceUpdateOption) error {
			if err := fail(); err != nil {
				return err
			}
			return c.SubResource(sub).Update(ctx, o, opts...)
		},
	})
}

// process is one operator process: its own route server (in memory) and routers.
type process struct {
	rec    *controllers.SandboxReconciler
	routes *routeapi.Server
}

func newProcess(t *testing.T, c client.Client) *process {
	t.Helper()
	rs := routeapi.NewServer(routeapi.ServerConfig{})
	routers, err := meshadapters.New([]string{meshadapters.BackendDevmesh, meshadapters.BackendIstio}, meshadapters.Deps{Client: c, RouteServer: rs})
	if err != nil {
		t.Fatal(err)
	}
	eng := &routing.Engine{Client: c, Routers: routers}
	return &process{rec: &controllers.SandboxReconciler{Client: c, Engine: eng}, routes: rs}
}

func setup(t *testing.T, ns string) *smv1.Sandbox {
	t.Helper()
	ctx := context.Background()
	c := env.Client
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	if err := c.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "route", Namespace: ns}, Spec: appsv1.DeploymentSpec{
		Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "route"}},
		Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "route"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "route", Image: "route:v1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "route", Namespace: ns}, Spec: corev1.ServiceSpec{
		Selector: map[string]string{"app": "route"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}); err != nil {
		t.Fatal(err)
	}
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "crash", Namespace: ns}, Spec: smv1.SandboxSpec{Forks: []smv1.Fork{{
		ForkOf:         smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: "route"},
		Customizations: &smv1.Customizations{Images: []smv1.ImageCustomization{{Image: "route:v2"}}}}}}}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	return sb
}

// available plays the Deployment controller for the fork, when it exists.
func available(t *testing.T, ns string) {
	t.Helper()
	var d appsv1.Deployment
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: naming.ForkName(ns, "crash", ns, "route")}, &d); err != nil {
		return
	}
	if d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 1 {
		return
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
	if err := env.Client.Status().Update(context.Background(), &d); err != nil {
		t.Fatal(err)
	}
}

// converge reconciles until the result is stable or the sandbox is gone.
func converge(t *testing.T, p *process, key types.NamespacedName) {
	t.Helper()
	for i := 0; i < 15; i++ {
		available(t, key.Namespace)
		if _, err := p.rec.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); err != nil {
			t.Logf("reconcile %d: %v", i, err)
		}
	}
}

func checkRunning(t *testing.T, p *process, key types.NamespacedName) {
	t.Helper()
	ctx := context.Background()
	var sb smv1.Sandbox
	if err := env.Client.Get(ctx, key, &sb); err != nil {
		t.Fatal(err)
	}
	if !meta.IsStatusConditionTrue(sb.Status.Conditions, smv1.ConditionReady) {
		t.Fatalf("not Ready after restart: %+v", sb.Status.Conditions)
	}
	var deps appsv1.DeploymentList
	if err := env.Client.List(ctx, &deps, client.InNamespace(key.Namespace), client.MatchingLabels{naming.LabelSandbox: "crash"}); err != nil || len(deps.Items) != 1 {
		t.Fatalf("fork Deployments = %d (%v), want exactly 1", len(deps.Items), err)
	}
	var svcs corev1.ServiceList
	if err := env.Client.List(ctx, &svcs, client.InNamespace(key.Namespace), client.MatchingLabels{naming.LabelSandbox: "crash"}); err != nil || len(svcs.Items) != 1 {
		t.Fatalf("fork Services = %d (%v), want exactly 1", len(svcs.Items), err)
	}
	if _, ok := p.routes.Table().Lookup(routeapi.WorkloadRef{Namespace: key.Namespace, Name: "route"}, sb.Status.RoutingKey, 8080); !ok {
		t.Fatal("devmesh route missing after restart")
	}
	var vs istionetworkingv1.VirtualServiceList
	if err := env.Client.List(ctx, &vs, client.InNamespace(key.Namespace)); err != nil || len(vs.Items) != 1 {
		t.Fatalf("VirtualServices = %d (%v), want 1", len(vs.Items), err)
	}
}

func checkGone(t *testing.T, key types.NamespacedName) {
	t.Helper()
	ctx := context.Background()
	var sb smv1.Sandbox
	if err := env.Client.Get(ctx, key, &sb); !apierrors.IsNotFound(err) {
		t.Fatalf("sandbox still there: %v %v", err, sb.Finalizers)
	}
	var deps appsv1.DeploymentList
	_ = env.Client.List(ctx, &deps, client.InNamespace(key.Namespace), client.MatchingLabels{naming.LabelSandbox: "crash"})
	for _, d := range deps.Items {
		if d.DeletionTimestamp.IsZero() {
			t.Fatalf("fork Deployment %s left", d.Name)
		}
	}
	var svcs corev1.ServiceList
	_ = env.Client.List(ctx, &svcs, client.InNamespace(key.Namespace), client.MatchingLabels{naming.LabelSandbox: "crash"})
	if len(svcs.Items) != 0 {
		t.Fatalf("fork Services left: %d", len(svcs.Items))
	}
	var vs istionetworkingv1.VirtualServiceList
	_ = env.Client.List(ctx, &vs, client.InNamespace(key.Namespace))
	if len(vs.Items) != 0 {
		t.Fatalf("VirtualServices left: %d", len(vs.Items))
	}
	var base appsv1.Deployment
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: "route"}, &base); err != nil {
		t.Fatalf("baseline touched: %v", err)
	}
}

// TestCrashDuringCreate kills the operator at every write of the create path
// in turn; a restarted operator (new process, new route server) must converge
// to exactly one fork, one Service, one VirtualService and a published route.
func TestCrashDuringCreate(t *testing.T) {
	for n := 1; n <= 8; n++ {
		t.Run(fmt.Sprintf("crash-at-write-%d", n), func(t *testing.T) {
			ns := fmt.Sprintf("crash-create-%d", n)
			sb := setup(t, ns)
			key := client.ObjectKeyFromObject(sb)
			dying := newProcess(t, crashingClient(t, n))
			for i := 0; i < 6; i++ {
				available(t, ns)
				if _, err := dying.rec.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); errors.Is(err, errCrash) {
					break
				}
			}
			restarted := newProcess(t, env.Client)
			converge(t, restarted, key)
			checkRunning(t, restarted, key)
		})
	}
}

// TestCrashDuringDelete kills the operator at every write of the delete path.
func TestCrashDuringDelete(t *testing.T) {
	for n := 1; n <= 5; n++ {
		t.Run(fmt.Sprintf("crash-at-write-%d", n), func(t *testing.T) {
			ns := fmt.Sprintf("crash-delete-%d", n)
			sb := setup(t, ns)
			key := client.ObjectKeyFromObject(sb)
			p := newProcess(t, env.Client)
			converge(t, p, key)
			checkRunning(t, p, key)
			if err := env.Client.Delete(context.Background(), sb); err != nil {
				t.Fatal(err)
			}
			dying := newProcess(t, crashingClient(t, n))
			for i := 0; i < 4; i++ {
				if _, err := dying.rec.Reconcile(context.Background(), reconcile.Request{NamespacedName: key}); errors.Is(err, errCrash) {
					break
				}
			}
			restarted := newProcess(t, env.Client)
			converge(t, restarted, key)
			checkGone(t, key)
		})
	}
}
