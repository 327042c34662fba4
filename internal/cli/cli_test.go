package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/cli"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// harness runs the CLI against a real control plane.
type harness struct {
	t    *testing.T
	env  *cptest.Env
	home string
	vars map[string]string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	e := cptest.Start(t)
	return &harness{t: t, env: e, home: t.TempDir(),
		vars: map[string]string{cli.EnvAPIURL: e.URL, cli.EnvAPIKey: e.Key, cli.EnvOrg: cptest.Org}}
}

type result struct {
	stdout, stderr string
	code           int
}

func (h *harness) app(stdin string, stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Stdin: strings.NewReader(stdin), Stdout: stdout, Stderr: stderr,
		Getenv: func(k string) string { return h.vars[k] }, Home: h.home,
		// Ages are 3h whenever the objects were made (within 30 minutes).
		Now: func() time.Time { return time.Now().Add(3*time.Hour + 30*time.Minute) }, WaitInterval: 20 * time.Millisecond,
	}
}

func (h *harness) runIn(stdin string, args ...string) result {
	h.t.Helper()
	var out, errb bytes.Buffer
	code := h.app(stdin, &out, &errb).Execute(context.Background(), args)
	return result{out.String(), errb.String(), code}
}

func (h *harness) run(args ...string) result { h.t.Helper(); return h.runIn("", args...) }

