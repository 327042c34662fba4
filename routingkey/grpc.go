package routingkey

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// incoming returns ctx with the key of the incoming gRPC metadata, if any.
func (e *Extractor) incoming(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	if key, ok := e.ExtractMetadata(md); ok {
		return WithKey(ctx, key)
	}
	return ctx
}

// outgoing returns ctx with the key of ctx injected into its outgoing gRPC
// metadata (a copy), keeping the other metadata.
func (e *Extractor) outgoing(ctx context.Context) context.Context {
	key, ok := e.KeyFromContext(ctx)
	if !ok {
		return ctx
	}
	md, _ := metadata.FromOutgoingContext(ctx)
	md = md.Copy()
	e.InjectMetadata(md, key)
	return metadata.NewOutgoingContext(ctx, md)
}

// UnaryClientInterceptor injects the key of the call context
// ([Extractor.KeyFromContext]) into the outgoing metadata.
func (e *Extractor) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(e.outgoing(ctx), method, req, reply, cc, opts...)
	}
}

// StreamClientInterceptor injects the key of the stream context into the
// outgoing metadata.
func (e *Extractor) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(e.outgoing(ctx), desc, cc, method, opts...)
	}
}

// UnaryServerInterceptor stores the key of the incoming metadata in the
// handler's context ([FromContext]).
func (e *Extractor) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(e.incoming(ctx), req)
	}
}

// StreamServerInterceptor stores the key of the incoming metadata in the
// stream's context ([FromContext]).
func (e *Extractor) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := ss.Context()
		if nctx := e.incoming(ctx); nctx != ctx {
			ss = &serverStream{ServerStream: ss, ctx: nctx}
		}
		return handler(srv, ss)
	}
}

type serverStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *serverStream) Context() context.Context { return s.ctx }
