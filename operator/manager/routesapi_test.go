package manager_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// freeAddr returns a free 127.0.0.1 port's address.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("pick a port for the lookup API: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func lookupGet(t *testing.T, path, etag string) (int, string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+lookupAddr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if etag != "" {
		req.Header.Set("If-None-Match", etag)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("ETag"), b
}

// TestRoutesAPIServed: the operator's lookup port serves the whole routes API over real HTTP, with the
// same table the sidecars watch; the fork gets the consumer environment; a long-poll started while the
// sandbox is routed returns when deleting the sandbox removes its rule.
func TestRoutesAPIServed(t *testing.T) {
	ctx := context.Background()
	ns := "routesapi"
	world(t, ns, "worker")
	sb := sandbox(ns, "mq", "worker")
	if err := c.Create(ctx, sb); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(sb)
	forkName := naming.ForkName(ns, "mq", ns, "worker")
	s := waitCondition(t, key, smv1.ConditionReady, metav1.ConditionFalse, smv1.ReasonForksNotReady)
	rk := s.Status.RoutingKey

	d, _ := get(t, types.NamespacedName{Namespace: ns, Name: forkName}, &appsv1.Deployment{})
	envs := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		envs[e.Name] = e.Value
	}
	want := map[string]string{smv1.EnvBaselineKind: "Deployment", smv1.EnvBaselineNamespace: ns, smv1.EnvBaselineName: "worker",
		smv1.EnvRoutesURL: "http://" + lookupAddr, smv1.EnvRoutingKey: rk, smv1.EnvSandboxName: "mq"}
	for k, v := range want {
		if envs[k] != v {
			t.Errorf("fork env %s = %q, want %q", k, envs[k], v)
		}
	}

	makeAvailable(t, ns, forkName)
	waitCondition(t, key, smv1.ConditionReady, metav1.ConditionTrue, smv1.ReasonAvailable)
	rulesPath := routeapi.PathRoutingRules + "?baselineKind=Deployment&baselineNamespace=" + ns + "&baselineName=worker"
	code, etag, body := lookupGet(t, rulesPath, "")
	var rr routeapi.RoutingRulesResponse
	if err := json.Unmarshal(body, &rr); code != 200 || err != nil || len(rr.RoutingRules) != 1 {
		t.Fatalf("routing rules: %d %s (%v)", code, body, err)
	}
	r := rr.RoutingRules[0]
	if r.RoutingKey != rk || r.DestinationSandbox.Name != "mq" || r.Baseline != (routeapi.RuleBaseline{Kind: "Deployment", Namespace: ns, Name: "worker"}) ||
		len(r.Mappings) != 1 || r.Mappings[0].WorkloadPort != 8080 || !strings.HasPrefix(r.Mappings[0].Destinations[0].Host, forkName+"."+ns+".svc") || r.Mappings[0].Destinations[0].Port != 80 {
		t.Fatalf("rule %+v", r)
	}
	if want := routeapi.ETag(op.RouteServer.Epoch(), op.RouteServer.Table().Version()); etag != want {
		t.Fatalf("ETag %s, want the sidecars' table version %s", etag, want)
	}
	code, _, body = lookupGet(t, routeapi.PathLookup+"?namespace="+ns+"&workload=worker&routingKey="+rk, "")
	var lr routeapi.LookupResponse
	if err := json.Unmarshal(body, &lr); code != 200 || err != nil || !lr.Routed || lr.Sandbox != "mq" {
		t.Fatalf("lookup: %d %s", code, body)
	}
	if code, _, _ := lookupGet(t, rulesPath, etag); code != http.StatusNotModified {
		t.Fatalf("conditional GET: %d", code)
	}

	// A route group matching the sandbox: its key is listed with the sandbox as destination, so the
	// sandbox's consumer asking for its own rules gets it too.
	rg := &smv1.RouteGroup{ObjectMeta: metav1.ObjectMeta{Name: "mq-team", Namespace: ns},
		Spec: smv1.RouteGroupSpec{Match: smv1.RouteGroupMatch{Label: &smv1.LabelMatch{Key: "feature", Value: "checkout"}}}}
	if err := c.Create(ctx, rg); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Delete(ctx, rg) }()
	var rgKey string
	eventually(t, "route group routed", func() (bool, string) {
		g, _ := get(t, client.ObjectKeyFromObject(rg), &smv1.RouteGroup{})
		rgKey = g.Status.RoutingKey
		_, etag, body = lookupGet(t, routeapi.PathRoutingRules+"?destinationSandboxName=mq", "")
		rr = routeapi.RoutingRulesResponse{}
		_ = json.Unmarshal(body, &rr)
		keys := map[string]string{}
		for _, r := range rr.RoutingRules {
			keys[r.RoutingKey] = r.DestinationSandbox.Name
		}
		return rgKey != "" && len(keys) == 2 && keys[rk] == "mq" && keys[rgKey] == "mq", string(body)
	})
	if code, _, _ := lookupGet(t, rulesPath, etag); code != http.StatusNotModified {
		t.Fatalf("conditional GET: %d", code)
	}

	// A long-poll with the current ETag returns once the sandbox's routes go.
	type res struct {
		code int
		body []byte
	}
	done := make(chan res, 1)
	go func() {
		code, _, body := lookupGet(t, rulesPath+"&wait=30s", etag)
		done <- res{code, body}
	}()
	// (Another test's leftover publish may answer it before it blocks: fine, it is then already done.)
	eventually(t, "long-poll waiting", func() (bool, string) { return op.RouteServer.Waiters() > 0 || len(done) > 0, "" })
	if err := c.Delete(ctx, s); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got.code != 200 {
			t.Fatalf("long-poll after delete: %d %s", got.code, got.body)
		}
	case <-time.After(35 * time.Second):
		t.Fatal("long-poll did not return after the sandbox was deleted")
	}
	// The sandbox's routes may go in more than one publish: follow with long-polls until none is left.
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, e, body := lookupGet(t, rulesPath+"&wait=5s", etag)
		if code == 200 && string(body) == "{\"routingRules\":[]}\n" {
			break
		}
		if code == 200 {
			etag = e
		}
		if time.Now().After(deadline) {
			t.Fatalf("rules left after the sandbox was deleted: %d %s", code, body)
		}
	}
}
