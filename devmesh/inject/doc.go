// Package inject is the devmesh sidecar injector: a mutating admission handler for Pod CREATE
// (admission/v1) that adds the devmesh sidecar to pods annotated with
// sidecar.sandboxmesh.dev/inject: "true", plus the way inbound traffic reaches it — an init container
// that programs iptables REDIRECT rules for the app's ports (ModeIPTables), or sidecar listeners the
// Service's targetPort must point at (ModeExplicit).
//
// The handler is a function (NewHandler) that the operator registers on the controller-runtime webhook
// server at Path. It never injects twice, skips hostNetwork pods and pods in namespaces that opted out,
// and records why a pod that asked for injection was skipped, both in the pod's AnnotationStatus and in
// the admission response's warnings. Internal errors never block pod creation: the pod is admitted
// unchanged with a warning, which matches the webhook's failurePolicy Ignore (see
// MutatingWebhookConfiguration).
//
// The webhook configuration comes from MutatingWebhookConfiguration rather than kubebuilder markers,
// because it needs a namespaceSelector (the opt-out label) that markers cannot express.
//
// See docs/devmesh-injection.md.
package inject
