package smarttests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// triggerQueue bounds the changes waiting for Run; beyond it a change is
// dropped with a log line (the sandbox's next ready report fires its
// triggers; the next read of an execution concludes it).
const triggerQueue = 256

// fireTimeout bounds the work on one change.
const fireTimeout = 30 * time.Second

// event is a change Run looks at: a sandbox's status, or a job's.
type event struct {
	org, name string
	job       bool
}

// Run works until ctx ends on the changes made through this replica (not
// the Remote ones of other replicas, which act on their own), one
// at a time: a sandbox status an agent reports fires triggers
// (SandboxReady); a job that changed concludes the execution it runs as
// soon as it has finished (so that its report is read before anyone
// deletes the job; reads conclude executions too).
func (s *Service) Run(ctx context.Context) {
	ch := make(chan event, triggerQueue)
	s.st.Watch(func(c store.Change) {
		if ctx.Err() != nil || c.Remote {
			return // the replica that made the change acts on it
		}
		var ev event
		switch {
		case c.What == store.ChangeStatus && c.Kind == store.KindSandbox:
			ev = event{org: c.Org, name: c.Name}
		case c.What == store.ChangeJob && c.Name != "":
			ev = event{org: c.Org, name: c.Name, job: true}
		default:
			return
		}
		select {
		case ch <- ev:
		default:
			s.log.Warn("smart tests: queue full, change dropped", "org", c.Org, "name", c.Name, "job", ev.job)
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-ch:
			fctx, cancel := context.WithTimeout(ctx, fireTimeout)
			var err error
			if ev.job {
				err = s.jobChanged(fctx, ev.org, ev.name)
			} else {
				_, err = s.SandboxReady(fctx, ev.org, ev.name)
			}
			if err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "smart tests", "org", ev.org, "name", ev.name, "job", ev.job, "err", err)
			}
			cancel()
		}
	}
}

// jobChanged concludes the execution a finished job ran (nothing for other jobs).
func (s *Service) jobChanged(ctx context.Context, org, job string) error {
	e, err := s.st.TestExecutionOfJob(ctx, org, job)
	if errors.Is(err, store.ErrNotFound) || (err == nil && e.Phase != "") {
		return nil
	}
	if err != nil {
		return err
	}
	_, err = s.refresh(ctx, e)
	return err
}

// SandboxReady fires the triggers of the org's tests for a sandbox whose
// current version is ready: each trigger whose sandboxOf is one of the
// sandbox's forks (and whose executionTemplate.cluster, when set, is the
// sandbox's) starts one execution per sandbox version, with the trigger's
// template. A sandbox that is not ready (or gone) fires nothing. It returns
// the executions started.
func (s *Service) SandboxReady(ctx context.Context, org, name string) ([]apitypes.TestExecution, error) {
	o, err := s.st.Get(ctx, store.KindSandbox, org, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st apitypes.ObservedStatus
	if len(o.Status) == 0 || json.Unmarshal(o.Status, &st) != nil || !st.Ready {
		return nil, nil
	}
	var spec v1alpha1.SandboxSpec
	if err := json.Unmarshal(o.Spec, &spec); err != nil {
		return nil, fmt.Errorf("sandbox %s/%s: spec: %w", org, name, err)
	}
	var out []apitypes.TestExecution
	var errs []error
	p := store.PageRequest{}
	for {
		pg, err := s.st.ListSmartTests(ctx, org, p)
		if err != nil {
			return out, err
		}
		for _, t := range pg.Items {
			var ts apitypes.SmartTestSpec
			if err := json.Unmarshal(t.Spec, &ts); err != nil {
				errs = append(errs, fmt.Errorf("smart test %s/%s: stored spec: %w", org, t.Name, err))
				continue
			}
			for _, tr := range ts.Triggers {
				if !forks(spec.Forks, tr.SandboxOf) || (tr.ExecutionTemplate.Cluster != "" && tr.ExecutionTemplate.Cluster != o.Cluster) {
					continue
				}
				first, err := s.st.ClaimTriggerFiring(ctx, org, t.Name, tr.ID, name, o.Version)
				if err != nil {
					return out, err
				}
				if !first {
					continue
				}
				et := tr.ExecutionTemplate
				es := apitypes.TestExecutionSpec{ExecutionContext: apitypes.TestExecutionContext{Cluster: et.Cluster, AutoDiff: et.AutoDiff,
					Publish: et.Publish, Timeout: et.Timeout, Routing: &apitypes.TestExecutionRouting{Sandbox: name}}}
				e, err := s.createExecution(ctx, org, t.Name, es, &apitypes.TestExecutionTrigger{Trigger: tr.ID, Sandbox: name})
				if err != nil {
					// The firing stays recorded: a test that cannot run (its
					// runner group is missing) is not retried on every report.
					errs = append(errs, fmt.Errorf("trigger %s of smart test %s/%s for sandbox %s: %w", tr.ID, org, t.Name, name, err))
					continue
				}
				s.log.InfoContext(ctx, "smart test triggered", "org", org, "test", t.Name, "trigger", tr.ID, "sandbox", name, "version", o.Version, "execution", e.ID)
				out = append(out, e)
			}
		}
		if pg.Continue == "" {
			return out, errors.Join(errs...)
		}
		p.Continue = pg.Continue
	}
}

// forks reports whether one of the forks is of workload w (kind Deployment when unset).
func forks(fs []v1alpha1.Fork, w *v1alpha1.WorkloadRef) bool {
	if w == nil {
		return false
	}
	kind := func(k v1alpha1.WorkloadKind) v1alpha1.WorkloadKind {
		if k == "" {
			return v1alpha1.KindDeployment
		}
		return k
	}
	for _, f := range fs {
		if kind(f.ForkOf.Kind) == kind(w.Kind) && f.ForkOf.Namespace == w.Namespace && f.ForkOf.Name == w.Name {
			return true
		}
	}
	return false
}
