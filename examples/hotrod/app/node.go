package app

import (
	"context"
	"strings"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Build names the build of the binary; set it with
// -ldflags "-X github.com/sandboxmesh/sandboxmesh/examples/hotrod/app.Build=v2"
// so that an image change of a fork shows in the responses.
var Build = "dev"

// Node is what one service reports about the request it served, with the
// nodes of the calls it made.
type Node struct {
	// Service is frontend, route, driver or customer.
	Service string `json:"service"`
	// Version is the service's VERSION ("baseline" by default).
	Version string `json:"version"`
	// Build is the binary's [Build].
	Build string `json:"build,omitempty"`
	// Sandbox is SANDBOXMESH_SANDBOX_NAME: the sandbox whose fork served the
	// request, "" for the baseline.
	Sandbox string `json:"sandbox"`
	// SandboxRoutingKey is SANDBOXMESH_ROUTING_KEY, the routing key of that sandbox.
	SandboxRoutingKey string `json:"sandboxRoutingKey,omitempty"`
	// Pod is the host name (the pod's name in Kubernetes).
	Pod string `json:"pod,omitempty"`
	// RoutingKey is the routing key of the request, as the service saw it.
	RoutingKey string `json:"routingKey,omitempty"`
	// Baggage is the OpenTelemetry baggage of the request, as the service saw it.
	Baggage string `json:"baggage,omitempty"`
	// TraceID is the request's trace ID; all nodes of one request share it.
	TraceID string `json:"traceId,omitempty"`
	// Headers are the propagation headers (traceparent and every header the
	// routing key can travel in) the service received, multiple values joined with ",".
	Headers map[string]string `json:"headers,omitempty"`
	// Data is the service's answer.
	Data map[string]string `json:"data,omitempty"`
	// Error says why the call to this service failed; the other fields may then be empty.
	Error string `json:"error,omitempty"`
	// Calls are the nodes of the calls this service made.
	Calls []Node `json:"calls,omitempty"`
}

// HasError reports whether n or one of its calls has an error.
func (n *Node) HasError() bool {
	if n.Error != "" {
		return true
	}
	for i := range n.Calls {
		if n.Calls[i].HasError() {
			return true
		}
	}
	return false
}

// Walk calls fn for n and every node below it, depth first.
func (n *Node) Walk(fn func(*Node)) {
	fn(n)
	for i := range n.Calls {
		n.Calls[i].Walk(fn)
	}
}

// Find returns the first node (depth first) of service, or nil.
func (n *Node) Find(service string) *Node {
	var found *Node
	n.Walk(func(m *Node) {
		if found == nil && m.Service == service {
			found = m
		}
	})
	return found
}

// propagationHeaders are the headers a Node reports: traceparent and every
// header the routing key can travel in (baggage, tracestate, ot-baggage-*,
// uberctx-*, baggage-*).
var propagationHeaders = append([]string{"traceparent"}, routingkey.Default.HeaderNames()...)

// newNode describes the request of ctx as served by s; get reads the
// request's headers or metadata by lowercase name.
func (s *Server) newNode(ctx context.Context, get func(string) []string) Node {
	id := s.cfg.Identity
	n := Node{
		Service:           string(s.cfg.Service),
		Version:           id.Version,
		Build:             Build,
		Sandbox:           id.Sandbox,
		SandboxRoutingKey: id.SandboxRoutingKey,
		Pod:               id.Pod,
	}
	if key, ok := routingkey.Default.KeyFromContext(ctx); ok {
		n.RoutingKey = key
	}
	if bag := baggage.FromContext(ctx); bag.Len() > 0 {
		n.Baggage = bag.String()
	}
	if sc := trace.SpanContextFromContext(ctx); sc.HasTraceID() {
		n.TraceID = sc.TraceID().String()
	}
	for _, h := range propagationHeaders {
		if vs := get(h); len(vs) > 0 {
			if n.Headers == nil {
				n.Headers = map[string]string{}
			}
			n.Headers[h] = strings.Join(vs, ",")
		}
	}
	return n
}
