package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/internal/cli"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/localtunnel"
	"github.com/sandboxmesh/sandboxmesh/localtunnel/hostnet/hostnettest"
)

// localRig is a real local gateway on 127.0.0.1 and a CLI home whose config
// reaches it with type ProxyAddress; daemons run in-process.
type localRig struct {
	t       *testing.T
	gw      *localtunnel.Gateway
	home    string
	vars    map[string]string
	web     string // host:port of an HTTP server "in the cluster" (web.shop)
	proxy   string // --proxy-address for connect
	mu      sync.Mutex
	daemons []chan error
	logs    *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLocalRig(t *testing.T) *localRig {
	t.Helper()
	web := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "cluster web saw %s %s", r.Method, r.URL.Path)
	}))
	gw, err := localtunnel.NewGateway(localtunnel.GatewayConfig{
		Catalog: func(context.Context) ([]localtunnel.CatalogService, error) {
			return []localtunnel.CatalogService{{Name: "web", Namespace: "shop", Ports: []int32{80}}}, nil
		},
		Policy: localtunnel.ClusterPolicy{CIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
				if host == "web.shop.svc.cluster.local." {
					return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
				}
				return nil, fmt.Errorf("no such host %s", host)
			}},
		Heartbeat: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gw.Serve(l)
	t.Cleanup(func() { gw.Close() })
	r := &localRig{t: t, gw: gw, home: t.TempDir(), vars: map[string]string{}, web: web, proxy: "127.0.0.1:0", logs: &lockedBuffer{}}
	// Tests run as root here: root mode writes a hosts file of the test's and a chain of its own.
	hosts := filepath.Join(r.home, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.vars[cli.EnvLocalHostsFile] = hosts
	r.vars[cli.EnvLocalChain] = fmt.Sprintf("SM-CLI-%d", os.Getpid()%100000)
	r.writeConfig("local:\n  virtualIPNet: 242.243.9.0/24\n  connections:\n    - cluster: dev\n      type: ProxyAddress\n      proxyAddress: " + l.Addr().String() + "\n")
	t.Cleanup(r.stopDaemons)
	return r
}

func (r *localRig) writeConfig(s string) {
	dir := filepath.Join(r.home, ".sandboxmesh")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), []byte(s), 0o600); err != nil {
		r.t.Fatal(err)
	}
}

// httpServer serves h on 127.0.0.1 and returns its address.
func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func (r *localRig) app(stdin string, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Stdin: strings.NewReader(stdin), Stdout: stdout, Stderr: stderr,
		Getenv: func(k string) string { return r.vars[k] }, Home: r.home,
		WaitInterval: 20 * time.Millisecond,
		SpawnDaemon:  r.spawn,
	}
}

// spawn runs the hidden `local daemon` command in-process, as the re-exec would.
func (r *localRig) spawn(args []string, logFile string) (<-chan error, error) {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	ch, done := make(chan error, 1), make(chan error, 1)
	go func() {
		defer lf.Close()
		var out bytes.Buffer
		code := r.app("", &out, io.MultiWriter(r.logs, lf)).Execute(context.Background(), args)
		var err error
		if code != 0 {
			err = fmt.Errorf("daemon exit %d", code)
		}
		ch <- err
		done <- err
	}()
	r.mu.Lock()
	r.daemons = append(r.daemons, done)
	r.mu.Unlock()
	return ch, nil
}

func (r *localRig) stopDaemons() {
	r.run("local", "disconnect")
	r.mu.Lock()
	ds := r.daemons
	r.mu.Unlock()
	for _, d := range ds {
		select {
		case <-d:
		case <-time.After(10 * time.Second):
			r.t.Error("a daemon did not stop")
		}
	}
}

func (r *localRig) runIn(stdin string, args ...string) result {
	r.t.Helper()
	var out, errb bytes.Buffer
	code := r.app(stdin, &out, &errb).Execute(context.Background(), args)
	return result{out.String(), errb.String(), code}
}

func (r *localRig) run(args ...string) result { r.t.Helper(); return r.runIn("", args...) }

func (r *localRig) mustRun(args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("sandboxmesh %s: exit %d\nstdout: %s\nstderr: %s\ndaemon log: %s", strings.Join(args, " "), res.code, res.stdout, res.stderr, r.logs.String())
	}
	return res
}

func (r *localRig) status() cli.LocalDaemonStatus {
	r.t.Helper()
	var st cli.LocalDaemonStatus
	if err := json.Unmarshal([]byte(r.mustRun("local", "status", "-o", "json").stdout), &st); err != nil {
		r.t.Fatal(err)
	}
	return st
}

