// Package operator is the in-cluster brain of SandboxMesh: it turns Sandboxes and
// RouteGroups into fork Deployments, fork Services and routing rules (through
// meshadapters), hosts the devmesh injection webhook and the devmesh route server.
//
// Subpackages: naming (names and labels of everything the operator creates), fork
// (pure construction of fork objects from a baseline), routing (the route-set
// engine shared by the controllers) and controllers (one reconciler per concern).
package operator
