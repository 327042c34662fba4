package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/sandboxmesh/sandboxmesh/controlplane/agent"
	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	smclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var (
	kube          client.Client
	testenvConfig *rest.Config // for the real operator (operator_e2e_test.go)
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{WithoutMeshCRDs: true}, func(e *testenv.Env) int {
		kube, testenvConfig = e.Client, e.Config
		return m.Run()
	})
}

const ns = "sandboxmesh-system"

// controlPlane is an API server on a fixed loopback address that can be
// stopped and started again on the same store.
type controlPlane struct {
	t    *testing.T
	st   *store.Store
	addr string
	mu   sync.Mutex
	srv  *http.Server
	api  *api.Server
}

func (cp *controlPlane) start() {
	cp.t.Helper()
	s, err := api.New(context.Background(), api.Config{Store: cp.st, PreviewURL: "http://preview.localhost", LongPollTimeout: 2 * time.Second, PollInterval: 100 * time.Millisecond})
	if err != nil {
		cp.t.Fatal(err)
	}
	addr := cp.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	for i := 0; ; i++ {
		ln, err = net.Listen("tcp", addr)
		if err == nil || i > 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		cp.t.Fatal(err)
	}
	cp.addr = ln.Addr().String()
	srv := &http.Server{Handler: s.Handler()}
	go srv.Serve(ln)
	cp.mu.Lock()
	cp.srv, cp.api = srv, s
	cp.mu.Unlock()
}

func (cp *controlPlane) stop() {
	cp.mu.Lock()
	srv := cp.srv
	cp.mu.Unlock()
	srv.Close()
}

func (cp *controlPlane) url() string { return "http://" + cp.addr }

