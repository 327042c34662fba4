package apitypes

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseArtifactPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"report.xml", true},
		{"out/junit/report.xml", true},
		{"/tmp/results.json", true},
		{"with space.txt", true},
		{"", false},
		{"..", false},
		{"../etc/passwd", false},
		{"a/../../b", false},
		{"/a/..", false},
		{"./a", false},
		{"a//b", false},
		{"a/", false},
		{"/", false},
		{"a\x00b", false},
		{"a\nb", false},
		{`a\..\b`, false},
		{"\xff", false},
		{strings.Repeat("a", MaxArtifactPathLen+1), false},
	} {
		t.Run(tc.path, func(t *testing.T) {
			_, err := ParseArtifactPath(tc.path)
			if (err == nil) != tc.ok {
				t.Fatalf("ParseArtifactPath(%q) = %v, want ok=%v", tc.path, err, tc.ok)
			}
		})
	}
}

func TestValidateJobSpec(t *testing.T) {
	good := func() JobSpec {
		return JobSpec{RunnerGroup: "rg", Script: "#!/bin/sh\necho hi\n", Env: []EnvVar{{Name: "A", Value: "b"}},
			RoutingContext: &JobRoutingContext{Sandbox: "sb"}, UploadArtifact: []ArtifactToUpload{{Path: "out/r.xml"}}}
	}
	if errs := ValidateJobSpec(&JobSpec{RunnerGroup: "rg", Command: []string{"go", "test"}}); len(errs) > 0 {
		t.Fatalf("command job: %v", errs)
	}
	for _, tc := range []struct {
		name string
		mut  func(*JobSpec)
		path string
	}{
		{"ok", func(*JobSpec) {}, ""},
		{"no runner group", func(s *JobSpec) { s.RunnerGroup = "" }, "spec.runnerGroup"},
		{"neither script nor command", func(s *JobSpec) { s.Script = "" }, "spec.script"},
		{"both script and command", func(s *JobSpec) { s.Command = []string{"x"} }, "spec.command"},
		{"script without #!", func(s *JobSpec) { s.Script = "echo hi" }, "spec.script"},
		{"huge script", func(s *JobSpec) { s.Script = "#!/bin/sh\n" + strings.Repeat("#", MaxScriptBytes) }, "spec.script"},
		{"empty program", func(s *JobSpec) { s.Script, s.Command = "", []string{""} }, "spec.command[0]"},
		{"both sandbox and routegroup", func(s *JobSpec) { s.RoutingContext.RouteGroup = "rg" }, "spec.routingContext"},
		{"bad env name", func(s *JobSpec) { s.Env[0].Name = "1A" }, "spec.env[0].name"},
		{"reserved env", func(s *JobSpec) { s.Env[0].Name = "SIGNADOT_ROUTING_KEY" }, "spec.env[0].name"},
		{"path escape", func(s *JobSpec) { s.UploadArtifact[0].Path = "../../etc/passwd" }, "spec.uploadArtifact[0].path"},
		{"NUL in path", func(s *JobSpec) { s.UploadArtifact[0].Path = "a\x00" }, "spec.uploadArtifact[0].path"},
		{"too many artifacts", func(s *JobSpec) {
			s.UploadArtifact = nil
			for i := range MaxJobArtifacts + 1 {
				s.UploadArtifact = append(s.UploadArtifact, ArtifactToUpload{Path: strings.Repeat("a", i+1)})
			}
		}, "spec.uploadArtifact"},
		{"long prefix", func(s *JobSpec) { s.NamePrefix = strings.Repeat("a", 33) }, "spec.namePrefix"},
		{"bad prefix", func(s *JobSpec) { s.NamePrefix = "A_b" }, "spec.namePrefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := good()
			tc.mut(&s)
			errs := ValidateJobSpec(&s)
			if tc.path == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) == 0 || errs[0].Path != tc.path {
				t.Fatalf("errors %v, want first at %s", errs, tc.path)
			}
		})
	}
}

