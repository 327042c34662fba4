package smarttests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
)

// Defaults of the capture points' captures (Config.MaxCaptureBytes, Config.CaptureGrace).
const (
	DefaultMaxCaptureBytes = 32 << 20
	// DefaultCaptureGrace covers a sidecar's flush interval (1 s) and the agent's relay.
	DefaultCaptureGrace = 3 * time.Second
)

// CaptureIngest says what became of a batch of captures (IngestCaptures).
type CaptureIngest struct {
	// Accepted captures were stored for their execution.
	Accepted int `json:"accepted"`
	// Dropped captures belong to no execution of the org in the agent's cluster that is still running,
	// or would take their execution beyond its bound.
	Dropped int `json:"dropped"`
}

// ExecutionOfCapture splits a capture id "<execution>.<run>.<index>" (executor's ids) into its execution
// and run; ok is false for another shape or an unknown run.
func ExecutionOfCapture(id string) (execution, run string, ok bool) {
	execution, rest, found := strings.Cut(id, ".")
	if !found || execution == "" {
		return "", "", false
	}
	run, _, found = strings.Cut(rest, ".")
	switch {
	case !found:
		return "", "", false
	case run == executor.RunTarget, run == executor.RunBaselineA, run == executor.RunBaselineB:
		return execution, run, true
	}
	return "", "", false
}

// IngestCaptures stores the captures the capture points of cluster (its agent relays them) recorded, each
// with its execution, which must be an execution of org, running in cluster and not concluded; others are
// dropped (a capture point cannot tell whose id it sees). Captures are validated first: an invalid one
// refuses the whole batch (a *ValidationError naming it) and nothing is stored.
func (s *Service) IngestCaptures(ctx context.Context, org, cluster string, batch []diff.Capture) (CaptureIngest, error) {
	byExec := map[string][]diff.Capture{}
	var order []string
	var out CaptureIngest
	for i := range batch {
		c := &batch[i]
		if err := c.Validate(); err != nil {
			return CaptureIngest{}, invalid("invalid captures", apitypes.FieldError{Path: fmt.Sprintf("[%d]", i), Message: err.Error()})
		}
		exec, _, ok := ExecutionOfCapture(c.ID)
		if !ok {
			out.Dropped++
			continue
		}
		if _, seen := byExec[exec]; !seen {
			order = append(order, exec)
		}
		byExec[exec] = append(byExec[exec], *c)
	}
	for _, exec := range order {
		cs := byExec[exec]
		ok, err := s.capturing(ctx, org, cluster, exec)
		if err != nil {
			return out, err
		}
		if !ok {
			out.Dropped += len(cs)
			continue
		}
		data, err := json.Marshal(cs)
		if err != nil {
			return out, fmt.Errorf("captures of test execution %s/%s: %w", org, exec, err)
		}
		switch err := s.st.AddTestCaptures(ctx, org, exec, cluster, data, s.cfg.MaxCaptureBytes); {
		case errors.Is(err, store.ErrConflict):
			s.log.WarnContext(ctx, "captures beyond the execution's bound dropped", "org", org, "execution", exec, "captures", len(cs), "maxBytes", s.cfg.MaxCaptureBytes)
			out.Dropped += len(cs)
		case err != nil:
			return out, err
		default:
			out.Accepted += len(cs)
		}
	}
	return out, nil
}

// capturing reports whether execution exec of org runs in cluster and is not concluded.
func (s *Service) capturing(ctx context.Context, org, cluster, exec string) (bool, error) {
	e, err := s.st.GetTestExecution(ctx, org, exec, false)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil
	case err != nil:
		return false, err
	case e.Phase != "":
		return false, nil
	}
	var spec apitypes.TestExecutionSpec
	if json.Unmarshal(e.Spec, &spec) != nil || spec.ExecutionContext.Cluster != cluster {
		return false, nil
	}
	return true, nil
}

// hopCaptures returns the stored captures of an execution by run name. A batch that does not decode
// (it was validated when stored) is logged and skipped.
func (s *Service) hopCaptures(ctx context.Context, e store.TestExecution) (map[string][]diff.Capture, error) {
	batches, err := s.st.TestCaptures(ctx, e.Org, e.ID)
	if err != nil {
		return nil, err
	}
	out := map[string][]diff.Capture{}
	for _, b := range batches {
		var cs []diff.Capture
		if err := json.Unmarshal(b, &cs); err != nil {
			s.log.ErrorContext(ctx, "stored captures of a test execution", "org", e.Org, "id", e.ID, "err", err)
			continue
		}
		for _, c := range cs {
			if exec, run, ok := ExecutionOfCapture(c.ID); ok && exec == e.ID {
				out[run] = append(out[run], c)
			}
		}
	}
	return out, nil
}
