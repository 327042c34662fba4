package runner

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// Per-request timeouts (a claim waits ClaimWait plus the client's slack).
const (
	requestTimeout = 15 * time.Second
	uploadTimeout  = 15 * time.Minute
)

// isStatus reports whether err is an answer of the control plane with the
// given HTTP status.
func isStatus(err error, status int) bool {
	var ae *client.APIError
	return errors.As(err, &ae) && ae.Status == status
}

func newTransport() http.RoundTripper {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // the claim long poll answers late; each request has a context deadline
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
	}
}

// The runner speaks the protocol through client.RunnerClient (the one
// client of it); these bound each request.

func (r *Runner) claim(ctx context.Context) (*apitypes.RunnerJob, error) {
	return r.cp.Claim(ctx, r.cfg.ClaimWait)
}

func (r *Runner) events(ctx context.Context, job *apitypes.RunnerJob, ev apitypes.RunnerEvents) (apitypes.RunnerEventsAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	ans, err := r.cp.Events(ctx, job.Name, job.Attempt, ev.Logs)
	if err != nil {
		return apitypes.RunnerEventsAnswer{}, err
	}
	return *ans, nil
}

func (r *Runner) upload(ctx context.Context, job *apitypes.RunnerJob, path string, body io.Reader, size int64, contentType string) error {
	ctx, cancel := context.WithTimeout(ctx, uploadTimeout)
	defer cancel()
	_, err := r.cp.UploadArtifact(ctx, job.Name, job.Attempt, path, contentType, body, size)
	return err
}

func (r *Runner) finish(ctx context.Context, job *apitypes.RunnerJob, f apitypes.RunnerFinish) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	_, err := r.cp.Finish(ctx, job.Name, job.Attempt, f)
	return err
}