func TestValidateRunnerGroupSpec(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec RunnerGroupSpec
		path string
	}{
		{"ok", RunnerGroupSpec{Cluster: "c1", PodTemplate: json.RawMessage(`{"spec":{"containers":[{"name":"main"}]}}`)}, ""},
		{"no cluster", RunnerGroupSpec{}, "spec.cluster"},
		{"bad timeout", RunnerGroupSpec{Cluster: "c1", JobTimeout: "forever"}, "spec.jobTimeout"},
		{"signed timeout", RunnerGroupSpec{Cluster: "c1", JobTimeout: "+5m"}, "spec.jobTimeout"},
		{"negative timeout", RunnerGroupSpec{Cluster: "c1", JobTimeout: "-5m"}, "spec.jobTimeout"},
		{"µs timeout", RunnerGroupSpec{Cluster: "c1", JobTimeout: "5µs"}, "spec.jobTimeout"},
		{"composite timeout", RunnerGroupSpec{Cluster: "c1", JobTimeout: "1h30m"}, ""},
		{"template not an object", RunnerGroupSpec{Cluster: "c1", PodTemplate: json.RawMessage(`[1]`)}, "spec.podTemplate"},
		{"template field", RunnerGroupSpec{Cluster: "c1", PodTemplate: json.RawMessage(`{"kind":"Pod"}`)}, "spec.podTemplate.kind"},
		{"pods", RunnerGroupSpec{Cluster: "c1", Scaling: &RunnerGroupScaling{Manual: &RunnerGroupManualScaling{DesiredPods: -1}}}, "spec.scaling.manual.desiredPods"},
		{"namespace", RunnerGroupSpec{Cluster: "c1", Namespace: "Bad_NS"}, "spec.namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.spec
			s.Default()
			errs := ValidateRunnerGroupSpec(&s)
			if tc.path == "" {
				if len(errs) > 0 {
					t.Fatalf("unexpected errors: %v", errs)
				}
				return
			}
			if len(errs) == 0 || errs[0].Path != tc.path {
				t.Fatalf("errors %v, want first at %s", errs, tc.path)
			}
		})
	}
}

// FuzzParseArtifactPath: the parser never panics, and a path it accepts
// never escapes: no .. or . segment, no NUL, no backslash.
func FuzzParseArtifactPath(f *testing.F) {
	for _, s := range []string{"report.xml", "/tmp/a/b.json", "../x", "a/../b", "a\x00", `a\b`, "a//b", "", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		out, err := ParseArtifactPath(p)
		if err != nil {
			return
		}
		if out != p || strings.ContainsAny(p, "\x00\\") {
			t.Fatalf("accepted %q", p)
		}
		for _, seg := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
			if seg == ".." || seg == "." || seg == "" {
				t.Fatalf("accepted %q with segment %q", p, seg)
			}
		}
	})
}

// FuzzValidateJobSpec: validating any decodable job spec never panics and
// every error carries a field path under spec.
func FuzzValidateJobSpec(f *testing.F) {
	for _, s := range []string{
		`{"runnerGroup":"rg","script":"#!/bin/sh\necho","routingContext":{"sandbox":"a","routegroup":"b"}}`,
		`{"runnerGroup":"rg","command":["a"],"env":[{"name":"SIGNADOT_X","value":""}],"uploadArtifact":[{"path":"../a"}]}`,
		`{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s JobSpec
		if json.Unmarshal(data, &s) != nil {
			return
		}
		for _, e := range ValidateJobSpec(&s) {
			if !strings.HasPrefix(e.Path, "spec") || e.Message == "" {
				t.Fatalf("bad field error %+v", e)
			}
		}
	})
}

// TestDecodeWireBytes: a []byte field is a base64 string on the wire (the
// runner's log chunks); DecodeWire once refused it as "want array".
func TestDecodeWireBytes(t *testing.T) {
	var ev RunnerEvents
	if _, err := DecodeWire([]byte(`{"logs":[{"stream":"stdout","data":"aGkK"}]}`), &ev, nil); err != nil || string(ev.Logs[0].Data) != "hi\n" {
		t.Fatalf("base64 data: %+v %v", ev, err)
	}
	_, err := DecodeWire([]byte(`{"logs":[{"stream":"stdout","data":[1,2]}]}`), &ev, nil)
	var we *WireError
	if !errors.As(err, &we) || we.Fields[0].Path != "logs[0].data" {
		t.Fatalf("array for bytes: %v", err)
	}
	if _, err := DecodeWire([]byte(`{"logs":[{"stream":"stdout","data":"!!not base64"}]}`), &ev, nil); !errors.As(err, &we) || !we.Malformed {
		t.Fatalf("bad base64: %v", err)
	}
}
