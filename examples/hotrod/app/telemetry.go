package app

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Propagation says how a service carries the routing key from incoming to
// outgoing requests. Both modes also propagate W3C tracecontext and baggage.
type Propagation string

const (
	// PropagationOTel uses one composite OpenTelemetry propagator: tracecontext,
	// baggage and routingkey.Default.Propagator(). otelhttp and the gRPC
	// interceptors of this package apply it; nothing else is needed.
	PropagationOTel Propagation = "otel"
	// PropagationLibrary uses the tracecontext and baggage propagators plus the
	// routingkey library's helpers: Middleware on the HTTP server, Transport on
	// the HTTP client, and its gRPC client and server interceptors.
	PropagationLibrary Propagation = "library"
)

// ParsePropagation parses a Propagation ("" means [PropagationOTel]).
func ParsePropagation(s string) (Propagation, error) {
	switch p := Propagation(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return PropagationOTel, nil
	case PropagationOTel, PropagationLibrary:
		return p, nil
	}
	return "", fmt.Errorf("propagation %q: want %s or %s", s, PropagationOTel, PropagationLibrary)
}

// tracerName is the instrumentation scope of this package's spans.
const tracerName = "github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"

// newTelemetry returns the tracer provider and propagator of a service. The
// provider samples every trace and exports nothing: spans exist so that trace
// IDs and tracecontext flow between the services.
func newTelemetry(svc Service, id Identity, mode Propagation) (*sdktrace.TracerProvider, propagation.TextMapPropagator) {
	res := resource.NewSchemaless(
		attribute.String("service.name", string(svc)),
		attribute.String("service.version", id.Version),
		attribute.String("sandboxmesh.sandbox", id.Sandbox),
	)
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())))
	props := []propagation.TextMapPropagator{propagation.TraceContext{}, propagation.Baggage{}}
	if mode == PropagationOTel {
		// After tracecontext and baggage, which overwrite the tracestate and baggage headers.
		props = append(props, routingkey.Default.Propagator())
	}
	return tp, propagation.NewCompositeTextMapPropagator(props...)
}

// instrumentHandler traces h and extracts the request's context.
func (s *Server) instrumentHandler(h http.Handler, operation string) http.Handler {
	if s.cfg.Propagation == PropagationLibrary {
		h = routingkey.Default.Middleware(h)
	}
	return otelhttp.NewHandler(h, operation,
		otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(s.prop))
}

// instrumentTransport traces outgoing requests and injects the context into them.
func (s *Server) instrumentTransport(base http.RoundTripper) http.RoundTripper {
	if s.cfg.Propagation == PropagationLibrary {
		// Inside otelhttp's transport, so that the key is merged into the
		// baggage header otelhttp has already written.
		base = routingkey.Default.Transport(base)
	}
	return otelhttp.NewTransport(base, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(s.prop))
}

// mdCarrier adapts gRPC metadata to a propagation.TextMapCarrier.
type mdCarrier metadata.MD

var _ propagation.ValuesGetter = mdCarrier(nil)

func (c mdCarrier) Get(k string) string {
	if vs := metadata.MD(c).Get(k); len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (c mdCarrier) Values(k string) []string { return metadata.MD(c).Get(k) }

func (c mdCarrier) Set(k, v string) { metadata.MD(c).Set(k, v) }

func (c mdCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, status.Convert(err).Message())
	}
	span.End()
}

// grpcClientInterceptors trace calls and inject the context into the outgoing metadata.
func (s *Server) grpcClientInterceptors() []grpc.UnaryClientInterceptor {
	tracer := s.tp.Tracer(tracerName)
	otelInterceptor := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		ctx, span := tracer.Start(ctx, strings.TrimPrefix(method, "/"), trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.method", method)))
		md, _ := metadata.FromOutgoingContext(ctx)
		md = md.Copy()
		s.prop.Inject(ctx, mdCarrier(md))
		err := invoker(metadata.NewOutgoingContext(ctx, md), method, req, reply, cc, opts...)
		endSpan(span, err)
		return err
	}
	out := []grpc.UnaryClientInterceptor{otelInterceptor}
	if s.cfg.Propagation == PropagationLibrary {
		// After the OpenTelemetry interceptor, so that the key is merged into its baggage.
		out = append(out, routingkey.Default.UnaryClientInterceptor())
	}
	return out
}

// grpcServerInterceptors extract the context of the incoming metadata and trace the call.
func (s *Server) grpcServerInterceptors() []grpc.UnaryServerInterceptor {
	tracer := s.tp.Tracer(tracerName)
	otelInterceptor := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		ctx = s.prop.Extract(ctx, mdCarrier(md))
		ctx, span := tracer.Start(ctx, strings.TrimPrefix(info.FullMethod, "/"), trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("rpc.system", "grpc"), attribute.String("rpc.method", info.FullMethod)))
		resp, err := handler(ctx, req)
		endSpan(span, err)
		return resp, err
	}
	out := []grpc.UnaryServerInterceptor{otelInterceptor}
	if s.cfg.Propagation == PropagationLibrary {
		out = append(out, routingkey.Default.UnaryServerInterceptor())
	}
	return out
}
