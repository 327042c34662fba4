package routeapi

import (
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// ServiceName is the gRPC service name of the route server.
const ServiceName = "sandboxmesh.routes.v1.Routes"

// WatchMethod is the full gRPC method name of Watch.
const WatchMethod = "/" + ServiceName + "/Watch"

// CodecName is the gRPC content-subtype of the JSON codec (content-type application/grpc+json).
const CodecName = "json"

// MaxMessageBytes is the largest watch message the Client accepts (a snapshot is one message).
const MaxMessageBytes = 256 << 20

// MessageType says what a WatchResponse carries.
type MessageType string

const (
	// MessageSnapshot carries the full (filtered) table in Routes; it replaces the client's table.
	MessageSnapshot MessageType = "snapshot"
	// MessageDelta carries Changes to apply in order to the client's table; it may be empty when the
	// client resumed at the current version.
	MessageDelta MessageType = "delta"
	// MessageHeartbeat carries nothing but the current version; it proves the stream is alive.
	MessageHeartbeat MessageType = "heartbeat"
)

// WatchRequest opens a watch.
type WatchRequest struct {
	// Workloads limits the routes sent to these workloads; empty means all.
	Workloads []WorkloadRef `json:"workloads,omitempty"`
	// KnownEpoch is the server epoch of the client's table ("" when it has none).
	KnownEpoch string `json:"knownEpoch,omitempty"`
	// KnownVersion is the version of the client's table (0 when it has none).
	KnownVersion uint64 `json:"knownVersion,omitempty"`
	// Client names the subscriber in the server's logs (e.g. pod namespace/name).
	Client string `json:"client,omitempty"`
}

// WatchResponse is one message of the watch stream. Versions only grow within an epoch; a server
// restart starts a new epoch with higher versions.
type WatchResponse struct {
	// Type of the message.
	Type MessageType `json:"type"`
	// Epoch identifies the server instance.
	Epoch string `json:"epoch"`
	// Version of the table after this message.
	Version uint64 `json:"version"`
	// Routes is the full table (snapshot only).
	Routes []Route `json:"routes,omitempty"`
	// Changes to apply in order (delta only).
	Changes []Change `json:"changes,omitempty"`
}

// LookupResponse is the body of GET /v1/lookup.
type LookupResponse struct {
	// Version of the table the answer was read from.
	Version uint64 `json:"version"`
	// Workload asked about.
	Workload WorkloadRef `json:"workload"`
	// RoutingKey asked about.
	RoutingKey string `json:"routingKey"`
	// Routed is true when the key has a route for the workload (of any destination kind).
	Routed bool `json:"routed"`
	// RoutedAway is true when that route leads to a fork or a local tunnel (not a baseline
	// destination): a baseline consumer of the workload leaves messages with this key to the sandbox.
	RoutedAway bool `json:"routedAway"`
	// Destination of the route when Routed.
	Destination *Destination `json:"destination,omitempty"`
	// Sandbox that owns the route when Routed (same as Destination.Sandbox.Name).
	Sandbox string `json:"sandbox,omitempty"`
}

// ErrorBody is the JSON body of every 4xx/5xx answer of the HTTP handlers.
type ErrorBody struct {
	// Code is a stable machine-readable code.
	Code string `json:"code"`
	// Error is a human-readable message.
	Error string `json:"error"`
	// RequestID identifies the request in logs.
	RequestID string `json:"requestId"`
}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return CodecName }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// routesServer is the handler type of the service description.
type routesServer interface {
	watch(req *WatchRequest, stream grpc.ServerStream) error
}

var watchStreamDesc = grpc.StreamDesc{
	StreamName:    "Watch",
	ServerStreams: true,
	Handler: func(srv any, stream grpc.ServerStream) error {
		req := new(WatchRequest)
		if err := stream.RecvMsg(req); err != nil {
			return err
		}
		return srv.(routesServer).watch(req, stream)
	},
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*routesServer)(nil),
	Streams:     []grpc.StreamDesc{watchStreamDesc},
	Metadata:    "sandboxmesh/routes/v1 (JSON codec)",
}
