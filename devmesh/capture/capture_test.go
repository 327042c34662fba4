package capture

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
)

// TestNamesAreTheExecutors: the capture point reads what the executor writes.
func TestNamesAreTheExecutors(t *testing.T) {
	if Header != executor.CaptureHeader || BaggageKey != executor.CaptureBaggageKey {
		t.Fatalf("capture point reads %s / %s, executor writes %s / %s", Header, BaggageKey, executor.CaptureHeader, executor.CaptureBaggageKey)
	}
	if id := executor.CaptureID(strings.Repeat("e", executor.MaxExecutionLen), "baseline-b", 1<<30); !ValidID(id) {
		t.Fatalf("executor id %q is not a valid capture id", id)
	}
}

func TestID(t *testing.T) {
	cases := []struct {
		name string
		h    http.Header
		want string
	}{
		{"none", http.Header{}, ""},
		{"header", http.Header{Header: {" e.target.0 "}}, "e.target.0"},
		{"header wins over baggage", http.Header{Header: {"a.b.1"}, "Baggage": {"sm-capture=c.d.2"}}, "a.b.1"},
		{"invalid header is no id", http.Header{Header: {"a b"}, "Baggage": {"sm-capture=c.d.2"}}, ""},
		{"baggage", http.Header{"Baggage": {"x=1, sm-capture = e.target.3 ;prop=2,y=2"}}, "e.target.3"},
		{"second baggage field", http.Header{"Baggage": {"x=1", "sm-capture=e.t.4"}}, "e.t.4"},
		{"member prefix is another member", http.Header{"Baggage": {"xsm-capture=e.t.5, sm-captured=e.t.6"}}, ""},
		{"invalid baggage value", http.Header{"Baggage": {"sm-capture=%20x"}}, ""},
		{"empty value", http.Header{"Baggage": {"sm-capture="}}, ""},
		{"too long", http.Header{Header: {strings.Repeat("a", MaxIDLen+1)}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, ok := ID(tc.h)
			if ok != (tc.want != "") || ok && id != tc.want {
				t.Fatalf("ID = %q, %v; want %q", id, ok, tc.want)
			}
		})
	}
}

