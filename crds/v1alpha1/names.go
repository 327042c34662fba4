package v1alpha1

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
