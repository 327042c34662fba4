package controllers

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// tracerName is the instrumentation scope of the controllers' spans.
const tracerName = "github.com/sandboxmesh/sandboxmesh/operator/controllers"

// traced runs one reconcile of kind as a span "reconcile <kind>" of the
// global TracerProvider (installed by internal/telemetry in cmd/operator;
// the no-op default otherwise), with the object, the result and the error.
func traced(ctx context.Context, kind string, req reconcile.Request, f func(context.Context, reconcile.Request) (reconcile.Result, error)) (reconcile.Result, error) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, "reconcile "+kind, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("k8s.namespace.name", req.Namespace), attribute.String("sandboxmesh.kind", kind),
			attribute.String("sandboxmesh.name", req.Name)))
	defer span.End()
	res, err := f(ctx, req)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	if res.RequeueAfter > 0 {
		span.SetAttributes(attribute.String("sandboxmesh.requeue_after", res.RequeueAfter.String()))
	}
	return res, err
}
