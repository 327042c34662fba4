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
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/localcluster"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/natsserver"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// queueBrokers are the brokers of the asynchronous hop, in the order the test reports them.
var queueBrokers = []string{"nats", "rabbitmq", "kafka"}

// messageQueues is message-queue isolation end to end: three real brokers on the node's bridge address
// (NATS and a Kafka-protocol broker in this process, RabbitMQ as a host process; nothing leaves the
// machine), hotrod's asynchronous hop deployed for each (frontend-async publishes a dispatch event per
// /dispatch on all three; worker-<broker> consumes it and calls customer), one sandbox forking the three
// workers. Keyed requests' events are processed by the forks only, unkeyed ones by the baselines only (0
// lost, 0 twice, 0 misrouted, counted by event id), the key travels on from the worker to customer, and
// after the sandbox is deleted its key's events go to the baselines again.
func messageQueues(ctx context.Context, t *testing.T, e *demo.Env, cfg localcluster.Config) {
	node := cfg.NodeIP().String()
	ns := demo.ExampleNamespace

	start := time.Now()
	rmqc := make(chan error, 1)
	var rmq *rabbitmq.Server
	go func() { // the slowest to start (≈ 7 s): in the background while the others come up
		var err error
		rmq, err = rabbitmq.Start(ctx, rabbitmq.Config{Listen: node + ":0"})
		rmqc <- err
	}()
	ns0, err := natsserver.Start(natsserver.Config{Addr: node + ":0"})
	if err != nil {
		t.Fatal(err)
	}
	defer ns0.Stop()
	kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, app.DispatchTopic),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, node+":0") }))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	if err := <-rmqc; err != nil {
		t.Fatal(err)
	}
	defer rmq.Stop()
	urls := map[string]string{
		"nats":     ns0.URL(),
		"rabbitmq": rmq.URL(),
		"kafka":    "kafka://" + kf.ListenAddrs()[0],
	}
	t.Logf("brokers up in %s: %v", time.Since(start).Round(time.Millisecond), urls)

	// The asynchronous hop: a frontend publishing on the three queues, a worker per broker.
	fe, err := e.Kube.AppsV1().Deployments(ns).Get(ctx, "frontend", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, b := range queueBrokers {
		all = append(all, urls[b])
	}
	deploy := func(name string, from *appsv1.Deployment, args []string, port int32, env ...corev1.EnvVar) {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}}}
		d.Spec = *from.Spec.DeepCopy()
		d.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
		d.Spec.Template.Labels = map[string]string{"app": name, "app.kubernetes.io/part-of": "hotrod"}
		c := &d.Spec.Template.Spec.Containers[0]
		c.Name, c.Args = name, args
		c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: port, Protocol: corev1.ProtocolTCP}}
		c.Env = append(slices.DeleteFunc(slices.Clone(c.Env), func(v corev1.EnvVar) bool { return v.Name == "HTTP_ADDR" || v.Name == "QUEUE_URL" }), env...)
		if _, err := e.Kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name}, Ports: []corev1.ServicePort{{
				Name: "http", Port: port, TargetPort: intstr.FromString("http"), Protocol: corev1.ProtocolTCP, AppProtocol: ptr("http")}}}}
		if _, err := e.Kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	cleanup := func() {
		for _, n := range append([]string{"frontend-async"}, workerNames()...) {
			_ = e.Kube.AppsV1().Deployments(ns).Delete(context.Background(), n, metav1.DeleteOptions{})
			_ = e.Kube.CoreV1().Services(ns).Delete(context.Background(), n, metav1.DeleteOptions{})
		}
	}
	defer cleanup()
	defer func() {
		if t.Failed() {
			dumpWorkerLogs(t, e, ns)
		}
	}()
	deploy("frontend-async", fe, []string{"frontend"}, 8080, corev1.EnvVar{Name: "QUEUE_URL", Value: strings.Join(all, ",")})
	for _, b := range queueBrokers {
		deploy("worker-"+b, fe, []string{"worker"}, 8084,
			corev1.EnvVar{Name: "QUEUE_URL", Value: urls[b]},
			corev1.EnvVar{Name: "CUSTOMER_URL", Value: "http://customer." + ns + ".svc:8081"})
	}
	for _, n := range append([]string{"frontend-async"}, workerNames()...) {
		waitFor(ctx, t, 2*time.Minute, n+" available", func() error {
			d, err := e.Kube.AppsV1().Deployments(ns).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Status.AvailableReplicas < 1 || d.Status.UpdatedReplicas < 1 {
				return fmt.Errorf("%s: %d available", n, d.Status.AvailableReplicas)
			}
			return nil
		})
	}
	// The webhook gave the baseline workers who they are.
	for _, b := range queueBrokers {
		pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=worker-" + b})
		if err != nil || len(pods.Items) == 0 {
			t.Fatalf("worker-%s pods: %v", b, err)
		}
		env := map[string]string{}
		for _, v := range pods.Items[0].Spec.Containers[0].Env {
			env[v.Name] = v.Value
		}
		if env["SANDBOXMESH_BASELINE_NAME"] != "worker-"+b || env["SANDBOXMESH_BASELINE_NAMESPACE"] != ns || env["SANDBOXMESH_ROUTES_URL"] == "" {
			t.Fatalf("worker-%s pod env: %v; want the baseline identity and the routes URL from the webhook", b, env)
		}
	}

	frontend := serviceURL(ctx, t, e, ns, "frontend-async")
	dispatch := func(id, key string) {
		h := &hitter{t: t, url: frontend + "/dispatch?customer=392&event=" + id}
		hdr, val := "", ""
		if key != "" {
			hdr, val = "baggage", "sm-routing-key="+key
		}
		n := h.must(ctx, hdr, val)
		if n.Data["event"] != id || n.Data["published"] != strings.Join(queueBrokers, ",") {
			t.Fatalf("dispatch %s: published %q event %q", id, n.Data["published"], n.Data["event"])
		}
	}
	// events lists the events a worker processed: the baseline's (no key) or, through the worker's devmesh
	// sidecar, the fork's of the sandbox whose key is given.
	events := func(b, key string) map[string]app.Node {
		u := serviceURL(ctx, t, e, ns, "worker-"+b) + "/events"
		out := map[string]app.Node{}
		waitFor(ctx, t, 30*time.Second, "GET "+u, func() error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if key != "" {
				req.Header.Set("baggage", "sm-routing-key="+key)
			}
			resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			var r struct{ Events []app.Node }
			if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &r) != nil {
				return fmt.Errorf("%s: %s", resp.Status, body)
			}
			clear(out)
			for _, n := range r.Events {
				id := n.Data["event"]
				if _, dup := out[id]; dup {
					return fmt.Errorf("worker-%s processed event %s twice", b, id)
				}
				out[id] = n
			}
			return nil
		})
		return out
	}

	// The example as shipped (examples/hotrod/k8s): frontend publishes on the in-cluster broker pod, worker
	// consumes.
	demoEvent := &hitter{t: t, url: serviceURL(ctx, t, e, ns, "frontend") + "/dispatch?customer=123&event=demo-hop"}
	if n := demoEvent.must(ctx, "", ""); n.Data["published"] != "nats" {
		t.Fatalf("the example's frontend published on %q, want nats", n.Data["published"])
	}
	waitFor(ctx, t, time.Minute, "the example's worker processed its event", func() error {
		u := serviceURL(ctx, t, e, ns, "worker") + "/events?event=demo-hop"
		resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(u)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var r struct{ Events []app.Node }
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || len(r.Events) != 1 {
			return fmt.Errorf("%s: %d events (%v)", resp.Status, len(r.Events), err)
		}
		if c := r.Events[0].Find("customer"); c == nil || c.Error != "" {
			return fmt.Errorf("the worker's customer call: %+v", c)
		}
		return nil
	})

	// Before any sandbox: every event reaches each baseline worker.
	dispatch("warm-up", "")
	for _, b := range queueBrokers {
		waitFor(ctx, t, time.Minute, "worker-"+b+" processed warm-up", func() error {
			if _, ok := events(b, "")["warm-up"]; !ok {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}

	// A sandbox forking the three workers.
	sb := &cpclient.Sandbox{Name: "async-workers", Spec: v1alpha1.SandboxSpec{Cluster: e.Cluster}}
	for _, b := range queueBrokers {
		sb.Spec.Forks = append(sb.Spec.Forks, v1alpha1.Fork{ForkOf: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: ns, Name: "worker-" + b}})
	}
	if _, err := e.API.ApplySandbox(ctx, e.Org, sb); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	ready, err := e.API.WaitForReady(wctx, e.Org, sb.Name, &cpclient.WaitOptions{Interval: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("sandbox %s not ready: %v", sb.Name, err)
	}
	key := ready.RoutingKey
	deleted := false
	defer func() {
		if !deleted {
			_ = e.API.DeleteSandbox(context.Background(), e.Org, sb.Name)
		}
	}()

	// Ready → the forks' consumers get the first keyed event.
	readyAt := time.Now()
	dispatch("first", key)
	for _, b := range queueBrokers {
		waitFor(ctx, t, time.Minute, "fork of worker-"+b+" processed the first keyed event", func() error {
			if _, ok := events(b, key)["first"]; !ok {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		record(t, "queue_"+b+"_ready_to_first_message", time.Since(readyAt))
	}

	// N keyed + M unkeyed: each side processes exactly its own.
	const n, m = 10, 10
	var keyed, unkeyed []string
	for i := range n + m {
		if i%2 == 0 {
			id := fmt.Sprintf("k%02d", i)
			keyed = append(keyed, id)
			dispatch(id, key)
		} else {
			id := fmt.Sprintf("u%02d", i)
			unkeyed = append(unkeyed, id)
			dispatch(id, "")
		}
	}
	for _, b := range queueBrokers {
		var forkGot, baseGot map[string]app.Node
		waitFor(ctx, t, time.Minute, "worker-"+b+": every event processed", func() error {
			forkGot, baseGot = events(b, key), events(b, "")
			for _, id := range keyed {
				if _, ok := forkGot[id]; !ok {
					return fmt.Errorf("fork has not processed %s yet", id)
				}
			}
			for _, id := range unkeyed {
				if _, ok := baseGot[id]; !ok {
					return fmt.Errorf("baseline has not processed %s yet", id)
				}
			}
			return nil
		})
		time.Sleep(500 * time.Millisecond) // a misrouted copy would show by now
		forkGot, baseGot = events(b, key), events(b, "")
		var misrouted []string
		for id, nd := range forkGot {
			if !strings.HasPrefix(id, "k") && id != "first" {
				misrouted = append(misrouted, "fork:"+id)
			}
			if nd.Sandbox != sb.Name || nd.RoutingKey != key {
				t.Errorf("worker-%s fork processed %s as sandbox %q key %q", b, id, nd.Sandbox, nd.RoutingKey)
			}
			if c := nd.Find("customer"); c == nil || c.RoutingKey != key {
				t.Errorf("worker-%s fork: event %s: the key did not reach customer: %+v", b, id, c)
			}
		}
		for id := range baseGot {
			if strings.HasPrefix(id, "k") || id == "first" {
				misrouted = append(misrouted, "baseline:"+id)
			}
		}
		sort.Strings(misrouted)
		if len(misrouted) > 0 {
			t.Errorf("worker-%s: misrouted events %v", b, misrouted)
		}
		t.Logf("worker-%s: fork processed %d keyed, baseline %d others; 0 lost, 0 twice, %d misrouted", b, len(forkGot), len(baseGot), len(misrouted))
	}

	// The sandbox goes: its key's events reach the baselines again.
	if err := e.API.DeleteSandbox(ctx, e.Org, sb.Name); err != nil {
		t.Fatal(err)
	}
	deleted = true
	// The API forgets the sandbox at once; in the cluster the routes go first, then the forks, whose
	// consumers keep their own key until they stop. The key belongs to the baselines once the forks' pods
	// are gone.
	waitFor(ctx, t, 3*time.Minute, "sandbox "+sb.Name+"'s forks and their pods gone", func() error {
		for _, b := range queueBrokers {
			fork := naming.ForkName(e.Namespace, sb.Name, ns, "worker-"+b)
			if _, err := e.Kube.AppsV1().Deployments(ns).Get(ctx, fork, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("deployment %s: %v", fork, err)
			}
			pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, p := range pods.Items {
				if strings.HasPrefix(p.Name, fork+"-") {
					return fmt.Errorf("pod %s still there", p.Name)
				}
			}
		}
		return nil
	})
	dispatch("after", key)
	for _, b := range queueBrokers {
		waitFor(ctx, t, time.Minute, "baseline worker-"+b+" processed the key's event after the sandbox went", func() error {
			if _, ok := events(b, "")["after"]; !ok {
				return fmt.Errorf("not yet")
			}
			return nil
		})
	}
}

func workerNames() []string {
	var out []string
	for _, b := range queueBrokers {
		out = append(out, "worker-"+b)
	}
	return out
}

// dumpWorkerLogs logs the containers of the asynchronous hop's pods (before the test deletes them).
func dumpWorkerLogs(t *testing.T, e *demo.Env, ns string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		if !strings.Contains(p.Name, "worker-") && !strings.HasPrefix(p.Name, "frontend-async") {
			continue
		}
		for _, c := range p.Spec.Containers {
			b, _ := e.Kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: ptr(int64(60))}).DoRaw(ctx)
			t.Logf("--- logs %s/%s[%s]:\n%s", ns, p.Name, c.Name, b)
		}
	}
}
