package localcluster

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/images"
)

func pauseRef() string { return images.PauseImage }

// Components in start order; Down stops them in reverse.
var componentOrder = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "containerd", "kubelet", "kube-proxy", "dns"}

// K8sComponents are the Kubernetes binaries the cluster runs.
var K8sComponents = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"}

// Cluster is a handle on the local cluster described by a Config.
type Cluster struct {
	cfg Config
}

// New returns a Cluster for cfg with defaults filled in.
func New(cfg Config) (*Cluster, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.StateDir, _ = filepath.Abs(cfg.StateDir); cfg.StateDir == "" {
		return nil, fmt.Errorf("config: empty state dir")
	}
	return &Cluster{cfg: cfg}, nil
}

// Config returns the cluster's effective configuration.
func (cl *Cluster) Config() Config { return cl.cfg }

func (cl *Cluster) progress(format string, a ...any) {
	fmt.Fprintf(cl.cfg.Progress, ">> "+format+"\n", a...)
}

// Running reports whether a cluster recorded in the state folder is up: every component alive and Ready reached.
func (cl *Cluster) Running() bool {
	st, err := cl.cfg.loadState()
	if err != nil || !st.Ready {
		return false
	}
	for _, p := range st.Processes {
		if !p.Alive() {
			return false
		}
	}
	return len(st.Processes) == len(componentOrder)
}

