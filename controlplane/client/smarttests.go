package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// Wire types of smart tests (docs/smart-tests.md).
type (
	// SmartTest is a smart test.
	SmartTest = apitypes.SmartTest
	// TestExecution is an execution of a smart test.
	TestExecution = apitypes.TestExecution
	// TrafficDiff is the whole traffic diff of an execution.
	TrafficDiff = diff.Result
	// TrafficDiffFinding is one finding of a traffic diff.
	TrafficDiffFinding = diff.Finding
)

// ApplyTest creates or updates a smart test (the name comes from t.Name).
func (c *Client) ApplyTest(ctx context.Context, org string, t *SmartTest, opts ...RequestOption) (*SmartTest, error) {
	var out SmartTest
	if err := c.do(ctx, http.MethodPut, orgPath(org, "tests", t.Name), nil, t, &out, opts...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTest returns a smart test.
func (c *Client) GetTest(ctx context.Context, org, name string) (*SmartTest, error) {
	var out SmartTest
	if err := c.do(ctx, http.MethodGet, orgPath(org, "tests", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTests returns every smart test of an org, by name.
func (c *Client) ListTests(ctx context.Context, org string) ([]SmartTest, error) {
	return listAll[SmartTest](ctx, c, orgPath(org, "tests"), nil)
}

// DeleteTest deletes a smart test (its executions are kept).
func (c *Client) DeleteTest(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "tests", name), nil, nil, nil)
}

// CreateTestExecution runs a smart test.
func (c *Client) CreateTestExecution(ctx context.Context, org, test string, spec apitypes.TestExecutionSpec) (*TestExecution, error) {
	var out TestExecution
	if err := c.do(ctx, http.MethodPost, orgPath(org, "tests", test, "executions"), nil, spec, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTestExecution returns an execution with its results once it finished.
func (c *Client) GetTestExecution(ctx context.Context, org, id string) (*TestExecution, error) {
	var out TestExecution
	if err := c.do(ctx, http.MethodGet, orgPath(org, "tests", "executions", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// TestExecutionFilter selects executions in ListTestExecutions; empty
// fields match everything.
type TestExecutionFilter struct {
	Test    string
	Sandbox string
}

func (f TestExecutionFilter) query() url.Values {
	q := url.Values{}
	if f.Test != "" {
		q.Set("test", f.Test)
	}
	if f.Sandbox != "" {
		q.Set("sandbox", f.Sandbox)
	}
	return q
}

// ListTestExecutions returns an org's executions matching f, oldest first
// (with f.Test, also those of a deleted test).
func (c *Client) ListTestExecutions(ctx context.Context, org string, f TestExecutionFilter) ([]TestExecution, error) {
	return listAll[TestExecution](ctx, c, orgPath(org, "tests", "executions"), f.query())
}

// ListTestExecutionsPage returns one page of an org's executions matching f.
func (c *Client) ListTestExecutionsPage(ctx context.Context, org string, f TestExecutionFilter, p PageOptions) (*Page[TestExecution], error) {
	return listPage[TestExecution](ctx, c, orgPath(org, "tests", "executions"), f.query(), p)
}

// ListTestExecutionsOf returns the executions of an existing test, oldest first.
func (c *Client) ListTestExecutionsOf(ctx context.Context, org, test string) ([]TestExecution, error) {
	return listAll[TestExecution](ctx, c, orgPath(org, "tests", test, "executions"), nil)
}

// CancelTestExecution cancels an execution.
func (c *Client) CancelTestExecution(ctx context.Context, org, id string) (*TestExecution, error) {
	var out TestExecution
	if err := c.do(ctx, http.MethodPut, orgPath(org, "tests", "executions", id, "cancel"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTrafficDiff returns the whole traffic diff of a finished execution
// (ErrConflict before it finished, ErrNotFound when it has none).
func (c *Client) GetTrafficDiff(ctx context.Context, org, id string) (*TrafficDiff, error) {
	var out TrafficDiff
	if err := c.do(ctx, http.MethodGet, orgPath(org, "tests", "executions", id, "traffic-diff"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTrafficDiffFindings returns the findings of a finished execution's
// traffic diff of category (red, yellow; "" both), at most max (0: all),
// most relevant first.
func (c *Client) GetTrafficDiffFindings(ctx context.Context, org, id, category string, max int) ([]TrafficDiffFinding, error) {
	q := url.Values{}
	if category != "" {
		q.Set("category", category)
	}
	if max > 0 {
		q.Set("maxFindings", strconv.Itoa(max))
	}
	var out apitypes.TrafficDiffFindings
	if err := c.do(ctx, http.MethodGet, orgPath(org, "tests", "executions", id, "traffic-diff-findings"), q, nil, &out); err != nil {
		return nil, err
	}
	return out.Findings, nil
}
