//go:build e2e

package e2e_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
	"github.com/sandboxmesh/sandboxmesh/localtunnel/hostnet"
)

// localWorkload: hotrod's route (HTTP) and driver (gRPC) run as plain processes on the host ("the laptop"), a
// sandbox names them as local workloads of the cluster's route and driver with this machine's id; the machine's tunnel client connects to
// the operator's gateway (ProxyAddress: the operator pod's IP, which the host reaches over the cluster's
// bridge). Keyed requests to frontend reach the host process, unkeyed ones the baseline; the host process's
// outbound reaches a cluster Service by name through the tunnel (SOCKS5); when the machine goes away keyed
// requests are served by the baseline (never an error) and come back on reconnect.
func localWorkload(ctx context.Context, t *testing.T, e *demo.Env, h *hitter) {
	const sandbox = "route-local"
	laptop := startLaptopRoute(ctx, t, sandbox, "laptop")
	// The driver answers gRPC (frontend → driver is hotrod.driver.v1.Driver/FindNearest over h2c): a second
	// local workload of the same sandbox, so keyed requests show both protocols reaching the host. It calls
	// the cluster's customer by its Service IP (the host reaches Service IPs through kube-proxy).
	customer, err := e.Kube.CoreV1().Services(demo.ExampleNamespace).Get(ctx, "customer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	laptopDriver, err := app.Start(ctx, app.Config{Service: app.Driver, HTTPAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		CustomerURL: "http://" + net.JoinHostPort(customer.Spec.ClusterIP, "8081"),
		Identity:    app.Identity{Version: "laptop", Sandbox: sandbox, Pod: "laptop"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = laptopDriver.Shutdown(sctx)
	}()
	id, _, err := localtunnel.LoadOrCreateIdentity(filepath.Join(t.TempDir(), "machine.key"))
	if err != nil {
		t.Fatal(err)
	}
	gateway := operatorGateway(ctx, t, e)
	connect := func() (*localtunnel.Client, context.CancelFunc) {
		cl, err := localtunnel.NewClient(localtunnel.ClientConfig{Identity: id, Dial: localtunnel.TCPDialer(gateway), Label: "e2e-laptop",
			Heartbeat: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		cl.Allow(sandbox, []localtunnel.LocalTarget{{Local: "route", ToLocal: laptop.HTTPAddr()}, {Local: "driver", ToLocal: laptopDriver.GRPCAddr()}})
		cctx, cancel := context.WithCancel(ctx)
		go func() { _ = cl.Run(cctx) }()
		wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
		defer wcancel()
		if err := cl.WaitConnected(wctx); err != nil {
			cancel()
			t.Fatalf("the machine's tunnel to %s: %v", gateway, err)
		}
		return cl, cancel
	}
	cl, stop := connect()
	defer func() { stop() }()

	start := time.Now()
	sb := &cpclient.Sandbox{Name: sandbox, Spec: v1alpha1.SandboxSpec{Cluster: e.Cluster, LocalMachineID: id.MachineID(),
		Local: []v1alpha1.Local{{Name: "route", From: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: demo.ExampleNamespace, Name: "route"},
			Mappings: []v1alpha1.PortMapping{{Port: 8083, ToLocal: laptop.HTTPAddr()}}},
			{Name: "driver", From: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: demo.ExampleNamespace, Name: "driver"},
				Mappings: []v1alpha1.PortMapping{{Port: 9082, ToLocal: laptopDriver.GRPCAddr()}}}}}}
	sb, err = e.API.ApplySandbox(ctx, e.Org, sb)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.API.DeleteSandbox(context.Background(), e.Org, sandbox) }()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := e.API.WaitForReady(wctx, e.Org, sandbox, &cpclient.WaitOptions{Interval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("sandbox %s not ready: %v", sandbox, err)
	}
	if got, err := e.API.GetSandbox(ctx, e.Org, sandbox); err != nil || len(got.Status.Local) != 2 || !got.Status.Local[0].Tunnel.Connected || got.Status.Local[0].Service == "" {
		t.Errorf("the API's status.local of a connected machine: %+v %v", got.Status.Local, err)
	}
	key := sb.RoutingKey
	servedLocally := func() bool {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+key)
		return err == nil && servedBy(tree)["route"] == sandbox && tree.Find("route") != nil && tree.Find("route").Version == "laptop" &&
			servedBy(tree)["driver"] == sandbox && tree.Find("driver").Version == "laptop" // HTTP and gRPC
	}
	waitFor(ctx, t, time.Minute, "a keyed request served by the host process", func() error {
		if !servedLocally() {
			return fmt.Errorf("route not served by the laptop")
		}
		return nil
	})
	record(t, "local_apply_to_first_local_request", time.Since(start))
	for range 10 {
		if got := servedBy(h.must(ctx, "", "")); got["route"] != "" {
			t.Fatalf("an unkeyed request reached the laptop: %v", got)
		}
		if !servedLocally() {
			t.Fatal("a keyed request missed the laptop")
		}
	}

	localVersusFork(ctx, t, e, key, sandbox)

	// The host process reaches a cluster Service by its name through the tunnel.
	socks, err := localtunnel.NewSOCKSServer(localtunnel.SOCKSConfig{Dial: cl.DialCluster})
	if err != nil {
		t.Fatal(err)
	}
	sln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sln.Close()
	go func() { _ = socks.Serve(sln) }()
	pc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5", Host: sln.Addr().String()})}}
	resp, err := pc.Get("http://customer." + demo.ExampleNamespace + ".svc:8081/customer?id=392")
	if err != nil {
		t.Fatalf("outbound through the tunnel: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("outbound through the tunnel: %d %s", resp.StatusCode, body)
	}

	// Root mode: the cluster's Service names in /etc/hosts at virtual IPs redirected to a transparent
	// listener; a plain client resolving through the system's resolver reaches the Service; disconnecting
	// leaves /etc/hosts and the nat table as they were.
	rootMode(ctx, t, cl)

	// The machine goes away mid-traffic: keyed requests are served by the baseline, without errors.
	stop()
	gone := time.Now()
	var errs int
	for {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+key)
		if err != nil {
			errs++
		} else if servedBy(tree)["route"] == "" {
			break
		}
		if time.Since(gone) > 30*time.Second {
			t.Fatalf("keyed requests still not on the baseline 30 s after the machine left (%d errors)", errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	record(t, "local_machine_gone_to_baseline", time.Since(gone))
	if took := time.Since(gone); took > 2*time.Second {
		t.Errorf("keyed requests reached the baseline %s after the machine left, want ≤ 2 s", took.Round(time.Millisecond))
	}
	if errs > 0 {
		t.Logf("%d keyed requests failed while the machine left", errs)
	}
	waitFor(ctx, t, 30*time.Second, "the API to say the machine is not connected", func() error {
		got, err := e.API.GetSandbox(ctx, e.Org, sandbox)
		if err != nil {
			return err
		}
		if got.Status.Ready || got.Status.Reason != v1alpha1.ReasonLocalNotConnected || len(got.Status.Local) != 2 || got.Status.Local[0].Tunnel.Connected {
			return fmt.Errorf("status %s/%s local %+v", got.Status.Reason, got.Status.Message, got.Status.Local)
		}
		return nil
	})
	// Reconnect: back to the host process.
	_, stop = connect()
	back := time.Now()
	waitFor(ctx, t, time.Minute, "keyed requests back at the host process", func() error {
		if !servedLocally() {
			return fmt.Errorf("route not served by the laptop")
		}
		return nil
	})
	record(t, "local_reconnect_to_local", time.Since(back))
}

func rootMode(ctx context.Context, t *testing.T, cl *localtunnel.Client) {
	t.Helper()
	hostsBefore, err := os.ReadFile(hostnet.DefaultHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := cl.Catalog(ctx)
	if err != nil {
		t.Fatalf("catalog: %v", err)
	}
	tb, err := hostnet.NewTable(hostnet.DefaultVirtualNet, "", svcs)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { _ = hostnet.Serve(ln, tb, cl.DialCluster, nil) }()
	undo := func() {
		if err := hostnet.RemoveHosts(hostnet.DefaultHostsFile); err != nil {
			t.Error(err)
		}
		if err := hostnet.Unredirect(hostnet.DefaultChain, hostnet.DefaultVirtualNet); err != nil {
			t.Error(err)
		}
	}
	defer undo()
	if err := hostnet.Redirect(hostnet.DefaultChain, hostnet.DefaultVirtualNet, nil, ln.Addr().(*net.TCPAddr).Port); err != nil {
		t.Fatal(err)
	}
	if err := hostnet.WriteHosts(hostnet.DefaultHostsFile, tb); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	for _, name := range []string{"customer." + demo.ExampleNamespace, "customer." + demo.ExampleNamespace + ".svc.cluster.local"} {
		resp, err := c.Get("http://" + name + ":8081/customer?id=392")
		if err != nil {
			t.Fatalf("root mode, %s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("root mode, %s: %d %s", name, resp.StatusCode, b)
		}
	}
	t.Logf("root mode: %d Services in /etc/hosts", tb.Len())
	undo()
	if after, _ := os.ReadFile(hostnet.DefaultHostsFile); string(after) != string(hostsBefore) {
		t.Errorf("/etc/hosts not restored:\nbefore %q\nafter  %q", hostsBefore, after)
	}
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), hostnet.DefaultChain) || strings.Contains(string(out), hostnet.DefaultVirtualNet.String()) {
		t.Errorf("the nat table still has our rules:\n%s", out)
	}
}

// startLaptopRoute runs hotrod's route as a process of this machine ("the laptop"), answering as version of
// sandbox, until the test ends.
func startLaptopRoute(ctx context.Context, t *testing.T, sandbox, version string) *app.Server {
	t.Helper()
	laptop, err := app.Start(ctx, app.Config{Service: app.Route, HTTPAddr: "127.0.0.1:0",
		Identity: app.Identity{Version: version, Sandbox: sandbox, Pod: "laptop"}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = laptop.Shutdown(sctx)
	})
	return laptop
}

// operatorGateway is the local-workload gateway's address on the operator pod (this machine reaches pod IPs
// over the cluster's bridge: a ProxyAddress connection).
func operatorGateway(ctx context.Context, t *testing.T, e *demo.Env) string {
	t.Helper()
	pods, err := e.Kube.CoreV1().Pods(e.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=operator"})
	if err != nil || len(pods.Items) == 0 || pods.Items[0].Status.PodIP == "" {
		t.Fatalf("operator pod: %v %v", pods, err)
	}
	return net.JoinHostPort(pods.Items[0].Status.PodIP, "15013")
}
