package app

import (
	"context"
	"encoding/json"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// DriverServiceName is the gRPC service of the driver.
const DriverServiceName = "hotrod.driver.v1.Driver"

// FindNearestMethod is the full gRPC method name of FindNearest.
const FindNearestMethod = "/" + DriverServiceName + "/FindNearest"

// CodecName is the gRPC content-subtype of the JSON codec (application/grpc+json).
const CodecName = "json"

// FindNearestRequest asks the driver service for the driver nearest to a customer.
// The reply is the driver's [Node].
type FindNearestRequest struct {
	// Customer is the customer's ID.
	Customer string `json:"customer"`
}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
func (jsonCodec) Name() string                       { return CodecName }

// The server picks a codec by the request's content-subtype from the global
// registry, so the codec must be registered (as devmesh/routeapi does).
func init() { encoding.RegisterCodec(jsonCodec{}) }

// driverServer is the handler type of the driver's service description.
type driverServer interface {
	findNearest(ctx context.Context, req *FindNearestRequest) (*Node, error)
}

var driverServiceDesc = grpc.ServiceDesc{
	ServiceName: DriverServiceName,
	HandlerType: (*driverServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "FindNearest",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(FindNearestRequest)
			if err := dec(in); err != nil {
				return nil, err
			}
			h := func(ctx context.Context, req any) (any, error) {
				return srv.(driverServer).findNearest(ctx, req.(*FindNearestRequest))
			}
			if interceptor == nil {
				return h(ctx, in)
			}
			return interceptor(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: FindNearestMethod}, h)
		},
	}},
	Metadata: "hotrod/driver/v1 (JSON codec)",
}
