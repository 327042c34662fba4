package proxy

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// RoutesResponse is the body of the admin /routes endpoint.
type RoutesResponse struct {
	// Workload this sidecar fronts.
	Workload routeapi.WorkloadRef `json:"workload"`
	// Source is the route source's status (connected, version, last update, last error).
	Source routeapi.Status `json:"source"`
	// AgeSeconds is the time since the table last changed (-1 when never).
	AgeSeconds float64 `json:"ageSeconds"`
	// Stale is true when the route server is not connected and the last table is being used.
	Stale bool `json:"stale"`
	// Routes of this workload.
	Routes []routeapi.Route `json:"routes"`
}

// AdminHandler serves /healthz, /readyz, /routes, /metrics (and /debug/pprof/ when enabled).
func (p *Proxy) AdminHandler() http.Handler {
	return p.adminHandler(nil)
}

func (p *Proxy) adminHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case p.draining.Load():
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		case !p.started.Load():
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "starting"})
		default:
			writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
		}
	})
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, r *http.Request) {
		st := p.routes.Status()
		resp := RoutesResponse{Workload: p.cfg.Workload, Source: st, AgeSeconds: -1, Routes: []routeapi.Route{}}
		if !st.LastUpdate.IsZero() {
			resp.AgeSeconds = time.Since(st.LastUpdate).Seconds()
		}
		resp.Stale = !st.Connected && st.Version != 0
		if rs := p.routes.Table().RoutesFor([]routeapi.WorkloadRef{p.cfg.Workload}); rs != nil {
			resp.Routes = rs
		}
		writeJSON(w, http.StatusOK, resp)
	})
	if g == nil {
		g = p.m.gatherer
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	if p.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
