package cli_test

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestResourcePlugins drives resource plugins through the CLI against a real
// control plane: apply (templated, embedded script), list, get, a sandbox
// using it, delete refused while in use, then deleted.
func TestResourcePlugins(t *testing.T) {
	h := newHarness(t)
	r := h.mustRun("resourceplugin", "apply", "-f", "testdata/resourceplugins/postgres-schema.yaml", "--set", "name=pg-schema", "--set", "desc=a schema per sandbox")
	if !strings.Contains(r.stdout, "resource plugin pg-schema applied") || !strings.Contains(r.stdout, "provision.host") {
		t.Fatalf("apply:\n%s", r.stdout)
	}
	// The same file again changes nothing; a changed one is refused.
	h.mustRun("rp", "apply", "-f", "testdata/resourceplugins/postgres-schema.yaml", "--set", "name=pg-schema", "--set", "desc=a schema per sandbox")
	r = h.run("rp", "apply", "-f", "testdata/resourceplugins/postgres-schema.yaml", "--set", "name=pg-schema", "--set", "desc=changed")
	if r.code == 0 || !strings.Contains(r.stderr, "a resource plugin cannot be changed; apply it under a new name") {
		t.Fatalf("changed plugin: exit %d %s", r.code, r.stderr)
	}
	if r := h.mustRun("rp", "list"); !strings.Contains(r.stdout, "pg-schema") || !strings.Contains(r.stdout, "provision") ||
		!strings.Contains(r.stdout, "drop") || !strings.Contains(r.stdout, "USED BY") {
		t.Fatalf("list:\n%s", r.stdout)
	}
	// A bad plugin: refused locally with the field path.
	r = h.run("rp", "apply", "-f", "testdata/resourceplugins/postgres-schema.yaml", "--set", "name=Bad_Name", "--set", "desc=x")
	if r.code == 0 || !strings.Contains(r.stderr, "name:") {
		t.Fatalf("bad name: exit %d %s", r.code, r.stderr)
	}
	// A sandbox must name an output of a create step.
	r = h.run("sandbox", "apply", "-f", "testdata/resourceplugins/sandbox-db.yaml", "--set", "key=drop.host")
	if r.code == 0 || !strings.Contains(r.stderr, "valueFrom.resource.outputKey") {
		t.Fatalf("sandbox with a bad output key: exit %d %s", r.code, r.stderr)
	}
	h.mustRun("sandbox", "apply", "-f", "testdata/resourceplugins/sandbox-db.yaml", "--set", "key=provision.host", "--wait=false")
	if r := h.mustRun("rp", "get", "pg-schema"); !strings.Contains(r.stdout, "with-db") {
		t.Fatalf("get:\n%s", r.stdout)
	}
	// sandbox get: the resources, Pending until the agent reports them.
	if r := h.mustRun("sandbox", "get", "with-db"); !strings.Contains(r.stdout, "RESOURCE") || !regexp.MustCompile(`db\s+pg-schema\s+Pending`).MatchString(r.stdout) {
		t.Fatalf("sandbox get before a report:\n%s", r.stdout)
	}
	err := h.env.ReportStatus(context.Background(), "with-db", apitypes.ObservedStatus{Reason: "Creating", Resources: []v1alpha1.ResourceStatus{
		{Name: "db", Plugin: "pg-schema", Phase: v1alpha1.ResourceCreateFailed, Step: "provision", Attempt: 2, Message: "step provision failed (exit 1)\npsql: connection refused"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r := h.mustRun("sandbox", "get", "with-db"); !regexp.MustCompile(`db\s+pg-schema\s+CreateFailed\s+provision\s+step provision failed \(exit 1\) …`).MatchString(r.stdout) {
		t.Fatalf("sandbox get after a report:\n%s", r.stdout)
	}
	r = h.run("rp", "delete", "pg-schema")
	if r.code == 0 || !strings.Contains(r.stderr, "used by sandboxes with-db") {
		t.Fatalf("delete in use: exit %d %s", r.code, r.stderr)
	}
	h.mustRun("sandbox", "delete", "with-db")
	if r := h.mustRun("rp", "delete", "pg-schema"); !strings.Contains(r.stdout, "resource plugin pg-schema deleted") {
		t.Fatalf("delete:\n%s", r.stdout)
	}
}
