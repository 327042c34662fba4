package controllers

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestTraced(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	defer otel.SetTracerProvider(prev)
	req := reconcile.Request{NamespacedName: types.NamespacedName{Namespace: "sandboxes", Name: "feature-x"}}
	var inner trace.SpanContext
	_, err := traced(context.Background(), "Sandbox", req, func(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
		inner = trace.SpanContextFromContext(ctx)
		return reconcile.Result{RequeueAfter: time.Minute}, errors.New("baseline gone")
	})
	if err == nil {
		t.Fatal("error lost")
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	attrs := map[string]string{}
	for _, kv := range s.Attributes() {
		attrs[string(kv.Key)] = kv.Value.Emit()
	}
	if s.Name() != "reconcile Sandbox" || s.Status().Code != codes.Error || attrs["k8s.namespace.name"] != "sandboxes" ||
		attrs["sandboxmesh.name"] != "feature-x" || attrs["sandboxmesh.requeue_after"] != "1m0s" || inner.SpanID() != s.SpanContext().SpanID() {
		t.Fatalf("span %s %v %v (inner %v)", s.Name(), s.Status(), attrs, inner.SpanID())
	}
}
