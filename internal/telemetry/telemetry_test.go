package telemetry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/sandboxmesh/sandboxmesh/internal/telemetry"
)

// TestOTLPExport sends a span to a real OTLP/HTTP receiver on loopback and
// decodes what arrived.
func TestOTLPExport(t *testing.T) {
	var mu sync.Mutex
	var got []*collectortrace.ExportTraceServiceRequest
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		req := &collectortrace.ExportTraceServiceRequest{}
		if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, req) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, req)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Write(out)
	}))
	defer recv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", recv.URL)
	t.Setenv("OTEL_TRACES_EXPORTER", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
	ctx := context.Background()
	tp, shutdown, err := telemetry.Setup(ctx, telemetry.Options{Service: "sandboxmesh-controlplane", Version: "dev"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(ctx, "PUT /api/v2/orgs/:org/sandboxes/:name")
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || len(got[0].ResourceSpans) == 0 {
		t.Fatal("no spans received")
	}
	rs := got[0].ResourceSpans[0]
	attrs := map[string]string{}
	for _, kv := range rs.Resource.Attributes {
		attrs[kv.Key] = kv.Value.GetStringValue()
	}
	if attrs["service.name"] != "sandboxmesh-controlplane" || attrs["service.version"] != "dev" || attrs["deployment.environment"] != "test" {
		t.Errorf("resource: %v", attrs)
	}
	if name := rs.ScopeSpans[0].Spans[0].Name; name != "PUT /api/v2/orgs/:org/sandboxes/:name" {
		t.Errorf("span %q", name)
	}
	// The W3C propagators are installed.
	if f := otel.GetTextMapPropagator().Fields(); !strings.Contains(strings.Join(f, ","), "traceparent") || !strings.Contains(strings.Join(f, ","), "baggage") {
		t.Errorf("propagator fields %v", f)
	}
}

func TestExporters(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		env     map[string]string
		wantErr bool
		console bool
	}{
		{map[string]string{}, false, false}, // none by default
		{map[string]string{"OTEL_TRACES_EXPORTER": "console"}, false, true},
		{map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, true, false},
		{map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, true, false},
	} {
		for _, k := range []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
			t.Setenv(k, tc.env[k])
		}
		var buf bytes.Buffer
		tp, shutdown, err := telemetry.Setup(ctx, telemetry.Options{Service: "s", Console: &buf})
		if tc.wantErr {
			if !errors.Is(err, telemetry.ErrConfig) {
				t.Errorf("%v: want ErrConfig, got %v", tc.env, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v: %v", tc.env, err)
		}
		if telemetry.Enabled(tp) != tc.console {
			t.Errorf("%v: Enabled = %v", tc.env, telemetry.Enabled(tp))
		}
		_, span := tp.Tracer("t").Start(ctx, "op")
		span.End()
		_ = shutdown(ctx)
		if tc.console != strings.Contains(buf.String(), `"Name":"op"`) {
			t.Errorf("%v: console output %q", tc.env, buf.String())
		}
	}
}

// TestTransport: a client span per request whose traceparent reaches the
// server; without tracing the transport is left alone.
func TestTransport(t *testing.T) {
	var gotParent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotParent = r.Header.Get("traceparent")
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c := &http.Client{Transport: telemetry.Transport(nil, tp)}
	ctx, parent := tp.Tracer("t").Start(context.Background(), "agent sync")
	for _, p := range []string{"/api/v2/agent/state", "/missing"} {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+p+"?since=0", nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("traceparent") != "" {
			t.Fatal("the caller's request was modified")
		}
	}
	parent.End()
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[1]
	if s.Name() != "GET /missing" || s.SpanKind() != trace.SpanKindClient || s.Parent().SpanID() != parent.SpanContext().SpanID() || s.Status().Code != codes.Error {
		t.Errorf("span %s kind %v parent %v status %v", s.Name(), s.SpanKind(), s.Parent().SpanID(), s.Status())
	}
	if want := "00-" + s.SpanContext().TraceID().String() + "-" + s.SpanContext().SpanID().String() + "-01"; gotParent != want {
		t.Errorf("server got traceparent %q, want %q", gotParent, want)
	}
	if spans[0].Name() != "GET /api/v2/agent/state" || spans[0].Status().Code == codes.Error {
		t.Errorf("first span %s %v", spans[0].Name(), spans[0].Status())
	}
	if telemetry.Transport(http.DefaultTransport, noop.NewTracerProvider()) != http.DefaultTransport {
		t.Error("a no-op provider should leave the transport alone")
	}
}
