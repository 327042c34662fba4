package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkloadKind is the kind of a baseline workload.
// +kubebuilder:validation:Enum=Deployment;Rollout
// +kubebuilder:validation:MaxLength=16
type WorkloadKind string

const (
	// KindDeployment is an apps/v1 Deployment.
	KindDeployment WorkloadKind = "Deployment"
	// KindRollout is an Argo Rollout (argoproj.io/v1alpha1); its fork is a Deployment built from its pod template.
	KindRollout WorkloadKind = "Rollout"
)

// WorkloadRef names a baseline workload.
type WorkloadRef struct {
	// Kind of the workload: Deployment or Rollout (an Argo Rollout, forked into
	// a Deployment built from spec.template or from spec.workloadRef's Deployment).
	// +kubebuilder:default=Deployment
	// +optional
	Kind WorkloadKind `json:"kind,omitempty"`
	// Namespace of the workload.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Namespace string `json:"namespace"`
	// Name of the workload.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
}

// ImageCustomization replaces the image of one container (or of the main container).
type ImageCustomization struct {
	// Image to run.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +required
	Image string `json:"image"`
	// Container whose image is replaced; empty means the main container (the
	// kubectl.kubernetes.io/default-container annotation, else the first container).
	// +optional
	Container string `json:"container,omitempty"`
}

// EnvOperation says what an env customization does.
// +kubebuilder:validation:Enum=upsert;delete
type EnvOperation string

const (
	// EnvUpsert sets the variable, replacing an existing one of the same name.
	EnvUpsert EnvOperation = "upsert"
	// EnvDelete removes the variable.
	EnvDelete EnvOperation = "delete"
)

// KeySelector selects a key of a Secret or ConfigMap in the fork's namespace.
type KeySelector struct {
	// Name of the Secret or ConfigMap.
	// +required
	Name string `json:"name"`
	// Key within it.
	// +required
	Key string `json:"key"`
	// Optional lets the pod start when the key is missing.
	// +optional
	Optional *bool `json:"optional,omitempty"`
}

// FieldSelector selects a field of the pod (as in the Kubernetes downward API).
type FieldSelector struct {
	// FieldPath, e.g. metadata.name or status.podIP.
	// +required
	FieldPath string `json:"fieldPath"`
}

// EnvValueFrom is the source of an env value.
// +kubebuilder:validation:XValidation:rule="[has(self.secret), has(self.configMap), has(self.fieldRef), has(self.fork), has(self.resource)].filter(x, x).size() == 1",message="exactly one of secret, configMap, fieldRef, fork, resource must be set"
type EnvValueFrom struct {
	// Secret key.
	// +optional
	Secret *KeySelector `json:"secret,omitempty"`
	// ConfigMap key.
	// +optional
	ConfigMap *KeySelector `json:"configMap,omitempty"`
	// FieldRef of the pod.
	// +optional
	FieldRef *FieldSelector `json:"fieldRef,omitempty"`
	// Fork is an address of another fork of the same sandbox (Signadot's
	// "sandbox service references").
	// +optional
	Fork *EnvValueFromFork `json:"fork,omitempty"`
	// Resource is an output of one of the sandbox's resources (spec.resources),
	// read from the sandbox's outputs Secret in the fork's namespace.
	// +optional
	Resource *EnvValueFromResource `json:"resource,omitempty"`
}

