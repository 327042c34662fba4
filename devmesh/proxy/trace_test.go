package proxy

import (
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// TestSpans: with a TracerProvider every request gets a span, child of the
// caller's traceparent, whose context reaches the app or fork; without one,
// no traceparent is added.
func TestSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	e := newEnv(t, envOpts{cfg: func(c *Config) { c.TracerProvider = tp }})
	e.publish(e.forkRoute("abc", e.fork1))
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	resp, ec, body := e.do(&http.Client{}, "GET", "/cart", h("Baggage", "sm-routing-key=abc", "Traceparent", parent), nil)
	if resp.StatusCode != 200 || ec.Name != "fork1" {
		t.Fatalf("%d %s %s", resp.StatusCode, ec.Name, body)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	if s.Parent().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Parent().SpanID().String() != "00f067aa0ba902b7" || s.SpanKind() != trace.SpanKindServer {
		t.Errorf("parent %v kind %v", s.Parent(), s.SpanKind())
	}
	attrs := map[attribute.Key]string{}
	for _, a := range s.Attributes() {
		attrs[a.Key] = a.Value.Emit()
	}
	if attrs["sandboxmesh.destination"] != "fork" || attrs["sandboxmesh.routing_key"] != "abc" || attrs["http.response.status_code"] != "200" {
		t.Errorf("attributes %v", attrs)
	}
	// The fork continues the trace under the sidecar's span.
	want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + s.SpanContext().SpanID().String() + "-01"
	if got := ec.Header.Get("Traceparent"); got != want {
		t.Errorf("traceparent upstream %q, want %q", got, want)
	}

	// Without a TracerProvider the request passes untouched.
	e2 := newEnv(t, envOpts{})
	_, ec2, _ := e2.do(&http.Client{}, "GET", "/cart", nil, nil)
	if ec2.Header.Get("Traceparent") != "" {
		t.Errorf("traceparent added without tracing: %q", ec2.Header.Get("Traceparent"))
	}
}
