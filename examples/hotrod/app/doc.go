// Package app is hotrod-lite, the example application of SandboxMesh: four small
// services that call each other and report, in every response, which version of
// each service served the request.
//
//	frontend (HTTP /dispatch) ──HTTP──▶ route (HTTP /route)
//	                         └──gRPC──▶ driver (hotrod.driver.v1.Driver/FindNearest) ──HTTP──▶ customer (HTTP /customer)
//
// Every service is instrumented with OpenTelemetry: incoming requests are
// traced and their context (W3C tracecontext, W3C baggage and the SandboxMesh
// routing key) is extracted; outgoing requests (net/http and gRPC) carry it on.
// Two propagation modes show the two ways an application can carry the routing
// key (see [Propagation]): through one composite OpenTelemetry propagator that
// includes routingkey.Extractor.Propagator, or through the routingkey
// library's net/http middleware and transport and gRPC interceptors beside the
// standard tracecontext and baggage propagators.
//
// Each service answers with a [Node]: its name, version (env VERSION), build
// (set with -ldflags at build time, see [Build]), the sandbox it belongs to
// (SANDBOXMESH_SANDBOX_NAME and SANDBOXMESH_ROUTING_KEY, which the SandboxMesh
// operator sets on forks), the routing key, baggage, trace ID and propagation
// headers it received, and the nodes of the calls it made.
//
// gRPC runs without protoc: messages are JSON (content-type
// application/grpc+json, codec "json", registered when this package is
// imported).
package app
