package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/internal/cli"
)

// TestAdminAPIKeys drives `sandboxmesh admin apikey` against a real control plane.
func TestAdminAPIKeys(t *testing.T) {
	h := newHarness(t)
	// An org key is refused.
	if r := h.run("admin", "apikey", "list"); r.code == 0 || !strings.Contains(r.stderr, "only admin keys") {
		t.Fatalf("org key: %+v", r)
	}
	h.vars[cli.EnvAPIKey] = h.env.AdminKey
	r := h.mustRun("admin", "apikey", "create", "ci-admin", "-o", "json")
	var k client.APIKey
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k.Key == "" || k.Name != "ci-admin" {
		t.Fatalf("create: %q %v", r.stdout, err)
	}
	r = h.mustRun("admin", "apikey", "list")
	if !strings.Contains(r.stdout, "ci-admin") || !strings.Contains(r.stdout, "bootstrap-admin") || strings.Contains(r.stdout, k.Key) {
		t.Fatalf("list: %s", r.stdout)
	}
	r = h.mustRun("admin", "apikey", "rotate", k.ID, "-o", "json")
	var next client.APIKey
	if err := json.Unmarshal([]byte(r.stdout), &next); err != nil || next.Key == "" || next.ID == k.ID || next.Name != "ci-admin" {
		t.Fatalf("rotate: %q %v", r.stdout, err)
	}
	h.vars[cli.EnvAPIKey] = k.Key
	if r := h.run("admin", "apikey", "list"); r.code != cli.ExitAuth {
		t.Fatalf("rotated key still works: %+v", r)
	}
	h.vars[cli.EnvAPIKey] = next.Key
	if r := h.mustRun("admin", "apikey", "revoke", next.ID); !strings.Contains(r.stdout, "revoked") {
		t.Fatal(r)
	}
}