// EnvValueFromFork resolves Expression against another fork of the sandbox.
type EnvValueFromFork struct {
	// ForkOf is the baseline of that fork; it must be one of spec.forks.
	// +required
	ForkOf WorkloadRef `json:"forkOf"`
	// Expression is a Go template over {{ .Service.Host }} (the DNS name of
	// the fork's Service, <fork>.<namespace>.svc) and {{ .Service.Port }}
	// (the first container port of the forked workload), e.g.
	// "{{ .Service.Host }}:{{ .Service.Port }}" or "http://{{ .Service.Host }}".
	// Nothing else may be used: no functions, pipelines, conditions, loops or
	// comments.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=200
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^(?:[^{]|[{][^{]|[{][{](?:-[ \t\r\n])?[ \t\r\n]*[.]Service[.](?:Host|Port)[ \t\r\n]*(?:[ \t\r\n]-)?[}][}])*[{]?$')`,message="only text and the actions {{ .Service.Host }} and {{ .Service.Port }} may be used (no functions, pipelines, conditions, loops or comments)"
	// +required
	Expression string `json:"expression"`
}

// EnvValueFromResource names an output of a sandbox resource.
type EnvValueFromResource struct {
	// Name of the resource (one of spec.resources).
	// +kubebuilder:validation:MaxLength=253
	// +required
	Name string `json:"name"`
	// OutputKey is <step>.<output>: an output of a create step of the
	// resource's plugin.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?\.[A-Za-z_][-_A-Za-z0-9]*$`
	// +required
	OutputKey string `json:"outputKey"`
}

// EnvCustomization changes one environment variable.
// +kubebuilder:validation:XValidation:rule="!(has(self.value) && has(self.valueFrom))",message="value and valueFrom are mutually exclusive"
// +kubebuilder:validation:XValidation:rule="!has(self.operation) || self.operation != 'delete' || (!has(self.value) && !has(self.valueFrom))",message="a delete takes neither value nor valueFrom"
type EnvCustomization struct {
	// Name of the variable.
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z][-._a-zA-Z0-9]*$`
	// +kubebuilder:validation:MaxLength=256
	// +required
	Name string `json:"name"`
	// Value of the variable.
	// +optional
	Value *string `json:"value,omitempty"`
	// ValueFrom takes the value from a Secret, ConfigMap or pod field.
	// +optional
	ValueFrom *EnvValueFrom `json:"valueFrom,omitempty"`
	// Container to change; empty means the main container.
	// +optional
	Container string `json:"container,omitempty"`
	// Operation is upsert (default) or delete.
	// +optional
	Operation EnvOperation `json:"operation,omitempty"`
}

// PatchType is the kind of a patch.
// +kubebuilder:validation:Enum=strategic;merge;json
type PatchType string

const (
	// PatchStrategic is a Kubernetes strategic merge patch.
	PatchStrategic PatchType = "strategic"
	// PatchMerge is an RFC 7386 JSON merge patch.
	PatchMerge PatchType = "merge"
	// PatchJSON is an RFC 6902 JSON patch.
	PatchJSON PatchType = "json"
)

// Patch is applied to the fork Deployment after the other customizations.
type Patch struct {
	// Type of the patch: strategic (default), merge or json.
	// +optional
	Type PatchType `json:"type,omitempty"`
	// Value is the patch document as YAML or JSON text.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	// +required
	Value string `json:"value"`
}

// Customizations say how a fork differs from its baseline.
type Customizations struct {
	// Images replace container images.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Images []ImageCustomization `json:"images,omitempty"`
	// Env changes environment variables.
	// +kubebuilder:validation:MaxItems=128
	// +listType=atomic
	// +optional
	Env []EnvCustomization `json:"env,omitempty"`
	// Command replaces the main container's command (entrypoint).
	// +kubebuilder:validation:MaxItems=64
	// +listType=atomic
	// +optional
	Command []string `json:"command,omitempty"`
	// Args replace the main container's arguments.
	// +kubebuilder:validation:MaxItems=256
	// +listType=atomic
	// +optional
	Args []string `json:"args,omitempty"`
	// Patch is applied last to the fork Deployment.
	// +optional
	Patch *Patch `json:"patch,omitempty"`
}

// Fork is a copy of a baseline workload with customizations.
type Fork struct {
	// ForkOf names the baseline workload.
	// +required
	ForkOf WorkloadRef `json:"forkOf"`
	// Customizations of the fork.
	// +optional
	Customizations *Customizations `json:"customizations,omitempty"`
}

// Virtual routes a workload's traffic to its baseline under the sandbox's key
// (useful to include a workload in a sandbox's endpoints without forking it).
type Virtual struct {
	// Name of the virtual workload within the sandbox.
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Workload is the baseline workload.
	// +required
	Workload WorkloadRef `json:"workload"`
}

// PortMapping maps a port of the baseline workload to a developer's machine.
type PortMapping struct {
	// Port of the baseline workload.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port"`
	// ToLocal is host:port on the developer's machine.
	// +kubebuilder:validation:MaxLength=261
	// +required
	ToLocal string `json:"toLocal"`
}

// Local routes a workload's sandboxed traffic to a developer's machine through a tunnel.
type Local struct {
	// Name of the local workload within the sandbox.
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// From is the baseline workload whose traffic goes to the developer's machine.
	// +required
	From WorkloadRef `json:"from"`
	// Mappings of ports.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +required
	Mappings []PortMapping `json:"mappings"`
}

// Forward is a port of a developer's machine that sandbox middleware sends requests to (Signadot's
// routing.forwards[]): `sandboxmesh local override` adds one with an override middleware. It travels through
// the machine's local-workload tunnel (spec.localMachineID), like spec.local.
type Forward struct {
	// Name of the forward; middleware args refer to it (valueFrom.forward).
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Port of the workload whose requests the middleware forwards (the baseline's container port).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +required
	Port int32 `json:"port"`
	// ToLocal is host:port on the developer's machine.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=261
	// +required
	ToLocal string `json:"toLocal"`
	// AppProtocol of the local end: http (default) or grpc.
	// +kubebuilder:validation:Enum=http;grpc
	// +optional
	AppProtocol string `json:"appProtocol,omitempty"`
}

// SandboxRouting holds routing additions of a sandbox.
type SandboxRouting struct {
	// Forwards to a developer's machine, for middleware.
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Forwards []Forward `json:"forwards,omitempty"`
}

// MiddlewareOverride is the name of the one middleware there is: the sandbox's keyed requests for the matched
// workload go to a forward first and fall through to the workload when the forward is down or its answer
// says so (docs/local.md, "Local override").
const MiddlewareOverride = "override"

// Override middleware argument names.
const (
	// OverrideArgHost names the forward (valueFrom.forward) requests go to first.
	OverrideArgHost = "overrideHost"
	// OverrideArgPolicy is the fall-through policy: JSON {"exceptStatusCodes": [404, 503]} (the forward's
	// answer is used unless its status is listed); absent, the answer is used only when it carries the
	// header sm-override: true (or Signadot's sd-override: true).
	OverrideArgPolicy = "policy"
)

// MiddlewareArg is one argument of a middleware.
type MiddlewareArg struct {
	// Name of the argument.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Value of the argument.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value string `json:"value,omitempty"`
	// ValueFrom takes the value from elsewhere in the spec.
	// +optional
	ValueFrom *MiddlewareArgValueFrom `json:"valueFrom,omitempty"`
}

// MiddlewareArgValueFrom takes an argument's value from the spec.
type MiddlewareArgValueFrom struct {
	// Forward names one of spec.routing.forwards.
	// +kubebuilder:validation:MaxLength=63
	// +optional
	Forward string `json:"forward,omitempty"`
}

// MiddlewareMatch selects the sandbox's workloads a middleware acts on.
type MiddlewareMatch struct {
	// Workload is a glob (path.Match) over the names of the sandbox's workloads: a fork's baseline name or
	// a virtual workload's name.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +required
	Workload string `json:"workload"`
}

// Middleware acts on the sandbox's keyed requests for the workloads it matches (Signadot's middleware[]).
type Middleware struct {
	// Name of the middleware: override.
	// +kubebuilder:validation:Enum=override
	// +required
	Name string `json:"name"`
	// Args of the middleware.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	Args []MiddlewareArg `json:"args,omitempty"`
	// Match selects the workloads (any of them); empty matches none.
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	// +optional
	Match []MiddlewareMatch `json:"match,omitempty"`
}

// Arg returns the middleware's argument called name, or nil.
func (m *Middleware) Arg(name string) *MiddlewareArg {
	for i := range m.Args {
		if m.Args[i].Name == name {
			return &m.Args[i]
		}
	}
	return nil
}

// Resource asks a resource plugin for a per-sandbox resource (a database, a queue...).
type Resource struct {
	// Name of the resource within the sandbox.
	// +kubebuilder:validation:Pattern=`^[a-z]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +required
	Name string `json:"name"`
	// Plugin that provides it: a ResourcePlugin in the sandbox's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="!self.contains('@')",message="plugin versions are not supported"
	// +kubebuilder:validation:XValidation:rule="self.contains('@') || self.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="a plugin name is a DNS label starting with a letter"
	// +required
	Plugin string `json:"plugin"`
	// Params for the plugin (the inputs with valueFromSandbox: true).
	// +kubebuilder:validation:MaxProperties=32
	// +kubebuilder:validation:XValidation:rule="self.all(k, k.size() <= 63 && k.matches('^[A-Za-z_][-._A-Za-z0-9]*$'))",message="param names match ^[A-Za-z_][-._A-Za-z0-9]*$ (at most 63 characters)"
	// +kubebuilder:validation:XValidation:rule="self.all(k, self[k].size() <= 4096)",message="param values are at most 4096 bytes"
	// +optional
	Params map[string]string `json:"params,omitempty"`
}

// DefaultRouteGroup holds the endpoints of a sandbox's implicit route group.
type DefaultRouteGroup struct {
	// Endpoints of the sandbox.
	// +kubebuilder:validation:MaxItems=32
	// +listType=map
	// +listMapKey=name
	// +optional
	Endpoints []Endpoint `json:"endpoints,omitempty"`
}

// SandboxSpec is the desired state of a Sandbox.
// +kubebuilder:validation:XValidation:rule="(has(self.forks) && size(self.forks) > 0) || (has(self.virtual) && size(self.virtual) > 0) || (has(self.local) && size(self.local) > 0)",message="at least one of forks, virtual or local must be given"
// +kubebuilder:validation:XValidation:rule="!has(self.forks) || self.forks.all(f, self.forks.exists_one(g, g.forkOf.__namespace__ == f.forkOf.__namespace__ && g.forkOf.name == f.forkOf.name && g.forkOf.kind == f.forkOf.kind))",message="a baseline workload may be forked at most once",fieldPath=".forks"
// +kubebuilder:validation:XValidation:rule="!has(self.local) || self.local.all(l, self.local.exists_one(m, m.from.__namespace__ == l.from.__namespace__ && m.from.name == l.from.name && m.from.kind == l.from.kind))",message="a baseline workload may be local at most once",fieldPath=".local"
// +kubebuilder:validation:XValidation:rule="!has(self.forks) || !has(self.local) || !self.forks.exists(f, self.local.exists(l, l.from.__namespace__ == f.forkOf.__namespace__ && l.from.name == f.forkOf.name && l.from.kind == f.forkOf.kind))",message="a baseline workload cannot be both forked and local",fieldPath=".local"
// +kubebuilder:validation:XValidation:rule="!has(self.routing) || !has(self.routing.forwards) || size(self.routing.forwards) == 0 || has(self.localMachineID)",message="routing.forwards need localMachineID: the machine the forwards lead to",fieldPath=".localMachineID"
// +kubebuilder:validation:XValidation:rule="has(self.cluster) == has(oldSelf.cluster)",message="cluster is immutable"
// +kubebuilder:validation:XValidation:rule="has(self.resources) == has(oldSelf.resources)",message="resources are immutable"
type SandboxSpec struct {
	// Cluster the sandbox runs in (as registered with the control plane). Immutable.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="cluster is immutable"
	// +optional
	Cluster string `json:"cluster,omitempty"`
	// Description for humans.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Description string `json:"description,omitempty"`
	// Labels of the sandbox; RouteGroups match on them.
	// +kubebuilder:validation:MaxProperties=64
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// TTL deletes the sandbox after a while; offsetFrom is createdAt (default) or updatedAt.
	// +kubebuilder:validation:XValidation:rule="!has(self.offsetFrom) || self.offsetFrom != 'noMatchedSandboxes'",message="a Sandbox TTL counts from createdAt or updatedAt (noMatchedSandboxes is for RouteGroups)",fieldPath=".offsetFrom"
	// +optional
	TTL *TTL `json:"ttl,omitempty"`
	// Forks of baseline workloads.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Forks []Fork `json:"forks,omitempty"`
	// Virtual workloads.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Virtual []Virtual `json:"virtual,omitempty"`
	// Local workloads, routed to a developer's machine.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Local []Local `json:"local,omitempty"`
	// LocalMachineID is the machine whose local-workload tunnel serves spec.local (Signadot's field):
	// `sandboxmesh local status` shows it; `sandboxmesh sandbox apply` fills it in on a connected machine.
	// Only that machine's connection may serve this sandbox's local workloads.
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +kubebuilder:validation:MaxLength=63
	// +optional
	LocalMachineID string `json:"localMachineID,omitempty"`
	// Routing additions: forwards to a developer's machine that middleware uses.
	// +optional
	Routing *SandboxRouting `json:"routing,omitempty"`
	// Middleware acting on the sandbox's keyed requests (override).
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Middleware []Middleware `json:"middleware,omitempty"`
	// Resources provided by plugins. Immutable.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="resources are immutable"
	// +kubebuilder:validation:XValidation:rule="self.all(r, self.exists_one(s, s.name == r.name))",message="resource names must be unique"
	// +listType=atomic
	// +optional
	Resources []Resource `json:"resources,omitempty"`
	// DefaultRouteGroup holds the sandbox's endpoints.
	// +optional
	DefaultRouteGroup *DefaultRouteGroup `json:"defaultRouteGroup,omitempty"`
}

// ForkStatus reports one fork.
type ForkStatus struct {
	// Name of the fork: the baseline workload's name.
	Name string `json:"name"`
	// Baseline is Kind/namespace/name of the forked workload.
	Baseline string `json:"baseline"`
	// Deployment is the name of the fork Deployment (in the baseline's namespace).
	// +optional
	Deployment string `json:"deployment,omitempty"`
	// Service is the name of the fork Service (in the baseline's namespace).
	// +optional
	Service string `json:"service,omitempty"`
	// Ready is true when the fork Deployment is available with its current spec.
	Ready bool `json:"ready"`
	// Message says what the fork waits for, when it is not ready.
	// +optional
	Message string `json:"message,omitempty"`
}

// LocalStatus reports one local workload.
type LocalStatus struct {
	// Name of the local workload (spec.local[].name).
	Name string `json:"name"`
	// Service is the Service (in the operator's namespace) that keyed requests for the local
	// workload go to while its machine is connected.
	// +optional
	Service string `json:"service,omitempty"`
	// Tunnel is the state of the machine's tunnel.
	Tunnel LocalTunnelStatus `json:"tunnel"`
}

// LocalTunnelStatus is the state of a local workload's tunnel.
type LocalTunnelStatus struct {
	// Connected is true while spec.localMachineID holds a tunnel to the operator.
	Connected bool `json:"connected"`
	// LastHeartbeat is when the operator last saw the tunnel alive (refreshed at most once a minute).
	// +optional
	LastHeartbeat *metav1.Time `json:"lastHeartbeat,omitempty"`
}

// SandboxStatus is the observed state of a Sandbox.
type SandboxStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready, Progressing, Degraded, RoutesConfigured.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// RoutingKey of the sandbox: requests carrying it are routed to its forks.
	// +optional
	RoutingKey string `json:"routingKey,omitempty"`
	// Forks report each fork.
	// +listType=atomic
	// +optional
	Forks []ForkStatus `json:"forks,omitempty"`
	// Local reports each of spec.local, then each forward an override middleware uses (by its name).
	// +listType=atomic
	// +optional
	Local []LocalStatus `json:"local,omitempty"`
	// Endpoints resolved from defaultRouteGroup.endpoints.
	// +listType=atomic
	// +optional
	Endpoints []EndpointStatus `json:"endpoints,omitempty"`
	// ScheduledDeleteTime is when the TTL deletes the sandbox.
	// +optional
	ScheduledDeleteTime *metav1.Time `json:"scheduledDeleteTime,omitempty"`
	// Resources report each of spec.resources.
	// +listType=atomic
	// +optional
	Resources []ResourceStatus `json:"resources,omitempty"`
}

// ResourcePhase is where a sandbox resource is in its life.
type ResourcePhase string

// Phases of a sandbox resource.
const (
	ResourcePending      ResourcePhase = "Pending"
	ResourceCreating     ResourcePhase = "Creating"
	ResourceReady        ResourcePhase = "Ready"
	ResourceCreateFailed ResourcePhase = "CreateFailed"
	ResourceDeleting     ResourcePhase = "Deleting"
	ResourceDeleteFailed ResourcePhase = "DeleteFailed"
)

// ResourceStatus reports one resource of a sandbox. It never holds output
// values, only their keys.
type ResourceStatus struct {
	// Name of the resource.
	Name string `json:"name"`
	// Plugin that provides it.
	Plugin string `json:"plugin"`
	// Phase: Pending, Creating, Ready, CreateFailed, Deleting, DeleteFailed.
	Phase ResourcePhase `json:"phase"`
	// Step running or failed.
	// +optional
	Step string `json:"step,omitempty"`
	// Attempt of that step (1 for the first).
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// Message says what happens; on failure it includes the step's last log lines.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	Message string `json:"message,omitempty"`
	// SecretName is the outputs Secret (the same name in the sandbox's
	// namespace and in each fork namespace).
	// +optional
	SecretName string `json:"secretName,omitempty"`
	// OutputKeys are the outputs the resource has, "<step>.<output>".
	// +listType=atomic
	// +optional
	OutputKeys []string `json:"outputKeys,omitempty"`
}

// Sandbox forks baseline workloads and routes requests carrying its routing key to the forks.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=sbx,categories=sandboxmesh
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Routing Key",type=string,JSONPath=`.status.routingKey`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 30",message="metadata.name must be at most 30 characters"
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",message="metadata.name must be a DNS label starting with a letter"
type Sandbox struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the desired state.
	// +required
	Spec SandboxSpec `json:"spec"`
	// Status is the observed state.
	// +optional
	Status SandboxStatus `json:"status,omitempty"`
}

// SandboxList is a list of Sandboxes.
//
// +kubebuilder:object:root=true
type SandboxList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Sandbox `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Sandbox{}, &SandboxList{})
}