// Up brings the cluster up and returns the admin kubeconfig path. It is a
// no-op when the cluster already runs; leftovers of a failed or crashed run are
// torn down first. If a component fails, the error names it and its log, and
// the partial cluster is left for inspection (Down removes it).
func (cl *Cluster) Up(ctx context.Context) (string, error) {
	c := cl.cfg
	if os.Geteuid() != 0 {
		return "", errors.New("up: must run as root (containerd, kubelet, bridge and iptables need it)")
	}
	if cl.Running() {
		cl.progress("cluster already running; kubeconfig %s", c.KubeconfigPath())
		return c.KubeconfigPath(), nil
	}
	if _, err := os.Stat(c.path("state.json")); err == nil {
		cl.progress("found an incomplete cluster in %s: tearing it down first", c.StateDir)
		if err := cl.Down(ctx); err != nil {
			return "", fmt.Errorf("up: clean previous run: %w", err)
		}
	}
	t0 := time.Now()
	if err := os.MkdirAll(c.path("logs"), 0o755); err != nil {
		return "", fmt.Errorf("up: create state dir %s: %w", c.StateDir, err)
	}
	if !c.SkipPackages {
		if err := c.EnsurePackages(ctx); err != nil {
			return "", fmt.Errorf("up: %w", err)
		}
	}
	binDir, err := cl.k8sBinaries(ctx)
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	pauseTar := filepath.Join(c.ImagesDir, "pause.tar")
	if !fileExists(pauseTar) {
		cl.progress("building the pause image")
		if _, err := images.BuildPause(ctx, images.Options{RepoDir: c.RepoDir, OutDir: c.ImagesDir, Progress: c.Progress, Log: c.Log}); err != nil {
			return "", fmt.Errorf("up: %w", err)
		}
	}

	// Nothing on the host changed so far: record what Down must restore.
	base, err := SnapshotHost(ctx)
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	st := &State{Baseline: base, StartedAt: t0}
	if err := c.saveState(st); err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	// Network safety before any component starts.
	cl.progress("network guard: bridge %s %s, Service CIDR %s routed onto it, DROP between %s and every other interface", c.Bridge, c.NodeIP(), c.ServiceCIDR, c.Bridge)
	if err := c.SetupGuard(ctx); err != nil {
		return "", fmt.Errorf("up: refusing to start any component: %w", err)
	}
	if err := c.writePKI(); err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	if err := c.writeConfigs(); err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	self, err := cl.installSelf(ctx)
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	cl.progress("packages, binaries, guard, certificates and configuration ready after %s", time.Since(t0).Round(10*time.Millisecond))

	add := func(p Process) error {
		st.Processes = append(st.Processes, p)
		return c.saveState(st)
	}
	type pending struct {
		p       Process
		t       time.Time
		timeout time.Duration
		check   func(context.Context) error
	}
	launch := func(name, bin string, args, env []string, timeout time.Duration, check func(context.Context) error) (*pending, error) {
		if err := c.CheckGuard(ctx); err != nil {
			return nil, fmt.Errorf("up: refusing to start %s: %w", name, err)
		}
		p, err := c.start(name, bin, args, env)
		if err != nil {
			return nil, fmt.Errorf("up: %w", err)
		}
		return &pending{p: p, t: time.Now(), timeout: timeout, check: check}, add(p)
	}
	await := func(ps ...*pending) error {
		for _, pd := range ps {
			if err := waitFor(ctx, pd.p, pd.timeout, pd.check); err != nil {
				return fmt.Errorf("up: %w", err)
			}
			cl.progress("%s ready in %s (pid %d)", pd.p.Name, time.Since(pd.t).Round(10*time.Millisecond), pd.p.PID)
		}
		return nil
	}
	tlsClient := c.httpClient()
	k8s := func(n string) string { return filepath.Join(binDir, n) }
	// Registry requests go to a dead loopback proxy: an image that is not
	// already imported fails fast instead of being fetched from outside.
	noEgress := []string{"HTTP_PROXY=http://127.0.0.1:9", "HTTPS_PROXY=http://127.0.0.1:9", "http_proxy=http://127.0.0.1:9", "https_proxy=http://127.0.0.1:9", "NO_PROXY=", "no_proxy="}
	dnsAddr := net.JoinHostPort(c.DNSIP().String(), "53")

	// Independent components start together; each waits only for what it needs.
	etcd, err := launch("etcd", "/usr/bin/etcd", c.etcdArgs(), []string{"ETCD_UNSUPPORTED_ARCH="}, 30*time.Second,
		httpOK(http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/health", c.EtcdPort)))
	if err != nil {
		return "", err
	}
	containerd, err := launch("containerd", "/usr/bin/containerd", []string{"--config", c.path("etc", "containerd.toml")}, noEgress, 30*time.Second,
		func(ctx context.Context) error {
			_, err := run(ctx, "ctr", "--address", c.ContainerdSocket(), "version")
			return err
		})
	if err != nil {
		return "", err
	}
	if err := await(etcd); err != nil {
		return "", err
	}
	apiserver, err := launch("kube-apiserver", k8s("kube-apiserver"), c.apiserverArgs(), nil, 120*time.Second,
		httpOK(tlsClient, c.APIServerURL()+"/readyz"))
	if err != nil {
		return "", err
	}
	if err := await(containerd); err != nil {
		return "", err
	}
	if err := cl.LoadImages(ctx, listTarballs(c.ImagesDir)...); err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	if err := await(apiserver); err != nil {
		return "", err
	}
	var group []*pending
	for _, s := range []struct {
		name  string
		args  []string
		check func(context.Context) error
	}{
		{"kube-controller-manager", c.controllerManagerArgs(), httpOK(insecureClient, "https://127.0.0.1:10257/healthz")},
		{"kube-scheduler", c.schedulerArgs(), httpOK(insecureClient, "https://127.0.0.1:10259/healthz")},
		{"kubelet", c.kubeletArgs(), httpOK(http.DefaultClient, "http://127.0.0.1:10248/healthz")},
		{"kube-proxy", []string{"--config=" + c.path("etc", "kube-proxy.yaml"), "--v=1"}, httpOK(http.DefaultClient, "http://127.0.0.1:10256/healthz")},
	} {
		pd, err := launch(s.name, k8s(s.name), s.args, nil, 90*time.Second, s.check)
		if err != nil {
			return "", err
		}
		group = append(group, pd)
	}
	dnsSrv, err := launch("dns", self, []string{"dns", "--kubeconfig", c.path("etc", "dns.kubeconfig"), "--listen", dnsAddr, "--domain", c.ClusterDomain}, nil, 30*time.Second,
		func(ctx context.Context) error {
			_, err := Resolver(dnsAddr).LookupHost(ctx, "kubernetes.default.svc."+c.ClusterDomain)
			return err
		})
	if err != nil {
		return "", err
	}
	if err := await(append(group, dnsSrv)...); err != nil {
		return "", err
	}
	t := time.Now()
	cs, err := cl.Client()
	if err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	kubelet := st.Processes[slices.IndexFunc(st.Processes, func(p Process) bool { return p.Name == "kubelet" })]
	if err := waitFor(ctx, kubelet, 90*time.Second, func(ctx context.Context) error { return nodeReady(ctx, cs, c.NodeName) }); err != nil {
		return "", fmt.Errorf("up: node %s: %w", c.NodeName, err)
	}
	cl.progress("node %s Ready in %s", c.NodeName, time.Since(t).Round(10*time.Millisecond))
	st.Ready = true
	st.ReadyAfter = time.Since(t0).Round(10 * time.Millisecond).String()
	if err := c.saveState(st); err != nil {
		return "", fmt.Errorf("up: %w", err)
	}
	cl.progress("cluster up in %s; kubeconfig %s", st.ReadyAfter, c.KubeconfigPath())
	return c.KubeconfigPath(), nil
}

// k8sBinaries returns the folder with the Kubernetes binaries, building them
// with hack/k8s-build.sh (cached) when needed, its progress lines passed on.
func (cl *Cluster) k8sBinaries(ctx context.Context) (string, error) {
	c := cl.cfg
	if c.K8sBinDir != "" {
		for _, n := range K8sComponents {
			if !fileExists(filepath.Join(c.K8sBinDir, n)) {
				return "", fmt.Errorf("kubernetes binaries: %s missing in %s", n, c.K8sBinDir)
			}
		}
		return c.K8sBinDir, nil
	}
	script := filepath.Join(c.RepoDir, "hack", "k8s-build.sh")
	if !fileExists(script) {
		return "", fmt.Errorf("kubernetes binaries: %s not found (set the repo dir or K8sBinDir)", script)
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, K8sComponents...)...)
	cmd.Dir = c.RepoDir
	logPath := c.logPath("k8s-build")
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", fmt.Errorf("kubernetes binaries: open log: %w", err)
	}
	defer lf.Close()
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	var out strings.Builder
	cmd.Stdout = &out
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			l := sc.Text()
			fmt.Fprintln(lf, l)
			if strings.HasPrefix(l, ">>") {
				fmt.Fprintln(c.Progress, l)
			}
		}
	}()
	err = cmd.Run()
	pw.Close()
	wg.Wait()
	if err != nil {
		return "", &ComponentError{Component: "hack/k8s-build.sh", Log: logPath, Err: err}
	}
	return strings.TrimSpace(out.String()), nil
}