// TestIDDoesNotAllocate: with no id, the check the net/http path makes costs no allocation.
func TestIDDoesNotAllocate(t *testing.T) {
	h := http.Header{"Baggage": {"userId=alice, sm-routing-key=k, tenant=acme"}, "Accept": {"*/*"}}
	if n := testing.AllocsPerRun(100, func() { _, _ = ID(h) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { _ = MaybeBaggageID([]byte("a=b")) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// FuzzBaggageID: parsing any baggage value or header never panics, an id found is valid and present in
// the input, and the fast path's cheap test never misses one.
func FuzzBaggageID(f *testing.F) {
	for _, s := range []string{"", "sm-capture=a.b.0", "x=1, sm-capture = a ;p", "sm-capture", "sm-capture=,sm-capture=x", ";;==,,", "sm-capture=\x00", strings.Repeat("sm-capture=", 50)} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, bag, hdr string) {
		id, ok := BaggageID(bag)
		if ok && (!ValidID(id) || !strings.Contains(bag, id) || !MaybeBaggageID([]byte(bag))) {
			t.Fatalf("BaggageID(%q) = %q", bag, id)
		}
		h := http.Header{"Baggage": {bag}}
		if hdr != "" {
			h[Header] = []string{hdr}
		}
		if id, ok := ID(h); ok && !ValidID(id) {
			t.Fatalf("ID gave invalid %q", id)
		}
	})
}

func TestRecorder(t *testing.T) {
	r := NewRecorder(diff.CapturePoint{}, 4, []string{" x-token "})
	h := r.Headers(http.Header{"Authorization": {"a"}, "Set-Cookie": {"b", "c"}, "X-Token": {"t"}, "x-lower-token": {"ok"}, "Accept": {"*/*"}})
	for _, k := range []string{"Authorization", "Set-Cookie", "X-Token"} {
		if len(h[k]) != 1 || h[k][0] != Redacted {
			t.Errorf("%s = %q", k, h[k])
		}
	}
	if h["Accept"][0] != "*/*" || h["x-lower-token"][0] != "ok" {
		t.Errorf("headers %v", h)
	}
	b := r.NewBody()
	_, _ = b.Write([]byte("ab"))
	_, _ = b.Write([]byte("cd"))
	if got, cut := b.Bytes(); string(got) != "abcd" || cut {
		t.Fatalf("%q %v", got, cut)
	}
	_, _ = b.Write([]byte("e"))
	if got, cut := b.Bytes(); string(got) != "abcd" || !cut {
		t.Fatalf("%q %v", got, cut)
	}
	if NewRecorder(diff.CapturePoint{}, 0, nil).MaxBodyBytes != DefaultMaxBodyBytes {
		t.Fatal("default body bound")
	}
}

func TestNewHTTPSinkErrors(t *testing.T) {
	for _, cfg := range []HTTPSinkConfig{{}, {URL: "ftp://x/y"}, {URL: "http://"}, {URL: "http://x", QueueSize: -1}, {URL: "http://x", Timeout: -1}} {
		if _, err := NewHTTPSink(cfg, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

// TestHTTPSinkBatches: a real HTTP server receives JSON arrays of at most BatchSize captures; a partial
// batch is shipped after FlushInterval and at shutdown; a server error is counted and the batch dropped.
func TestHTTPSinkBatches(t *testing.T) {
	batches := make(chan []diff.Capture, 100)
	fail := make(chan bool, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b []diff.Capture
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad batch: %v", err)
		}
		select {
		case <-fail:
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		default:
		}
		batches <- b
	}))
	defer srv.Close()
	reg := prometheus.NewRegistry()
	s, err := NewHTTPSink(HTTPSinkConfig{URL: srv.URL, BatchSize: 3, FlushInterval: 50 * time.Millisecond, Timeout: 5 * time.Second}, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go s.Run(ctx)
	c := func(i int) diff.Capture {
		return diff.Capture{ID: "e.t." + string(rune('0'+i)), Point: diff.CapturePoint{Kind: diff.KindDeployment, Namespace: "n", Name: "w", Direction: diff.Inbound}, Request: diff.Request{Method: "GET", Path: "/"}}
	}
	next := func() []diff.Capture {
		select {
		case b := <-batches:
			return b
		case <-time.After(10 * time.Second):
			t.Fatal("no batch")
			return nil
		}
	}
	for i := range 4 {
		s.Add(c(i))
	}
	if b := next(); len(b) != 3 || b[0].ID != "e.t.0" || b[2].ID != "e.t.2" {
		t.Fatalf("first batch %v", b)
	}
	if b := next(); len(b) != 1 || b[0].ID != "e.t.3" {
		t.Fatalf("partial batch %v", b) // shipped by the flush interval
	}
	fail <- true
	s.Add(c(5))
	for testutil.ToFloat64(s.shipErrors) != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	s.Add(c(6))
	cancel()
	<-s.Done()
	if b := next(); len(b) != 1 || b[0].ID != "e.t.6" {
		t.Fatalf("batch at shutdown %v", b)
	}
	for name, want := range map[string]float64{"captured": 6, "shipped": 5, "dropped": 1, "ship_errors": 1} {
		if got := metric(t, reg, "devmesh_capture_"+name+"_total"); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

// TestHTTPSinkOverflow: Add never blocks; beyond the queue it drops and counts.
func TestHTTPSinkOverflow(t *testing.T) {
	s, err := NewHTTPSink(HTTPSinkConfig{URL: "http://127.0.0.1:1/x", QueueSize: 3}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 { // Run not started: nothing drains the queue
		s.Add(diff.Capture{ID: "x"})
	}
	if d, c := testutil.ToFloat64(s.dropped), testutil.ToFloat64(s.captured); d != 7 || c != 10 {
		t.Fatalf("dropped %v captured %v", d, c)
	}
}

func metric(t *testing.T, g prometheus.Gatherer, name string) float64 {
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
	return -1
}
