// Package examples holds SandboxMesh's example application (hotrod-lite, in
// hotrod/), its Kubernetes manifests (hotrod/k8s) and sample Sandbox and
// RouteGroup specs (specs/cr in CR form, specs/cli in control-plane form).
// Its tests decode every manifest and spec strictly into the real API types,
// so they cannot drift from the code. See README.md.
package examples