// installSelf puts an sm-cluster binary into the state folder for the DNS
// server (`sm-cluster dns`): a copy of the running executable when that is
// sm-cluster (stable even when started from `go run`), else (a test binary,
// another tool) one built from the repo's cmd/sm-cluster.
func (cl *Cluster) installSelf(ctx context.Context) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	dst := cl.cfg.path("bin", "sm-cluster")
	if cl.cfg.SelfBinary != "" {
		exe = cl.cfg.SelfBinary
	} else if filepath.Base(exe) != "sm-cluster" {
		cmd := images.GoBuild(ctx, cl.cfg.RepoDir, "-o", dst, "./cmd/sm-cluster")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build cmd/sm-cluster in %s for the DNS server: %w: %s", cl.cfg.RepoDir, err, out)
		}
		return dst, nil
	}
	src, err := os.Open(exe)
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", exe, err)
	}
	defer src.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", exe, err)
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return "", fmt.Errorf("copy %s: %w", exe, err)
	}
	if err := out.Close(); err != nil {
		return "", fmt.Errorf("copy %s: %w", exe, err)
	}
	return dst, os.Rename(tmp, dst)
}

// LoadImages imports image tarballs into the node's containerd.
func (cl *Cluster) LoadImages(ctx context.Context, tarballs ...string) error {
	for _, t := range tarballs {
		start := time.Now()
		if err := images.Import(ctx, cl.cfg.ContainerdSocket(), t); err != nil {
			return &ComponentError{Component: "containerd image import", Log: cl.cfg.logPath("containerd"), Err: err}
		}
		cl.progress("imported %s (%s)", filepath.Base(t), time.Since(start).Round(10*time.Millisecond))
	}
	return nil
}

