package proxy

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// sinkServer is a real HTTP sink: it decodes every posted batch and sends its captures on the channel.
func sinkServer(t *testing.T) (string, <-chan diff.Capture) {
	t.Helper()
	ch := make(chan diff.Capture, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []diff.Capture
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want a JSON POST", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, c := range batch {
			ch <- c
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, ch
}

// startSink runs an HTTPSink for url until the test ends.
func startSink(t *testing.T, cfg capture.HTTPSinkConfig, reg prometheus.Registerer) *capture.HTTPSink {
	t.Helper()
	s, err := capture.NewHTTPSink(cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	t.Cleanup(func() { cancel(); <-s.Done() })
	return s
}

func recv(t *testing.T, ch <-chan diff.Capture) diff.Capture {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no capture reached the sink")
		return diff.Capture{}
	}
}

// TestCapturePoint runs a real sidecar (fast path and net/http path) in front of a real app, with a real
// HTTP sink receiving the batches.
func TestCapturePoint(t *testing.T) {
	for _, path := range []string{"fast", "nethttp"} {
		t.Run(path, func(t *testing.T) {
			url, got := sinkServer(t)
			sink := startSink(t, capture.HTTPSinkConfig{URL: url, FlushInterval: 10 * time.Millisecond, Timeout: 5 * time.Second}, nil)
			e := newEnv(t, envOpts{cfg: func(c *Config) {
				c.DisableFastPath = path == "nethttp"
				c.CaptureSink, c.CaptureRedactHeaders, c.CaptureMaxBodyBytes = sink, []string{"x-api-key"}, 16
			}})
			cl := &http.Client{Timeout: 10 * time.Second}

			t.Run("header id, redaction, body bound", func(t *testing.T) {
				hdr := h(capture.Header, "ex1.target.0", "Authorization", "Bearer s3cret", "Cookie", "sid=1",
					"Proxy-Authorization", "Basic x", "X-Api-Key", "k", "X-Plain", "visible", "Content-Type", "text/plain")
				resp, ec, _ := e.do(cl, "POST", "/orders/7?full=1", hdr, strings.NewReader(strings.Repeat("b", 100)))
				if resp.StatusCode != 200 || ec.BodyLen != 100 {
					t.Fatalf("status %d, app read %d body bytes", resp.StatusCode, ec.BodyLen)
				}
				if ec.Header.Get(capture.Header) != "ex1.target.0" || ec.Header.Get("Authorization") != "Bearer s3cret" {
					t.Fatalf("the app must get the request unchanged: %v", ec.Header)
				}
				c := recv(t, got)
				if err := c.Validate(); err != nil {
					t.Fatal(err)
				}
				want := diff.CapturePoint{Kind: diff.KindDeployment, Namespace: "shop", Name: "cart", Direction: diff.Inbound}
				if c.ID != "ex1.target.0" || c.Point != want || c.Name != "" {
					t.Fatalf("id %q point %v name %q", c.ID, c.Point, c.Name)
				}
				if c.Request.Method != "POST" || c.Request.Path != "/orders/7" || c.Request.Query != "full=1" {
					t.Fatalf("request %s %s ? %s", c.Request.Method, c.Request.Path, c.Request.Query)
				}
				for _, k := range []string{"Authorization", "Cookie", "Proxy-Authorization", "X-Api-Key"} {
					if v := c.Request.Headers[k]; len(v) != 1 || v[0] != capture.Redacted {
						t.Errorf("%s recorded as %q", k, v)
					}
				}
				if v := c.Request.Headers["X-Plain"]; len(v) != 1 || v[0] != "visible" {
					t.Errorf("X-Plain recorded as %q", v)
				}
				if string(c.Request.Body) != strings.Repeat("b", 16) || !c.Request.BodyTruncated {
					t.Errorf("request body %q truncated %v", c.Request.Body, c.Request.BodyTruncated)
				}
				if c.Response.Status != 200 || c.Response.Headers["X-Backend"][0] != "baseline" {
					t.Errorf("response %d %v", c.Response.Status, c.Response.Headers)
				}
				if len(c.Response.Body) != 16 || !c.Response.BodyTruncated || !strings.HasPrefix(string(c.Response.Body), `{"name":"baselin`) {
					t.Errorf("response body %q truncated %v", c.Response.Body, c.Response.BodyTruncated)
				}
				if c.Duration <= 0 {
					t.Errorf("duration %v", c.Duration)
				}
			})

			t.Run("baggage id, small body whole", func(t *testing.T) {
				hdr := h("Baggage", "userId=alice, sm-capture = ex1.baseline-a.3;p=1, tenant=acme", "Set-Cookie", "x=1")
				resp, ec, _ := e.do(cl, "GET", "/b", hdr, nil)
				if resp.StatusCode != 200 || ec.Header.Get("Baggage") != hdr.Get("Baggage") {
					t.Fatalf("status %d baggage at the app %q", resp.StatusCode, ec.Header.Get("Baggage"))
				}
				c := recv(t, got)
				if c.ID != "ex1.baseline-a.3" || c.Request.Path != "/b" || c.Request.Body != nil || c.Request.BodyTruncated {
					t.Fatalf("capture %+v", c)
				}
				if v := c.Request.Headers["Set-Cookie"]; len(v) != 1 || v[0] != capture.Redacted {
					t.Errorf("Set-Cookie recorded as %q", v)
				}
			})

			t.Run("no id: nothing recorded, nothing added", func(t *testing.T) {
				for _, hdr := range []http.Header{nil, h("Baggage", "userId=bob"), h("Baggage", "sm-capture=bad id!"), h(capture.Header, "")} {
					resp, ec, _ := e.do(cl, "GET", "/none", hdr, nil)
					if resp.StatusCode != 200 {
						t.Fatalf("status %d", resp.StatusCode)
					}
					if hdr == nil && (ec.Header.Get(capture.Header) != "" || ec.Header.Get("Baggage") != "") {
						t.Fatalf("capture id added to a non-capture request: %v", ec.Header)
					}
				}
				// The next capture is the next one the sink gets: none of the above was recorded.
				_, _, _ = e.do(cl, "GET", "/after", h(capture.Header, "ex1.target.9"), nil)
				if c := recv(t, got); c.ID != "ex1.target.9" {
					t.Fatalf("got capture %q, want ex1.target.9 (a request without a valid id was recorded)", c.ID)
				}
			})

			t.Run("h2c", func(t *testing.T) {
				var pr http.Protocols
				pr.SetUnencryptedHTTP2(true)
				h2 := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Protocols: &pr}}
				resp, ec, _ := e.do(h2, "PUT", "/h2?x=1", h(capture.Header, "ex1.target.20"), strings.NewReader("hello"))
				if resp.ProtoMajor != 2 || ec.Proto != "HTTP/2.0" {
					t.Fatalf("client %s app %s", resp.Proto, ec.Proto)
				}
				c := recv(t, got)
				if c.ID != "ex1.target.20" || c.Request.Method != "PUT" || c.Request.Path != "/h2" || string(c.Request.Body) != "hello" || c.Response.Status != 200 {
					t.Fatalf("capture %+v", c)
				}
			})

			t.Run("fast path keeps requests without an id", func(t *testing.T) {
				if path != "fast" {
					t.Skip("fast path only")
				}
				// A fresh connection per request: one without an id ends on the fast path, one with an
				// id is handed to net/http (the counters move when the connection ends).
				fast, handed := counter(t, e, "fast"), counter(t, e, "handed_over")
				one := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				_, _, _ = e.do(one, "GET", "/plain", h("Baggage", "userId=bob, tenant=acme"), nil)
				waitCounter(t, e, "fast", fast+1)
				_, _, _ = e.do(one, "GET", "/cap", h("Baggage", "userId=bob, sm-capture=ex1.target.11"), nil)
				waitCounter(t, e, "handed_over", handed+1)
				if c := recv(t, got); c.ID != "ex1.target.11" {
					t.Fatalf("capture %q", c.ID)
				}
			})

			t.Run("fork hop and error status", func(t *testing.T) {
				e.publish(e.forkRoute("abc", e.fork1))
				hdr := h(capture.Header, "ex1.target.10", "Baggage", "sm-routing-key=abc")
				_, ec, _ := e.do(cl, "GET", "/f", hdr, nil)
				if ec.Name != "fork1" {
					t.Fatalf("went to %q", ec.Name)
				}
				if c := recv(t, got); c.ID != "ex1.target.10" || c.Response.Headers["X-Backend"][0] != "fork1" {
					t.Fatalf("capture %+v", c)
				}
				// A fork that is down: the sidecar's own 502 answer is what is recorded.
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				down := "http://" + ln.Addr().String()
				_ = ln.Close()
				e.publish(e.routeTo("abc", down))
				resp, _, _ := e.do(cl, "GET", "/f", h(capture.Header, "ex1.target.12", "Baggage", "sm-routing-key=abc"), nil)
				if resp.StatusCode != http.StatusBadGateway {
					t.Fatalf("status %d", resp.StatusCode)
				}
				c := recv(t, got)
				if c.ID != "ex1.target.12" || c.Response.Status != http.StatusBadGateway || string(c.Response.Body) != `{"code":"fork_un` { // the first 16 bytes
					t.Fatalf("capture %+v body %q", c, c.Response.Body)
				}
			})
		})
	}
}