func (h *harness) mustRun(args ...string) result {
	h.t.Helper()
	r := h.run(args...)
	if r.code != 0 {
		h.t.Fatalf("sandboxmesh %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// golden compares got with testdata/golden/name (rewritten with -update).
func (h *harness) golden(name, got string) {
	h.t.Helper()
	got = strings.ReplaceAll(got, h.env.URL, "http://CONTROLPLANE")
	got = strings.ReplaceAll(got, h.home, "HOME")
	// The masked key keeps its length, so table columns do not move.
	k := h.env.Key
	got = strings.ReplaceAll(got, k[:8]+"…"+k[len(k)-4:], "smk_XXXX…XXXX")
	p := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		h.t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		h.t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func applyArgs(name, image string, extra ...string) []string {
	return append([]string{"sandbox", "apply", "-f", "testdata/sandbox.yaml", "--set", "name=" + name, "--set", "image=" + image, "--set", "feature=on"}, extra...)
}

func readyStatus() apitypes.ObservedStatus {
	return apitypes.ObservedStatus{Ready: true, Reason: "Available",
		Forks:     []v1alpha1.ForkStatus{{Name: "cart", Baseline: "Deployment/shop/cart", Deployment: "cart-sbx", Ready: true}},
		Endpoints: []v1alpha1.EndpointStatus{{Name: "web", Target: "http://frontend.shop.svc:8080", Host: "frontend.shop.svc", Port: 8080}}}
}

func TestGoldenTables(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.golden("sandbox-list-empty.txt", h.mustRun("sandbox", "list").stdout)
	h.golden("sandbox-apply.txt", h.mustRun(applyArgs("feat", "cart:v2")...).stdout)
	if _, err := h.env.Client.ApplyTeam(ctx, cptest.Org, "web", 0); err != nil {
		t.Fatal(err)
	}
	h.mustRun(applyArgs("other", "cart:v3", "--team", "web")...)
	if err := h.env.ReportStatus(ctx, "feat", readyStatus()); err != nil {
		t.Fatal(err)
	}
	if err := h.env.ReportStatus(ctx, "other", apitypes.ObservedStatus{Reason: "ForksNotReady", Message: "1 of 1 forks not ready",
		Forks: []v1alpha1.ForkStatus{{Name: "cart", Baseline: "Deployment/shop/cart", Message: "ImagePullBackOff: cart:v3 not found"}}}); err != nil {
		t.Fatal(err)
	}
	h.golden("sandbox-list.txt", h.mustRun("sandbox", "list").stdout)
	h.golden("sandbox-list-selector.txt", h.mustRun("sandbox", "list", "-l", "team=nobody").stdout)
	h.golden("sandbox-list-team.txt", h.mustRun("sandbox", "list", "--team", "web").stdout)
	if out := h.mustRun("sandbox", "list", "--team", "web", "-l", "team=nobody").stdout; out != "No sandboxes in org "+cptest.Org+" are in team web and have the labels team=nobody.\n" {
		t.Fatalf("empty team list: %q", out)
	}
	h.golden("sandbox-get.txt", h.mustRun("sandbox", "get", "feat").stdout)
	h.golden("sandbox-get-not-ready.txt", h.mustRun("sandbox", "get", "other").stdout)
	h.golden("routegroup-apply.txt", h.mustRun("routegroup", "apply", "-f", "testdata/routegroup.yaml").stdout)
	h.golden("routegroup-list.txt", h.mustRun("routegroup", "list").stdout)
	h.golden("routegroup-get.txt", h.mustRun("routegroup", "get", "shop-team").stdout)
	h.golden("cluster-add.txt", h.mustRun("cluster", "add", "c2").stdout)
	h.golden("cluster-list.txt", h.mustRun("cluster", "list").stdout)
	h.vars[cli.EnvConfig] = "testdata/no-such-config.yaml"
	h.golden("auth-status.txt", h.mustRun("auth", "status").stdout)
	delete(h.vars, cli.EnvConfig)
	h.golden("sandbox-delete.txt", h.mustRun("sandbox", "delete", "other").stdout)
	h.golden("routegroup-delete.txt", h.mustRun("routegroup", "delete", "shop-team").stdout)

	tok := h.mustRun("cluster", "token", "create", "--cluster", "c2").stdout
	if !strings.Contains(tok, "smc_") || !strings.Contains(tok, "shown once") {
		t.Fatalf("token create: %s", tok)
	}
}

func TestJSONAndYAMLRoundTrip(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.mustRun(applyArgs("feat", "cart:v2")...)
	h.mustRun("routegroup", "apply", "-f", "testdata/routegroup.yaml")
	if err := h.env.ReportStatus(ctx, "feat", readyStatus()); err != nil {
		t.Fatal(err)
	}
	want, err := h.env.Client.GetSandbox(ctx, cptest.Org, "feat")
	if err != nil {
		t.Fatal(err)
	}
	wantRG, err := h.env.Client.GetRouteGroup(ctx, cptest.Org, "shop-team")
	if err != nil {
		t.Fatal(err)
	}
	unmarshal := map[string]func([]byte, any) error{"json": json.Unmarshal, "yaml": func(b []byte, v any) error { return yaml.Unmarshal(b, v) }}
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			dec := unmarshal[format]
			var got client.Sandbox
			out := h.mustRun("sandbox", "get", "feat", "-o", format).stdout
			if err := dec([]byte(out), &got); err != nil {
				t.Fatalf("decode: %v\n%s", err, out)
			}
			if !reflect.DeepEqual(&got, want) {
				t.Fatalf("get -o %s:\n got %+v\nwant %+v", format, got, *want)
			}
			var list []client.Sandbox
			if err := dec([]byte(h.mustRun("sandbox", "list", "-o", format).stdout), &list); err != nil || len(list) != 1 || !reflect.DeepEqual(&list[0], want) {
				t.Fatalf("list -o %s: %v %+v", format, err, list)
			}
			var rgs []client.RouteGroup
			if err := dec([]byte(h.mustRun("routegroup", "list", "-o", format).stdout), &rgs); err != nil || len(rgs) != 1 || !reflect.DeepEqual(&rgs[0], wantRG) {
				t.Fatalf("routegroup list -o %s: %v %+v", format, err, rgs)
			}
			var cls []client.Cluster
			if err := dec([]byte(h.mustRun("cluster", "list", "-o", format).stdout), &cls); err != nil || len(cls) != 1 || cls[0].Name != cptest.Cluster {
				t.Fatalf("cluster list -o %s: %v %+v", format, err, cls)
			}
			// The output applies again unchanged: the read-only fields are ignored.
			f := filepath.Join(t.TempDir(), "sb."+format)
			if err := os.WriteFile(f, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			var applied client.Sandbox
			if err := dec([]byte(h.mustRun("sandbox", "apply", "-f", f, "-o", format).stdout), &applied); err != nil {
				t.Fatal(err)
			}
			if applied.Version != want.Version || !reflect.DeepEqual(applied.Spec, want.Spec) {
				t.Fatalf("re-apply changed the sandbox: version %d -> %d", want.Version, applied.Version)
			}
		})
	}
	var del map[string][]string
	if err := json.Unmarshal([]byte(h.mustRun("sandbox", "delete", "feat", "-o", "json").stdout), &del); err != nil || del["deleted"][0] != "feat" {
		t.Fatalf("delete -o json: %v %v", err, del)
	}
}

func TestTemplating(t *testing.T) {
	h := newHarness(t)
	h.mustRun(applyArgs("feat", "ghcr.io/acme/cart:pr-42")...)
	sb, err := h.env.Client.GetSandbox(context.Background(), cptest.Org, "feat")
	if err != nil {
		t.Fatal(err)
	}
	cu := sb.Spec.Forks[0].Customizations
	if cu.Images[0].Image != "ghcr.io/acme/cart:pr-42" || *cu.Env[0].Value != "on" {
		t.Fatalf("variables: %+v", cu)
	}
	if sb.Spec.Description != "Cart with the new checkout,\nsecond line: \"quoted\"\n" {
		t.Fatalf("embed: %q", sb.Spec.Description)
	}
	// stdin and --cluster
	spec, _ := os.ReadFile("testdata/routegroup.yaml")
	r := h.runIn(string(spec), "routegroup", "apply", "-f", "-")
	if r.code != 0 {
		t.Fatalf("stdin: %d %s", r.code, r.stderr)
	}
}

func TestErrors(t *testing.T) {
	h := newHarness(t)
	h.mustRun(applyArgs("feat", "cart:v2")...)
	down := cptest.Start(t)
	down.HTTP.Close()
	// A reverse proxy in front of a control plane that is gone answers 502.
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream connect error", http.StatusBadGateway)
	}))
	defer gateway.Close()
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		code int
		want []string
	}{
		{"missing spec file", nil, []string{"sandbox", "apply", "-f", "testdata/nope.yaml"}, cli.ExitUsage, []string{"read spec file", "nope.yaml"}},
		{"no -f", nil, []string{"sandbox", "apply"}, cli.ExitUsage, []string{"-f is required"}},
		{"invalid YAML", nil, []string{"sandbox", "apply", "-f", "testdata/bad-yaml.yaml"}, cli.ExitUsage, []string{"bad-yaml.yaml"}},
		{"unknown field", nil, []string{"sandbox", "apply", "-f", "testdata/bad-field.yaml"}, cli.ExitUsage, []string{"bad-field.yaml", "unknown field spec.forkz: check the spelling"}},
		{"Signadot field with a value", nil, []string{"sandbox", "apply", "-f", "testdata/signadot-middleware.yaml"}, cli.ExitUsage,
			[]string{"signadot-middleware.yaml: invalid spec", `spec.middleware[0].name: unknown middleware "trafficwatch"`}},
		{"invalid spec", nil, []string{"sandbox", "apply", "-f", "testdata/bad-spec.yaml"}, cli.ExitUsage,
			[]string{"invalid spec", "name: \"Feat_1\"", "spec.cluster: required", "cluster list", "spec.defaultRouteGroup.endpoints[0].target"}},
		{"missing template variables", nil, []string{"sandbox", "apply", "-f", "testdata/sandbox.yaml", "--set", "name=x"}, cli.ExitUsage,
			[]string{"no value for feature, image", "--set feature=<value> --set image=<value>"}},
		{"bad --set", nil, []string{"sandbox", "apply", "-f", "testdata/sandbox.yaml", "--set", "novalue"}, cli.ExitUsage, []string{`--set "novalue"`}},
		{"rejected by the control plane", nil, append(applyArgs("feat2", "cart:v2"), "--cluster", "nosuch"), cli.ExitUsage,
			[]string{"spec.cluster names no registered cluster", "spec.cluster: not registered", "request "}},
		{"unknown sandbox", nil, []string{"sandbox", "get", "nope"}, cli.ExitNotFound, []string{`sandbox "nope" not found`, "sandboxmesh sandbox list"}},
		{"delete unknown sandbox", nil, []string{"sandbox", "delete", "nope"}, cli.ExitNotFound, []string{"not found"}},
		{"unknown route group", nil, []string{"routegroup", "get", "nope"}, cli.ExitNotFound, []string{"routegroup list"}},
		{"token for unknown cluster", nil, []string{"cluster", "token", "create", "--cluster", "nope"}, cli.ExitNotFound, []string{"cluster"}},
		{"bad key", map[string]string{cli.EnvAPIKey: "smk_wrong"}, []string{"sandbox", "list"}, cli.ExitAuth, []string{"invalid or revoked API key", "auth login"}},
		{"no key", map[string]string{cli.EnvAPIKey: ""}, []string{"sandbox", "list"}, cli.ExitAuth, []string{"no API key", "auth login"}},
		{"wrong org", map[string]string{cli.EnvOrg: "globex"}, []string{"sandbox", "list"}, cli.ExitNotFound, []string{`org "globex" not found`, "auth status"}},
		{"server down", map[string]string{cli.EnvAPIURL: down.URL}, []string{"sandbox", "list"}, cli.ExitUnavailable, []string{"cannot reach the control plane", "--api-url"}},
		{"bad gateway", map[string]string{cli.EnvAPIURL: gateway.URL}, []string{"sandbox", "get", "feat"}, cli.ExitUnavailable, []string{"answered 502", "upstream connect error"}},
		{"bad api url", map[string]string{cli.EnvAPIURL: "localhost:8080"}, []string{"sandbox", "list"}, cli.ExitUsage, []string{"api_url"}},
		{"bad output", nil, []string{"sandbox", "list", "-o", "xml"}, cli.ExitUsage, []string{`-o "xml"`}},
		{"unknown command", nil, []string{"sandboxes", "frobnicate", "x"}, cli.ExitUsage, []string{"unknown command"}},
		{"unknown flag", nil, []string{"sandbox", "list", "--frob"}, cli.ExitUsage, []string{"unknown flag"}},
		{"bad map", nil, []string{"local", "proxy", "--sandbox", "feat", "--map", "http://x.y.svc:80"}, cli.ExitUsage, []string{"TARGET@LOCAL"}},
		{"undeclared target", nil, []string{"local", "proxy", "--sandbox", "feat", "--map", "http://api.shop.svc:80@127.0.0.1:0"}, cli.ExitUsage,
			[]string{"declares no endpoint", "web=http://frontend.shop.svc:8080", "spec.defaultRouteGroup.endpoints"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			saved := map[string]string{}
			for k, v := range h.vars {
				saved[k] = v
			}
			for k, v := range tc.vars {
				h.vars[k] = v
			}
			defer func() { h.vars = saved }()
			h.t = t
			r := h.run(tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstderr: %s", r.code, tc.code, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
}

func TestWaitWithProgress(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	var out, errb syncBuffer
	done := make(chan int)
	go func() {
		done <- h.app("", &out, &errb).Execute(ctx, applyArgs("feat", "cart:v2", "--wait", "--wait-timeout", "20s"))
	}()
	waitFor(t, func() bool { _, err := h.env.Client.GetSandbox(ctx, cptest.Org, "feat"); return err == nil })
	waitFor(t, func() bool { return strings.Contains(errb.String(), "Pending") })
	if err := h.env.ReportStatus(ctx, "feat", apitypes.ObservedStatus{Reason: "ForksNotReady", Message: "1 of 1 forks not ready",
		Forks: []v1alpha1.ForkStatus{{Name: "cart", Baseline: "Deployment/shop/cart", Message: "pulling image cart:v2"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(errb.String(), "pulling image") })
	if err := h.env.ReportStatus(ctx, "feat", readyStatus()); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	progress := errb.String()
	for _, w := range []string{
		"waiting up to 20s",
		"feat: not ready (Pending): waiting for the agent of cluster \"c1\"",
		"feat: not ready (ForksNotReady): 1 of 1 forks not ready",
		"fork cart (Deployment/shop/cart): not ready: pulling image cart:v2",
		"feat: ready (Available)",
		"fork cart (Deployment/shop/cart): ready",
	} {
		if !strings.Contains(progress, w) {
			t.Errorf("progress lacks %q:\n%s", w, progress)
		}
	}
	h.golden("sandbox-apply-wait.txt", out.String())

	t.Run("timeout", func(t *testing.T) {
		h.t = t
		r := h.run(applyArgs("slow", "cart:v2", "--wait", "--wait-timeout", "300ms")...)
		if r.code != cli.ExitTimeout || !strings.Contains(r.stderr, "not ready after 300ms: Pending: waiting for the agent") || !strings.Contains(r.stderr, "--wait-timeout") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("json", func(t *testing.T) {
		h.t = t
		r := h.run(applyArgs("feat", "cart:v2", "--wait", "-o", "json")...)
		var sb client.Sandbox
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &sb) != nil || !sb.Status.Ready {
			t.Fatalf("exit %d: %s %s", r.code, r.stdout, r.stderr)
		}
	})
}

func TestAuth(t *testing.T) {
	h := newHarness(t)
	h.vars = map[string]string{}
	cfg := filepath.Join(h.home, ".sandboxmesh", "config.yaml")

	r := h.run("auth", "login", "--api-url", h.env.URL, "--org", cptest.Org, "--api-key", "smk_wrong")
	if r.code != cli.ExitAuth || !strings.Contains(r.stderr, "invalid or revoked API key") {
		t.Fatalf("bad key: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(cfg); !os.IsNotExist(err) {
		t.Fatalf("config written for a bad key: %v", err)
	}
	r = h.run("auth", "login", "--api-url", h.env.URL, "--api-key", h.env.Key)
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "--org") {
		t.Fatalf("no org: %d %s", r.code, r.stderr)
	}
	// The key from stdin.
	r = h.runIn(h.env.Key+"\n", "auth", "login", "--api-url", h.env.URL, "--org", cptest.Org)
	if r.code != 0 {
		t.Fatalf("login: %d %s", r.code, r.stderr)
	}
	h.golden("auth-login.txt", r.stdout)
	st, err := os.Stat(cfg)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("config mode: %v %v", st.Mode(), err)
	}
	b, _ := os.ReadFile(cfg)
	if !strings.Contains(string(b), "api_key: "+h.env.Key) || !strings.Contains(string(b), "org: acme") {
		t.Fatalf("config:\n%s", b)
	}
	h.mustRun("sandbox", "list")
	var status map[string]any
	if err := json.Unmarshal([]byte(h.mustRun("auth", "status", "-o", "json").stdout), &status); err != nil || status["authenticated"] != true || status["apiKeyFrom"] != cfg {
		t.Fatalf("status: %v %v", err, status)
	}
	// Environment overrides the file, flags override the environment.
	h.vars[cli.EnvOrg] = "globex"
	if r := h.run("auth", "status"); r.code != cli.ExitNotFound || !strings.Contains(r.stdout, "$"+cli.EnvOrg) {
		t.Fatalf("env org: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := h.run("auth", "status", "--org", cptest.Org); r.code != 0 || !strings.Contains(r.stdout, "flag") {
		t.Fatalf("flag org: %d %s %s", r.code, r.stdout, r.stderr)
	}
	delete(h.vars, cli.EnvOrg)
	// A bad config file says which keys it takes.
	os.WriteFile(cfg, []byte("orgg: x\n"), 0o600)
	if r := h.run("sandbox", "list"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "keys: org, api_key") {
		t.Fatalf("bad config: %d %s", r.code, r.stderr)
	}
	// Not logged in.
	os.Remove(cfg)
	if r := h.run("auth", "status"); r.code != cli.ExitAuth || !strings.Contains(r.stderr, "not logged in") {
		t.Fatalf("logged out: %d %s", r.code, r.stderr)
	}
}

func TestLocalProxy(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h.mustRun(applyArgs("feat", "cart:v2")...)
	backend := cptest.NewBackend(t)
	h.env.ConnectAgent(t, backend, "frontend.shop.svc:8080")
	addrs := make(chan string, 1)
	var out, errb syncBuffer
	app := h.app("", &out, &errb)
	app.OnListen = func(a string) { addrs <- a }
	done := make(chan int)
	go func() {
		done <- app.Execute(ctx, []string{"local", "proxy", "--sandbox", "feat", "--map", "http://frontend.shop.svc:8080@127.0.0.1:0"})
	}()
	var addr string
	select {
	case addr = <-addrs:
	case code := <-done:
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	resp, err := http.Post("http://"+addr+"/cart/items?id=7", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "backend POST /cart/items?id=7 body=hello" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	got := backend.Last()
	if k, ok := routingkey.Default.Extract(got.Header); !ok || k != "rk0001" {
		t.Fatalf("routing key upstream = %q %v; headers %v", k, ok, got.Header)
	}
	if got.Header.Get(apitypes.HeaderAPIKey) != "" {
		t.Fatal("API key leaked to the service")
	}
	if !strings.Contains(out.String(), "-> http://frontend.shop.svc:8080 (endpoint web of sandbox feat, routing key rk0001)") ||
		!strings.Contains(errb.String(), "not ready") {
		t.Fatalf("output: %s / %s", out.String(), errb.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	h := newHarness(t)
	if r := h.mustRun("version"); !strings.HasPrefix(r.stdout, "sandboxmesh dev (commit unknown") {
		t.Fatalf("version: %s", r.stdout)
	}
	var v map[string]string
	if err := yaml.Unmarshal([]byte(h.mustRun("version", "-o", "yaml").stdout), &v); err != nil || v["version"] != "dev" {
		t.Fatalf("version -o yaml: %v %v", err, v)
	}
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		if r := h.mustRun("completion", sh); len(r.stdout) < 100 {
			t.Fatalf("completion %s: %q", sh, r.stdout)
		}
	}
	h.mustRun(applyArgs("feat", "cart:v2")...)
	if r := h.mustRun("__complete", "sandbox", "get", ""); !strings.Contains(r.stdout, "feat\t") {
		t.Fatalf("dynamic completion: %q", r.stdout)
	}
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(fmt.Errorf("condition not met in time"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMCPCommand drives `sandboxmesh mcp` over its stdio with the MCP SDK's client.
func TestMCPCommand(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	var errb syncBuffer
	app := h.app("", outW, &errb)
	app.Stdin = inR
	done := make(chan int)
	go func() {
		code := app.Execute(ctx, []string{"mcp"})
		outW.Close()
		done <- code
	}()
	cl := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "v0"}, nil)
	cs, err := cl.Connect(ctx, &mcp.IOTransport{Reader: outR, Writer: inW}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sandbox_fork", Arguments: map[string]any{"name": "feat", "workload": "shop/cart", "image": "cart:v2"}})
	if err != nil || res.IsError {
		t.Fatalf("sandbox_fork: %v %+v", err, res)
	}
	if init := cs.InitializeResult(); init == nil || init.ServerInfo.Name != "sandboxmesh" || !strings.Contains(init.Instructions, "sandbox_fork") {
		t.Fatalf("initialize: %+v", init)
	}
	sb, err := h.env.Client.GetSandbox(ctx, cptest.Org, "feat")
	if err != nil || sb.Spec.Forks[0].Customizations.Images[0].Image != "cart:v2" {
		t.Fatalf("sandbox: %v %+v", err, sb)
	}
	cs.Close()
	inW.Close()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// TestNewcomerFlow is docs/cli.md's three commands: log in, fork a workload
// with a new image and wait (the agent reports readiness meanwhile), reach the
// sandbox from the local machine.
func TestNewcomerFlow(t *testing.T) {
	h := newHarness(t)
	h.vars = map[string]string{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	h.mustRun("auth", "login", "--api-url", h.env.URL, "--org", cptest.Org, "--api-key", h.env.Key)

	go func() {
		waitFor(t, func() bool { _, err := h.env.Client.GetSandbox(ctx, cptest.Org, "feat"); return err == nil })
		if err := h.env.ReportStatus(ctx, "feat", readyStatus()); err != nil {
			t.Error(err)
		}
	}()
	r := h.mustRun("sandbox", "fork", "feat", "--workload", "shop/cart", "--image", "cart:v2", "--env", "FEATURE=on",
		"--endpoint", "http://frontend.shop.svc:8080", "--wait", "--wait-timeout", "20s")
	h.golden("sandbox-fork-wait.txt", r.stdout)

	backend := cptest.NewBackend(t)
	h.env.ConnectAgent(t, backend, "frontend.shop.svc:8080")
	addrs := make(chan string, 1)
	var out, errb syncBuffer
	app := h.app("", &out, &errb)
	app.OnListen = func(a string) { addrs <- a }
	done := make(chan int, 1)
	go func() {
		done <- app.Execute(ctx, []string{"local", "proxy", "--sandbox", "feat", "--map", "http://frontend.shop.svc:8080@127.0.0.1:0"})
	}()
	var addr string
	select {
	case addr = <-addrs:
	case code := <-done:
		t.Fatalf("local proxy exit %d: %s", code, errb.String())
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "backend GET /" {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if k, _ := routingkey.Default.Extract(backend.Last().Header); k != "rk0001" {
		t.Fatalf("routing key %q", k)
	}
}

func TestForkErrors(t *testing.T) {
	h := newHarness(t)
	h.mustRun("sandbox", "fork", "feat", "--workload", "shop/cart", "--image", "cart:v2")
	// An update keeps the fork and changes its image.
	h.mustRun("sandbox", "fork", "feat", "--workload", "shop/cart", "--image", "cart:v3", "--endpoint-port", "8080")
	sb, err := h.env.Client.GetSandbox(context.Background(), cptest.Org, "feat")
	if err != nil || len(sb.Spec.Forks) != 1 || sb.Spec.Forks[0].Customizations.Images[0].Image != "cart:v3" || sb.Spec.DefaultRouteGroup.Endpoints[0].Target != "http://cart.shop.deploy:8080" {
		t.Fatalf("update: %v %+v", err, sb)
	}
	h.mustRun("cluster", "add", "c2")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no workload", []string{"sandbox", "fork", "x", "--image", "i"}, cli.ExitUsage, "--workload is required"},
		{"bad workload", []string{"sandbox", "fork", "x", "--workload", "cart", "--image", "i"}, cli.ExitUsage, "namespace/name"},
		{"nothing to change", []string{"sandbox", "fork", "x", "--workload", "shop/cart"}, cli.ExitUsage, "give an --image"},
		{"bad name", []string{"sandbox", "fork", "X_1", "--workload", "shop/cart", "--image", "i"}, cli.ExitUsage, "DNS label"},
		{"bad env", []string{"sandbox", "fork", "x", "--workload", "shop/cart", "--env", "noequals"}, cli.ExitUsage, "name=value"},
		{"several clusters", []string{"sandbox", "fork", "x", "--workload", "shop/cart", "--image", "i"}, cli.ExitUsage, "several clusters (c1, c2): choose one with --cluster"},
		{"bad endpoint", []string{"sandbox", "fork", "x", "--workload", "shop/cart", "--image", "i", "--cluster", "c1", "--endpoint", "frontend:80"}, cli.ExitUsage, "spec.defaultRouteGroup.endpoints[0].target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			r := h.run(tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d (want %d), stderr lacks %q:\n%s", r.code, tc.code, tc.want, r.stderr)
			}
		})
	}
}

func TestClusterWorkloads(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// Before the agent's first report: a clear error, exit code of "not found".
	r := h.run("cluster", "workloads")
	if r.code == 0 || !strings.Contains(r.stderr, `the agent of cluster "c1" has not reported its workloads yet`) {
		t.Fatalf("before report: %+v", r)
	}
	if err := h.env.ReportWorkloads(ctx,
		apitypes.Workload{Kind: "Deployment", Namespace: "shop", Name: "cart", Replicas: 2, ReadyReplicas: 2, DevmeshInjected: true,
			Containers: []apitypes.WorkloadContainer{{Name: "cart", Image: "cart:v1"}}, Services: []apitypes.WorkloadService{{Name: "cart", Ports: []int32{80, 9090}}}},
		apitypes.Workload{Kind: "Deployment", Namespace: "shop", Name: "worker", Replicas: 1,
			Containers: []apitypes.WorkloadContainer{{Name: "worker", Image: "worker:v4"}, {Name: "log", Image: "fluent:1"}}},
		apitypes.Workload{Kind: "Deployment", Namespace: "web", Name: "frontend", Replicas: 1, ReadyReplicas: 1, DevmeshInjected: true,
			Containers: []apitypes.WorkloadContainer{{Name: "web", Image: "web:v9"}}, Services: []apitypes.WorkloadService{{Name: "frontend", Ports: []int32{8080}}}},
	); err != nil {
		t.Fatal(err)
	}
	h.golden("cluster-workloads.txt", h.mustRun("cluster", "workloads").stdout)
	h.golden("cluster-workloads-ns.txt", h.mustRun("cluster", "workloads", "c1", "-n", "web").stdout)
	var wl apitypes.WorkloadList
	if err := json.Unmarshal([]byte(h.mustRun("cluster", "workloads", "-o", "json").stdout), &wl); err != nil || len(wl.Workloads) != 3 || wl.ReportedAt == "" {
		t.Fatalf("json: %+v %v", wl, err)
	}
	if r := h.run("cluster", "workloads", "nope"); r.code == 0 || !strings.Contains(r.stderr, "not found") {
		t.Fatalf("unknown cluster: %+v", r)
	}
	if r := h.run("cluster", "workloads", "c1", "-n", "Bad_NS"); r.code == 0 || !strings.Contains(r.stderr, "namespace") {
		t.Fatalf("bad namespace: %+v", r)
	}
}

func TestClusterPreviewPolicy(t *testing.T) {
	h := newHarness(t)
	if out := h.mustRun("cluster", "preview-policy", "get", "c1").stdout; !strings.Contains(out, "every namespace except kube-system") {
		t.Fatalf("default policy: %q", out)
	}
	if out := h.mustRun("cluster", "preview-policy", "set", "c1", "--namespaces", "shop,hotrod").stdout; out != "cluster c1: preview endpoints may target namespaces shop, hotrod\n" {
		t.Fatalf("set: %q", out)
	}
	var p apitypes.PreviewPolicy
	if err := json.Unmarshal([]byte(h.mustRun("cluster", "preview-policy", "get", "c1", "-o", "json").stdout), &p); err != nil || strings.Join(p.AllowedNamespaces, ",") != "shop,hotrod" {
		t.Fatalf("json: %+v %v", p, err)
	}
	if out := h.mustRun("cluster", "preview-policy", "set", "c1", "--namespaces=").stdout; !strings.Contains(out, "every namespace except") {
		t.Fatalf("cleared: %q", out)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cluster", "preview-policy", "set", "c1"}, "--namespaces is required"},
		{[]string{"cluster", "preview-policy", "set", "c1", "--namespaces", "Bad_NS"}, "allowedNamespaces[0]"},
		{[]string{"cluster", "preview-policy", "get", "nope"}, "not found"},
	} {
		if r := h.run(tc.args...); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q lacks %q", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// TestSignadotEnv: SIGNADOT_ORG and SIGNADOT_API_KEY stand in for unset
// SandboxMesh settings, with one warning line; SandboxMesh's variables, the
// config file and flags win over them, silently.
func TestSignadotEnv(t *testing.T) {
	h := newHarness(t)
	cfg := filepath.Join(h.home, ".sandboxmesh", "config.yaml")
	sd := map[string]string{cli.EnvAPIURL: h.env.URL, cli.EnvSignadotOrg: cptest.Org, cli.EnvSignadotAPIKey: h.env.Key}
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		file    string
		args    []string
		code    int
		warning string // "" wants no warning
		keyFrom string
	}{
		{"both from Signadot's variables", sd, "", []string{"auth", "status", "-o", "json"}, 0, "warning: using $SIGNADOT_ORG and $SIGNADOT_API_KEY (Signadot's variables) because SANDBOXMESH_ORG and SANDBOXMESH_API_KEY are unset", "$SIGNADOT_API_KEY"},
		{"only the key", map[string]string{cli.EnvAPIURL: h.env.URL, cli.EnvOrg: cptest.Org, cli.EnvSignadotOrg: "globex", cli.EnvSignadotAPIKey: h.env.Key}, "", []string{"auth", "status", "-o", "json"}, 0, "warning: using $SIGNADOT_API_KEY (Signadot's", "$SIGNADOT_API_KEY"},
		{"ours win", map[string]string{cli.EnvAPIURL: h.env.URL, cli.EnvOrg: cptest.Org, cli.EnvAPIKey: h.env.Key, cli.EnvSignadotOrg: "globex", cli.EnvSignadotAPIKey: "smk_wrong"}, "", []string{"auth", "status", "-o", "json"}, 0, "", "$" + cli.EnvAPIKey},
		{"config file wins", map[string]string{cli.EnvSignadotOrg: "globex", cli.EnvSignadotAPIKey: "smk_wrong"}, "org: " + cptest.Org + "\napi_key: " + h.env.Key + "\napi_url: " + h.env.URL + "\n", []string{"auth", "status", "-o", "json"}, 0, "", cfg},
		{"a command works", sd, "", []string{"sandbox", "list"}, 0, "warning: using $SIGNADOT_ORG and $SIGNADOT_API_KEY", ""},
		{"a bad Signadot key", map[string]string{cli.EnvAPIURL: h.env.URL, cli.EnvSignadotOrg: cptest.Org, cli.EnvSignadotAPIKey: "smk_wrong"}, "", []string{"sandbox", "list"}, cli.ExitAuth, "warning: using $SIGNADOT_ORG and $SIGNADOT_API_KEY", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.vars = tc.vars
			os.Remove(cfg)
			if tc.file != "" {
				os.MkdirAll(filepath.Dir(cfg), 0o700)
				if err := os.WriteFile(cfg, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r := h.run(tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if n := strings.Count(r.stderr, "warning: using $SIGNADOT"); (tc.warning == "" && n != 0) || (tc.warning != "" && (n != 1 || !strings.Contains(r.stderr, tc.warning))) {
				t.Fatalf("want warning %q once, stderr:\n%s", tc.warning, r.stderr)
			}
			if tc.keyFrom != "" {
				var status map[string]any
				if err := json.Unmarshal([]byte(r.stdout), &status); err != nil || status["apiKeyFrom"] != tc.keyFrom || status["authenticated"] != true {
					t.Fatalf("status: %v %s", err, r.stdout)
				}
			}
		})
	}
}

// TestSignadotSpecFile: a spec file written for Signadot (nulls, Signadot
// fields sent empty, forks[].endpoints) applies as the API takes it.
func TestSignadotSpecFile(t *testing.T) {
	h := newHarness(t)
	r := h.mustRun("sandbox", "apply", "-f", "testdata/signadot-sandbox.yaml", "--set", "name=legacy", "-o", "json")
	var sb apitypes.Sandbox
	if err := json.Unmarshal([]byte(r.stdout), &sb); err != nil {
		t.Fatalf("%v\n%s", err, r.stdout)
	}
	drg := sb.Spec.DefaultRouteGroup
	if drg == nil || len(drg.Endpoints) != 1 || drg.Endpoints[0] != (v1alpha1.Endpoint{Name: "cart", Target: "http://cart.shop.deploy:8080"}) {
		t.Fatalf("endpoints: %s", r.stdout)
	}
}

// TestSandboxTeam: a spec file's top-level team is sent, --team overrides it,
// an update without either keeps the team, and an unknown team is refused
// with the field.
func TestSandboxTeam(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for _, team := range []string{"web", "ops"} {
		if _, err := h.env.Client.ApplyTeam(ctx, cptest.Org, team, 0); err != nil {
			t.Fatal(err)
		}
	}
	spec := func(team string) string {
		s := "name: feat\nspec:\n  cluster: c1\n  forks:\n  - forkOf: {kind: Deployment, namespace: shop, name: cart}\n    customizations:\n      images: [{image: cart:v2}]\n"
		if team != "" {
			s = "team: " + team + "\n" + s
		}
		return s
	}
	teamOf := func() string {
		t.Helper()
		sb, err := h.env.Client.GetSandbox(ctx, cptest.Org, "feat")
		if err != nil {
			t.Fatal(err)
		}
		return sb.Team
	}
	if r := h.runIn(spec("web"), "sandbox", "apply", "-f", "-"); r.code != 0 || teamOf() != "web" {
		t.Fatalf("apply with team in the file: %+v, team %q", r, teamOf())
	}
	if r := h.runIn(spec(""), "sandbox", "apply", "-f", "-"); r.code != 0 || teamOf() != "web" {
		t.Fatalf("apply without team: %+v, team %q", r, teamOf())
	}
	if r := h.runIn(spec("web"), "sandbox", "apply", "-f", "-", "--team", "ops"); r.code != 0 || teamOf() != "ops" {
		t.Fatalf("apply --team ops: %+v, team %q", r, teamOf())
	}
	r := h.runIn(spec(""), "sandbox", "apply", "-f", "-", "--team", "nope")
	if r.code != cli.ExitUsage || !strings.Contains(r.stderr, "team") || teamOf() != "ops" {
		t.Fatalf("apply --team nope: %+v, team %q", r, teamOf())
	}
}

// TestUsage: `usage` lists the teams' month (no team, each team with its
// quota, a total), -o json is the API's answer, a bad month is a usage error
// naming the field.
func TestUsage(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.env.Client.ApplyTeam(ctx, cptest.Org, "web", 3); err != nil {
		t.Fatal(err)
	}
	h.mustRun(applyArgs("feat", "cart:v2")...)
	h.mustRun(applyArgs("other", "cart:v3", "--team", "web")...)
	out := h.mustRun("usage").stdout
	for _, want := range []string{"Usage of org " + cptest.Org + " in ", "SANDBOX-HOURS   SANDBOXES   MOST AT ONCE   LIVE   QUOTA", "(no team)", "\nweb ", "\nTOTAL "} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(`(?m)^web\s+\d+\.\d\d\s+1\s+1\s+1\s+3$`).MatchString(out) {
		t.Errorf("team web's row:\n%s", out)
	}
	var u client.Usage
	if err := json.Unmarshal([]byte(h.mustRun("usage", "-o", "json").stdout), &u); err != nil || u.Total.Sandboxes != 2 || len(u.Teams) != 2 {
		t.Fatalf("usage -o json: %+v %v", u, err)
	}
	if r := h.run("usage", "--month", "2026-13"); r.code != cli.ExitUsage || !strings.Contains(r.stderr, "month") {
		t.Fatalf("a bad month: %+v", r)
	}
}
