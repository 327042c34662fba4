// Package resourceplugins is the control plane's service for resource
// plugins (docs/design/resource-plugins.md): org-wide, immutable objects
// that the agents deliver to every cluster of the org as ResourcePlugin
// custom resources. It also checks a sandbox's spec.resources against the
// org's plugins.
package resourceplugins

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Sentinel errors of the service (besides the store's); check with errors.Is.
var (
	// ErrChanged: a plugin of that name exists with another spec.
	ErrChanged = errors.New("a resource plugin cannot be changed; apply it under a new name")
	// ErrInUse: sandboxes of the org use the plugin.
	ErrInUse = errors.New("in use")
)

// ValidationError is a plugin the service refused: HTTP 400 with field paths.
type ValidationError struct {
	Msg    string
	Fields apitypes.FieldErrors
}

// Error formats the error.
func (e *ValidationError) Error() string {
	if len(e.Fields) > 0 {
		return e.Msg + ": " + e.Fields.Error()
	}
	return e.Msg
}

// InUseError names the sandboxes that keep a plugin from being deleted.
type InUseError struct {
	Plugin    string
	Sandboxes []string
}

// Error formats the error.
func (e *InUseError) Error() string {
	return fmt.Sprintf("resource plugin %s is used by sandboxes %s; delete them first", e.Plugin, strings.Join(e.Sandboxes, ", "))
}

// Unwrap makes errors.Is(err, ErrInUse) hold.
func (e *InUseError) Unwrap() error { return ErrInUse }

// Service applies, shows and deletes resource plugins.
type Service struct {
	st *store.Store
}

// New returns the service on st.
func New(st *store.Store) *Service { return &Service{st: st} }

// Validate checks a plugin (after Default) as Apply does, without storing it.
func Validate(name string, rp *apitypes.ResourcePlugin) apitypes.FieldErrors {
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidatePluginName("name", name); fe != nil {
		errs = append(errs, *fe)
	}
	if rp.Name != "" && rp.Name != name {
		errs = append(errs, apitypes.FieldError{Path: "name", Message: fmt.Sprintf("%q differs from the name in the path (%q)", rp.Name, name)})
	}
	for _, p := range v1alpha1.ValidateResourcePlugin(&rp.Spec) {
		errs = append(errs, apitypes.FieldError{Path: p.Path, Message: p.Message})
	}
	if o := rp.Spec.Runner.PodTemplateOverlay; o != "" && len(o) <= 65536 {
		var tpl corev1.PodTemplateSpec // what the operator strategic-merges
		if err := yaml.UnmarshalStrict([]byte(o), &tpl); err != nil {
			errs = append(errs, apitypes.FieldError{Path: "spec.runner.podTemplateOverlay", Message: "not a Kubernetes PodTemplateSpec (YAML): " + err.Error()})
		}
	}
	return errs
}

// Apply stores a plugin. A plugin cannot change: applying the spec of the
// stored plugin again changes nothing; another spec fails with ErrChanged.
// ifVersion is as in store.ApplyRequest.
func (s *Service) Apply(ctx context.Context, org, name string, rp apitypes.ResourcePlugin, ifVersion int64) (store.Object, bool, error) {
	rp.Default()
	if errs := Validate(name, &rp); len(errs) > 0 {
		return store.Object{}, false, &ValidationError{Msg: "invalid resource plugin", Fields: errs}
	}
	raw, err := json.Marshal(rp.Spec)
	if err != nil {
		return store.Object{}, false, fmt.Errorf("resource plugin %s/%s: %w", org, name, err)
	}
	cur, err := s.st.Get(ctx, store.KindResourcePlugin, org, name)
	switch {
	case err == nil:
		if !jsonEqual(cur.Spec, raw) {
			return store.Object{}, false, fmt.Errorf("resource plugin %s/%s: %w", org, name, ErrChanged)
		}
		if ifVersion == 0 {
			ifVersion = cur.Version // the write is the no-op the store makes of an equal spec
		}
	case errors.Is(err, store.ErrNotFound):
		if ifVersion == 0 {
			ifVersion = -1 // a concurrent create of another spec must not replace this one
		}
	default:
		return store.Object{}, false, err
	}
	return s.st.Apply(ctx, store.ApplyRequest{Kind: store.KindResourcePlugin, Org: org, Name: name, Spec: raw,
		IfVersion: ifVersion, NewRoutingKey: func() (string, error) { return "", nil }})
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ax, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(ax) == string(by)
}

// Users returns the names of the org's sandboxes whose spec.resources use
// the plugin, sorted.
func (s *Service) Users(ctx context.Context, org, name string) ([]string, error) {
	sbs, err := s.st.List(ctx, store.KindSandbox, org, nil)
	if err != nil {
		return nil, fmt.Errorf("users of resource plugin %s/%s: %w", org, name, err)
	}
	users := []string{}
	for _, o := range sbs {
		var spec struct {
			Resources []v1alpha1.Resource `json:"resources"`
		}
		if err := json.Unmarshal(o.Spec, &spec); err != nil {
			return nil, fmt.Errorf("users of resource plugin %s/%s: sandbox %s: %w", org, name, o.Name, err)
		}
		if slices.ContainsFunc(spec.Resources, func(r v1alpha1.Resource) bool { return r.Plugin == name }) {
			users = append(users, o.Name)
		}
	}
	slices.Sort(users)
	return users, nil
}

// Delete deletes a plugin no sandbox of the org uses; otherwise it fails
// with an *InUseError. (A sandbox applied between the check and the delete
// is still safe: the operator keeps a used ResourcePlugin until its last
// user is gone.)
func (s *Service) Delete(ctx context.Context, org, name string) error {
	if _, err := s.st.Get(ctx, store.KindResourcePlugin, org, name); err != nil {
		return err
	}
	users, err := s.Users(ctx, org, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
		return &InUseError{Plugin: name, Sandboxes: users}
	}
	return s.st.Delete(ctx, store.KindResourcePlugin, org, name)
}

// View is a stored plugin as the API shows it, with the sandboxes using it.
func (s *Service) View(ctx context.Context, o store.Object) (apitypes.ResourcePlugin, error) {
	out := apitypes.ResourcePlugin{Name: o.Name, CreatedAt: ts(o.CreatedAt), UpdatedAt: ts(o.UpdatedAt), Version: o.Version,
		Status: apitypes.ResourcePluginStatus{Sandboxes: []string{}}}
	if err := json.Unmarshal(o.Spec, &out.Spec); err != nil {
		return out, fmt.Errorf("resource plugin %s/%s: spec: %w", o.Org, o.Name, err)
	}
	users, err := s.Users(ctx, o.Org, o.Name)
	if err != nil {
		return out, err
	}
	out.Status.Sandboxes = users
	return out, nil
}

// CheckSandbox checks a sandbox spec's resources against the org's plugins:
// every spec.resources[].plugin exists, and every valueFrom.resource.outputKey
// is an output of a create step of the named resource's plugin.
func (s *Service) CheckSandbox(ctx context.Context, org string, spec *v1alpha1.SandboxSpec) (apitypes.FieldErrors, error) {
	var errs apitypes.FieldErrors
	outputs := map[string]map[string]bool{} // resource -> outputKeys; nil when its plugin is missing
	for i, r := range spec.Resources {
		o, err := s.st.Get(ctx, store.KindResourcePlugin, org, r.Plugin)
		if errors.Is(err, store.ErrNotFound) {
			errs = append(errs, apitypes.FieldError{Path: fmt.Sprintf("spec.resources[%d].plugin", i),
				Message: fmt.Sprintf("no resource plugin %q in org %s; apply it first (PUT /api/v2/orgs/%s/resource-plugins/%s)", r.Plugin, org, org, r.Plugin)})
			outputs[r.Name] = nil
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("check resources of a sandbox of org %s: %w", org, err)
		}
		var ps v1alpha1.ResourcePluginSpec
		if err := json.Unmarshal(o.Spec, &ps); err != nil {
			return nil, fmt.Errorf("resource plugin %s/%s: spec: %w", org, r.Plugin, err)
		}
		keys := map[string]bool{}
		for _, st := range ps.Create {
			for _, out := range st.Outputs {
				keys[st.Name+"."+out.Name] = true
			}
		}
		outputs[r.Name] = keys
	}
	for i, f := range spec.Forks {
		if f.Customizations == nil {
			continue
		}
		for j, e := range f.Customizations.Env {
			if e.ValueFrom == nil || e.ValueFrom.Resource == nil {
				continue
			}
			ref := e.ValueFrom.Resource
			keys, ok := outputs[ref.Name]
			if !ok || keys == nil {
				continue // not a resource (ValidateSandboxSpec says so) or its plugin is missing (said above)
			}
			if !keys[ref.OutputKey] {
				have := make([]string, 0, len(keys))
				for k := range keys {
					have = append(have, k)
				}
				slices.Sort(have)
				errs = append(errs, apitypes.FieldError{Path: fmt.Sprintf("spec.forks[%d].customizations.env[%d].valueFrom.resource.outputKey", i, j),
					Message: fmt.Sprintf("%q is not an output of a create step of the plugin of resource %s (outputs: %s)", ref.OutputKey, ref.Name, strings.Join(have, ", "))})
			}
		}
	}
	return errs, nil
}

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