func eventually(t *testing.T, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = f(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

func startAgent(t *testing.T, cp *controlPlane, token string, dial func(ctx context.Context, network, addr string) (net.Conn, error)) context.CancelFunc {
	t.Helper()
	a, err := agent.New(agent.Config{
		ControlPlaneURL: cp.url(), Token: token, Namespace: ns, Client: kube,
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		PollWait: 2 * time.Second, StatusInterval: 100 * time.Millisecond,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, Dial: dial, OperatorVersion: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return stop
}

func crNames(t *testing.T) []string {
	var list v1alpha1.SandboxList
	if err := kube.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		out = append(out, s.Name)
	}
	return out
}

func sbSpec(name string) *smclient.Sandbox {
	return &smclient.Sandbox{Name: name, Spec: v1alpha1.SandboxSpec{Cluster: "c1",
		Forks:             []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}},
		DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://frontend.shop.svc:8080"}}}}}
}

// TestAgentEndToEnd: REST → agent → CR (server-side apply) → status → REST;
// deletes; restarts of the agent and of the control plane; preview through the
// agent's tunnel; token scope.
func TestAgentEndToEnd(t *testing.T) {
	ctx := context.Background()
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	cp := &controlPlane{t: t, st: storetest.Open(t, store.DriverSQLite)}
	cp.start()
	t.Cleanup(cp.stop)
	adminKey, _, err := api.Bootstrap(ctx, cp.st, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	sdk, _ := smclient.New(cp.url(), adminKey)
	sdk.RegisterCluster(ctx, "acme", "c1")
	tok, err := sdk.CreateClusterToken(ctx, "acme", "c1")
	if err != nil {
		t.Fatal(err)
	}
	// Another org's sandbox on its own cluster must never reach this cluster.
	sdk.CreateOrg(ctx, "other", 0)
	sdk.RegisterCluster(ctx, "other", "c1")
	osb := sbSpec("not-ours")
	if _, err := sdk.ApplySandbox(ctx, "other", osb); err != nil {
		t.Fatal(err)
	}

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k, _ := routingkey.Default.Extract(r.Header)
		fmt.Fprintf(w, "key=%s host=%s", k, r.Host)
	}))
	defer upstream.Close()
	var dialed sync.Map
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed.Store(addr, true)
		var d net.Dialer
		return d.DialContext(ctx, network, upstream.Listener.Addr().String())
	}
	stopAgent := startAgent(t, cp, tok.Token, dial)

	sb, err := sdk.ApplySandbox(ctx, "acme", sbSpec("feat"))
	if err != nil {
		t.Fatal(err)
	}
	var cr v1alpha1.Sandbox
	eventually(t, "CR applied", func() error {
		return kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "feat"}, &cr)
	})
	if cr.Annotations[apitypes.AnnotationRoutingKey] != sb.RoutingKey || cr.Labels[agent.LabelManagedBy] != agent.FieldManager || cr.Spec.Forks[0].ForkOf.Name != "cart" {
		t.Fatalf("CR: %+v", cr.ObjectMeta)
	}
	managers := map[string]bool{}
	for _, mf := range cr.ManagedFields {
		managers[mf.Manager+"/"+string(mf.Operation)] = true
	}
	if !managers[agent.FieldManager+"/Apply"] {
		t.Fatalf("not server-side applied by %s: %v", agent.FieldManager, managers)
	}
	if got, _ := sdk.GetSandbox(ctx, "acme", "feat"); got.Status.Ready {
		t.Fatal("ready before the operator said so")
	}
	eventually(t, "pending status reported", func() error {
		got, _ := sdk.GetSandbox(ctx, "acme", "feat")
		if !strings.Contains(got.Status.Message, "operator") {
			return fmt.Errorf("status %+v", got.Status)
		}
		return nil
	})

	// Act as the operator: mark the CR ready.
	setReady := func(name string) {
		t.Helper()
		eventually(t, "status update", func() error {
			var cur v1alpha1.Sandbox
			if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &cur); err != nil {
				return err
			}
			cur.Status.ObservedGeneration = cur.Generation
			cur.Status.RoutingKey = cur.Annotations[apitypes.AnnotationRoutingKey]
			cur.Status.Endpoints = []v1alpha1.EndpointStatus{{Name: "web", Target: "http://frontend.shop.svc:8080", Host: "frontend.shop.svc.cluster.local", Port: 8080, Protocol: "http"}}
			meta.SetStatusCondition(&cur.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonAvailable, Message: "all forks ready", ObservedGeneration: cur.Generation})
			return kube.Status().Update(ctx, &cur)
		})
	}
	setReady("feat")
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	ready, err := sdk.WaitForReady(wctx, "acme", "feat", &smclient.WaitOptions{Interval: 100 * time.Millisecond})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if ready.Status.Reason != v1alpha1.ReasonAvailable || ready.Endpoints[0].Host != "frontend.shop.svc.cluster.local" {
		t.Fatalf("ready: %+v", ready)
	}

	// Preview through the agent's real tunnel.
	keyResp, _ := sdk.CreateAPIKey(ctx, "acme", "preview")
	eventually(t, "preview", func() error {
		req, _ := http.NewRequest("GET", cp.url()+"/", nil)
		req.Host = "web--feat.preview.localhost"
		req.Header.Set(apitypes.HeaderAPIKey, keyResp.Key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(b) != "key="+sb.RoutingKey+" host=frontend.shop.svc.cluster.local:8080" {
			return fmt.Errorf("%d %s", resp.StatusCode, b)
		}
		return nil
	})
	if _, ok := dialed.Load("frontend.shop.svc.cluster.local:8080"); !ok {
		t.Fatal("agent did not dial the resolved address")
	}

	// Delete propagates.
	if err := sdk.DeleteSandbox(ctx, "acme", "feat"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "CR deleted", func() error {
		err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "feat"}, &v1alpha1.Sandbox{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there: %v", err)
	})

	// Agent restart: changes made while it is down converge; strays are pruned.
	sdk.ApplySandbox(ctx, "acme", sbSpec("keep"))
	sdk.ApplySandbox(ctx, "acme", sbSpec("gone"))
	eventually(t, "two CRs", func() error {
		if n := crNames(t); fmt.Sprint(n) != "[gone keep]" {
			return fmt.Errorf("CRs %v", n)
		}
		return nil
	})
	stopAgent()
	sdk.DeleteSandbox(ctx, "acme", "gone")
	sdk.ApplySandbox(ctx, "acme", sbSpec("new"))
	stray := &v1alpha1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "stray", Namespace: ns, Labels: map[string]string{agent.LabelManagedBy: agent.FieldManager, agent.LabelOrg: "acme", agent.LabelCluster: "c1"}}, Spec: sbSpec("stray").Spec}
	if err := kube.Create(ctx, stray); err != nil {
		t.Fatal(err)
	}
	// A CR of another registration in the same namespace is not ours to prune.
	foreign := &v1alpha1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "foreign", Namespace: ns, Labels: map[string]string{agent.LabelManagedBy: agent.FieldManager, agent.LabelOrg: "zzz", agent.LabelCluster: "c1"}}, Spec: sbSpec("foreign").Spec}
	if err := kube.Create(ctx, foreign); err != nil {
		t.Fatal(err)
	}
	stopAgent = startAgent(t, cp, tok.Token, dial)
	eventually(t, "converged after agent restart", func() error {
		if n := crNames(t); fmt.Sprint(n) != "[foreign keep new]" {
			return fmt.Errorf("CRs %v", n)
		}
		return nil
	})
	if err := kube.Delete(ctx, foreign); err != nil {
		t.Fatal(err)
	}

	// Control-plane restart (network cut): changes made meanwhile converge.
	cp.stop()
	time.Sleep(300 * time.Millisecond)
	sdkDown, _ := smclient.New(cp.url(), adminKey)
	if _, err := sdkDown.ListSandboxes(ctx, "acme", nil); err == nil {
		t.Fatal("control plane still up")
	}
	cp.start()
	sdk.DeleteSandbox(ctx, "acme", "keep")
	sdk.ApplySandbox(ctx, "acme", sbSpec("after"))
	eventually(t, "converged after control-plane restart", func() error {
		if n := crNames(t); fmt.Sprint(n) != "[after new]" {
			return fmt.Errorf("CRs %v", n)
		}
		return nil
	})
	// Status keeps flowing after the restart.
	setReady("after")
	eventually(t, "ready after restart", func() error {
		got, err := sdk.GetSandbox(ctx, "acme", "after")
		if err != nil || !got.Status.Ready {
			return fmt.Errorf("%+v %v", got, err)
		}
		return nil
	})
	// Route groups go the same way.
	rg := &smclient.RouteGroup{Name: "rg", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1", Match: v1alpha1.RouteGroupMatch{Label: &v1alpha1.LabelMatch{Key: "team", Value: "*"}}}}
	out, err := sdk.ApplyRouteGroup(ctx, "acme", rg)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "route group CR", func() error {
		var cur v1alpha1.RouteGroup
		if err := kube.Get(ctx, client.ObjectKey{Namespace: ns, Name: "rg"}, &cur); err != nil {
			return err
		}
		if cur.Annotations[apitypes.AnnotationRoutingKey] != out.RoutingKey {
			return fmt.Errorf("annotations %v", cur.Annotations)
		}
		return nil
	})
	for _, n := range crNames(t) {
		if n == "not-ours" {
			t.Fatal("another org's sandbox reached this cluster")
		}
	}
	if cl, _ := sdk.GetCluster(ctx, "acme", "c1"); cl.Operator == nil || cl.Operator.Version != "test" {
		t.Fatalf("cluster: %+v", cl)
	}
	stopAgent()
}

