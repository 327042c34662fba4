package agent

import (
	"context"
	"errors"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Hooks for the tests of package agent_test: drive one poll answer, one
// status round and one retry round without running the loops.

// Observed is what the agent reports about one object.
type Observed = apitypes.ObservedStatus

// ApplyState applies a poll answer as the sync loop does.
func (a *Agent) ApplyState(ctx context.Context, st apitypes.AgentState) error {
	return a.apply(ctx, st)
}

// Observe reads an object's status as the status loop does.
func (a *Agent) Observe(ctx context.Context, o apitypes.AgentObject) (Observed, bool, error) {
	return a.observe(ctx, o)
}

// ReportStatus sends the changed statuses once.
func (a *Agent) ReportStatus(ctx context.Context) error { return a.reportStatus(ctx) }

// RetryProblems applies again the runner groups that could not be applied.
func (a *Agent) RetryProblems(ctx context.Context) { a.retryProblems(ctx) }

// RunnerGroupCR builds the JobRunnerGroup CR of a runnergroup object; problem
// reports whether err is one the agent reports rather than retries.
func (a *Agent) RunnerGroupCR(o apitypes.AgentObject, cluster string) (cr *unstructured.Unstructured, namespace string, problem bool, err error) {
	cr, namespace, err = a.runnerGroupCR(o, cluster)
	var p *problemError
	return cr, namespace, errors.As(err, &p), err
}

// ExpireEvents makes the next status round list the Events again.
func (a *Agent) ExpireEvents() {
	a.evMu.Lock()
	a.events.listed = false
	a.evMu.Unlock()
}