func TestLocalConnectStatusDisconnect(t *testing.T) {
	r := newLocalRig(t)
	dir := filepath.Join(r.home, ".sandboxmesh", "local")

	// Before connect: not running, no key yet.
	st := r.status()
	if st.Phase != cli.PhaseNotRunning || st.MachineID != "" {
		t.Fatalf("status before connect: %+v", st)
	}
	if out := r.mustRun("local", "status").stdout; !strings.Contains(out, "not running") {
		t.Errorf("status table before connect:\n%s", out)
	}

	res := r.mustRun("local", "connect", "--proxy-address", "127.0.0.1:0")
	id, err := localtunnel.LoadIdentity(filepath.Join(dir, "machine.key"))
	if err != nil {
		t.Fatal(err)
	}
	machine := id.MachineID()
	if !strings.Contains(res.stdout, "machine ID: "+machine) || !strings.Contains(res.stdout, "connected to cluster dev") {
		t.Errorf("connect output:\n%s", res.stdout)
	}
	if !strings.Contains(res.stderr, "created machine key") || !strings.Contains(res.stderr, "ProxyAddress") {
		t.Errorf("connect progress:\n%s", res.stderr)
	}
	if !r.gw.Connected(machine) {
		t.Fatal("the gateway does not see the machine")
	}
	for _, f := range []string{"daemon.sock", "machine.key"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", f, fi.Mode().Perm())
		}
	}

	st = r.status()
	if st.Phase != "Connected" || st.MachineID != machine || st.Cluster != "dev" || st.ConnectionType != "ProxyAddress" || st.ConnectedSince == nil || st.ProxyAddress == "" || st.PID != os.Getpid() {
		t.Errorf("status: %+v", st)
	}
	table := r.mustRun("local", "status").stdout
	for _, want := range []string{"MACHINE ID", machine, "dev", "Connected", st.ProxyAddress} {
		if !strings.Contains(table, want) {
			t.Errorf("status table lacks %q:\n%s", want, table)
		}
	}

	// A second connect finds the running daemon; another cluster is refused.
	if res := r.mustRun("local", "connect"); !strings.Contains(res.stderr, "already running") {
		t.Errorf("second connect: %+v", res)
	}
	r.writeConfig(strings.Replace(mustRead(t, filepath.Join(r.home, ".sandboxmesh", "config.yaml")), "cluster: dev", "cluster: staging", 1))
	if res := r.run("local", "connect"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "connected to cluster dev") {
		t.Errorf("connect to another cluster: %+v", res)
	}

	// Outbound: the proxy reaches cluster names through the tunnel (HTTP proxy
	// and SOCKS5 with remote resolution), and refuses other names.
	_, port, _ := net.SplitHostPort(r.web)
	for _, scheme := range []string{"http", "socks5h"} {
		pu, _ := url.Parse(scheme + "://" + st.ProxyAddress)
		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
		resp, err := hc.Get("http://web.shop:" + port + "/hello")
		if err != nil {
			t.Fatalf("%s proxy: %v", scheme, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "cluster web saw GET /hello" {
			t.Errorf("%s proxy: %q", scheme, b)
		}
	}

	// disconnect stops the daemon and removes its socket and pid file; twice is fine.
	if res := r.mustRun("local", "disconnect"); !strings.Contains(res.stdout, "disconnected machine "+machine) {
		t.Errorf("disconnect: %+v", res)
	}
	for _, f := range []string{"daemon.sock", "daemon.pid"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("%s still there after disconnect: %v", f, err)
		}
	}
	waitFor(t, func() bool { return !r.gw.Connected(machine) })
	if res := r.mustRun("local", "disconnect"); !strings.Contains(res.stdout, "not connected") {
		t.Errorf("second disconnect: %+v", res)
	}
	if st := r.status(); st.Phase != cli.PhaseNotRunning || st.MachineID != machine {
		t.Errorf("status after disconnect: %+v", st)
	}
}