// TestAgentReportsWorkloads: the agent lists the cluster's Deployments on the
// real API server — not forks, not system namespaces, not its own — with
// the Services in front of them, and reports again when they change.
func TestAgentReportsWorkloads(t *testing.T) {
	ctx := context.Background()
	for _, n := range []string{ns, "inventory"} {
		if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	dep := func(namespace, name string, labels, annotations map[string]string) *appsv1.Deployment {
		sel := map[string]string{"app": name}
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: labels},
			Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: sel},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: sel, Annotations: annotations},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: name + ":v1"}}}}}}
	}
	for _, o := range []client.Object{
		dep("inventory", "stock", nil, map[string]string{"sidecar.sandboxmesh.dev/inject": "true"}),
		dep("inventory", "stock-feat-fork", map[string]string{"app.kubernetes.io/managed-by": "sandboxmesh-operator"}, nil),
		dep(ns, "sandboxmesh-agent", nil, nil),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "inventory", Name: "stock"},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "stock"}, Ports: []corev1.ServicePort{{Name: "http", Port: 80}, {Name: "grpc", Port: 9090}}}},
	} {
		if err := kube.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	cp := &controlPlane{t: t, st: storetest.Open(t, store.DriverSQLite)}
	cp.start()
	t.Cleanup(cp.stop)
	adminKey, _, err := api.Bootstrap(ctx, cp.st, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	sdk, _ := smclient.New(cp.url(), adminKey)
	sdk.RegisterCluster(ctx, "acme", "c1")
	tok, err := sdk.CreateClusterToken(ctx, "acme", "c1")
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{ControlPlaneURL: cp.url(), Token: tok.Token, Namespace: ns, Client: kube, DisableTunnel: true,
		PollWait: time.Second, StatusInterval: time.Second, WorkloadsInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(actx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	var wl *smclient.WorkloadList
	eventually(t, "workloads reported", func() error {
		wl, err = sdk.ListWorkloads(ctx, "acme", "c1", "inventory")
		return err
	})
	if len(wl.Workloads) != 1 {
		t.Fatalf("want only the baseline stock, got %+v", wl.Workloads)
	}
	w := wl.Workloads[0]
	if w.Name != "stock" || !w.DevmeshInjected || w.Containers[0].Image != "stock:v1" || len(w.Services) != 1 || len(w.Services[0].Ports) != 2 {
		t.Fatalf("stock: %+v", w)
	}
	if all, _ := sdk.ListWorkloads(ctx, "acme", "c1", ""); func() bool {
		for _, x := range all.Workloads {
			if x.Namespace == ns {
				return true
			}
		}
		return false
	}() {
		t.Fatal("the agent's own namespace was reported")
	}
	// A new Deployment shows up at the next change report.
	if err := kube.Create(ctx, dep("inventory", "pricing", nil, nil)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "new workload reported", func() error {
		wl, err := sdk.ListWorkloads(ctx, "acme", "c1", "inventory")
		if err != nil || len(wl.Workloads) != 2 || wl.Workloads[0].Name != "pricing" {
			return fmt.Errorf("%+v %v", wl, err)
		}
		return nil
	})
}

// TestInsecureURLWarning: a cluster token sent over plain http to a host that
// is not loopback is logged as a warning.
func TestInsecureURLWarning(t *testing.T) {
	for _, tc := range []struct {
		url  string
		warn bool
	}{
		{"http://cp.example.com", true},
		{"http://10.0.0.7:8080", true},
		{"https://cp.example.com", false},
		{"http://127.0.0.1:8080", false},
		{"http://[::1]:8080", false},
		{"http://localhost:8080", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			var logs bytes.Buffer
			if _, err := agent.New(agent.Config{ControlPlaneURL: tc.url, Token: "smc_x", Client: kube, Logger: slog.New(slog.NewTextHandler(&logs, nil))}); err != nil {
				t.Fatal(err)
			}
			if got := strings.Contains(logs.String(), "unencrypted"); got != tc.warn {
				t.Fatalf("warning %v, want %v: %s", got, tc.warn, logs.String())
			}
		})
	}
}
