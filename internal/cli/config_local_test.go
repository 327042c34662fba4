package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigLocalSection: the config file's local: section is parsed by
// localtunnel, with its field-path errors, and survives a rewrite.
func TestConfigLocalSection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	os.WriteFile(path, []byte("org: acme\nlocal:\n  connections:\n  - cluster: dev\n    kubeContext: kind-dev\n"), 0o600)
	c, _, err := readConfigFile(path)
	if err != nil || c.Local == nil || c.Local.Connections[0].KubeContext != "kind-dev" {
		t.Fatalf("read: %+v %v", c, err)
	}
	if err := writeConfigFile(path, c); err != nil {
		t.Fatal(err)
	}
	again, _, err := readConfigFile(path)
	if err != nil || again.Local == nil || again.Local.Connections[0].Cluster != "dev" {
		t.Fatalf("reread: %+v %v", again, err)
	}
	os.WriteFile(path, []byte("local:\n  connections:\n  - cluster: dev\n    type: ProxyAddress\n"), 0o600)
	if _, _, err := readConfigFile(path); err == nil || !strings.Contains(err.Error(), "local.connections[0].proxyAddress: required when type is ProxyAddress") {
		t.Fatalf("bad local section: %v", err)
	}
}
