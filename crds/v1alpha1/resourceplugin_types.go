package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ResourcePluginSpec is a resource plugin (Signadot's field names): the
// steps that create a per-sandbox resource (a database, a queue...) and the
// steps that delete it, each run as a pod in runner.namespace. A plugin
// cannot be changed: apply it under a new name.
// +kubebuilder:validation:XValidation:rule="!has(self.create) || !has(self.delete) || !self.create.exists(c, self.delete.exists(d, d.name == c.name))",message="step names are unique across create and delete",fieldPath=".delete"
type ResourcePluginSpec struct {
	// Description for humans.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Description string `json:"description,omitempty"`
	// Runner says where and with which image the steps run.
	// +required
	Runner PluginRunner `json:"runner"`
	// Create steps make the resource; they run in the order their
	// valueFromStep links need (declared order breaks ties).
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(s, self.exists_one(t, t.name == s.name))",message="step names must be unique"
	// +listType=atomic
	// +optional
	Create []PluginStep `json:"create,omitempty"`
	// Delete steps remove the resource; they may read create outputs
	// (absent when create failed) and earlier delete outputs.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(s, self.exists_one(t, t.name == s.name))",message="step names must be unique"
	// +listType=atomic
	// +optional
	Delete []PluginStep `json:"delete,omitempty"`
}

// PluginRunner is where the steps of a plugin run.
type PluginRunner struct {
	// Image of the step pods' main container. The operator installs
	// sandboxmesh-runner into the pod (unless RunnerPath says the image
	// has it), so any image with the programs the scripts call will do.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +required
	Image string `json:"image"`
	// Namespace the step pods run in (default sandboxmesh-plugins).
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:default=sandboxmesh-plugins
	// +optional
	Namespace string `json:"namespace,omitempty"`
	// PodTemplateOverlay is a YAML PodTemplateSpec strategic-merged onto the
	// step pod template (e.g. envFrom an admin Secret, resources, a service
	// account). The operator keeps the main container's command, its inputs
	// volume and the runner install.
	// +kubebuilder:validation:MaxLength=65536
	// +optional
	PodTemplateOverlay string `json:"podTemplateOverlay,omitempty"`
	// RunnerPath is the absolute path of sandboxmesh-runner inside Image,
	// for an image that ships it (the project's sandboxmesh-runner images
	// have it at /usr/local/bin/sandboxmesh-runner). The step pods then run
	// it from the image and have no init container installing the
	// operator's runner, which saves starting a container per step. That
	// runner must speak the operator's step protocol (an image of the same
	// release does). Empty: the operator installs its runner.
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	RunnerPath string `json:"runnerPath,omitempty"`
}

// PluginStep is one step of a plugin: a script with inputs and outputs.
type PluginStep struct {
	// Name of the step, unique over create and delete.
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Script to run; it starts with #! (e.g. #!/bin/sh).
	// +kubebuilder:validation:MaxLength=65536
	// +kubebuilder:validation:XValidation:rule="self.startsWith('#!')",message="a script starts with #! (e.g. #!/bin/sh)"
	// +required
	Script string `json:"script"`
	// Inputs of the step.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(i, self.exists_one(j, j.name == i.name))",message="input names must be unique"
	// +listType=atomic
	// +optional
	Inputs []StepInput `json:"inputs,omitempty"`
	// Outputs of the step, read from files once the script succeeded.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self.all(o, self.exists_one(p, p.name == o.name))",message="output names must be unique"
	// +listType=atomic
	// +optional
	Outputs []StepOutput `json:"outputs,omitempty"`
}

// StepInput is one input of a step: the sandbox's param of the same name
// (valueFromSandbox: true) or an output of an earlier step (valueFromStep),
// given to the script as an env var and/or a file (as; default: the env var
// named after the input, upper-cased, - and . as _).
// +kubebuilder:validation:XValidation:rule="(has(self.valueFromSandbox) && self.valueFromSandbox) != has(self.valueFromStep)",message="exactly one of valueFromSandbox: true and valueFromStep"
type StepInput struct {
	// Name of the input (for valueFromSandbox: the sandbox param it reads).
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][-._A-Za-z0-9]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// ValueFromSandbox takes the sandbox's resource param of the input's name.
	// +optional
	ValueFromSandbox bool `json:"valueFromSandbox,omitempty"`
	// ValueFromStep takes an output of another step.
	// +optional
	ValueFromStep *StepOutputRef `json:"valueFromStep,omitempty"`
	// As says how the script receives the value.
	// +optional
	As *InputAs `json:"as,omitempty"`
}

// StepOutputRef names an output of a step.
type StepOutputRef struct {
	// Name of the step.
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Output of that step.
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][-_A-Za-z0-9]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Output string `json:"output"`
}

// InputAs is how a step receives an input: an env var, a file, or both.
// +kubebuilder:validation:XValidation:rule="has(self.env) || has(self.path)",message="as takes env, path or both"
type InputAs struct {
	// Env is the environment variable holding the value.
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][A-Za-z0-9_]*$`
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('SANDBOXMESH_') && !self.startsWith('SIGNADOT_')",message="SANDBOXMESH_ and SIGNADOT_ variables are set by SandboxMesh"
	// +optional
	Env string `json:"env,omitempty"`
	// Path is the absolute path of a file holding the value (mode 0600).
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.contains('/../') && !self.endsWith('/..')",message="a path may not contain .."
	// +kubebuilder:validation:XValidation:rule="self != '/sandboxmesh' && !self.startsWith('/sandboxmesh/')",message="/sandboxmesh is SandboxMesh's"
	// +optional
	Path string `json:"path,omitempty"`
}

// StepOutput is one output of a step: the content of a file the script
// writes (one trailing newline stripped).
type StepOutput struct {
	// Name of the output (no dots: a sandbox names it <step>.<output>).
	// +kubebuilder:validation:Pattern=`^[A-Za-z_][-_A-Za-z0-9]*$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// ValueFromPath is the absolute path of the file.
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:MaxLength=1024
	// +required
	ValueFromPath string `json:"valueFromPath"`
	// Description for humans.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Description string `json:"description,omitempty"`
}

// ResourcePluginStatus is the observed state of a ResourcePlugin.
type ResourcePluginStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (False: InvalidSpec, or InUse while deletion waits).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// Sandboxes using the plugin (names, sorted, at most 50).
	// +kubebuilder:validation:MaxItems=50
	// +listType=atomic
	// +optional
	Sandboxes []string `json:"sandboxes,omitempty"`
}

// ResourcePlugin creates and deletes a per-sandbox resource for the
// Sandboxes of its namespace that name it in spec.resources.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rp,categories=sandboxmesh
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Image",type=string,JSONPath=`.spec.runner.image`
// +kubebuilder:printcolumn:name="Runner Namespace",type=string,JSONPath=`.spec.runner.namespace`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="metadata.name must be at most 63 characters"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label starting with a letter"
type ResourcePlugin struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the plugin. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="a ResourcePlugin cannot be changed: apply it under a new name"
	// +required
	Spec ResourcePluginSpec `json:"spec"`
	// Status is the observed state.
	// +optional
	Status ResourcePluginStatus `json:"status,omitempty"`
}

// ResourcePluginList is a list of ResourcePlugins.
//
// +kubebuilder:object:root=true
type ResourcePluginList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ResourcePlugin `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ResourcePlugin{}, &ResourcePluginList{})
}
