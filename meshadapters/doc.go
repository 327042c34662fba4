// Package meshadapters owns the routing interface of SandboxMesh, its registry
// of backends and the four backends: devmesh (our sidecar's route server),
// istio (VirtualService), gatewayapi (mesh-neutral GAMMA HTTPRoute and
// GRPCRoute) and linkerd (GAMMA routes with what Linkerd needs).
//
// Desired state is per baseline Service: a [RouteSet] says, for every routing
// key of every sandbox and route group, where requests to the Service that
// carry the key go. Backends always receive the whole route set of a Service
// ([Router.Apply]) because meshes cannot merge partial configurations (Istio
// uses one VirtualService per host; Linkerd drops unmatched requests once any
// route is attached to a Service).
//
// Every backend is idempotent and safe to re-run after a crash at any point:
// Apply converges the cluster to the route set from whatever state it finds,
// and Remove deletes exactly what SandboxMesh added, leaving user objects as
// they were. Header matching comes from the routingkey package
// ([routingkey.Extractor.HeaderMatchers]): every header form and key name, for
// every port of the Service.
//
// Backends register by name in a [Registry]; [New] builds the backends a
// cluster enables and fails with [ErrUnknownBackend] for an unknown name.
// docs/meshadapters.md describes what each backend creates.
package meshadapters
