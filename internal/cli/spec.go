package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// sandboxFile is the spec file format: the body of PUT .../sandboxes/{name}
// ({name, spec}). The read-only fields of `get -o yaml` are accepted and
// ignored, so its output can be applied again; other unknown fields are errors.
type sandboxFile struct {
	Name string               `json:"name"`
	Spec v1alpha1.SandboxSpec `json:"spec"`
	readOnly
}

type routeGroupFile struct {
	Name string                  `json:"name"`
	Spec v1alpha1.RouteGroupSpec `json:"spec"`
	readOnly
}

// readOnly lists the fields the API shows but ignores on apply.
type readOnly struct {
	RoutingKey json.RawMessage `json:"routingKey,omitempty"`
	Endpoints  json.RawMessage `json:"endpoints,omitempty"`
	Status     json.RawMessage `json:"status,omitempty"`
	CreatedAt  json.RawMessage `json:"createdAt,omitempty"`
	UpdatedAt  json.RawMessage `json:"updatedAt,omitempty"`
	Version    json.RawMessage `json:"version,omitempty"`
	Defaults   json.RawMessage `json:"defaults,omitempty"`
}

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

func decodeStrict(data []byte, name string, v any) error {
	if strings.TrimSpace(string(data)) == "" {
		return usageErrorf("%s: the file is empty; want `name: ...` and `spec: {...}`", name)
	}
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		if bad := unknownFields(data, reflect.TypeOf(v)); len(bad) > 0 {
			return usageErrorf("%s: unknown field %s: check the spelling (the format is the body of the API's PUT: {name, spec}; see docs/cli.md)", name, strings.Join(bad, ", "))
		}
		return usageErrorf("%s: %v", name, strings.TrimPrefix(err.Error(), "error unmarshaling JSON: while decoding JSON: "))
	}
	return nil
}

// unknownFields returns the paths of the fields of data that t lacks.
func unknownFields(data []byte, t reflect.Type) []string {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil
	}
	var v any
	if json.Unmarshal(j, &v) != nil {
		return nil
	}
	var out []string
	walkFields(v, t, "", &out)
	sort.Strings(out)
	return out
}

func jsonFields(t reflect.Type, into map[string]reflect.Type) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				jsonFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		into[name] = f.Type
	}
}

func walkFields(v any, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		fields := map[string]reflect.Type{}
		jsonFields(t, fields)
		for k, sub := range m {
			ft, ok := fields[k]
			if !ok {
				*out = append(*out, join(k))
				continue
			}
			walkFields(sub, ft, join(k), out)
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok {
			for k, sub := range m {
				walkFields(sub, t.Elem(), join(k), out)
			}
		}
	case reflect.Slice:
		if l, ok := v.([]any); ok {
			for i, sub := range l {
				walkFields(sub, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
			}
		}
	}
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
	var f sandboxFile
	if err := decodeStrict(data, name, &f); err != nil {
		return nil, err
	}
	if cluster != "" {
		f.Spec.Cluster = cluster
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateObjectName("name", f.Name); fe != nil {
		errs = append(errs, *fe)
	}
	errs = append(errs, apitypes.ValidateSandboxSpec(&f.Spec)...)
	if len(errs) > 0 {
		return nil, fieldErrors(name, errs)
	}
	return &client.Sandbox{Name: f.Name, Spec: f.Spec}, nil
}

// loadRouteGroup reads, renders, decodes and validates a route group spec file.
func (a *App) loadRouteGroup(path string, sets []string) (*client.RouteGroup, error) {
	data, name, err := a.readSpec(path, sets)
	if err != nil {
		return nil, err
	}
	var f routeGroupFile
	if err := decodeStrict(data, name, &f); err != nil {
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
