package apitypes

import (
	"fmt"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// ResourcePlugin is an org-wide resource plugin (Signadot's field names):
// steps that create and delete a resource of a sandbox, such as a database
// schema. Every cluster of the org gets it; a plugin cannot be changed, only
// deleted (when no sandbox uses it) and applied again.
type ResourcePlugin struct {
	// Name of the plugin (a DNS label of at most 63 characters).
	Name string `json:"name"`
	// Spec is the plugin: its runner and its create and delete steps.
	Spec v1alpha1.ResourcePluginSpec `json:"spec"`
	// Status says which sandboxes use the plugin.
	Status ResourcePluginStatus `json:"status"`
	// CreatedAt is an RFC 3339 time.
	CreatedAt string `json:"createdAt,omitempty"`
	// UpdatedAt is an RFC 3339 time.
	UpdatedAt string `json:"updatedAt,omitempty"`
	// Version of the stored plugin (ETag, If-Match).
	Version int64 `json:"version,omitempty"`
}

// ResourcePluginStatus is what the control plane knows of a plugin's use.
type ResourcePluginStatus struct {
	// Sandboxes of the org whose spec.resources use the plugin, by name.
	Sandboxes []string `json:"sandboxes"`
}

// ResourcePluginWireRules are the fields of a resource plugin answer that
// clients may send back; any other unknown field is refused with its path.
var ResourcePluginWireRules = WireRules{
	"status":    {Kind: WireReadOnly},
	"createdAt": {Kind: WireReadOnly},
	"updatedAt": {Kind: WireReadOnly},
	"deletedAt": {Kind: WireReadOnly},
	"version":   {Kind: WireReadOnly},
}

// Default fills in the defaults of a plugin spec (the runner namespace), as
// the CRD does.
func (p *ResourcePlugin) Default() {
	if p.Spec.Runner.Namespace == "" {
		p.Spec.Runner.Namespace = v1alpha1.DefaultPluginNamespace
	}
}

// MaxPluginNameLen is the longest resource plugin name.
const MaxPluginNameLen = 63

// ValidatePluginName checks a resource plugin name: a DNS label starting
// with a letter, at most 63 characters.
func ValidatePluginName(path, name string) *FieldError {
	switch {
	case name == "":
		return &FieldError{path, "required"}
	case len(name) > MaxPluginNameLen:
		return &FieldError{path, fmt.Sprintf("must be at most %d characters (got %d)", MaxPluginNameLen, len(name))}
	case !reObjectName.MatchString(name):
		return &FieldError{path, fmt.Sprintf("%q must be a DNS label starting with a letter: lowercase letters, digits and '-'", name)}
	}
	return nil
}