// Client returns a clientset using the admin kubeconfig.
func (cl *Cluster) Client() (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", cl.cfg.KubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", cl.cfg.KubeconfigPath(), err)
	}
	rc.QPS, rc.Burst = 50, 100
	return kubernetes.NewForConfig(rc)
}

func nodeReady(ctx context.Context, cs kubernetes.Interface, name string) error {
	n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			if cond.Status == corev1.ConditionTrue {
				return nil
			}
			return fmt.Errorf("node %s not Ready: %s", name, cond.Message)
		}
	}
	return fmt.Errorf("node %s has no Ready condition yet", name)
}

var insecureClient = &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback health ports with self-signed certificates

func (c Config) httpClient() *http.Client {
	cert, err := tls.LoadX509KeyPair(c.path("pki", "admin.crt"), c.path("pki", "admin.key"))
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // readiness probe only
	if err == nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 3 * time.Second, Transport: tr}
}

func httpOK(client *http.Client, url string) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
		}
		return nil
	}
}

// Resolver returns a resolver that asks only the DNS server at addr.
func Resolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// ComponentStatus is one line of Status.
type ComponentStatus struct {
	Name  string
	PID   int
	Alive bool
	RSS   int64
	Log   string
}

// Status reports the recorded components, whether they run and their memory.
// It returns fs.ErrNotExist (wrapped) when no cluster is recorded.
func (cl *Cluster) Status(ctx context.Context) ([]ComponentStatus, *State, error) {
	st, err := cl.cfg.loadState()
	if err != nil {
		return nil, nil, fmt.Errorf("status of %s: %w", cl.cfg.StateDir, err)
	}
	var out []ComponentStatus
	for _, p := range st.Processes {
		out = append(out, ComponentStatus{Name: p.Name, PID: p.PID, Alive: p.Alive(), RSS: p.RSS(), Log: p.Log})
	}
	// containerd's shims and the pods they run are not children of containerd.
	var shimRSS int64
	for _, pid := range pidsWithArg(cl.cfg.ContainerdSocket()) {
		shimRSS += treeRSS(pid)
	}
	if shimRSS > 0 {
		out = append(out, ComponentStatus{Name: "containerd-shims+pods", Alive: true, RSS: shimRSS})
	}
	return out, st, nil
}

