package mcpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/internal/mcpserver"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

type session struct {
	t  *testing.T
	cs *mcp.ClientSession

	mu       sync.Mutex
	progress []string
}

// connect runs the MCP server for baseURL and key and connects the SDK's
// client to it over in-memory transports.
func connect(t *testing.T, baseURL, key string) *session {
	return connectWith(t, baseURL, key, nil)
}

// connectWith is connect with a mutation of the server's options.
func connectWith(t *testing.T, baseURL, key string, opt func(*mcpserver.Options)) *session {
	t.Helper()
	ctx := context.Background()
	c, err := client.New(baseURL, key)
	if err != nil {
		t.Fatal(err)
	}
	o := mcpserver.Options{Client: c, Org: cptest.Org, APIKey: key, WaitInterval: 20 * time.Millisecond, Version: "test"}
	if opt != nil {
		opt(&o)
	}
	srv := mcpserver.New(o)
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &session{t: t}
	cl := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "v0"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			s.mu.Lock()
			s.progress = append(s.progress, r.Params.Message)
			s.mu.Unlock()
		},
	})
	cs, err := cl.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close(); ss.Close() })
	s.cs = cs
	return s
}

// call calls a tool and decodes its structured answer into out (if not nil).
func (s *session) call(name string, args any, out any) *mcp.CallToolResult {
	s.t.Helper()
	p := &mcp.CallToolParams{Name: name, Arguments: args}
	p.SetProgressToken("p-" + name)
	res, err := s.cs.CallTool(context.Background(), p)
	if err != nil {
		s.t.Fatalf("%s: protocol error %v", name, err)
	}
	if out != nil && !res.IsError {
		b, _ := json.Marshal(res.StructuredContent)
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s: decode %s: %v", name, b, err)
		}
	}
	return res
}

func (s *session) mustCall(name string, args any, out any) {
	s.t.Helper()
	if res := s.call(name, args, out); res.IsError {
		s.t.Fatalf("%s: %s", name, text(res))
	}
}

func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

func TestToolsAreDescribed(t *testing.T) {
	e := cptest.Start(t)
	s := connect(t, e.URL, e.Key)
	res, err := s.cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"sandbox_apply": nil, "sandbox_fork": {"name", "workload"}, "sandbox_wait": {"name"}, "sandbox_get": {"name"},
		"sandbox_list": nil, "sandbox_delete": {"name"}, "routegroup_apply": {"name", "spec"}, "routegroup_get": {"name"},
		"routegroup_list": nil, "routegroup_delete": {"name"}, "cluster_list": nil, "workload_list": nil,
		"preview_url": {"sandbox"}, "http_request": {"sandbox"},
		"resourceplugin_list": nil, "resourceplugin_get": {"name"},
		"job_submit": {"runner_group"}, "job_get": {"name"}, "job_logs": {"name"}, "job_cancel": {"name"},
		"smarttest_run": nil, "smarttest_results": {"id"},
	}
	if len(res.Tools) != len(want) {
		t.Errorf("%d tools, want %d", len(res.Tools), len(want))
	}
	for _, tool := range res.Tools {
		req, ok := want[tool.Name]
		if !ok {
			t.Errorf("unexpected tool %s", tool.Name)
			continue
		}
		if len(tool.Description) < 30 {
			t.Errorf("%s: description too short: %q", tool.Name, tool.Description)
		}
		var schema struct {
			Type       string                     `json:"type"`
			Required   []string                   `json:"required"`
			Properties map[string]json.RawMessage `json:"properties"`
		}
		b, _ := json.Marshal(tool.InputSchema)
		if err := json.Unmarshal(b, &schema); err != nil || schema.Type != "object" {
			t.Errorf("%s: input schema %s", tool.Name, b)
		}
		if strings.Join(schema.Required, ",") != strings.Join(req, ",") {
			t.Errorf("%s: required %v, want %v", tool.Name, schema.Required, req)
		}
		for name, p := range schema.Properties {
			if !strings.Contains(string(p), `"description"`) {
				t.Errorf("%s.%s has no description: %s", tool.Name, name, p)
			}
		}
	}
}

func reportWhenExists(t *testing.T, e *cptest.Env, name string, statuses ...apitypes.ObservedStatus) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := e.Client.GetSandbox(ctx, cptest.Org, name); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Error("sandbox never created")
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, st := range statuses {
		time.Sleep(100 * time.Millisecond)
		if err := e.ReportStatus(ctx, name, st); err != nil {
			t.Error(err)
		}
	}
}

