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

// triggerQueue bounds the sandboxes waiting for their triggers to be
// looked at; beyond it a status change is dropped with a log line (the
// sandbox's next ready report fires its triggers).
const triggerQueue = 256

// fireTimeout bounds the firing of one sandbox's triggers.
const fireTimeout = 30 * time.Second

type sandboxRef struct{ org, name string }

// Run fires triggers until ctx ends: every sandbox status an agent reports
// through this replica is looked at by one worker (SandboxReady).
func (s *Service) Run(ctx context.Context) {
	ch := make(chan sandboxRef, triggerQueue)
	s.st.Watch(func(c store.Change) {
		if c.What != store.ChangeStatus || c.Kind != store.KindSandbox || ctx.Err() != nil {
			return
		}
		select {
		case ch <- sandboxRef{c.Org, c.Name}:
		default:
			s.log.Warn("smart test triggers: queue full, status change dropped", "org", c.Org, "sandbox", c.Name)
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-ch:
			fctx, cancel := context.WithTimeout(ctx, fireTimeout)
			if _, err := s.SandboxReady(fctx, r.org, r.name); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "smart test triggers", "org", r.org, "sandbox", r.name, "err", err)
			}
			cancel()
		}
	}
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
