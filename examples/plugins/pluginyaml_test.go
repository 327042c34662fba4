package plugins_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/examples/plugins"
)

// TestPluginFiles: the shipped plugin.yaml files are valid plugins whose
// steps run the scripts next to them and declare the outputs they write.
func TestPluginFiles(t *testing.T) {
	for dir, outputs := range map[string][]string{
		"postgres-schema":  {"host", "port", "database", "user", "password", "url"},
		"mariadb-database": {"host", "port", "database", "user", "password"},
	} {
		p, err := plugins.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if p.Name != dir {
			t.Errorf("%s: name %q", dir, p.Name)
		}
		if ps := v1alpha1.ValidateResourcePlugin(&p.Spec); len(ps) > 0 {
			b, _ := json.Marshal(ps)
			t.Errorf("%s: invalid: %s", dir, b)
		}
		// The project's images hold the runner at /usr/local/bin (internal/devenv/images).
		if want := "/usr/local/bin/" + v1alpha1.RunnerBinary; p.Spec.Runner.RunnerPath != want {
			t.Errorf("%s: runner.runnerPath %q, want %q (the runner in %s)", dir, p.Spec.Runner.RunnerPath, want, p.Spec.Runner.Image)
		}
		if len(p.Spec.Create) != 1 || len(p.Spec.Delete) != 1 {
			t.Fatalf("%s: steps %+v", dir, p.Spec)
		}
		create, _ := os.ReadFile(filepath.Join(dir, "create.sh"))
		if strings.TrimSuffix(p.Spec.Create[0].Script, "\n") != strings.TrimSuffix(string(create), "\n") {
			t.Errorf("%s: the create step is not create.sh", dir)
		}
		var got []string
		for _, o := range p.Spec.Create[0].Outputs {
			got = append(got, o.Name)
			if o.ValueFromPath != "/tmp/out/"+o.Name {
				t.Errorf("%s: output %s at %s; the script writes /tmp/out/%s", dir, o.Name, o.ValueFromPath, o.Name)
			}
		}
		if strings.Join(got, ",") != strings.Join(outputs, ",") {
			t.Errorf("%s: outputs %v, want %v", dir, got, outputs)
		}
	}
}
