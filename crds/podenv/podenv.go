// Package podenv names the environment variables SandboxMesh sets in application containers (fork
// containers and devmesh-injected baseline pods) so that message-queue consumers know who they are and
// where the routes lookup API is. It is the one declaration of that contract (docs/message-queues.md,
// docs/routes-api.md), shared by the operator (through crds/v1alpha1) and the mq libraries, and it imports
// nothing so that users' applications stay light.
package podenv

const (
	// SandboxName is the name of the Sandbox, on every fork container (unset on baseline pods).
	SandboxName = "SANDBOXMESH_SANDBOX_NAME"
	// RoutingKey is the Sandbox's routing key, on every fork container (unset on baseline pods).
	RoutingKey = "SANDBOXMESH_ROUTING_KEY"
	// BaselineKind is the kind (Deployment or Rollout) of the baseline workload: on fork containers the
	// baseline the fork replaces, on devmesh-injected baseline pods the pod's own workload.
	BaselineKind = "SANDBOXMESH_BASELINE_KIND"
	// BaselineNamespace is the namespace of that baseline workload.
	BaselineNamespace = "SANDBOXMESH_BASELINE_NAMESPACE"
	// BaselineName is the name of that baseline workload.
	BaselineName = "SANDBOXMESH_BASELINE_NAME"
	// RoutesURL is the base URL of the operator's routes lookup API
	// (http://<operator service>.<namespace>.svc:15011), on forks and injected pods.
	RoutesURL = "SANDBOXMESH_ROUTES_URL"
)
