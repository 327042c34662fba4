package v1alpha1_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// badPlugin is one file of testdata/resourceplugin-bad: a plugin spec with
// one mistake, the field path it is reported at, and whether the CRD itself
// refuses it (crd: no for the cross-step rules only ValidateResourcePlugin checks).
type badPlugin struct {
	file string
	path string
	crd  bool
	raw  []byte
}

func badPlugins(t testing.TB) []badPlugin {
	t.Helper()
	files, err := filepath.Glob("testdata/resourceplugin-bad/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	var out []badPlugin
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b := badPlugin{file: filepath.Base(f), raw: raw}
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "# path: "); ok {
				b.path = v
			}
			if v, ok := strings.CutPrefix(line, "# crd: "); ok {
				b.crd = v == "yes"
			}
		}
		if b.path == "" {
			t.Fatalf("%s: no # path: line", f)
		}
		out = append(out, b)
	}
	return out
}

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }

func validPlugin(name string) *smv1.ResourcePlugin {
	return &smv1.ResourcePlugin{
		ObjectMeta: metaName(name),
		Spec: smv1.ResourcePluginSpec{
			Description: "a database per sandbox",
			Runner:      smv1.PluginRunner{Image: "example.com/runner:db", PodTemplateOverlay: "spec: {containers: [{name: main, envFrom: [{secretRef: {name: admin}}]}]}"},
			Create: []smv1.PluginStep{
				{Name: "provision", Script: "#!/bin/sh\necho", Inputs: []smv1.StepInput{
					{Name: "seed-sql", ValueFromSandbox: true, As: &smv1.InputAs{Path: "/tmp/seed.sql"}},
					{Name: "dbname", ValueFromSandbox: true},
				}, Outputs: []smv1.StepOutput{{Name: "host", ValueFromPath: "/tmp/out/host"}, {Name: "user", ValueFromPath: "/tmp/out/user"}}},
				{Name: "seed", Script: "#!/bin/sh\necho", Inputs: []smv1.StepInput{
					{Name: "user", ValueFromStep: &smv1.StepOutputRef{Name: "provision", Output: "user"}, As: &smv1.InputAs{Env: "DB_USER"}},
				}},
			},
			Delete: []smv1.PluginStep{{Name: "drop", Script: "#!/bin/sh\necho", Inputs: []smv1.StepInput{
				{Name: "user", ValueFromStep: &smv1.StepOutputRef{Name: "provision", Output: "user"}, As: &smv1.InputAs{Env: "DB_USER", Path: "/tmp/user"}},
			}}},
		},
	}
}

func TestValidateResourcePluginValid(t *testing.T) {
	if ps := smv1.ValidateResourcePlugin(&validPlugin("ok").Spec); ps != nil {
		t.Fatalf("valid plugin: %v", ps)
	}
}

// TestValidateResourcePluginBadSpecs: every bad spec is reported at its
// field path (the CRD test sends the same files to the API server).
func TestValidateResourcePluginBadSpecs(t *testing.T) {
	for _, b := range badPlugins(t) {
		t.Run(b.file, func(t *testing.T) {
			var rp smv1.ResourcePlugin
			if err := yaml.UnmarshalStrict(b.raw, &rp); err != nil {
				t.Fatal(err)
			}
			ps := smv1.ValidateResourcePlugin(&rp.Spec)
			for _, p := range ps {
				if p.Path == b.path {
					return
				}
			}
			t.Fatalf("problems %v, want one at %s", ps, b.path)
		})
	}
}

func steps(spec string) []smv1.PluginStep {
	// spec: "a b<-a.x c<-b.y" (a step, and the step.output it reads)
	var out []smv1.PluginStep
	for _, f := range strings.Fields(spec) {
		name, ref, _ := strings.Cut(f, "<-")
		s := smv1.PluginStep{Name: name, Script: "#!/bin/sh", Outputs: []smv1.StepOutput{{Name: "x", ValueFromPath: "/x"}}}
		for _, r := range strings.Split(ref, ",") {
			if r == "" {
				continue
			}
			st, o, _ := strings.Cut(r, ".")
			s.Inputs = append(s.Inputs, smv1.StepInput{Name: "in-" + st, ValueFromStep: &smv1.StepOutputRef{Name: st, Output: o}})
		}
		out = append(out, s)
	}
	return out
}

func TestStepOrder(t *testing.T) {
	cases := []struct {
		name, steps, before string
		want                []int
		wantErr             string
	}{
		{name: "declared order", steps: "a b c", want: []int{0, 1, 2}},
		{name: "links", steps: "a<-c.x b c", want: []int{1, 2, 0}},
		{name: "chain backwards", steps: "a<-b.x b<-c.x c", want: []int{2, 1, 0}},
		{name: "ties keep declared order", steps: "a<-d.x b c d", want: []int{1, 2, 3, 0}},
		{name: "two deps", steps: "a<-b.x,c.x b c", want: []int{1, 2, 0}},
		{name: "cycle", steps: "a<-b.x b<-a.x c", wantErr: "steps a, b form a cycle"},
		{name: "self", steps: "a<-a.x", wantErr: "[0].inputs[0].valueFromStep.name: step a reads its own output"},
		{name: "missing step", steps: "a<-z.x", wantErr: "[0].inputs[0].valueFromStep.name: no step z"},
		{name: "missing output", steps: "a b<-a.y", wantErr: "[1].inputs[0].valueFromStep.output: step a has no output y"},
		{name: "delete reads create", steps: "drop<-provision.x", before: "provision", want: []int{0}},
		{name: "delete reads missing create output", steps: "drop<-provision.y", before: "provision", wantErr: "step provision has no output y"},
		{name: "empty", steps: "", want: []int{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := smv1.StepOrder(steps(tc.steps), steps(tc.before))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("order = %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("order = %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// FuzzValidateResourcePlugin: any YAML that decodes as a plugin validates
// without panicking, and a valid one can be ordered.
func FuzzValidateResourcePlugin(f *testing.F) {
	for _, b := range badPlugins(f) {
		f.Add(b.raw)
	}
	f.Add([]byte("spec: {runner: {image: x}, create: [{name: a, script: '#!', outputs: [{name: x, valueFromPath: /x}]}, {name: b, script: '#!', inputs: [{name: i, valueFromStep: {name: a, output: x}}]}]}"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var rp smv1.ResourcePlugin
		if yaml.Unmarshal(raw, &rp) != nil {
			return
		}
		if ps := smv1.ValidateResourcePlugin(&rp.Spec); ps == nil {
			if _, err := smv1.StepOrder(rp.Spec.Create, nil); err != nil {
				t.Fatalf("valid create steps cannot be ordered: %v", err)
			}
			if _, err := smv1.StepOrder(rp.Spec.Delete, rp.Spec.Create); err != nil {
				t.Fatalf("valid delete steps cannot be ordered: %v", err)
			}
		}
	})
}
