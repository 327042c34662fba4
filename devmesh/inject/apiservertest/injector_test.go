package apiservertest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/sandboxmesh/sandboxmesh/devmesh/inject"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	mwc, err := inject.MutatingWebhookConfiguration(inject.WebhookOptions{ServiceNamespace: "sandboxmesh-system", ServiceName: "sandboxmesh-operator-webhook"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hooks := envtest.WebhookInstallOptions{MutatingWebhooks: []*admissionregistrationv1.MutatingWebhookConfiguration{mwc}}
	testenv.MainWithWebhooks(m, testenv.Options{WithoutMeshCRDs: true}, hooks, func(e *testenv.Env) int {
		env = e
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := serveWebhook(ctx, e); err != nil {
			fmt.Fprintln(os.Stderr, "serve webhook:", err)
			return 1
		}
		return m.Run()
	})
}

// serveWebhook hosts the injector the way the operator does: controller-runtime's webhook server,
// inject.NewHandler registered at inject.Path.
func serveWebhook(ctx context.Context, e *testenv.Env) error {
	ws := e.WebhookServing()
	srv := webhook.NewServer(webhook.Options{Host: ws.LocalServingHost, Port: ws.LocalServingPort, CertDir: ws.LocalServingCertDir})
	h, err := inject.NewHandler(inject.Config{
		Image:       "sandboxmesh.dev/devmesh:dev",
		RouteServer: "sandboxmesh-routes.sandboxmesh-system.svc:15010",
	}, inject.NamespaceLabelsFromReader(e.Client), logr.Discard())
	if err != nil {
		return err
	}
	srv.Register(inject.Path, &admission.Webhook{Handler: h})
	go func() { _ = srv.Start(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := srv.StartedChecker()(nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("webhook server not started: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// warnings collects the API server's warnings (the admission response's warnings reach the client).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) get() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.list...)
}

func namespace(t *testing.T, labels map[string]string) string {
	t.Helper()
	name := fmt.Sprintf("inject-%d", time.Now().UnixNano())
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	if err := env.Client.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	// No controller-manager runs: create the default ServiceAccount the admission plugin may look for.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: name}}
	if err := env.Client.Create(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestInjectionThroughAPIServer(t *testing.T) {
	yes := true
	tests := []struct {
		name        string
		nsLabels    map[string]string
		annotations map[string]string
		hostNetwork bool
		owner       bool
		wantStatus  string // "" means the webhook left the pod alone
		wantInit    []string
		wantWarning string
	}{
		{
			name:        "iptables mode, workload from the ReplicaSet owner",
			annotations: map[string]string{inject.AnnotationInject: "true"},
			owner:       true,
			wantStatus:  inject.StatusInjected,
			wantInit:    []string{inject.InitName, inject.SidecarName},
		},
		{
			name:        "explicit mode",
			annotations: map[string]string{inject.AnnotationInject: "true", inject.AnnotationWorkload: "checkout", inject.AnnotationMode: "explicit", inject.AnnotationPorts: "8080:15080"},
			wantStatus:  inject.StatusInjected,
			wantInit:    []string{inject.SidecarName},
		},
		{
			name:        "hostNetwork skipped with reason",
			annotations: map[string]string{inject.AnnotationInject: "true", inject.AnnotationWorkload: "checkout"},
			hostNetwork: true,
			wantStatus:  "skipped: hostNetwork",
			wantWarning: "devmesh: sidecar not injected: hostNetwork",
		},
		{
			name:        "no annotation",
			annotations: nil,
		},
		{
			// The namespaceSelector keeps the API server from calling the webhook at all.
			name:        "namespace opted out",
			nsLabels:    map[string]string{inject.DefaultNamespaceOptOutLabel: inject.NamespaceOptOutValue},
			annotations: map[string]string{inject.AnnotationInject: "true", inject.AnnotationWorkload: "checkout"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			ns := namespace(t, tt.nsLabels)
			w := &warnings{}
			cfg := rest.CopyConfig(env.Config)
			cfg.WarningHandlerWithContext = w
			c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
			if err != nil {
				t.Fatal(err)
			}
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "checkout", Namespace: ns, Annotations: tt.annotations},
				Spec: corev1.PodSpec{
					HostNetwork: tt.hostNetwork,
					Containers: []corev1.Container{{
						Name: "app", Image: "example.com/checkout:1.0",
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
					}},
				},
			}
			if tt.owner {
				pod.Labels = map[string]string{"pod-template-hash": "7d9f8b6c5"}
				pod.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "checkout-7d9f8b6c5", UID: "3f1c2d4e-0000-4000-8000-000000000001", Controller: &yes}}
			}
			if err := c.Create(ctx, pod); err != nil {
				t.Fatalf("create pod: %v", err)
			}
			got := &corev1.Pod{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
				t.Fatal(err)
			}
			if s := got.Annotations[inject.AnnotationStatus]; s != tt.wantStatus {
				t.Errorf("status annotation = %q, want %q", s, tt.wantStatus)
			}
			var inits []string
			for _, c := range got.Spec.InitContainers {
				inits = append(inits, c.Name)
			}
			if strings.Join(inits, ",") != strings.Join(tt.wantInit, ",") {
				t.Errorf("init containers = %v, want %v", inits, tt.wantInit)
			}
			if len(got.Spec.Containers) != 1 {
				t.Errorf("containers = %d, want the app only", len(got.Spec.Containers))
			}
			for _, ic := range got.Spec.InitContainers {
				if ic.Name != inject.SidecarName {
					continue
				}
				if ic.RestartPolicy == nil || *ic.RestartPolicy != corev1.ContainerRestartPolicyAlways {
					t.Errorf("sidecar is not a native sidecar")
				}
				env := map[string]string{}
				for _, e := range ic.Env {
					env[e.Name] = e.Value
				}
				if tt.owner && env[inject.EnvWorkload] != "checkout" {
					t.Errorf("workload = %q, want checkout (from ReplicaSet checkout-7d9f8b6c5)", env[inject.EnvWorkload])
				}
			}
			if tt.wantWarning != "" && !strings.Contains(strings.Join(w.get(), "\n"), tt.wantWarning) {
				t.Errorf("warnings = %q, want %q", w.get(), tt.wantWarning)
			}
		})
	}
}

// TestUnreachableWebhookPolicy shows what failurePolicy does when the injector cannot be reached: a
// second, broken copy of the configuration (pointing at a closed port) first fails closed (pods are
// rejected), then, switched to the default Ignore, pods are admitted — and still injected by the
// working webhook.
func TestUnreachableWebhookPolicy(t *testing.T) {
	ctx := context.Background()
	key := "sandboxmesh.dev/test-broken-webhook"
	ns := namespace(t, map[string]string{key: "yes"})
	mwc, err := inject.MutatingWebhookConfiguration(inject.WebhookOptions{
		Name: "broken-devmesh-injector", URL: "https://127.0.0.1:1" + inject.Path, FailClosed: true,
		CABundle: env.WebhookServing().LocalServingCAData,
	})
	if err != nil {
		t.Fatal(err)
	}
	mwc.Webhooks[0].Name = "broken.devmesh.sidecar.sandboxmesh.dev"
	mwc.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{key: "yes"}}
	if err := env.Client.Create(ctx, mwc); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = env.Client.Delete(ctx, mwc) }()

	n := 0
	create := func() (*corev1.Pod, error) {
		n++
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", n), Namespace: ns, Annotations: map[string]string{
				inject.AnnotationInject: "true", inject.AnnotationWorkload: "checkout",
			}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1.0", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
		}
		return pod, env.Client.Create(ctx, pod)
	}
	// The API server loads webhook configurations asynchronously: wait until the broken one bites.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := create()
		if err != nil && strings.Contains(err.Error(), "broken.devmesh.sidecar.sandboxmesh.dev") {
			t.Logf("fail closed: %v", err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the broken fail-closed webhook never rejected a pod (last err %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	ignore := admissionregistrationv1.Ignore
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(mwc), mwc); err != nil {
		t.Fatal(err)
	}
	mwc.Webhooks[0].FailurePolicy = &ignore
	if err := env.Client.Update(ctx, mwc); err != nil {
		t.Fatal(err)
	}
	for {
		pod, err := create()
		if err == nil {
			got := &corev1.Pod{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
				t.Fatal(err)
			}
			if got.Annotations[inject.AnnotationStatus] != inject.StatusInjected {
				t.Errorf("status = %q, want injected by the working webhook", got.Annotations[inject.AnnotationStatus])
			}
			return
		}
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("failurePolicy Ignore still rejects: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
