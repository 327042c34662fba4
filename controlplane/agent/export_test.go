package agent

import (
	"context"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Hooks for the tests of package agent_test: drive one poll answer, one
// status round and one retry round without running the loops.

// Observed is what the agent reports about one object.
type Observed = observed

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