func TestLocalConnectTimesOutWithReason(t *testing.T) {
	r := newLocalRig(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens: every dial fails
	r.writeConfig("local:\n  connections:\n    - cluster: dev\n      type: ProxyAddress\n      proxyAddress: " + addr + "\n")
	res := r.run("local", "connect", "--proxy-address", "127.0.0.1:0", "--wait-timeout", "1s")
	if res.code != cli.ExitTimeout || !strings.Contains(res.stderr, "connection refused") || !strings.Contains(res.stderr, "keeps trying") {
		t.Errorf("connect to a dead gateway: %+v", res)
	}
	if st := r.status(); st.Phase != "Backoff" && st.Phase != "Connecting" {
		t.Errorf("status: %+v", st)
	}
}

func TestLocalConnectProxyPortInUse(t *testing.T) {
	r := newLocalRig(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res := r.run("local", "connect", "--proxy-address", l.Addr().String())
	if res.code != cli.ExitError || !strings.Contains(res.stderr, "exited before connecting") || !strings.Contains(res.stderr, "address already in use") || !strings.Contains(res.stderr, "--proxy-address") {
		t.Errorf("connect with the proxy port taken: %+v", res)
	}
	if st := r.status(); st.Phase != cli.PhaseNotRunning {
		t.Errorf("status: %+v", st)
	}
}

func TestLocalConnectConfigErrors(t *testing.T) {
	r := newLocalRig(t)
	r.writeConfig("org: acme\n")
	if res := r.run("local", "connect"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "no local.connections") {
		t.Errorf("no connections: %+v", res)
	}
	r.writeConfig("local:\n  connections:\n    - cluster: a\n      type: ProxyAddress\n      proxyAddress: x:1\n    - cluster: b\n      type: ProxyAddress\n      proxyAddress: x:1\n")
	if res := r.run("local", "connect"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "--cluster") {
		t.Errorf("ambiguous: %+v", res)
	}
	if res := r.run("local", "connect", "--cluster", "c"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, `"c"`) {
		t.Errorf("unknown cluster: %+v", res)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestLocalSandboxApply: apply fills in spec.localMachineID and registers the
// local workload with the daemon, so the gateway reaches a process on this
// machine; the allow-list survives a daemon restart; delete revokes it.
func TestLocalSandboxApply(t *testing.T) {
	h := newHarness(t)
	r := newLocalRig(t)
	r.vars = h.vars
	ctx := context.Background()
	// The "local workload": a TCP server on this machine.
	svc := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "local route") }))
	apply := []string{"sandbox", "apply", "-f", "testdata/sandbox-local.yaml", "--set", "name=mine", "--set", "toLocal=" + svc}

	res := r.run(apply...)
	if res.code != cli.ExitUsage || !strings.Contains(res.stderr, "local connect") {
		t.Fatalf("apply before connect: %+v", res)
	}
	r.mustRun("local", "connect", "--proxy-address", "127.0.0.1:0")
	machine := r.status().MachineID
	r.mustRun(apply...)
	sb, err := h.env.Client.GetSandbox(ctx, cptest.Org, "mine")
	if err != nil {
		t.Fatal(err)
	}
	if sb.Spec.LocalMachineID != machine {
		t.Fatalf("spec.localMachineID %q, want %q", sb.Spec.LocalMachineID, machine)
	}
	st := r.status()
	if len(st.Sandboxes) != 1 || st.Sandboxes[0].Name != "mine" || len(st.Sandboxes[0].Locals) != 1 || st.Sandboxes[0].Locals[0] != (cli.LocalServed{Local: "route", ToLocal: svc}) {
		t.Fatalf("served sandboxes: %+v", st.Sandboxes)
	}
	if out := r.mustRun("local", "status").stdout; !strings.Contains(out, "mine") || !strings.Contains(out, svc) {
		t.Errorf("status table:\n%s", out)
	}
	if out := r.mustRun("sandbox", "get", "mine").stdout; !strings.Contains(out, "Deployment/hotrod/route") || !strings.Contains(out, svc) || !strings.Contains(out, machine) {
		t.Errorf("sandbox get:\n%s", out)
	}
	reach := func() error {
		c, err := r.gw.DialLocal(ctx, machine, "mine", "route", svc)
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: route\r\n\r\n")
		b, _ := io.ReadAll(c)
		if !strings.HasSuffix(string(b), "local route") {
			return fmt.Errorf("answer %q", b)
		}
		return nil
	}
	if err := reach(); err != nil {
		t.Fatalf("gateway → machine → local process: %v", err)
	}
	if _, err := r.gw.DialLocal(ctx, machine, "mine", "route", "127.0.0.1:22"); err == nil {
		t.Error("an unregistered toLocal was served")
	}

	// The allow-list is on disk; a restarted daemon serves the sandbox again.
	r.mustRun("local", "disconnect")
	if al := mustRead(t, filepath.Join(r.home, ".sandboxmesh", "local", "allowed.json")); !strings.Contains(al, `"mine"`) {
		t.Errorf("allowed.json: %s", al)
	}
	r.mustRun("local", "connect", "--proxy-address", "127.0.0.1:0")
	if err := reach(); err != nil {
		t.Fatalf("after a restart: %v", err)
	}

	// delete revokes.
	r.mustRun("sandbox", "delete", "mine")
	if st := r.status(); len(st.Sandboxes) != 0 {
		t.Errorf("served after delete: %+v", st.Sandboxes)
	}
	if err := reach(); err == nil {
		t.Error("served after delete")
	}

	// Without a running daemon, apply records the allow-list and warns.
	r.mustRun("local", "disconnect")
	res = r.mustRun(apply...)
	if !strings.Contains(res.stderr, "daemon is not running") {
		t.Errorf("apply without daemon: %+v", res)
	}
	if st := r.status(); st.Phase != cli.PhaseNotRunning || len(st.Sandboxes) != 1 {
		t.Errorf("status: %+v", st)
	}
}

