// Package v1alpha1 holds the sandboxmesh.dev/v1alpha1 API: Sandbox, RouteGroup
// and JobRunnerGroup.
//
// JSON field names follow the public Signadot v2 sandbox API, so a sandbox spec
// written for that API is also a valid SandboxMesh spec. Validation lives in the
// schema (OpenAPI + CEL) so that kubectl users get the same errors as API users.
// It also owns the labels and annotations several packages share (names.go).
//
// +kubebuilder:object:generate=true
// +groupName=sandboxmesh.dev
package v1alpha1