var (
	notReady = apitypes.ObservedStatus{Reason: "ForksNotReady", Message: "1 of 1 forks not ready",
		Forks: []v1alpha1.ForkStatus{{Name: "cart", Baseline: "Deployment/shop/cart", Message: "pulling image cart:v2"}}}
	ready = apitypes.ObservedStatus{Ready: true, Reason: "Available",
		Forks: []v1alpha1.ForkStatus{{Name: "cart", Baseline: "Deployment/shop/cart", Ready: true}}}
)

func TestAgentFlow(t *testing.T) {
	e := cptest.Start(t)
	s := connect(t, e.URL, e.Key)
	ctx := context.Background()

	var cls mcpserver.ClusterList
	s.mustCall("cluster_list", map[string]any{}, &cls)
	if len(cls.Clusters) != 1 || cls.Clusters[0].Name != cptest.Cluster {
		t.Fatalf("clusters: %+v", cls)
	}

	// Fork a workload with a new image, waiting with progress.
	done := make(chan struct{})
	go func() { defer close(done); reportWhenExists(t, e, "feat", notReady, ready) }()
	var sb mcpserver.SandboxView
	s.mustCall("sandbox_fork", map[string]any{"name": "feat", "workload": "shop/cart", "image": "cart:v2", "env": map[string]string{"FEATURE": "on"},
		"endpoint_target": "http://frontend.shop.svc:8080", "wait": true, "wait_timeout_seconds": 20}, &sb)
	<-done
	if !sb.Ready || sb.Cluster != cptest.Cluster || sb.RoutingKey != "rk0001" || len(sb.Endpoints) != 1 ||
		sb.Endpoints[0].PreviewURL != "http://frontend--feat.preview.localhost" || sb.Endpoints[0].PathURL != e.URL+"/preview/acme/feat/frontend/" {
		t.Fatalf("fork: %+v", sb)
	}
	// Progress notifications are delivered on their own goroutine: the last one
	// may reach the client just after the tool's result.
	var progress string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		progress = strings.Join(s.progress, "\n")
		s.mu.Unlock()
		if strings.Contains(progress, "feat: ready") || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range []string{"feat: not ready: Pending", "fork cart: pulling image cart:v2", "feat: ready"} {
		if !strings.Contains(progress, w) {
			t.Errorf("progress lacks %q:\n%s", w, progress)
		}
	}
	got, err := e.Client.GetSandbox(ctx, cptest.Org, "feat")
	if err != nil {
		t.Fatal(err)
	}
	f := got.Spec.Forks[0]
	if f.ForkOf != (v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}) || f.Customizations.Images[0].Image != "cart:v2" ||
		f.Customizations.Env[0].Name != "FEATURE" || *f.Customizations.Env[0].Value != "on" {
		t.Fatalf("spec: %+v", got.Spec)
	}

	// Send a request through the sandbox.
	backend := cptest.NewBackend(t)
	e.ConnectAgent(t, backend, "frontend.shop.svc:8080")
	var ans mcpserver.HTTPAnswer
	s.mustCall("http_request", map[string]any{"sandbox": "feat", "method": "post", "path": "/cart?id=1", "body": "x=1", "headers": map[string]string{"X-Test": "yes"}}, &ans)
	if ans.Status != 200 || ans.Body != "backend POST /cart?id=1 body=x=1" || ans.Headers["X-Backend"] != "yes" || ans.RoutingKey != "rk0001" || ans.Endpoint != "frontend" {
		t.Fatalf("http_request: %+v", ans)
	}
	last := backend.Last()
	if k, _ := routingkey.Default.Extract(last.Header); k != "rk0001" || last.Header.Get("X-Test") != "yes" || last.Header.Get(apitypes.HeaderAPIKey) != "" {
		t.Fatalf("upstream headers: %v", last.Header)
	}
	s.mustCall("http_request", map[string]any{"sandbox": "feat", "endpoint": "http://frontend.shop.svc:8080", "path": "/teapot"}, &ans)
	if ans.Status != 418 || ans.Note != "" {
		t.Fatalf("teapot: %+v", ans)
	}

	var pv mcpserver.PreviewAnswer
	s.mustCall("preview_url", map[string]any{"sandbox": "feat", "login_link": true}, &pv)
	if len(pv.Endpoints) != 1 || !strings.HasPrefix(pv.Endpoints[0].LoginLink, "http://frontend--feat.preview.localhost/__sandboxmesh/login?token=") || !strings.Contains(pv.Usage, "sandboxmesh-api-key") {
		t.Fatalf("preview_url: %+v", pv)
	}

	// Update: a new image replaces the old one; an endpoint on the fork itself is added.
	s.mustCall("sandbox_fork", map[string]any{"name": "feat", "workload": "Deployment/shop/cart", "image": "cart:v3", "endpoint_port": 8080}, &sb)
	got, _ = e.Client.GetSandbox(ctx, cptest.Org, "feat")
	if len(got.Spec.Forks) != 1 || len(got.Spec.Forks[0].Customizations.Images) != 1 || got.Spec.Forks[0].Customizations.Images[0].Image != "cart:v3" ||
		len(got.Spec.Forks[0].Customizations.Env) != 1 || len(got.Spec.DefaultRouteGroup.Endpoints) != 2 ||
		got.Spec.DefaultRouteGroup.Endpoints[1] != (v1alpha1.Endpoint{Name: "cart", Target: "http://cart.shop.deploy:8080"}) || sb.Ready {
		t.Fatalf("update: %+v / %+v", got.Spec, sb)
	}

	// A full spec as YAML.
	yml := "name: other\nspec:\n  cluster: c1\n  forks:\n  - forkOf: {namespace: shop, name: payments}\n    customizations:\n      images: [{image: payments:v9}]\n"
	s.mustCall("sandbox_apply", map[string]any{"yaml": yml}, &sb)
	if sb.Name != "other" || sb.Ready || !strings.Contains(sb.NextStep, "sandbox_wait") || !strings.Contains(sb.Blocking, "Pending") {
		t.Fatalf("apply: %+v", sb)
	}
	// Signadot's fork endpoints in the YAML become route group endpoints, as over REST.
	legacy := "name: legacy\nspec:\n  cluster: c1\n  forks:\n  - forkOf: {namespace: shop, name: payments}\n    customizations:\n      images: [{image: payments:v9}]\n    endpoints: [{name: pay, port: 8080, protocol: http}]\n"
	s.mustCall("sandbox_apply", map[string]any{"yaml": legacy}, &sb)
	lg, err := e.Client.GetSandbox(ctx, cptest.Org, "legacy")
	if err != nil || lg.Spec.DefaultRouteGroup == nil || len(lg.Spec.DefaultRouteGroup.Endpoints) != 1 || lg.Spec.DefaultRouteGroup.Endpoints[0].Name != "pay" {
		t.Fatalf("legacy endpoints: %+v %v", lg, err)
	}
	if err := e.Client.DeleteSandbox(ctx, cptest.Org, "legacy"); err != nil {
		t.Fatal(err)
	}
	var list mcpserver.SandboxList
	s.mustCall("sandbox_list", map[string]any{}, &list)
	if len(list.Sandboxes) != 2 {
		t.Fatalf("list: %+v", list)
	}
	// Teams: sandbox_fork puts a sandbox in a team, sandbox_list filters by it.
	if _, err := e.Client.ApplyTeam(ctx, cptest.Org, "web", 0); err != nil {
		t.Fatal(err)
	}
	s.mustCall("sandbox_fork", map[string]any{"name": "other", "workload": "pay/payments", "image": "payments:v3", "team": "web"}, &sb)
	if sb.Team != "web" {
		t.Fatalf("sandbox_fork with team: %+v", sb)
	}
	s.mustCall("sandbox_list", map[string]any{"team": "web"}, &list)
	if len(list.Sandboxes) != 1 || list.Sandboxes[0].Name != "other" || list.Sandboxes[0].Team != "web" {
		t.Fatalf("list of team web: %+v", list)
	}
	s.mustCall("sandbox_get", map[string]any{"name": "other"}, &sb)
	if sb.Spec == nil || sb.Spec.Forks[0].ForkOf.Name != "payments" {
		t.Fatalf("get: %+v", sb)
	}

	// Workloads: an error saying what to do before the agent reports, then the list.
	if res := s.call("workload_list", map[string]any{}, nil); !res.IsError || !strings.Contains(text(res), "has not reported its workloads yet") {
		t.Fatalf("workload_list before report: %q", text(res))
	}
	if err := e.ReportWorkloads(ctx, apitypes.Workload{Kind: "Deployment", Namespace: "shop", Name: "cart", Replicas: 1, ReadyReplicas: 1, DevmeshInjected: true,
		Containers: []apitypes.WorkloadContainer{{Name: "cart", Image: "cart:v1"}}, Services: []apitypes.WorkloadService{{Name: "cart", Ports: []int32{80}}}},
		apitypes.Workload{Kind: "Deployment", Namespace: "pay", Name: "payments", Replicas: 1, Containers: []apitypes.WorkloadContainer{{Name: "p", Image: "p:v1"}}}); err != nil {
		t.Fatal(err)
	}
	var wl mcpserver.WorkloadList
	s.mustCall("workload_list", map[string]any{"namespace": "shop"}, &wl)
	if wl.Cluster != cptest.Cluster || wl.ReportedAt == "" || len(wl.Workloads) != 1 || wl.Workloads[0].Workload != "shop/cart" ||
		wl.Workloads[0].Containers[0] != "cart=cart:v1" || !wl.Workloads[0].DevmeshInjected || wl.Workloads[0].EndpointTargets[0] != "http://cart.shop.svc:80" ||
		!strings.Contains(wl.Hint, "sandbox_fork") {
		t.Fatalf("workload_list: %+v", wl)
	}

	// Route groups.
	var rg client.RouteGroup
	s.mustCall("routegroup_apply", map[string]any{"name": "team", "spec": map[string]any{"cluster": "c1", "match": map[string]any{"label": map[string]any{"key": "team", "value": "shop"}}}}, &rg)
	if rg.Name != "team" || rg.RoutingKey == "" {
		t.Fatalf("routegroup_apply: %+v", rg)
	}
	s.mustCall("routegroup_get", map[string]any{"name": "team"}, &rg)
	var rgs mcpserver.RouteGroupList
	s.mustCall("routegroup_list", map[string]any{}, &rgs)
	if len(rgs.RouteGroups) != 1 {
		t.Fatalf("routegroup_list: %+v", rgs)
	}
	s.mustCall("routegroup_delete", map[string]any{"name": "team"}, nil)
	s.mustCall("sandbox_delete", map[string]any{"name": "other"}, nil)
	if _, err := e.Client.GetSandbox(ctx, cptest.Org, "other"); err == nil {
		t.Fatal("not deleted")
	}
}