// TestLocalConnectRootMode (root): connect as root puts the catalog's Service names into the hosts file
// at virtual IPs and redirects them, so a plain HTTP client reaches the cluster Service through the
// tunnel; status shows it; disconnect restores the hosts file byte for byte and removes the chain.
func TestLocalConnectRootMode(t *testing.T) {
	hostnettest.RequireRoot(t)
	r := newLocalRig(t)
	hosts := r.vars[cli.EnvLocalHostsFile]
	before := mustRead(t, hosts)
	r.mustRun("local", "connect", "--proxy-address", "127.0.0.1:0")
	var st cli.LocalDaemonStatus
	deadline := time.Now().Add(10 * time.Second)
	for st = r.status(); st.Root == nil || !st.Root.Active; st = r.status() {
		if time.Now().After(deadline) {
			t.Fatalf("root mode not active: %+v", st.Root)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st.Root.Services != 1 || !strings.Contains(mustRead(t, hosts), "242.243.9.1 web.shop web.shop.svc web.shop.svc.cluster.local") {
		t.Fatalf("root mode %+v, hosts:\n%s", st.Root, mustRead(t, hosts))
	}
	if out := r.mustRun("local", "status").stdout; !strings.Contains(out, "root mode: on: 1 Service names") {
		t.Errorf("status table:\n%s", out)
	}
	_, port, _ := net.SplitHostPort(r.web)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Get("http://242.243.9.1:" + port + "/hello")
	if err != nil {
		t.Fatalf("through root mode: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "cluster web saw GET /hello" {
		t.Fatalf("through root mode: %d %q", resp.StatusCode, b)
	}
	r.mustRun("local", "disconnect")
	if after := mustRead(t, hosts); after != before {
		t.Errorf("hosts file not restored: %q, want %q", after, before)
	}
	out, err := exec.Command("iptables-save", "-t", "nat").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), r.vars[cli.EnvLocalChain]) {
		t.Errorf("the chain is still there:\n%s", out)
	}
}

// TestLocalOverrideCommand: `local override` adds a forward and an override middleware to the sandbox
// (filling in spec.localMachineID), registers the forward with the daemon so the gateway reaches the
// local process under the forward's name, waits for the sandbox, and shows in `override list`;
// `override delete` removes both and revokes; without --detach, an interrupt removes the override.
func TestLocalOverrideCommand(t *testing.T) {
	h := newHarness(t)
	r := newLocalRig(t)
	r.vars = h.vars
	ctx := context.Background()
	svc := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("sm-override", "true")
		fmt.Fprint(w, "overridden cart")
	}))
	_, port, _ := net.SplitHostPort(svc)
	r.mustRun(applyArgs("feat", "cart:v2")...)
	// The cluster's agent: reports the sandbox ready at whatever version it has.
	actx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		for actx.Err() == nil {
			_ = h.env.ReportStatus(actx, "feat", readyStatus())
			time.Sleep(50 * time.Millisecond)
		}
	}()

	if res := r.run("local", "override", "--sandbox", "feat", "-w", "cart", "-p", "8080", "--with", port, "--detach"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "local connect") {
		t.Fatalf("override before connect: %+v", res)
	}
	for _, tc := range []struct{ args, want string }{
		{"--sandbox feat -w cart --with 1", "--workload-port"},
		{"--sandbox feat -w cart -p 8080 --with host:", "--with"},
		{"--sandbox feat -w cart -p 8080 --with 1 --except-status 4040", "--except-status"},
		{"-w cart -p 8080 --with 1", "--sandbox, --workload and --with are required"},
	} {
		if res := r.run(append([]string{"local", "override"}, strings.Fields(tc.args)...)...); res.code != cli.ExitUsage || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("override %s: %+v", tc.args, res)
		}
	}
	r.mustRun("local", "connect", "--proxy-address", "127.0.0.1:0")
	machine := r.status().MachineID
	if res := r.run("local", "override", "--sandbox", "feat", "-w", "nope", "-p", "8080", "--with", port, "--detach"); res.code != cli.ExitUsage || !strings.Contains(res.stderr, "spec.middleware[0].match") {
		t.Fatalf("override of a workload the sandbox lacks: %+v", res)
	}
	res := r.mustRun("local", "override", "--sandbox", "feat", "-w", "cart", "-p", "8080", "--with", port, "--except-status", "404,503", "--detach")
	if !strings.Contains(res.stdout, "override override-1 of sandbox feat is active") {
		t.Fatalf("override: %+v", res)
	}
	sb, err := h.env.Client.GetSandbox(ctx, cptest.Org, "feat")
	if err != nil {
		t.Fatal(err)
	}
	ovs, errs := sb.Spec.ResolveOverrides()
	if sb.Spec.LocalMachineID != machine || len(errs) != 0 || len(ovs) != 1 || ovs[0].Forward.ToLocal != "localhost:"+port || ovs[0].Workload.Name != "cart" ||
		ovs[0].Policy == nil || len(ovs[0].Policy.ExceptStatusCodes) != 2 {
		t.Fatalf("sandbox after override: %+v %+v %v", sb.Spec, ovs, errs)
	}
	c, err := r.gw.DialLocal(ctx, machine, "feat", "override-1", "localhost:"+port)
	if err != nil {
		t.Fatalf("gateway → machine → local process under the forward's name: %v", err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: cart\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.HasSuffix(string(b), "overridden cart") {
		t.Fatalf("through the tunnel: %q", b)
	}
	if out := r.mustRun("local", "override", "list", "--sandbox", "feat").stdout; !strings.Contains(out, "override-1") || !strings.Contains(out, "on 404,503") || !strings.Contains(out, "cart") {
		t.Errorf("override list:\n%s", out)
	}
	if out := r.mustRun("sandbox", "get", "feat").stdout; !strings.Contains(out, "OVERRIDE") || !strings.Contains(out, "localhost:"+port) || !strings.Contains(out, machine) {
		t.Errorf("sandbox get shows no override:\n%s", out)
	}
	r.mustRun("local", "override", "delete", "override-1", "--sandbox", "feat")
	if sb, _ := h.env.Client.GetSandbox(ctx, cptest.Org, "feat"); sb.Spec.Routing != nil || len(sb.Spec.Middleware) != 0 {
		t.Fatalf("after delete: %+v", sb.Spec)
	}
	if res := r.run("local", "override", "delete", "override-1", "--sandbox", "feat"); res.code != cli.ExitNotFound {
		t.Errorf("delete twice: %+v", res)
	}
	if out := r.mustRun("local", "override", "list").stdout; !strings.Contains(out, "No local overrides") {
		t.Errorf("list after delete:\n%s", out)
	}

	// Attached: the override lives until the command is interrupted.
	octx, interrupt := context.WithCancel(ctx)
	done := make(chan result, 1)
	go func() {
		var out, errb bytes.Buffer
		code := r.app("", &out, &errb).Execute(octx, []string{"local", "override", "--sandbox", "feat", "-w", "cart", "-p", "8080", "--with", port})
		done <- result{out.String(), errb.String(), code}
	}()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		sb, err := h.env.Client.GetSandbox(ctx, cptest.Org, "feat")
		if err == nil && len(sb.Spec.Middleware) == 1 && sb.Status.Ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the attached override did not become active")
		}
	}
	time.Sleep(200 * time.Millisecond) // past the wait for ready, into the wait for the interrupt
	interrupt()
	if res := <-done; res.code != 0 || !strings.Contains(res.stderr, "override override-1 removed") {
		t.Fatalf("attached override after interrupt: %+v", res)
	}
	if sb, _ := h.env.Client.GetSandbox(ctx, cptest.Org, "feat"); len(sb.Spec.Middleware) != 0 {
		t.Fatalf("after interrupt: %+v", sb.Spec)
	}
}
