package proxy

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	gatherer  prometheus.Gatherer
	requests  *prometheus.CounterVec
	duration  [nKinds]prometheus.Observer
	counters  [nKinds][600]atomic.Pointer[prometheus.Counter]
	tcpConns  *prometheus.CounterVec
	tcpActive prometheus.Gauge
	// h1Conns counts HTTP client connections by how they were served: "fast" (the HTTP/1.1 fast path
	// throughout), "handed_over" (the fast path passed them to net/http part-way).
	h1Conns              *prometheus.CounterVec
	h1Fast, h1HandedOver prometheus.Counter
	// loopConns counts client connections the event loops took (Config.EventLoop), by where they
	// ended: "loop" (served there to the end), "handed_off" (to the fast path's goroutines before a
	// request was sent), "moved" (with a chunked or close-delimited answer, part-way).
	loopConns                            *prometheus.CounterVec
	loopServed, loopHandedOff, loopMoved prometheus.Counter
	// override counts requests whose route has a local override, by outcome (ovrNames; index ovrNone
	// and ovrTrying unused).
	override [nOvr]prometheus.Counter
}

func newMetrics(reg *prometheus.Registry, p *Proxy) (*metrics, error) {
	m := &metrics{
		gatherer: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devmesh_requests_total",
			Help: "HTTP requests by destination kind (local, fork, baseline, loop) and status code (499: client went away).",
		}, []string{"destination_kind", "code"}),
		tcpConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devmesh_tcp_connections_total",
			Help: "TCP pass-through connections by result.",
		}, []string{"result"}),
		h1Conns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devmesh_http1_fast_path_connections_total",
			Help: "HTTP connections accepted by the HTTP/1.1 fast path, by outcome: fast (served to the end) or handed_over (passed to net/http for h2c, upgrades, Expect, HTTP/1.0, a malformed request, a capture id or a local override).",
		}, []string{"outcome"}),
		loopConns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "devmesh_http1_event_loop_connections_total",
			Help: "HTTP/1.1 client connections taken by the event loops (--http1-event-loop), by outcome: loop (served there to the end), handed_off (to the fast path before a request was sent: chunked or large upload, a request net/http answers, a local override, a destination name that does not resolve) or moved (part-way, with a chunked or close-delimited answer). They are also counted in devmesh_http1_fast_path_connections_total.",
		}, []string{"outcome"}),
		tcpActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "devmesh_tcp_connections_active",
			Help: "Open TCP pass-through connections.",
		}),
	}
	ovr := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "devmesh_override_requests_total",
		Help: "Requests whose route has a local override for their port, by result: served (the override's answer was used), fell_through (declined or failed before answering; sent to the route's destination), dial_failed (override unreachable; fell through), skipped (not overridable: body over 1 MiB or still streaming, upgrade).",
	}, []string{"result"})
	for i := ovrServed; i < nOvr; i++ {
		m.override[i] = ovr.WithLabelValues(ovrNames[i])
	}
	hist := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "devmesh_request_duration_seconds",
		Help:    "Time from request headers read to response finished, by destination kind.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"destination_kind"})
	m.h1Fast, m.h1HandedOver = m.h1Conns.WithLabelValues("fast"), m.h1Conns.WithLabelValues("handed_over")
	m.loopServed, m.loopHandedOff, m.loopMoved = m.loopConns.WithLabelValues("loop"), m.loopConns.WithLabelValues("handed_off"), m.loopConns.WithLabelValues("moved")
	for k := range nKinds {
		m.duration[k] = hist.WithLabelValues(kindNames[k])
	}
	gauges := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devmesh_route_table_version", Help: "Version of the route table in use (0: none yet)."},
			func() float64 { return float64(p.routes.Status().Version) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devmesh_route_table_age_seconds", Help: "Seconds since the route table last changed (-1: never received)."},
			func() float64 {
				t := p.routes.Status().LastUpdate
				if t.IsZero() {
					return -1
				}
				return time.Since(t).Seconds()
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devmesh_route_table_routes", Help: "Routes for this sidecar's workload."},
			func() float64 { wt, _ := p.workloadTable(); return float64(wt.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devmesh_route_server_connected", Help: "1 while the route watch stream is open."},
			func() float64 {
				if p.routes.Status().Connected {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "devmesh_draining", Help: "1 after SIGTERM."},
			func() float64 {
				if p.draining.Load() {
					return 1
				}
				return 0
			}),
	}
	cs := append([]prometheus.Collector{m.requests, m.tcpConns, m.tcpActive, m.h1Conns, ovr, hist}, gauges...)
	if p.cfg.EventLoop != "" && p.cfg.EventLoop != EventLoopOff {
		cs = append(cs, m.loopConns)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one finished request without allocating on the hot path.
func (m *metrics) observe(kind, code int, d time.Duration) {
	m.duration[kind].Observe(d.Seconds())
	if code < 0 || code >= 600 {
		code = 0
	}
	slot := &m.counters[kind][code]
	c := slot.Load()
	if c == nil {
		cc := m.requests.WithLabelValues(kindNames[kind], strconv.Itoa(code))
		slot.Store(&cc)
		c = &cc
	}
	(*c).Inc()
}
