package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// testPlugin is a valid plugin with the create outputs provision.host and
// provision.password.
func testPlugin(name, image string) *client.ResourcePlugin {
	return &client.ResourcePlugin{Name: name, Spec: v1alpha1.ResourcePluginSpec{
		Description: "a schema per sandbox",
		Runner:      v1alpha1.PluginRunner{Image: image, PodTemplateOverlay: "spec:\n  serviceAccountName: db-admin\n"},
		Create: []v1alpha1.PluginStep{{Name: "provision", Script: "#!/bin/sh\necho",
			Inputs:  []v1alpha1.StepInput{{Name: "dbname", ValueFromSandbox: true, As: &v1alpha1.InputAs{Env: "DBNAME"}}},
			Outputs: []v1alpha1.StepOutput{{Name: "host", ValueFromPath: "/tmp/host"}, {Name: "password", ValueFromPath: "/tmp/pw"}}}},
		Delete: []v1alpha1.PluginStep{{Name: "drop", Script: "#!/bin/sh\necho",
			Inputs: []v1alpha1.StepInput{{Name: "host", ValueFromStep: &v1alpha1.StepOutputRef{Name: "provision", Output: "host"}, As: &v1alpha1.InputAs{Env: "HOST"}}}}},
	}}
}

// agentState reads a cluster's full state with its token, as the agent does.
func (e *env) agentState(t *testing.T, token string) apitypes.AgentState {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.http.URL+"/api/v2/agent/state?wait=0s", nil)
	req.Header.Set(apitypes.HeaderClusterToken, token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st apitypes.AgentState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestResourcePluginCRUD(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		got, err := e.acme.ApplyResourcePlugin(ctx, "acme", testPlugin("pg", "example.com/db:1"))
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != 1 || got.Spec.Runner.Namespace != v1alpha1.DefaultPluginNamespace || got.Status.Sandboxes == nil || got.CreatedAt == "" {
			t.Fatalf("applied: %+v", got)
		}
		// Same spec again: a no-op.
		again, err := e.acme.ApplyResourcePlugin(ctx, "acme", testPlugin("pg", "example.com/db:1"))
		if err != nil || again.Version != 1 {
			t.Fatalf("re-apply: %+v %v", again, err)
		}
		// Another spec: refused, the stored one kept.
		_, err = e.acme.ApplyResourcePlugin(ctx, "acme", testPlugin("pg", "example.com/db:2"))
		if ae := apiErr(t, err); ae.Status != http.StatusConflict || !strings.Contains(ae.Message, "a resource plugin cannot be changed; apply it under a new name") {
			t.Fatalf("change: %+v", ae)
		}
		if g, err := e.acme.GetResourcePlugin(ctx, "acme", "pg"); err != nil || g.Spec.Runner.Image != "example.com/db:1" {
			t.Fatalf("get: %+v %v", g, err)
		}
		if _, err := e.acme.ApplyResourcePlugin(ctx, "acme", testPlugin("redis", "example.com/redis")); err != nil {
			t.Fatal(err)
		}
		l, err := e.acme.ListResourcePlugins(ctx, "acme")
		if err != nil || len(l) != 2 || l[0].Name != "pg" || l[1].Name != "redis" {
			t.Fatalf("list: %+v %v", l, err)
		}
		resp, _, _ := e.raw(http.MethodGet, "/api/v2/orgs/acme/resource-plugins?limit=1", e.keyA, "")
		if resp.StatusCode != 200 || resp.Header.Get(apitypes.HeaderContinue) == "" {
			t.Fatalf("paged list: %d %v", resp.StatusCode, resp.Header)
		}
		// Org isolation.
		if _, err := e.other.GetResourcePlugin(ctx, "other", "pg"); apiErr(t, err).Status != http.StatusNotFound {
			t.Fatalf("other org sees acme's plugin: %v", err)
		}
		if _, err := e.other.GetResourcePlugin(ctx, "acme", "pg"); apiErr(t, err).Status != http.StatusNotFound {
			t.Fatalf("other org's key on acme: %v", err)
		}
		// Every cluster of the org gets it.
		if _, err := e.admin.RegisterCluster(ctx, "acme", "c2"); err != nil {
			t.Fatal(err)
		}
		tok2, err := e.acme.CreateClusterToken(ctx, "acme", "c2")
		if err != nil {
			t.Fatal(err)
		}
		for _, tok := range []string{e.tokenA, tok2.Token} {
			var names []string
			for _, o := range e.agentState(t, tok).Objects {
				if o.Kind == "resourceplugin" {
					names = append(names, o.Name)
					var spec v1alpha1.ResourcePluginSpec
					if err := json.Unmarshal(o.Spec, &spec); err != nil || spec.Runner.Image == "" {
						t.Fatalf("agent spec of %s: %s %v", o.Name, o.Spec, err)
					}
				}
			}
			if !slices.Equal(names, []string{"pg", "redis"}) {
				t.Fatalf("agent state plugins: %v", names)
			}
		}
		if err := e.acme.DeleteResourcePlugin(ctx, "acme", "redis"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.acme.GetResourcePlugin(ctx, "acme", "redis"); apiErr(t, err).Status != http.StatusNotFound {
			t.Fatalf("deleted plugin: %v", err)
		}
		if err := e.acme.DeleteResourcePlugin(ctx, "acme", "redis"); apiErr(t, err).Status != http.StatusNotFound {
			t.Fatalf("delete twice: %v", err)
		}
		// Unknown fields are refused with their path; read-only ones dropped.
		resp, er, _ := e.raw(http.MethodPut, "/api/v2/orgs/acme/resource-plugins/x", e.keyA,
			`{"spec":{"runner":{"image":"i","bogus":1}},"status":{"sandboxes":["a"]}}`)
		if resp.StatusCode != http.StatusBadRequest || len(er.Fields) == 0 || er.Fields[0].Path != "spec.runner.bogus" {
			t.Fatalf("unknown field: %d %+v", resp.StatusCode, er)
		}
		resp, _, body := e.raw(http.MethodPut, "/api/v2/orgs/acme/resource-plugins/x", e.keyA,
			`{"spec":{"runner":{"image":"i"}},"status":{"sandboxes":["a"]},"createdAt":"x"}`)
		if resp.StatusCode != 200 || resp.Header.Get(apitypes.HeaderCreated) != "true" {
			t.Fatalf("read-only fields: %d %s", resp.StatusCode, body)
		}
	})
}

