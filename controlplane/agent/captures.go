package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// Capture relay: the devmesh sidecars of the cluster (their --capture-url, which the operator's injector
// sets to the agent's Service) POST batches of smart-test captures here; the agent forwards each batch to
// the control plane with its cluster token (POST /api/v2/agent/captures), which keeps the captures of its
// running executions and drops the rest. Sidecars need no credentials of their own this way.

// Bounds of the capture relay.
const (
	// MaxCaptureBatchBytes bounds one relayed batch (the control plane's bound).
	MaxCaptureBatchBytes = 16 << 20
	// captureRelayConcurrency bounds the batches relayed at once; more are refused with 503 (a sidecar
	// counts a failed shipment and carries on).
	captureRelayConcurrency = 8
	captureRelayTimeout     = 10 * time.Second
)

// CapturePath is the path sidecars POST batches to on the capture relay.
const CapturePath = "/captures"

// CaptureRelay returns the capture relay's handler: POST CapturePath with a JSON array of captures.
func (a *Agent) CaptureRelay() http.Handler {
	sem := make(chan struct{}, captureRelayConcurrency)
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+CapturePath, func(w http.ResponseWriter, r *http.Request) {
		fail := func(status int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
		}
		select {
		case sem <- struct{}{}:
			defer func() { <-sem }()
		default:
			fail(http.StatusServiceUnavailable, "too many capture batches in flight")
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxCaptureBatchBytes))
		var mb *http.MaxBytesError
		switch {
		case errors.As(err, &mb):
			fail(http.StatusRequestEntityTooLarge, "batch larger than 16 MiB")
			return
		case err != nil:
			fail(http.StatusBadRequest, "read batch: "+err.Error())
			return
		case !json.Valid(body) || len(body) == 0 || body[0] != '[':
			fail(http.StatusBadRequest, "want a JSON array of captures")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), captureRelayTimeout)
		defer cancel()
		var out json.RawMessage
		if err := a.request(ctx, http.MethodPost, "/api/v2/agent/captures", json.RawMessage(body), &out); err != nil {
			a.log.WarnContext(ctx, "relay captures to the control plane", "bytes", len(body), "err", err)
			fail(http.StatusBadGateway, "the control plane refused or did not answer: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(out)
	})
	return mux
}

// serveCaptureRelay serves the capture relay on ln until ctx ends.
func (a *Agent) serveCaptureRelay(ctx context.Context, ln net.Listener) {
	srv := &http.Server{Handler: a.CaptureRelay(), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		a.log.Error("capture relay stopped", "err", err)
	}
}