func TestToolErrors(t *testing.T) {
	e := cptest.Start(t)
	s := connect(t, e.URL, e.Key)
	s.mustCall("sandbox_fork", map[string]any{"name": "feat", "workload": "shop/cart", "image": "cart:v2"}, nil)
	bad := connect(t, e.URL, "smk_wrong")
	down := cptest.Start(t)
	down.HTTP.Close()
	gone := connect(t, down.URL, down.Key)
	for _, tc := range []struct {
		name string
		s    *session
		tool string
		args map[string]any
		want []string
	}{
		{"unknown sandbox", s, "sandbox_get", map[string]any{"name": "nope"}, []string{`sandbox "nope" not found`, "sandbox_list"}},
		{"missing required argument", s, "sandbox_get", map[string]any{}, []string{"name"}},
		{"wrong argument type", s, "sandbox_wait", map[string]any{"name": "feat", "timeout_seconds": "soon"}, []string{"timeout_seconds"}},
		{"invalid spec", s, "sandbox_apply", map[string]any{"name": "Bad_Name", "spec": map[string]any{"forks": []any{}}},
			[]string{"fix these fields", "- name:", "- spec.cluster: required", "- spec: at least one of forks"}},
		{"spec and yaml", s, "sandbox_apply", map[string]any{"name": "x", "spec": map[string]any{}, "yaml": "name: x"}, []string{"not both"}},
		{"neither spec nor yaml", s, "sandbox_apply", map[string]any{"name": "x"}, []string{"sandbox_fork"}},
		{"bad yaml", s, "sandbox_apply", map[string]any{"yaml": "name: x\nspec:\n  forkz: 1\n"}, []string{"spec.forkz: unknown field"}},
		{"nested unknown field in yaml", s, "sandbox_apply", map[string]any{"yaml": "name: x\nspec:\n  cluster: c1\n  forks:\n  - forkOf: {namespace: shop, name: cart}\n    customizations: {foo: 1}\n"},
			[]string{"spec.forks[0].customizations.foo: unknown field"}},
		{"unsupported Signadot field in yaml", s, "sandbox_apply", map[string]any{"yaml": "name: x\nspec:\n  cluster: c1\n  connection: {devboxId: d1}\n  forks:\n  - forkOf: {namespace: shop, name: cart}\n"},
			[]string{"spec.connection.devboxId", "not supported"}},
		{"rejected by the control plane", s, "sandbox_fork", map[string]any{"name": "x", "workload": "shop/cart", "image": "i", "cluster": "nosuch"},
			[]string{"spec.cluster names no registered cluster", "Fix the listed fields"}},
		{"unknown team", s, "sandbox_fork", map[string]any{"name": "x", "workload": "shop/cart", "image": "i", "team": "nosuch"}, []string{"team"}},
		{"bad workload", s, "sandbox_fork", map[string]any{"name": "x", "workload": "cart", "image": "i"}, []string{"namespace/name"}},
		{"fork without change", s, "sandbox_fork", map[string]any{"name": "x", "workload": "shop/cart"}, []string{"give an image"}},
		{"wait timeout", s, "sandbox_wait", map[string]any{"name": "feat", "timeout_seconds": 1}, []string{"not ready after 1s", "blocking: Pending", "sandbox_wait again"}},
		{"no endpoints", s, "http_request", map[string]any{"sandbox": "feat"}, []string{"no endpoints", "endpoint_target"}},
		{"no endpoints for preview", s, "preview_url", map[string]any{"sandbox": "feat"}, []string{"no endpoints"}},
		{"bad key", bad, "sandbox_list", map[string]any{}, []string{"invalid or revoked API key", "sandboxmesh auth login"}},
		{"server down", gone, "sandbox_list", map[string]any{}, []string{"unreachable", "sandboxmesh auth status"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.s.t = t
			res := tc.s.call(tc.tool, tc.args, nil)
			if !res.IsError {
				t.Fatalf("no error: %s", text(res))
			}
			for _, w := range tc.want {
				if !strings.Contains(text(res), w) {
					t.Errorf("error lacks %q: %s", w, text(res))
				}
			}
		})
	}

	t.Run("preview proxy errors are explained", func(t *testing.T) {
		s.t = t
		s.mustCall("sandbox_fork", map[string]any{"name": "feat", "workload": "shop/cart", "image": "cart:v2", "endpoint_target": "http://frontend.shop.svc:8080"}, nil)
		var ans mcpserver.HTTPAnswer
		s.mustCall("http_request", map[string]any{"sandbox": "feat"}, &ans)
		if ans.Status != 502 || !strings.Contains(ans.Note, "preview proxy, not from the service") || !strings.Contains(ans.Note, "call sandbox_wait") {
			t.Fatalf("%+v", ans)
		}
		res := s.call("http_request", map[string]any{"sandbox": "feat", "endpoint": "http://api.shop.svc:80"}, nil)
		if !res.IsError || !strings.Contains(text(res), "declares no endpoint") {
			t.Fatalf("undeclared: %s", text(res))
		}
	})
}

