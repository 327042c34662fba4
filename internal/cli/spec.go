package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// readSpec reads -f (a path or - for stdin) and renders its template.
func (a *App) readSpec(path string, sets []string) ([]byte, string, error) {
	if path == "" {
		return nil, "", usageErrorf("-f is required: the spec file (YAML or JSON; - reads stdin)")
	}
	vars, err := parseSets(sets)
	if err != nil {
		return nil, "", err
	}
	var raw []byte
	dir, name := filepath.Dir(path), path
	if path == "-" {
		raw, err = io.ReadAll(a.Stdin)
		dir, name = ".", "stdin"
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, name, usageErrorf("read spec file: %v", err)
	}
	out, err := renderTemplate(raw, vars, dir, name)
	return out, name, err
}

// decodeSpec decodes a spec file (YAML or JSON), the body of the API's PUT
// ({name, spec}), into v as the API decodes request bodies
// (apitypes.DecodeWire with rules): null is absent, the read-only fields of
// `get -o yaml` are ignored (so its output can be applied again), Signadot's
// files parse, and other unknown fields are errors with their full paths.
func decodeSpec(data []byte, name string, v any, rules apitypes.WireRules) ([]apitypes.Extracted, error) {
	j, err := specJSON(data, name)
	if err != nil {
		return nil, err
	}
	ext, err := apitypes.DecodeWire(j, v, rules)
	if err != nil {
		return nil, specError(name, err)
	}
	return ext, nil
}

// specJSON turns a spec file (YAML or JSON) into JSON, refusing an empty file
// and duplicate keys.
func specJSON(data []byte, name string) ([]byte, error) {
	if strings.TrimSpace(string(data)) == "" {
		return nil, usageErrorf("%s: the file is empty; want `name: ...` and `spec: {...}`", name)
	}
	j, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, usageErrorf("%s: %v", name, err)
	}
	return j, nil
}

// specError words a DecodeWire error of a spec file.
func specError(name string, err error) error {
	var we *apitypes.WireError
	if !errors.As(err, &we) {
		return usageErrorf("%s: %v", name, err)
	}
	if len(we.Fields) == 0 {
		return usageErrorf("%s: %s", name, we.Msg)
	}
	var unknown []string
	for _, f := range we.Fields {
		if f.Message == "unknown field" {
			unknown = append(unknown, f.Path)
		}
	}
	if len(unknown) == len(we.Fields) {
		return usageErrorf("%s: unknown field %s: check the spelling (the format is the body of the API's PUT: {name, spec}; see docs/cli.md)", name, strings.Join(unknown, ", "))
	}
	return fieldErrors(name, we.Fields)
}

func fieldErrors(name string, errs apitypes.FieldErrors) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: invalid spec:", name)
	for _, f := range errs {
		fmt.Fprintf(&b, "\n  %s: %s", f.Path, f.Message)
		if f.Path == "spec.cluster" {
			b.WriteString(" (list clusters with `sandboxmesh cluster list`, or pass --cluster)")
		}
	}
	return usageErrorf("%s", b.String())
}

// loadSandbox reads, renders, decodes and validates a sandbox spec file.
// A non-empty cluster sets spec.cluster.
func (a *App) loadSandbox(path string, sets []string, cluster string) (*client.Sandbox, error) {
	data, name, err := a.readSpec(path, sets)
	if err != nil {
		return nil, err
	}
	j, err := specJSON(data, name)
	if err != nil {
		return nil, err
	}
	f, _, moved, err := apitypes.DecodeSandbox(j) // Signadot's endpoint shapes too, as the API does
	if err != nil {
		return nil, specError(name, err)
	}
	if cluster != "" {
		f.Spec.Cluster = cluster
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateObjectName("name", f.Name); fe != nil {
		errs = append(errs, *fe)
	}
	errs = append(errs, moved...)
	errs = append(errs, apitypes.ValidateSandboxSpec(&f.Spec)...)
	if len(errs) > 0 {
		return nil, fieldErrors(name, errs)
	}
	return &client.Sandbox{Name: f.Name, Team: f.Team, Spec: f.Spec}, nil
}

// loadRouteGroup reads, renders, decodes and validates a route group spec file.
func (a *App) loadRouteGroup(path string, sets []string) (*client.RouteGroup, error) {
	data, name, err := a.readSpec(path, sets)
	if err != nil {
		return nil, err
	}
	var f apitypes.RouteGroup
	if _, err := decodeSpec(data, name, &f, apitypes.RouteGroupWireRules); err != nil {
		return nil, err
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateObjectName("name", f.Name); fe != nil {
		errs = append(errs, *fe)
	}
	errs = append(errs, apitypes.ValidateRouteGroupSpec(&f.Spec)...)
	if len(errs) > 0 {
		return nil, fieldErrors(name, errs)
	}
	return &client.RouteGroup{Name: f.Name, Spec: f.Spec}, nil
}

// loadRunnerGroup reads, renders, decodes and validates a job runner group
// spec file ({name, spec}, as the API's PUT body).
func (a *App) loadRunnerGroup(path string, sets []string) (*client.RunnerGroup, error) {
	data, name, err := a.readSpec(path, sets)
	if err != nil {
		return nil, err
	}
	var f apitypes.RunnerGroup
	if _, err := decodeSpec(data, name, &f, apitypes.RunnerGroupWireRules); err != nil {
		return nil, err
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateObjectName("name", f.Name); fe != nil {
		errs = append(errs, *fe)
	}
	errs = append(errs, apitypes.ValidateRunnerGroupSpec(&f.Spec)...)
	if len(errs) > 0 {
		return nil, fieldErrors(name, errs)
	}
	return &client.RunnerGroup{Name: f.Name, Spec: f.Spec}, nil
}

// loadJob reads, renders, decodes and validates a job spec file ({spec}, as
// the API's POST body; the server names the job from spec.namePrefix).
func (a *App) loadJob(path string, sets []string) (*apitypes.JobSpec, error) {
	data, name, err := a.readSpec(path, sets)
	if err != nil {
		return nil, err
	}
	var f apitypes.Job
	if _, err := decodeSpec(data, name, &f, apitypes.JobWireRules); err != nil {
		return nil, err
	}
	var errs apitypes.FieldErrors
	if f.Name != "" {
		errs = append(errs, apitypes.FieldError{Path: "name", Message: "jobs are named by the control plane: set spec.namePrefix instead"})
	}
	errs = append(errs, apitypes.ValidateJobSpec(&f.Spec)...)
	if len(errs) > 0 {
		return nil, fieldErrors(name, errs)
	}
	return &f.Spec, nil
}
