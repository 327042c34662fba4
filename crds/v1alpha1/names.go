package v1alpha1

import "github.com/sandboxmesh/sandboxmesh/crds/podenv"

// Labels and annotations that more than one package writes or reads (the
// operator, its mesh backends, the control plane's agent and the devmesh
// injector). Names only one package uses live with that package (fork labels:
// operator/naming; mesh-object labels: meshadapters).
const (
	// LabelManagedBy marks every object SandboxMesh creates (fork Deployments,
	// their pods and Services, mesh route objects), the Kubernetes convention
	// (app.kubernetes.io/managed-by).
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy on objects SandboxMesh creates.
	// Use IsManaged to recognise them: older versions wrote other values.
	ManagedBy = "sandboxmesh"
	// AnnotationRoutingKey on a Sandbox or RouteGroup holds its routing key (set
	// by the control plane's agent, else by the operator once).
	AnnotationRoutingKey = "sandboxmesh.dev/routing-key"
	// LabelRoutingKey names, on a mesh route object SandboxMesh owns, the
	// routing key it routes (the same key as AnnotationRoutingKey).
	LabelRoutingKey = AnnotationRoutingKey
	// AnnotationInject on a pod (template) set to "true" asks the devmesh
	// injection webhook for a sidecar; "false" refuses it (fork pods).
	AnnotationInject = "sidecar.sandboxmesh.dev/inject"
)

// Names of the job runner objects (JobRunnerGroup): the operator makes the
// runner Deployment, the control plane's agent the token Secret, and the
// runner program (cmd/sandboxmesh-runner) reads the environment.
const (
	// LabelRunnerGroup names, on a runner Deployment, its pods and the runner
	// token Secret, the JobRunnerGroup (= control-plane runner group) they belong to.
	LabelRunnerGroup = "sandboxmesh.dev/runner-group"
	// LabelRunnerGroupNamespace names, on a runner Deployment and its pods,
	// the namespace of their JobRunnerGroup (it lives in the agent's namespace,
	// the pods in spec.namespace).
	LabelRunnerGroupNamespace = "sandboxmesh.dev/runner-group-namespace"
	// AnnotationRunnerTokenHash on a JobRunnerGroup (set by the agent) and on
	// its runner pods (copied by the operator) is a hash of the runner token:
	// a new token rolls the pods, which read it from their environment at start.
	AnnotationRunnerTokenHash = "sandboxmesh.dev/runner-token-hash"
	// DefaultJobNamespace is the namespace runner pods run in when a
	// JobRunnerGroup's spec.namespace is empty (the CRD's default too).
	DefaultJobNamespace = "sandboxmesh-jobs"
	// RunnerTokenSecretKey is the key of the runner token in its Secret.
	RunnerTokenSecretKey = "token"
	// RunnerContainerInstall is the init container that copies the runner
	// binary into the RunnerVolume.
	RunnerContainerInstall = "sandboxmesh-runner-install"
	// RunnerContainer is the name of the container running the jobs when the
	// pod template has none.
	RunnerContainer = "runner"
	// RunnerVolume is the emptyDir holding the runner binary, mounted at RunnerBinDir.
	RunnerVolume = "sandboxmesh-runner-bin"
	// RunnerBinDir is where the runner binary is installed in runner pods.
	RunnerBinDir = "/sandboxmesh/bin"
	// RunnerBinary is the runner program's name (its image's too).
	RunnerBinary = "sandboxmesh-runner"

	// EnvControlPlaneURL (and the Env names below) make up the environment of
	// the job-running container of runner pods: the control plane's URL,
	EnvControlPlaneURL = "SANDBOXMESH_CONTROL_PLANE_URL"
	// EnvOrg the runner group's org,
	EnvOrg = "SANDBOXMESH_ORG"
	// EnvRunnerGroup its name,
	EnvRunnerGroup = "SANDBOXMESH_RUNNER_GROUP"
	// EnvRunnerToken its token (from the Secret),
	EnvRunnerToken = "SANDBOXMESH_RUNNER_TOKEN"
	// EnvPodName and EnvPodNamespace the pod's name and namespace (downward API).
	EnvPodName      = "POD_NAME"
	EnvPodNamespace = "POD_NAMESPACE"
)