// TestCaptureSinkDown: a sink that never answers costs requests nothing; captures beyond the bounded
// queue are dropped and counted.
func TestCaptureSinkDown(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	reg := prometheus.NewRegistry()
	sink := startSink(t, capture.HTTPSinkConfig{URL: hang.URL, QueueSize: 2, BatchSize: 1, Timeout: 30 * time.Second}, reg)
	t.Cleanup(func() { close(release) }) // first: the sink's POST in flight ends
	for _, path := range []string{"fast", "nethttp"} {
		t.Run(path, func(t *testing.T) {
			e := newEnv(t, envOpts{cfg: func(c *Config) { c.DisableFastPath = path == "nethttp"; c.CaptureSink = sink }})
			cl := &http.Client{Timeout: 10 * time.Second}
			for i := range 20 {
				resp, _, _ := e.do(cl, "GET", "/x", h(capture.Header, "ex.target."+string(rune('a'+i))), nil)
				if resp.StatusCode != 200 {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
			}
		})
	}
	n, err := testutil.GatherAndCount(reg, "devmesh_capture_dropped_total")
	if err != nil || n != 1 {
		t.Fatalf("dropped metric: %d %v", n, err)
	}
	if d := metricValue(t, reg, "devmesh_capture_dropped_total"); d < 40-4 {
		t.Fatalf("dropped %v of 40 captures, want at least 36 (queue 2, one batch in flight)", d)
	}
	if c := metricValue(t, reg, "devmesh_capture_captured_total"); c != 40 {
		t.Fatalf("captured %v, want 40", c)
	}
}

func metricValue(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