// Down stops every component and restores the host: processes by PID, pod
// processes and shims, mounts, cgroups, network namespaces, the bridge and its
// routes, iptables and nft rules, sysctls and folders. It is safe to run when
// nothing runs, and after a partial Up.
func (cl *Cluster) Down(ctx context.Context) error {
	c := cl.cfg
	st, err := c.loadState()
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("down: %w", err)
		}
		st = nil
	}
	var errs []error
	if st != nil {
		byName := map[string]Process{}
		for _, p := range st.Processes {
			byName[p.Name] = p
		}
		for i := len(componentOrder) - 1; i >= 0; i-- {
			name := componentOrder[i]
			p, ok := byName[name]
			if !ok {
				continue
			}
			if name == "containerd" {
				// Pods first: their processes, then the shims, then containerd.
				killCgroupTree("kubepods")
				for _, pid := range pidsWithArg(c.ContainerdSocket()) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			stop(p, 10*time.Second)
			if p.Alive() {
				errs = append(errs, fmt.Errorf("down: %s (pid %d) still running", name, p.PID))
			}
		}
	}
	// Leftovers of a crashed run whose state was lost.
	killCgroupTree("kubepods")
	for _, pid := range pidsWithArg(c.ContainerdSocket()) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	time.Sleep(200 * time.Millisecond)

	if err := unmountUnder(c.StateDir, "/run/containerd", "/var/run/netns/cni-", "/run/netns/cni-", "/var/lib/kubelet"); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []string{"/var/run/netns", "/run/netns"} {
		m, _ := filepath.Glob(filepath.Join(d, "cni-*"))
		for _, f := range m {
			_ = os.Remove(f)
		}
	}
	if err := removeCgroupTree("kubepods"); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat("/sys/class/net/" + c.Bridge); err == nil {
		// Pod veths on the bridge go first: their pod network namespaces may
		// still be closing, and a veth outliving the bridge would stay behind.
		if ports, err := os.ReadDir("/sys/class/net/" + c.Bridge + "/brif"); err == nil {
			for _, p := range ports {
				_, _ = run(ctx, "ip", "link", "del", p.Name())
			}
		}
		if _, err := run(ctx, "ip", "link", "del", c.Bridge); err != nil {
			errs = append(errs, fmt.Errorf("down: delete bridge %s: %w", c.Bridge, err))
		}
	}
	// Routes onto the bridge went with it; remove any that survived elsewhere.
	for _, cidr := range []string{c.ServiceCIDR.Masked().String(), c.ClusterCIDR.Masked().String()} {
		_, _ = run(ctx, "ip", "route", "del", cidr, "dev", c.Bridge)
	}
	if err := removeIptablesRules(ctx); err != nil {
		errs = append(errs, fmt.Errorf("down: %w", err))
	}
	// Without a recorded baseline, tables left empty are still removed.
	var nftBefore []string
	if st != nil {
		nftBefore = st.Baseline.Nft
	}
	if err := removeNewNftTables(ctx, nftBefore); err != nil {
		errs = append(errs, fmt.Errorf("down: %w", err))
	}
	if st != nil {
		if err := restoreSysctls(st.Baseline.Sysctls); err != nil {
			errs = append(errs, fmt.Errorf("down: %w", err))
		}
		for _, d := range trackedDirs {
			if !slices.Contains(st.Baseline.Dirs, d) {
				if err := os.RemoveAll(d); err != nil {
					errs = append(errs, fmt.Errorf("down: remove %s: %w", d, err))
				}
			}
		}
	}
	if _, err := exec.LookPath("conntrack"); err == nil {
		for _, cidr := range []string{c.ServiceCIDR.String(), c.ClusterCIDR.String()} {
			_, _ = run(ctx, "conntrack", "-D", "-d", cidr)
			_, _ = run(ctx, "conntrack", "-D", "-s", cidr)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // keep the state folder and its logs for a second try
	}
	if err := os.RemoveAll(c.StateDir); err != nil {
		return fmt.Errorf("down: remove %s: %w", c.StateDir, err)
	}
	return nil
}

// killCgroupTree SIGKILLs every process in /sys/fs/cgroup/*/<name>/...
func killCgroupTree(name string) {
	for round := 0; round < 20; round++ {
		found := false
		ctrls, _ := os.ReadDir("/sys/fs/cgroup")
		for _, ctrl := range ctrls {
			root := filepath.Join("/sys/fs/cgroup", ctrl.Name(), name)
			_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				// A frozen cgroup would keep its processes alive.
				if strings.HasPrefix(root, "/sys/fs/cgroup/freezer/") {
					_ = os.WriteFile(filepath.Join(p, "freezer.state"), []byte("THAWED"), 0o644)
				}
				b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					var pid int
					if _, err := fmt.Sscan(f, &pid); err == nil && pid > 1 {
						found = true
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				return nil
			})
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeCgroupTree removes /sys/fs/cgroup/*/<name> depth first.
func removeCgroupTree(name string) error {
	var errs []error
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, ctrl := range ctrls {
		root := filepath.Join("/sys/fs/cgroup", ctrl.Name(), name)
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			var err error
			for i := 0; i < 20; i++ {
				if err = syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
					err = nil
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("down: remove cgroup %s: %w", d, err))
			}
		}
	}
	return errors.Join(errs...)
}

// unmountUnder unmounts every mount point starting with one of the prefixes, deepest first.
func unmountUnder(prefixes ...string) error {
	var errs []error
	for round := 0; round < 5; round++ {
		mounts, err := mountPoints()
		if err != nil {
			return err
		}
		var targets []string
		for _, m := range mounts {
			for _, p := range prefixes {
				if m == p || strings.HasPrefix(m, strings.TrimSuffix(p, "/")+"/") || (strings.HasSuffix(p, "-") && strings.HasPrefix(m, p)) {
					targets = append(targets, m)
					break
				}
			}
		}
		if len(targets) == 0 {
			return nil
		}
		sort.Slice(targets, func(i, j int) bool { return len(targets[i]) > len(targets[j]) })
		errs = nil
		for _, t := range targets {
			if err := syscall.Unmount(t, 0); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
				if err := syscall.Unmount(t, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
					errs = append(errs, fmt.Errorf("down: unmount %s: %w", t, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