// The environment SandboxMesh gives application containers so that queue consumers (the mq libraries,
// docs/message-queues.md) know who they are and where the routes lookup API is (docs/routes-api.md).
// A value the user set in the container spec is never overwritten. The names are declared in crds/podenv.
const (
	// EnvSandboxName is podenv.SandboxName.
	EnvSandboxName = podenv.SandboxName
	// EnvRoutingKey is podenv.RoutingKey.
	EnvRoutingKey = podenv.RoutingKey
	// EnvBaselineKind is podenv.BaselineKind.
	EnvBaselineKind = podenv.BaselineKind
	// EnvBaselineNamespace is podenv.BaselineNamespace.
	EnvBaselineNamespace = podenv.BaselineNamespace
	// EnvBaselineName is podenv.BaselineName.
	EnvBaselineName = podenv.BaselineName
	// EnvRoutesURL is podenv.RoutesURL.
	EnvRoutesURL = podenv.RoutesURL
)

// RunnerObjectName is the name of the runner Deployment and of the runner
// token Secret of the runner group group: "sandboxmesh-runner-<group>" (at
// most 49 characters: group names have at most 30).
func RunnerObjectName(group string) string { return RunnerBinary + "-" + group }

// legacyManagedBy are values of LabelManagedBy written by older versions:
// before v1alpha1 held the names, the operator labelled fork Deployments, their
// pods and Services "sandboxmesh-operator" (mesh objects were already
// "sandboxmesh"). Forks are rebuilt only when their Sandbox's spec changes, so
// such objects live on after an upgrade.
var legacyManagedBy = [...]string{"sandboxmesh-operator"}

// IsManaged reports whether labels mark an object SandboxMesh created, with
// the current ManagedBy value or one an older version wrote. Every ownership
// check uses it; objects are only ever labelled with ManagedBy.
func IsManaged(labels map[string]string) bool {
	v, ok := labels[LabelManagedBy]
	if !ok {
		return false
	}
	if v == ManagedBy {
		return true
	}
	for _, l := range legacyManagedBy {
		if v == l {
			return true
		}
	}
	return false
}

// Names of the resource plugin objects (ResourcePlugin, Sandbox
// spec.resources): the operator's Sandbox controller runs each step as a pod
// in the plugin's runner namespace (docs/design/resource-plugins.md).
const (
	// ConditionResourcesReady is True on a Sandbox once every resource in
	// spec.resources is created (set only when there are some).
	ConditionResourcesReady = "ResourcesReady"
	// ReasonCreated: every resource is created.
	ReasonCreated = "Created"
	// ReasonCreateFailed: a create step of a resource failed (it is retried).
	ReasonCreateFailed = "CreateFailed"
	// ReasonDeleteFailed: a delete step of a resource failed (it is retried;
	// the Sandbox's finalizer stays).
	ReasonDeleteFailed = "DeleteFailed"
	// ReasonPluginNotFound: no ResourcePlugin of that name in the Sandbox's namespace.
	ReasonPluginNotFound = "PluginNotFound"
	// ReasonResourcesCreating: resources are being created; forks wait.
	ReasonResourcesCreating = "ResourcesCreating"
	// ReasonValid: a ResourcePlugin's spec is valid.
	ReasonValid = "Valid"
	// ReasonInUse: a ResourcePlugin's deletion waits for the Sandboxes using it.
	ReasonInUse = "InUse"

	// LabelResource names, on step pods and state Secrets, the resource.
	LabelResource = "sandboxmesh.dev/resource"
	// LabelResourcePlugin names the ResourcePlugin.
	LabelResourcePlugin = "sandboxmesh.dev/resource-plugin"
	// LabelStep names the step of a step pod.
	LabelStep = "sandboxmesh.dev/step"
	// LabelSandboxUID holds the UID of the Sandbox a step pod or resource
	// Secret belongs to (a Sandbox deleted and made again has another).
	LabelSandboxUID = "sandboxmesh.dev/sandbox-uid"
	// DefaultPluginNamespace is where steps run when runner.namespace is
	// empty (the CRD's default too).
	DefaultPluginNamespace = "sandboxmesh-plugins"

	// EnvResourceName holds, in a step pod, the resource's name.
	EnvResourceName = "SANDBOXMESH_RESOURCE_NAME"
	// EnvResourceID holds a stable id of the resource (hex of the Sandbox's
	// UID and the resource's name): scripts name things after it.
	EnvResourceID = "SANDBOXMESH_RESOURCE_ID"
	// EnvStepName holds the step's name.
	EnvStepName = "SANDBOXMESH_STEP_NAME"
	// StepContainer is the container of a step pod that runs the step.
	StepContainer = "main"
	// StepInputsVolume is the state Secret volume mounted at StepInputsDir.
	StepInputsVolume = "sandboxmesh-inputs"
)