// TestLocalMachineHook: sandbox_apply lets the CLI's hook fill in spec.localMachineID (and register with
// the local daemon) before validation, so an agent can create a sandbox with a local override without
// knowing the machine id; the hook's after-function runs once the apply succeeded; a hook error is the
// tool's error and nothing is applied.
func TestLocalMachineHook(t *testing.T) {
	e := cptest.Start(t)
	var afters int
	fail := false
	s := connectWith(t, e.URL, e.Key, func(o *mcpserver.Options) {
		o.LocalMachine = func(_ context.Context, sb *client.Sandbox) (func(context.Context) error, error) {
			if fail {
				return nil, errors.New("this machine has not joined a cluster")
			}
			sb.Spec.LocalMachineID = "m-test"
			return func(context.Context) error { afters++; return nil }, nil
		}
	})
	yml := `name: ovr
spec:
  cluster: ` + cptest.Cluster + `
  virtual: [{name: route, workload: {namespace: hotrod, name: route}}]
  routing: {forwards: [{name: override-1, port: 8083, toLocal: "localhost:8083"}]}
  middleware:
  - name: override
    args: [{name: overrideHost, valueFrom: {forward: override-1}}]
    match: [{workload: route}]
`
	var sb mcpserver.SandboxView
	s.mustCall("sandbox_apply", map[string]any{"yaml": yml}, &sb)
	got, err := e.Client.GetSandbox(context.Background(), cptest.Org, "ovr")
	if err != nil || got.Spec.LocalMachineID != "m-test" || len(got.Spec.Middleware) != 1 || afters != 1 {
		t.Fatalf("applied %+v %v, afters %d", got, err, afters)
	}
	fail = true
	res := s.call("sandbox_apply", map[string]any{"yaml": strings.Replace(yml, "name: ovr", "name: ovr2", 1)}, nil)
	if !res.IsError || !strings.Contains(text(res), "has not joined a cluster") {
		t.Fatalf("hook error: %s", text(res))
	}
	if _, err := e.Client.GetSandbox(context.Background(), cptest.Org, "ovr2"); err == nil {
		t.Fatal("applied despite the hook's error")
	}
}
