package manager_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
	"github.com/sandboxmesh/sandboxmesh/operator/local"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// systemNamespace is the operator's namespace in these tests (the local workloads' Services live there).
const systemNamespace = "sandboxmesh-system"

// startLocalGateway starts a real local-workload gateway on 127.0.0.1 and the operator's Router over it
// (listeners on 127.0.0.1, Services in systemNamespace naming a pod 10.244.0.7).
func startLocalGateway(e *testenv.Env) (*local.Router, string, error) {
	if err := e.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: systemNamespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, "", err
	}
	router, err := local.New(local.Config{
		Services:   local.ServiceConfig{Namespace: systemNamespace, PodName: "operator-0", PodIP: "10.244.0.7"}, // the API server refuses loopback endpoints
		ListenHost: "127.0.0.1", FirstPort: 42100, LastPort: 42199,
		Policy:    localtunnel.ClusterPolicy{CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		Heartbeat: 200 * time.Millisecond,
	})
	if err != nil {
		return nil, "", err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	go func() { _ = router.Gateway().Serve(ln) }()
	return router, ln.Addr().String(), nil
}

// TestLocalWorkload: a sandbox whose route is local to a machine. Before the machine connects the sandbox
// is LocalNotConnected and its key stays on the baseline; once the machine's real tunnel client connects,
// the local workload gets a Service in the operator's namespace (its EndpointSlice names the operator's
// listener), the route leads there and a connection to the listener reaches the machine's process; when
// the machine goes away the route and the Service go and the status says so; it comes back on reconnect;
// deleting the sandbox removes the Service and closes the listener.
func TestLocalWorkload(t *testing.T) {
	ctx := context.Background()
	ns := "localwl"
	world(t, ns, "route")
	laptop := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "served on the laptop: %s", r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	lln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = laptop.Serve(lln) }()
	t.Cleanup(func() { laptop.Close() })
	id, _, err := localtunnel.LoadOrCreateIdentity(filepath.Join(t.TempDir(), "machine.key"))
	if err != nil {
		t.Fatal(err)
	}
	newClient := func() *localtunnel.Client {
		cl, err := localtunnel.NewClient(localtunnel.ClientConfig{Identity: id, Dial: localtunnel.TCPDialer(gatewayAddr), Heartbeat: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		cl.Allow("feature-l", []localtunnel.LocalTarget{{Local: "route", ToLocal: lln.Addr().String()}})
		return cl
	}

	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "feature-l", Namespace: ns}, Spec: smv1.SandboxSpec{
		LocalMachineID: id.MachineID(),
		Local: []smv1.Local{{Name: "route", From: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: "route"},
			Mappings: []smv1.PortMapping{{Port: 8080, ToLocal: lln.Addr().String()}}}}}}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	s := waitCondition(t, key, smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonLocalNotConnected)
	rk := s.Status.RoutingKey
	if len(s.Status.Local) != 1 || s.Status.Local[0].Tunnel.Connected || s.Status.Local[0].Service != "" {
		t.Fatalf("status.local before the machine connected: %+v", s.Status.Local)
	}
	if _, ok := routeTarget(ns, "route", rk); ok {
		t.Fatal("route published before the machine connected")
	}
	svcKey := types.NamespacedName{Namespace: systemNamespace, Name: naming.LocalName(ns, "feature-l", "route")}

	connect := func() context.CancelFunc {
		cctx, cancel := context.WithCancel(ctx)
		cl := newClient()
		go func() { _ = cl.Run(cctx) }()
		return cancel
	}
	var port int32
	connected := func() {
		t.Helper()
		s := waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
		if len(s.Status.Local) != 1 || !s.Status.Local[0].Tunnel.Connected || s.Status.Local[0].Tunnel.LastHeartbeat == nil || s.Status.Local[0].Service != svcKey.Name {
			t.Fatalf("status.local connected: %+v", s.Status.Local)
		}
		svc, ok := get(t, svcKey, &corev1.Service{})
		if !ok || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 80 || len(svc.Spec.Selector) != 0 {
			t.Fatalf("local Service: %+v", svc.Spec)
		}
		eps, ok := get(t, svcKey, &discoveryv1.EndpointSlice{})
		if !ok || len(eps.Endpoints) != 1 || eps.Endpoints[0].Addresses[0] != "10.244.0.7" || len(eps.Ports) != 1 || eps.Labels[discoveryv1.LabelServiceName] != svcKey.Name ||
			len(eps.OwnerReferences) != 1 || eps.OwnerReferences[0].Name != svcKey.Name {
			t.Fatalf("local EndpointSlice: %+v", eps)
		}
		port = *eps.Ports[0].Port
		if svc.Spec.Ports[0].TargetPort.IntVal != port {
			t.Fatalf("Service targetPort %v, EndpointSlice port %d", svc.Spec.Ports[0].TargetPort, port)
		}
		eventually(t, "the route to the local workload", func() (bool, string) {
			tg, ok := routeTarget(ns, "route", rk)
			if !ok {
				return false, "no route"
			}
			want := svcKey.Name + "." + systemNamespace + ".svc.cluster.local"
			return tg.Destination.Kind == routeapi.DestinationLocal && tg.Destination.Host == want, fmt.Sprintf("%+v", *tg.Destination)
		})
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/eta", port))
		if err != nil {
			t.Fatalf("through the operator's listener: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "served on the laptop: /eta" {
			t.Fatalf("through the operator's listener: %d %q", resp.StatusCode, b)
		}
	}
	disconnected := func(stop context.CancelFunc) {
		t.Helper()
		stop()
		start := time.Now()
		eventually(t, "the route to go", func() (bool, string) {
			_, ok := routeTarget(ns, "route", rk)
			return !ok, "route still there"
		})
		t.Logf("machine gone -> route gone in %s", time.Since(start).Round(time.Millisecond))
		s := waitCondition(t, key, smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonLocalNotConnected)
		if s.Status.Local[0].Tunnel.Connected {
			t.Fatalf("status.local after the machine went: %+v", s.Status.Local)
		}
		eventually(t, "the local Service to go", func() (bool, string) {
			err := c.Get(ctx, svcKey, &corev1.Service{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			t.Fatal("the listener still accepts after the machine went")
		}
	}

	stop := connect()
	connected()
	// The gateway answers the machine's catalog from the operator's cache: the baseline Service is in it,
	// the local workload's Service is not.
	cat := newClient()
	cctx, ccancel := context.WithCancel(ctx)
	go func() { _ = cat.Run(cctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	if err := cat.WaitConnected(wctx); err != nil {
		t.Fatal(err)
	}
	wcancel()
	svcs, err := cat.Catalog(ctx)
	ccancel()
	if err != nil {
		t.Fatal(err)
	}
	var sawRoute, sawLocal bool
	for _, s := range svcs {
		sawRoute = sawRoute || s.Namespace == ns && s.Name == "route" && len(s.Ports) == 1 && s.Ports[0] == 80
		sawLocal = sawLocal || s.Namespace == systemNamespace
	}
	if !sawRoute || sawLocal {
		t.Fatalf("catalog %+v: want route of %s, no local Service", svcs, ns)
	}
	stop()
	stop = connect()
	connected()
	disconnected(stop)
	stop = connect()
	connected()
	defer stop()

	if err := c.Delete(ctx, sb); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the sandbox and its local Service to go", func() (bool, string) {
		err1 := c.Get(ctx, key, &smv1.Sandbox{})
		err2 := c.Get(ctx, svcKey, &corev1.Service{})
		return apierrors.IsNotFound(err1) && apierrors.IsNotFound(err2), fmt.Sprint(err1, err2)
	})
	if _, ok := localRouter.Port(local.Key{Sandbox: ns + "/feature-l", Local: "route", Port: 8080}); ok {
		t.Fatal("the listener outlived the sandbox")
	}
}

// TestLocalOverride: a sandbox whose virtual workload route is overridden by a forward to a machine
// (spec.routing.forwards + an override middleware, as `sandboxmesh local override` writes them). Before the
// machine connects the key's route leads to the baseline without override and the sandbox is
// LocalNotConnected; once the machine's tunnel client connects, the forward gets a Service in the
// operator's namespace and the route carries the override (that Service, the overridden port, the
// policy's status codes), while the route's destination stays the baseline; when the machine goes the
// override goes and the route stays. A middleware whose match names no workload is a blocking problem.
func TestLocalOverride(t *testing.T) {
	ctx := context.Background()
	ns := "localov"
	world(t, ns, "route")
	lln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	laptop := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("sm-override", "true")
		fmt.Fprintf(w, "overridden on the laptop: %s", r.URL.Path)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = laptop.Serve(lln) }()
	t.Cleanup(func() { laptop.Close() })
	id, _, err := localtunnel.LoadOrCreateIdentity(filepath.Join(t.TempDir(), "machine.key"))
	if err != nil {
		t.Fatal(err)
	}
	sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: "feature-o", Namespace: ns}, Spec: smv1.SandboxSpec{
		LocalMachineID: id.MachineID(),
		Virtual:        []smv1.Virtual{{Name: "route", Workload: smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: "route"}}},
		Routing:        &smv1.SandboxRouting{Forwards: []smv1.Forward{{Name: "override-1", Port: 8080, ToLocal: lln.Addr().String()}}},
		Middleware: []smv1.Middleware{{Name: smv1.MiddlewareOverride,
			Args: []smv1.MiddlewareArg{
				{Name: smv1.OverrideArgHost, ValueFrom: &smv1.MiddlewareArgValueFrom{Forward: "override-1"}},
				{Name: smv1.OverrideArgPolicy, Value: `{"exceptStatusCodes":[404,503]}`}},
			Match: []smv1.MiddlewareMatch{{Workload: "rou*"}}}}}}
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	s := waitCondition(t, key, smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonLocalNotConnected)
	rk := s.Status.RoutingKey
	if len(s.Status.Local) != 1 || s.Status.Local[0].Name != "override-1" || s.Status.Local[0].Tunnel.Connected {
		t.Fatalf("status.local before the machine connected: %+v", s.Status.Local)
	}
	eventually(t, "the virtual route without override", func() (bool, string) {
		tg, ok := routeTarget(ns, "route", rk)
		if !ok {
			return false, "no route"
		}
		return tg.Destination.Kind == routeapi.DestinationBaseline && tg.Destination.Override == nil && tg.OverrideAddr == "", fmt.Sprintf("%+v", *tg.Destination)
	})

	cl, err := localtunnel.NewClient(localtunnel.ClientConfig{Identity: id, Dial: localtunnel.TCPDialer(gatewayAddr), Heartbeat: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cl.Allow("feature-o", []localtunnel.LocalTarget{{Local: "override-1", ToLocal: lln.Addr().String()}})
	cctx, stop := context.WithCancel(ctx)
	go func() { _ = cl.Run(cctx) }()
	defer stop()
	svcName := naming.LocalName(ns, "feature-o", "override-1")
	s = waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
	if len(s.Status.Local) != 1 || !s.Status.Local[0].Tunnel.Connected || s.Status.Local[0].Service != svcName {
		t.Fatalf("status.local connected: %+v", s.Status.Local)
	}
	eventually(t, "the override on the route", func() (bool, string) {
		tg, ok := routeTarget(ns, "route", rk)
		if !ok || tg.Destination.Override == nil {
			return false, "no override"
		}
		o := tg.Destination.Override
		want := svcName + "." + systemNamespace + ".svc.cluster.local"
		return tg.Destination.Kind == routeapi.DestinationBaseline && o.Host == want && tg.OverrideAddr == want+":80" &&
			len(o.ExceptStatusCodes) == 2 && o.ExceptStatusCodes[1] == 503, fmt.Sprintf("%+v %s", *o, tg.OverrideAddr)
	})
	eps, ok := get(t, types.NamespacedName{Namespace: systemNamespace, Name: svcName}, &discoveryv1.EndpointSlice{})
	if !ok || len(eps.Ports) != 1 {
		t.Fatalf("forward's EndpointSlice: %+v", eps)
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/x", *eps.Ports[0].Port))
	if err != nil {
		t.Fatalf("through the forward's listener: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "overridden on the laptop: /x" {
		t.Fatalf("through the forward's listener: %d %q", resp.StatusCode, b)
	}

	stop()
	eventually(t, "the override to go, the route to stay", func() (bool, string) {
		tg, ok := routeTarget(ns, "route", rk)
		return ok && tg.Destination.Override == nil, fmt.Sprintf("route %v", ok)
	})

	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var cur smv1.Sandbox
		if err := c.Get(ctx, key, &cur); err != nil {
			return err
		}
		cur.Spec.Middleware[0].Match[0].Workload = "nothing"
		return c.Update(ctx, &cur)
	}); err != nil {
		t.Fatal(err)
	}
	s = waitCondition(t, key, smv1.ConditionDegraded, metav1.ConditionTrue, smv1.ReasonInvalidCustomization)
	if m := meta.FindStatusCondition(s.Status.Conditions, smv1.ConditionDegraded).Message; !strings.Contains(m, "spec.middleware[0].match") {
		t.Fatalf("Degraded message %q", m)
	}
}
