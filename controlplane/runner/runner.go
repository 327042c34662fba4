package runner

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// Runner claims and runs the jobs of one runner group, one at a time.
type Runner struct {
	cfg Config
	cp  *client.RunnerClient
	log *slog.Logger
}

// New checks cfg and returns a Runner.
func New(cfg Config) (*Runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	if err := os.MkdirAll(cfg.WorkRoot, 0o700); err != nil {
		return nil, fmt.Errorf("runner: work folder %s: %w", cfg.WorkRoot, err)
	}
	tr := cfg.Transport
	if tr == nil {
		tr = newTransport()
	}
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cp, err := client.NewRunnerClient(cfg.ControlPlaneURL, cfg.Org, cfg.RunnerGroup, cfg.Token, cfg.Namespace, cfg.Pod, hc)
	if err != nil {
		return nil, fmt.Errorf("runner: %w", err)
	}
	return &Runner{
		cfg: cfg,
		cp:  cp,
		log: cfg.Log.With("org", cfg.Org, "runnerGroup", cfg.RunnerGroup, "pod", cfg.Namespace+"/"+cfg.Pod),
	}, nil
}

// Run claims and runs jobs until ctx is done. When ctx ends while a job
// runs (the pod got SIGTERM), the runner stops the job's processes
// (SIGTERM, SIGKILL after KillGrace), reports the attempt failed with a
// message and returns. Run returns nil when ctx ends; it never gives up on
// an unreachable control plane (it backs off with jitter).
func (r *Runner) Run(ctx context.Context) error {
	r.log.Info("runner started", "controlPlane", r.cfg.ControlPlaneURL, "workRoot", r.cfg.WorkRoot)
	backoff := r.cfg.BackoffMin
	failing := false
	for {
		if ctx.Err() != nil {
			r.log.Info("runner stopping: no more claims")
			return nil
		}
		job, err := r.claim(ctx)
		if err != nil {
			if ctx.Err() != nil {
				continue
			}
			d := jitter(backoff)
			if !failing {
				r.log.Warn("claim failed; retrying with backoff", "err", err, "retryIn", d.Round(time.Millisecond))
			} else {
				r.log.Debug("claim failed again", "err", err, "retryIn", d.Round(time.Millisecond))
			}
			failing = true
			sleep(ctx, d)
			backoff = min(backoff*2, r.cfg.BackoffMax)
			continue
		}
		if failing {
			r.log.Info("control plane answers claims again")
		}
		failing, backoff = false, r.cfg.BackoffMin
		if job == nil {
			r.log.Debug("nothing queued")
			continue
		}
		r.runAttempt(ctx, job)
		reapOrphans()
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
