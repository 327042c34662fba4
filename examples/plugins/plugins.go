// Package plugins holds the resource plugins SandboxMesh ships
// (postgres-schema, mariadb-database: plugin.yaml and its scripts in each
// folder) and Load, which reads one as the CLI would send it.
package plugins

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Load reads the plugin.yaml of a plugin folder with its scripts embedded
// (what the CLI's @{embed: file} does for them), decoded as the API decodes
// a resource plugin.
func Load(dir string) (apitypes.ResourcePlugin, error) {
	var p apitypes.ResourcePlugin
	raw, err := os.ReadFile(filepath.Join(dir, "plugin.yaml"))
	if err != nil {
		return p, err
	}
	var lines []string
	for _, l := range strings.Split(string(raw), "\n") {
		key, file, ok := strings.Cut(l, "@{embed: ")
		if !ok || strings.HasPrefix(strings.TrimSpace(l), "#") {
			lines = append(lines, l)
			continue
		}
		script, err := os.ReadFile(filepath.Join(dir, strings.TrimSuffix(strings.TrimSpace(file), "}")))
		if err != nil {
			return p, err
		}
		indent := strings.Repeat(" ", len(key)-len(strings.TrimLeft(key, " "))+2)
		lines = append(lines, key+"|")
		for _, s := range strings.Split(strings.TrimSuffix(string(script), "\n"), "\n") {
			lines = append(lines, indent+s)
		}
	}
	j, err := yaml.YAMLToJSONStrict([]byte(strings.Join(lines, "\n")))
	if err != nil {
		return p, fmt.Errorf("%s/plugin.yaml: %w", dir, err)
	}
	if _, err := apitypes.DecodeWire(j, &p, apitypes.ResourcePluginWireRules); err != nil {
		return p, fmt.Errorf("%s/plugin.yaml: %w", dir, err)
	}
	return p, nil
}
