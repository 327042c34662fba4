// Package operator_test is the operator's scale benchmark: N sandboxes of one
// fork each must converge (fork Deployments and Services created, Ready
// status, routes published to the devmesh route server) against a real API
// server. Run it with bench/operator/run.sh (SANDBOXMESH_SCALE=1000).
package operator_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/operator/manager"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

func rssMiB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	return 0
}

func TestScale(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("SANDBOXMESH_SCALE"))
	if n == 0 {
		t.Skip("scale benchmark: set SANDBOXMESH_SCALE (bench/operator/run.sh)")
	}
	env, err := testenv.Start(testenv.Options{ServiceCIDR: "10.96.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	const baselines = 100
	ns := "scale"
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < baselines; i++ {
		app := fmt.Sprintf("svc-%03d", i)
		one := int32(1)
		if err := c.Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:v1", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}}}); err != nil {
			t.Fatal(err)
		}
		if err := c.Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns}, Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": app}, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// Play the Deployment controller (none runs in envtest): make every fork
	// available once it appears. A watch, not a polling List, so that the
	// harness costs the API server one status write per fork.
	go func() {
		for ctx.Err() == nil {
			var forks appsv1.DeploymentList
			w, err := c.Watch(ctx, &forks, client.InNamespace(ns), client.HasLabels{naming.LabelFork})
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				d, ok := ev.Object.(*appsv1.Deployment)
				if !ok || d.DeletionTimestamp != nil || (d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 1) {
					continue
				}
				d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: 1, UpdatedReplicas: 1, AvailableReplicas: 1, ReadyReplicas: 1}
				_ = c.Status().Update(ctx, d)
			}
		}
	}()
	if p := os.Getenv("SCALE_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	runtime.GC()
	rssBefore := rssMiB()
	// Count the operator's requests by verb and resource.
	opCfg := rest.CopyConfig(env.Config)
	counts := &requestCounts{m: map[string]int{}}
	opCfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return counts.wrap(rt) })
	// SCALE_QPS overrides the operator's client rate limit (burst twice
	// that): is the run bound by client-side throttling? Default: the
	// operator's own (manager.Options).
	qps, _ := strconv.Atoi(os.Getenv("SCALE_QPS"))
	op, err := manager.New(opCfg, manager.Options{MetricsAddr: "0", ProbeAddr: "0", KubeAPIQPS: float32(qps), KubeAPIBurst: 2 * qps,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := op.Manager.Start(ctx); err != nil {
			t.Errorf("operator: %v", err)
		}
	}()
	start := time.Now()
	if p := os.Getenv("SCALE_APISERVER_PROFILE"); p != "" {
		// The API server's own CPU profile (its /debug/pprof) over the first
		// SCALE_APISERVER_PROFILE_SECONDS (default 60) of the run.
		secs := os.Getenv("SCALE_APISERVER_PROFILE_SECONDS")
		if secs == "" {
			secs = "60"
		}
		go apiServerProfile(t, env.Config, p, secs)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			sb := &smv1.Sandbox{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("sb-%04d", i), Namespace: ns}, Spec: smv1.SandboxSpec{Forks: []smv1.Fork{{
				ForkOf:         smv1.WorkloadRef{Kind: smv1.KindDeployment, Namespace: ns, Name: fmt.Sprintf("svc-%03d", i%baselines)},
				Customizations: &smv1.Customizations{Images: []smv1.ImageCustomization{{Image: "app:v2"}}}}}}}
			if err := c.Create(ctx, sb); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	created := time.Since(start)
	peak := 0.0
	deadline := time.Now().Add(10 * time.Minute)
	var ready, routes int
	for time.Now().Before(deadline) {
		// The route table is read in memory; the Sandboxes are listed through
		// the API server only once every route is there: a full List of N
		// objects every poll would add O(N) work per poll to the figures.
		routes = op.RouteServer.Table().Len()
		if r := rssMiB(); r > peak {
			peak = r
		}
		if routes < n {
			time.Sleep(500 * time.Millisecond)
			continue
		}
		var list smv1.SandboxList
		if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		ready = 0
		for _, sb := range list.Items {
			if meta.IsStatusConditionTrue(sb.Status.Conditions, smv1.ConditionReady) {
				ready++
			}
		}
		if ready == n {
			break
		}
		if os.Getenv("SCALE_DEBUG") != "" && len(list.Items) > 0 {
			t.Logf("debug: ready=%d routes=%d first=%+v %v %v", ready, routes, list.Items[0].Status, list.Items[0].Annotations, list.Items[0].Finalizers)
		}
		time.Sleep(500 * time.Millisecond)
	}
	took := time.Since(start)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("scale: %d sandboxes (%d baselines): created in %s, converged (Ready=%d, routes=%d) in %s", n, baselines, created.Round(time.Millisecond), ready, routes, took.Round(time.Millisecond))
	t.Logf("memory: process RSS before operator %.0f MiB, peak %.0f MiB (operator + test client + watch in one process), Go heap in use %.0f MiB",
		rssBefore, peak, float64(ms.HeapInuse)/(1<<20))
	t.Logf("operator requests: %s", counts)
	if ready != n || routes < n {
		t.Fatalf("did not converge: Ready=%d routes=%d of %d", ready, routes, n)
	}
}

// requestCounts counts API requests by method and resource.
type requestCounts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *requestCounts) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
		res := ""
		for i, p := range parts {
			if p == "namespaces" && i+2 < len(parts) {
				res = parts[i+2]
				if i+4 < len(parts) {
					res += "/" + parts[i+4]
				}
			}
		}
		if res == "" && len(parts) > 0 {
			res = parts[len(parts)-1]
		}
		if r.URL.Query().Get("watch") == "true" {
			res += "(watch)"
		}
		c.mu.Lock()
		c.m[r.Method+" "+res]++
		c.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (c *requestCounts) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([]string, 0, len(c.m))
	total := 0
	for k, v := range c.m {
		keys = append(keys, fmt.Sprintf("%s=%d", k, v))
		total += v
	}
	sort.Strings(keys)
	return fmt.Sprintf("%d total: %s", total, strings.Join(keys, ", "))
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// apiServerProfile writes a CPU profile of the API server to path.
func apiServerProfile(t *testing.T, cfg *rest.Config, path, secs string) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Logf("API server profile: %v", err)
		return
	}
	resp, err := hc.Get(strings.TrimRight(cfg.Host, "/") + "/debug/pprof/profile?seconds=" + secs)
	if err != nil {
		t.Logf("API server profile: %v", err)
		return
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Logf("API server profile: status %d, %v", resp.StatusCode, err)
		return
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Logf("API server profile: %v", err)
	}
}
