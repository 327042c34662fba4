package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

func TestRenderTemplate(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "one.txt"), []byte("single line\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "multi.txt"), []byte("a: 1\nb: \"2\"\n"), 0o600)
	vars := map[string]string{"image": "cart:v2", "x.y": "z"}
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{"variable", "image: @{image}", "image: cart:v2", ""},
		{"spaces and dots", "a: @{ x.y }-@{image}", "a: z-cart:v2", ""},
		{"no directive", "a: b@c{d}", "a: b@c{d}", ""},
		{"embed whole value is quoted", "value: @{embed: multi.txt}", `value: "a: 1\nb: \"2\"\n"`, ""},
		{"embed list item", "- @{embed: multi.txt}", `- "a: 1\nb: \"2\"\n"`, ""},
		{"embed inline", `url: "http://@{embed: one.txt}/x"`, `url: "http://single line/x"`, ""},
		{"embed multi-line inline", `x: "@{embed: multi.txt}"`, "", "several lines"},
		{"embed missing file", "x: @{embed: nope.txt}", "", "embed nope.txt"},
		{"embed no name", "x: @{embed: }", "", "needs a file name"},
		{"missing variables reported at once", "a: @{b}\nc: @{a}\nd: @{b}", "", "no value for a, b: pass --set a=<value> --set b=<value>"},
		{"bad directive", "a: @{not valid!}", "", "want @{variable}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := renderTemplate([]byte(tc.in), vars, dir, "spec.yaml")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || ExitCode(err) != ExitUsage {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("got %q %v, want %q", got, err, tc.want)
			}
		})
	}
}

func FuzzRenderTemplate(f *testing.F) {
	for _, s := range []string{"image: @{image}", "a: @{embed: x}", "@{", "@{}", "- @{ a.b }\n@{embed:}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = renderTemplate([]byte(s), map[string]string{"image": "x"}, t.TempDir(), "f")
	})
}

// FuzzSpecFile decodes arbitrary files as sandbox and route group spec files:
// errors, never panics (the unknown-field walker included).
func FuzzSpecFile(f *testing.F) {
	for _, s := range []string{"name: a\nspec:\n  cluster: c\n  forkz: 1\n", "name: [1\n", "spec: {forks: [{forkOf: {x: 1}}]}", "routingKey: 1\nstatus: {a: b}", "{}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var sb apitypes.Sandbox
		_, _ = decodeSpec([]byte(s), "f", &sb, apitypes.SandboxWireRules)
		var rg apitypes.RouteGroup
		_, _ = decodeSpec([]byte(s), "f", &rg, apitypes.RouteGroupWireRules)
	})
}
