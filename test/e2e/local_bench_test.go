//go:build e2e

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
)

// localVersusFork measures what a local workload's tunnel adds, side by side with its peer in the same run:
// the same keyed GET /route?customer=123 sent from this machine to the cluster's route Service (so the
// baseline pod's sidecar routes it), interleaved, once with the key of a sandbox whose route is local (sidecar
// → operator listener → tunnel → host process) and once with the key of a sandbox that forks route (sidecar →
// fork pod), n requests each, one at a time. It reports p50/p99 and requests/s of both and their ratios
// (figures, never assertions: the machine is noisy); every request must be answered by its destination.
func localVersusFork(ctx context.Context, t *testing.T, e *demo.Env, localKey, localSandbox string) {
	const n = 300
	const fork = "route-bench"
	sb, err := e.API.ApplySandbox(ctx, e.Org, &cpclient.Sandbox{Name: fork, Spec: v1alpha1.SandboxSpec{Cluster: e.Cluster,
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: demo.ExampleNamespace, Name: "route"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.API.DeleteSandbox(context.Background(), e.Org, fork) }()
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := e.API.WaitForReady(wctx, e.Org, fork, &cpclient.WaitOptions{Interval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("sandbox %s not ready: %v", fork, err)
	}
	svc, err := e.Kube.CoreV1().Services(demo.ExampleNamespace).Get(ctx, "route", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + net.JoinHostPort(svc.Spec.ClusterIP, "8083") + "/route?customer=123"
	c := &http.Client{Timeout: 5 * time.Second}
	one := func(key, want string) (time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("baggage", "sm-routing-key="+key)
		start := time.Now()
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		took := time.Since(start)
		if err != nil || resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d %v: %s", resp.StatusCode, err, b)
		}
		var node app.Node
		if err := json.Unmarshal(b, &node); err != nil || node.Sandbox != want {
			return 0, fmt.Errorf("answered by sandbox %q, want %q (%v)", node.Sandbox, want, err)
		}
		return took, nil
	}
	// Warm both paths (connections, the fork's first requests).
	waitFor(ctx, t, time.Minute, "the fork answering its key", func() error { _, err := one(sb.RoutingKey, fork); return err })
	for range 20 {
		if _, err := one(localKey, localSandbox); err != nil {
			t.Fatalf("warm-up through the tunnel: %v", err)
		}
	}
	var local, forked []time.Duration
	var localTotal, forkTotal time.Duration
	for i := range 2 * n {
		key, want, into, total := localKey, localSandbox, &local, &localTotal
		if i%2 == 1 {
			key, want, into, total = sb.RoutingKey, fork, &forked, &forkTotal
		}
		d, err := one(key, want)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, want, err)
		}
		*into = append(*into, d)
		*total += d
	}
	pct := func(ds []time.Duration, p float64) time.Duration {
		s := slices.Clone(ds)
		slices.Sort(s)
		return s[int(float64(len(s)-1)*p)]
	}
	lp50, lp99, fp50, fp99 := pct(local, 0.5), pct(local, 0.99), pct(forked, 0.5), pct(forked, 0.99)
	lrps, frps := float64(n)/localTotal.Seconds(), float64(n)/forkTotal.Seconds()
	record(t, "local_tunnel_p50", lp50)
	record(t, "local_tunnel_p99", lp99)
	record(t, "fork_pod_p50", fp50)
	record(t, "fork_pod_p99", fp99)
	t.Logf("RESULT local tunnel vs fork pod, %d sequential keyed requests each, interleaved: p50 %s vs %s (%.2fx, +%s), p99 %s vs %s (%.2fx), %.0f vs %.0f requests/s (%.2fx)",
		n, lp50.Round(10*time.Microsecond), fp50.Round(10*time.Microsecond), float64(lp50)/float64(fp50), (lp50 - fp50).Round(10*time.Microsecond),
		lp99.Round(10*time.Microsecond), fp99.Round(10*time.Microsecond), float64(lp99)/float64(fp99), lrps, frps, lrps/frps)
}
