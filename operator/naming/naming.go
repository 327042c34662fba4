// Package naming owns the names, labels and annotations of everything the
// operator creates. Names are deterministic, at most 63 characters, DNS-1035
// labels (valid Service names), and never collide between sandboxes or baselines.
package naming

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	smv1 "github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Labels and annotations of the objects the operator creates. Names other
// packages share (managed-by, the routing key, the devmesh inject annotation)
// are in crds/v1alpha1.
const (
	// LabelSandbox is the name of the owning Sandbox.
	LabelSandbox = "sandboxmesh.dev/sandbox"
	// LabelSandboxNamespace is the namespace of the owning Sandbox.
	LabelSandboxNamespace = "sandboxmesh.dev/sandbox-namespace"
	// LabelFork is the name of the fork (the fork Deployment's name); fork Services select it.
	LabelFork = "sandboxmesh.dev/fork"
	// LabelLocal is the name of the local workload (spec.local[].name) a Service of the operator's namespace
	// carries to its machine.
	LabelLocal = "sandboxmesh.dev/local"
	// LabelBaseline is the name of the forked baseline workload.
	LabelBaseline = "sandboxmesh.dev/baseline"
	// AnnotationBaselineGeneration records the baseline workload's generation a fork was built from.
	AnnotationBaselineGeneration = "sandboxmesh.dev/baseline-generation"
	// AnnotationBaselineKind records the kind of the forked baseline when it is
	// not a Deployment (Rollout), so a fork removed from the spec still finds
	// its baseline's Services.
	AnnotationBaselineKind = "sandboxmesh.dev/baseline-kind"
	// AnnotationSpecHash records a hash of the desired fork spec, to update forks only when it changes.
	AnnotationSpecHash = "sandboxmesh.dev/spec-hash"
	// Finalizer guards the clean-up of forks and routes.
	Finalizer = "sandboxmesh.dev/cleanup"
	// EnvSandboxName is set on every fork container (smv1.EnvSandboxName).
	EnvSandboxName = smv1.EnvSandboxName
	// EnvRoutingKey is set on every fork container (smv1.EnvRoutingKey).
	EnvRoutingKey = smv1.EnvRoutingKey
)

// OwnedBy reports whether labels mark an object the operator created for the
// Sandbox sandboxNamespace/sandboxName (smv1.IsManaged plus the sandbox
// labels). The operator only ever changes, deletes or routes to such objects:
// a user's object, or another sandbox's fork, that happens to have a fork's
// name is never touched.
func OwnedBy(labels map[string]string, sandboxNamespace, sandboxName string) bool {
	return smv1.IsManaged(labels) && labels[LabelSandbox] == sandboxName && labels[LabelSandboxNamespace] == sandboxNamespace
}

// MaxNameLength is the longest name the operator gives an object.
const MaxNameLength = 63

// ForkName is the name of the fork Deployment and fork Service of baseline
// namespace/name in sandbox sandboxNamespace/sandboxName:
// "<sandbox>-<baseline, shortened>-<hash>", where hash covers all four inputs.
// Sandbox names are DNS labels of at most 30 characters starting with a letter,
// so the result is a DNS-1035 label of at most 63 characters.
func ForkName(sandboxNamespace, sandboxName, baselineNamespace, baselineName string) string {
	h := sha256.Sum256([]byte(sandboxNamespace + "/" + sandboxName + "/" + baselineNamespace + "/" + baselineName))
	hash := hex.EncodeToString(h[:])[:8]
	base := sanitize(baselineName)
	sbx := sanitize(sandboxName)
	if len(sbx) > 30 {
		sbx = strings.TrimRight(sbx[:30], "-")
	}
	room := MaxNameLength - len(sbx) - len(hash) - 2
	if len(base) > room {
		base = strings.TrimRight(base[:room], "-")
	}
	if sbx == "" || sbx[0] < 'a' || sbx[0] > 'z' {
		sbx = "s" + sbx
	}
	parts := []string{sbx}
	if base != "" {
		parts = append(parts, base)
	}
	parts = append(parts, hash)
	name := strings.Join(parts, "-")
	if len(name) > MaxNameLength {
		name = name[len(name)-MaxNameLength:]
		name = "s" + strings.TrimLeft(name[1:], "-")
	}
	return name
}

// sanitize lowercases and replaces every character outside [a-z0-9-] (dots in
// Deployment names) with '-'.
func sanitize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

// hexOf is the first n hex digits of the SHA-256 of parts joined by "/".
func hexOf(n int, parts ...string) string {
	h := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(h[:])[:n]
}

// short is s sanitized and cut to at most n characters.
func short(s string, n int) string {
	s = sanitize(s)
	if len(s) > n {
		s = strings.TrimRight(s[:n], "-")
	}
	return s
}

// StepPodName is the name of the pod running attempt attempt of step step
// of resource resource of the Sandbox sandboxNamespace/sandboxName with UID
// sandboxUID: "sm-step-<hex12>-<attempt>". It is deterministic, so a
// restarted operator finds the pod it made instead of making a second one.
func StepPodName(sandboxNamespace, sandboxName, sandboxUID, resource, step string, attempt int) string {
	return "sm-step-" + hexOf(12, sandboxNamespace, sandboxName, sandboxUID, resource, step) + "-" + strconv.Itoa(attempt)
}

// ResourceStateName is the name of the state Secret of resource resource of
// a Sandbox (in the plugin's runner namespace): "sm-rs-<sandbox>-<resource>-<hex8>".
func ResourceStateName(sandboxNamespace, sandboxName, sandboxUID, resource string) string {
	parts := []string{"sm-rs"}
	if s := short(sandboxName, 20); s != "" {
		parts = append(parts, s)
	}
	if r := short(resource, 20); r != "" {
		parts = append(parts, r)
	}
	return strings.Join(append(parts, hexOf(8, sandboxNamespace, sandboxName, sandboxUID, resource)), "-")
}

// ResourceSecretName is the name of the outputs Secret of a Sandbox (in its
// namespace and in each fork namespace): "sm-res-<sandbox>-<hex8>".
func ResourceSecretName(sandboxNamespace, sandboxName string) string {
	parts := []string{"sm-res"}
	if s := short(sandboxName, 30); s != "" {
		parts = append(parts, s)
	}
	return strings.Join(append(parts, hexOf(8, sandboxNamespace, sandboxName)), "-")
}

// ResourceID is a stable id of a resource of a Sandbox (8 hex digits of
// its UID and the resource's name), given to the steps so scripts name
// what they make after it.
func ResourceID(sandboxUID, resource string) string { return hexOf(8, sandboxUID, resource) }

// LocalName is the name of the Service (in the operator's namespace) that carries local workload local of
// sandbox sandboxNamespace/sandboxName to its machine's tunnel: "<sandbox>-local-<local, shortened>-<hash>",
// a DNS-1035 label distinct from every fork name (the hash covers a baseline namespace no fork has).
func LocalName(sandboxNamespace, sandboxName, local string) string {
	return ForkName(sandboxNamespace, sandboxName, "", "local-"+local)
}
