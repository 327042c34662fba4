// Package telemetry sets up OpenTelemetry tracing for the project's binaries
// (control plane, agent, operator, devmesh) from the standard OTel
// environment variables, so every binary exports traces the same way:
//
//   - OTEL_TRACES_EXPORTER: "otlp", "console" or "none". Default: "otlp" when
//     OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set,
//     else "none" (no exporter, spans are not recorded).
//   - OTEL_EXPORTER_OTLP_PROTOCOL / OTEL_EXPORTER_OTLP_TRACES_PROTOCOL:
//     "http/protobuf" (the default, and the only one built in).
//   - The endpoint, headers, timeout and TLS variables of the OTLP exporter
//     (read by the exporter itself), OTEL_SERVICE_NAME and
//     OTEL_RESOURCE_ATTRIBUTES (read by the SDK), OTEL_TRACES_SAMPLER(_ARG).
//
// W3C trace context and baggage are installed as the global propagator.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ErrConfig means the OTel environment variables ask for something unsupported.
var ErrConfig = errors.New("telemetry configuration")

// Options tune Setup.
type Options struct {
	// Service is the default service.name (OTEL_SERVICE_NAME wins).
	Service string
	// Version is service.version.
	Version string
	// Console receives spans for OTEL_TRACES_EXPORTER=console (default stderr).
	Console io.Writer
}

// Setup builds a TracerProvider from the environment, installs it and the
// W3C propagators globally, and returns it with a shutdown function that
// flushes pending spans. With no exporter configured the provider is a no-op.
func Setup(ctx context.Context, o Options) (trace.TracerProvider, func(context.Context) error, error) {
	getenv := os.Getenv
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	exporter := strings.ToLower(strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")))
	if exporter == "" {
		exporter = "none"
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
			exporter = "otlp"
		}
	}
	var exp sdktrace.SpanExporter
	var err error
	switch exporter {
	case "none":
		tp := noop.NewTracerProvider()
		otel.SetTracerProvider(tp)
		return tp, func(context.Context) error { return nil }, nil
	case "otlp":
		proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
		if proto == "" {
			proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
		}
		if proto != "" && proto != "http/protobuf" {
			return nil, nil, fmt.Errorf("%w: OTEL_EXPORTER_OTLP_PROTOCOL=%q: only http/protobuf is built in", ErrConfig, proto)
		}
		exp, err = otlptracehttp.New(ctx)
	case "console":
		w := o.Console
		if w == nil {
			w = os.Stderr
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	default:
		return nil, nil, fmt.Errorf("%w: OTEL_TRACES_EXPORTER=%q: want otlp, console or none", ErrConfig, exporter)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s exporter: %w", ErrConfig, exporter, err)
	}
	// Our defaults first; OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME override them.
	res, err := resource.New(ctx, resource.WithTelemetrySDK(),
		resource.WithAttributes(semconv.ServiceName(o.Service), semconv.ServiceVersion(o.Version)), resource.WithFromEnv())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: resource: %w", ErrConfig, err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown, nil
}

// Enabled reports whether tp records spans (Setup found an exporter), so that
// hot paths can skip tracing entirely when it is off.
func Enabled(tp trace.TracerProvider) bool {
	_, isNoop := tp.(noop.TracerProvider)
	return tp != nil && !isNoop
}

var traceContext = propagation.TraceContext{}

// Transport wraps base (nil: http.DefaultTransport) so that every request is
// a client span of tp named "<METHOD> <path>" (for clients of fixed paths,
// like the agent's calls to the control plane), covering the request until
// the response headers, and carries that span's W3C traceparent, so the
// server's span is its child. When tp records nothing (see Enabled), base is
// returned unchanged.
func Transport(base http.RoundTripper, tp trace.TracerProvider) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if !Enabled(tp) {
		return base
	}
	return &transport{base: base, tracer: tp.Tracer("github.com/sandboxmesh/sandboxmesh/internal/telemetry")}
}

type transport struct {
	base   http.RoundTripper
	tracer trace.Tracer
}

func (t *transport) RoundTrip(r *http.Request) (*http.Response, error) {
	ctx, span := t.tracer.Start(r.Context(), r.Method+" "+r.URL.Path, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("server.address", r.URL.Hostname()),
			attribute.String("url.path", r.URL.Path)))
	defer span.End()
	out := r.Clone(ctx)
	traceContext.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := t.base.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, http.StatusText(resp.StatusCode))
	}
	return resp, nil
}