func TestResourcePluginBadSpecs(t *testing.T) {
	files, err := filepath.Glob("../../crds/v1alpha1/testdata/resourceplugin-bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	type bad struct{ name, path, body string }
	var cases []bad
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var path string
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "# path: "); ok {
				path = v
			}
		}
		var obj struct {
			Spec json.RawMessage `json:"spec"`
		}
		if err := yaml.Unmarshal(raw, &obj); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cases = append(cases, bad{filepath.Base(f), path, `{"spec":` + string(obj.Spec) + `}`})
	}
	cases = append(cases,
		bad{"overlay-not-a-pod-template", "spec.runner.podTemplateOverlay", `{"spec":{"runner":{"image":"i","podTemplateOverlay":"spec:\n  containers: 3\n"},"create":[{"name":"a","script":"#!/bin/sh"}]}}`},
		bad{"overlay-unknown-field", "spec.runner.podTemplateOverlay", `{"spec":{"runner":{"image":"i","podTemplateOverlay":"spec:\n  serviceAcountName: x\n"}}}`},
		bad{"name-differs", "name", `{"name":"other","spec":{"runner":{"image":"i"}}}`},
	)
	forEachDriver(t, func(t *testing.T, e *env) {
		for _, c := range cases {
			resp, er, body := e.raw(http.MethodPut, "/api/v2/orgs/acme/resource-plugins/bad", e.keyA, c.body)
			found := false
			for _, f := range er.Fields {
				found = found || f.Path == c.path
			}
			if resp.StatusCode != http.StatusBadRequest || er.Reason != apitypes.ReasonValidation || !found {
				t.Errorf("%s: want 400 at %s, got %d %s", c.name, c.path, resp.StatusCode, body)
			}
			if _, err := e.acme.GetResourcePlugin(context.Background(), "acme", "bad"); err == nil || apiErr(t, err).Status != http.StatusNotFound {
				t.Fatalf("%s: stored anyway (%v)", c.name, err)
			}
		}
		resp, er, _ := e.raw(http.MethodPut, "/api/v2/orgs/acme/resource-plugins/"+strings.Repeat("a", 64), e.keyA, `{"spec":{"runner":{"image":"i"}}}`)
		if resp.StatusCode != http.StatusBadRequest || len(er.Fields) != 1 || er.Fields[0].Path != "name" {
			t.Fatalf("long name: %d %+v", resp.StatusCode, er)
		}
	})
}

