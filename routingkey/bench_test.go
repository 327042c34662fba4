package routingkey

import (
	"net/http"
	"testing"

	"go.opentelemetry.io/otel/baggage"
)

// realisticBaggage is a baggage header as an instrumented service sees it:
// several members, a percent-encoded value, properties, the key in the middle.
const realisticBaggage = "userId=alice,serverNode=DF%2028,isProduction=false,sm-routing-key=q2b7a3xzr5mw4c6d;ttl=60,tenant=acme-corp,session=3f2a9e71c0b84d25"

func realisticHeader() http.Header {
	return http.Header{
		"Accept":       {"application/json"},
		"User-Agent":   {"Go-http-client/1.1"},
		"Traceparent":  {"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
		"Tracestate":   {"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"},
		"Baggage":      {realisticBaggage},
		"Content-Type": {"application/json"},
	}
}

var sinkKey string

// BenchmarkExtract measures Extract on a realistic request for each form.
func BenchmarkExtract(b *testing.B) {
	two := mustExtractor(b, Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"x-route"}})
	cases := []struct {
		name string
		e    *Extractor
		h    http.Header
	}{
		{"baggage", Default, realisticHeader()},
		{"baggage-two-names-custom", two, realisticHeader()},
		{"tracestate", Default, func() http.Header {
			h := realisticHeader()
			h.Del("Baggage")
			h.Set("Tracestate", "rojo=00f067aa0ba902b7,sm-routing-key=q2b7a3xzr5mw4c6d,congo=t61rcWkgMzE")
			return h
		}()},
		{"uberctx", Default, func() http.Header {
			h := realisticHeader()
			h.Del("Baggage")
			h.Set("Uberctx-Sm-Routing-Key", "q2b7a3xzr5mw4c6d")
			return h
		}()},
		{"no-key", Default, func() http.Header {
			h := realisticHeader()
			h.Set("Baggage", "userId=alice,serverNode=DF%2028,isProduction=false,tenant=acme-corp")
			return h
		}()},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			loopCPU(b, func() { sinkKey, _ = c.e.Extract(c.h) })
		})
	}
}

// BenchmarkBaggageVsOTel compares, in one run, getting the key out of the same
// realistic baggage header with Extract and with the peer
// go.opentelemetry.io/otel/baggage.Parse + Member.
func BenchmarkBaggageVsOTel(b *testing.B) {
	h := realisticHeader()
	b.Run("routingkey.Extract", func(b *testing.B) {
		loopCPU(b, func() { sinkKey, _ = Default.Extract(h) })
	})
	b.Run("otel-baggage.Parse", func(b *testing.B) {
		loopCPU(b, func() {
			bag, _ := baggage.Parse(h.Get("Baggage"))
			sinkKey = bag.Member(DefaultKeyName).Value()
		})
	})
}

func BenchmarkInject(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		h := http.Header{"Baggage": {"userId=alice,isProduction=false"}}
		Default.Inject(h, "q2b7a3xzr5mw4c6d")
	}
}

func BenchmarkHeaderMatchers(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Default.HeaderMatchers("q2b7a3xzr5mw4c6d")
	}
}

// TestExtractAllocs keeps the hot path allocation-free (a count, not a timer).
func TestExtractAllocs(t *testing.T) {
	h := realisticHeader()
	if n := testing.AllocsPerRun(100, func() { sinkKey, _ = Default.Extract(h) }); n != 0 || sinkKey != "q2b7a3xzr5mw4c6d" {
		t.Fatalf("Extract: %v allocs, key %q", n, sinkKey)
	}
}
