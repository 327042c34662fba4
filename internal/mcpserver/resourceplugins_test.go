package mcpserver_test

import (
	"context"
	"slices"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/internal/mcpserver"
)

// TestResourcePlugins: the read-only tools list the org's plugins and the
// output keys a sandbox can wire; sandbox_apply takes resources.
func TestResourcePlugins(t *testing.T) {
	e := cptest.Start(t)
	s := connect(t, e.URL, e.Key)
	ctx := context.Background()
	rp := &client.ResourcePlugin{Name: "pg", Spec: v1alpha1.ResourcePluginSpec{Description: "a schema", Runner: v1alpha1.PluginRunner{Image: "example.com/db"},
		Create: []v1alpha1.PluginStep{{Name: "provision", Script: "#!/bin/sh\necho", Outputs: []v1alpha1.StepOutput{{Name: "host", ValueFromPath: "/tmp/host"}, {Name: "password", ValueFromPath: "/tmp/pw"}}}}}}
	if _, err := e.Client.ApplyResourcePlugin(ctx, cptest.Org, rp); err != nil {
		t.Fatal(err)
	}
	var l mcpserver.ResourcePluginList
	s.mustCall("resourceplugin_list", map[string]any{}, &l)
	if len(l.ResourcePlugins) != 1 || l.ResourcePlugins[0].Name != "pg" || l.ResourcePlugins[0].Spec.Runner.Image != "example.com/db" {
		t.Fatalf("resourceplugin_list: %+v", l)
	}
	spec := map[string]any{"cluster": cptest.Cluster,
		"resources": []any{map[string]any{"name": "db", "plugin": "pg"}},
		"forks": []any{map[string]any{"forkOf": map[string]any{"kind": "Deployment", "namespace": "shop", "name": "cart"},
			"customizations": map[string]any{"env": []any{map[string]any{"name": "DB_HOST",
				"valueFrom": map[string]any{"resource": map[string]any{"name": "db", "outputKey": "provision.host"}}}}}}}}
	s.mustCall("sandbox_apply", map[string]any{"name": "with-db", "spec": spec}, nil)
	var v mcpserver.ResourcePluginView
	s.mustCall("resourceplugin_get", map[string]any{"name": "pg"}, &v)
	if !slices.Equal(v.OutputKeys, []string{"provision.host", "provision.password"}) || !slices.Equal(v.Status.Sandboxes, []string{"with-db"}) || v.Spec.Description != "a schema" {
		t.Fatalf("resourceplugin_get: %+v", v)
	}
	err := e.ReportStatus(ctx, "with-db", apitypes.ObservedStatus{Ready: true, Reason: "Ready", Resources: []v1alpha1.ResourceStatus{
		{Name: "db", Plugin: "pg", Phase: v1alpha1.ResourceReady, SecretName: "sm-res-with-db-0a1b2c3d", OutputKeys: []string{"provision.host", "provision.password"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var sv mcpserver.SandboxView
	s.mustCall("sandbox_get", map[string]any{"name": "with-db"}, &sv)
	if len(sv.Resources) != 1 || sv.Resources[0].Phase != v1alpha1.ResourceReady || len(sv.Resources[0].OutputKeys) != 2 {
		t.Fatalf("sandbox_get resources: %+v", sv.Resources)
	}
	if res := s.call("resourceplugin_get", map[string]any{"name": "nope"}, nil); !res.IsError {
		t.Fatal("resourceplugin_get of a missing plugin succeeded")
	}
}