// sandboxWithDB is sandbox(name) with the resource db of plugin and an env
// var from its output key.
func sandboxWithDB(name, plugin, key string) *client.Sandbox {
	sb := sandbox(name, nil)
	sb.Spec.Resources = []v1alpha1.Resource{{Name: "db", Plugin: plugin, Params: map[string]string{"dbname": name}}}
	sb.Spec.Forks[0].Customizations.Env = []v1alpha1.EnvCustomization{{Name: "DB_HOST",
		ValueFrom: &v1alpha1.EnvValueFrom{Resource: &v1alpha1.EnvValueFromResource{Name: "db", OutputKey: key}}}}
	return sb
}

func TestResourcePluginInUseAndSandboxChecks(t *testing.T) {
	forEachDriver(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		// Unknown plugin: refused at the field, nothing stored.
		_, err := e.acme.ApplySandbox(ctx, "acme", sandboxWithDB("s1", "pg", "provision.host"))
		ae := apiErr(t, err)
		if ae.Status != http.StatusBadRequest || len(ae.Fields) != 1 || ae.Fields[0].Path != "spec.resources[0].plugin" || !strings.Contains(ae.Fields[0].Message, `no resource plugin "pg"`) {
			t.Fatalf("unknown plugin: %+v", ae)
		}
		if _, err := e.acme.GetSandbox(ctx, "acme", "s1"); apiErr(t, err).Status != http.StatusNotFound {
			t.Fatalf("stored anyway: %v", err)
		}
		if _, err := e.acme.ApplyResourcePlugin(ctx, "acme", testPlugin("pg", "example.com/db")); err != nil {
			t.Fatal(err)
		}
		// Another org's plugin of the same name does not count.
		if _, err := e.other.ApplySandbox(ctx, "other", sandboxWithDB("s1", "pg", "provision.host")); apiErr(t, err).Status != http.StatusBadRequest {
			t.Fatalf("other org: %v", err)
		}
		// Not a create output (a delete step's name, an unknown output).
		for _, key := range []string{"provision.user", "drop.host"} {
			_, err = e.acme.ApplySandbox(ctx, "acme", sandboxWithDB("s1", "pg", key))
			ae = apiErr(t, err)
			if ae.Status != http.StatusBadRequest || len(ae.Fields) != 1 || ae.Fields[0].Path != "spec.forks[0].customizations.env[0].valueFrom.resource.outputKey" ||
				!strings.Contains(ae.Fields[0].Message, "provision.host, provision.password") {
				t.Fatalf("outputKey %s: %+v", key, ae)
			}
		}
		for _, n := range []string{"s1", "s2"} {
			if _, err := e.acme.ApplySandbox(ctx, "acme", sandboxWithDB(n, "pg", "provision.password")); err != nil {
				t.Fatal(err)
			}
		}
		// Resources cannot change on an existing sandbox.
		sb := sandboxWithDB("s1", "pg", "provision.password")
		sb.Spec.Resources[0].Params["dbname"] = "changed"
		if _, err := e.acme.ApplySandbox(ctx, "acme", sb); apiErr(t, err).Status != http.StatusBadRequest || apiErr(t, err).Fields[0].Path != "spec.resources" {
			t.Fatalf("resources changed: %v", err)
		}
		if g, err := e.acme.GetResourcePlugin(ctx, "acme", "pg"); err != nil || !slices.Equal(g.Status.Sandboxes, []string{"s1", "s2"}) {
			t.Fatalf("users: %+v %v", g, err)
		}
		err = e.acme.DeleteResourcePlugin(ctx, "acme", "pg")
		ae = apiErr(t, err)
		if ae.Status != http.StatusConflict || ae.Reason != apitypes.ReasonInUse || !strings.Contains(ae.Message, "used by sandboxes s1, s2") {
			t.Fatalf("delete in use: %+v", ae)
		}
		for _, n := range []string{"s1", "s2"} {
			if err := e.acme.DeleteSandbox(ctx, "acme", n); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.acme.DeleteResourcePlugin(ctx, "acme", "pg"); err != nil {
			t.Fatalf("delete unused: %v", err)
		}
	})
}
