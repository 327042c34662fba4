package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// SmartTest is a stored smart test (docs/smart-tests.md).
type SmartTest struct {
	Org, Name string
	// Spec is the JSON of the test's spec (apitypes.SmartTestSpec).
	Spec                 json.RawMessage
	Version              int64
	CreatedAt, UpdatedAt time.Time
}

const smartTestCols = `org, name, spec, version, created_at, updated_at`

func scanSmartTest(sc scanner) (SmartTest, error) {
	var t SmartTest
	var spec string
	var created, updated int64
	if err := sc.Scan(&t.Org, &t.Name, &spec, &t.Version, &created, &updated); err != nil {
		return SmartTest{}, err
	}
	t.Spec = json.RawMessage(spec)
	t.CreatedAt, t.UpdatedAt = fromNano(created), fromNano(updated)
	return t, nil
}

// PutSmartTest creates or updates a test and returns it with whether it was
// created. The same spec again changes nothing (the version stays).
// ifVersion, when non-zero, must be the stored version (-1: the test must
// not exist), else ErrConflict.
func (s *Store) PutSmartTest(ctx context.Context, org, name string, spec json.RawMessage, ifVersion int64) (SmartTest, bool, error) {
	id := fmt.Sprintf("smart test %s/%s", org, name)
	for range 20 {
		cur, err := s.GetSmartTest(ctx, org, name)
		exists := err == nil
		if err != nil && !errors.Is(err, ErrNotFound) {
			return SmartTest{}, false, err
		}
		switch {
		case ifVersion == -1 && exists:
			return SmartTest{}, false, fmt.Errorf("%s exists: %w", id, ErrConflict)
		case ifVersion > 0 && (!exists || cur.Version != ifVersion):
			return SmartTest{}, false, fmt.Errorf("%s: not at version %d: %w", id, ifVersion, ErrConflict)
		}
		now := s.nowNano()
		if !exists {
			res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO smart_tests (`+smartTestCols+`) VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (org, name) DO NOTHING`),
				org, name, string(spec), now, now)
			if err != nil {
				return SmartTest{}, false, fmt.Errorf("put %s: %w", id, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue // created meanwhile: read again
			}
			return SmartTest{Org: org, Name: name, Spec: spec, Version: 1, CreatedAt: fromNano(now), UpdatedAt: fromNano(now)}, true, nil
		}
		if jsonEqual(cur.Spec, spec) {
			return cur, false, nil
		}
		res, err := s.db.ExecContext(ctx, s.q(`UPDATE smart_tests SET spec = ?, version = version + 1, updated_at = ? WHERE org = ? AND name = ? AND version = ?`),
			string(spec), now, org, name, cur.Version)
		if err != nil {
			return SmartTest{}, false, fmt.Errorf("put %s: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue // changed meanwhile
		}
		cur.Spec, cur.Version, cur.UpdatedAt = spec, cur.Version+1, fromNano(now)
		return cur, false, nil
	}
	return SmartTest{}, false, fmt.Errorf("put %s: changed concurrently too often: %w", id, ErrConflict)
}

// GetSmartTest returns a test or ErrNotFound.
func (s *Store) GetSmartTest(ctx context.Context, org, name string) (SmartTest, error) {
	t, err := scanRow(ctx, s, s.db, scanSmartTest, `SELECT `+smartTestCols+` FROM smart_tests WHERE org = ? AND name = ?`, org, name)
	if err != nil {
		return SmartTest{}, fmt.Errorf("smart test %s/%s: %w", org, name, err)
	}
	return t, nil
}

// ListSmartTests returns a page of an org's tests by name.
func (s *Store) ListSmartTests(ctx context.Context, org string, p PageRequest) (Page[SmartTest], error) {
	pg, err := scanPage(ctx, s, p, scopeOf("smarttests", org), false, "name", scanSmartTest,
		func(t SmartTest) (int64, string) { return 0, t.Name }, nil, `SELECT `+smartTestCols+` FROM smart_tests WHERE org = ?`, org)
	if err != nil {
		return Page[SmartTest]{}, fmt.Errorf("list smart tests of org %s: %w", org, err)
	}
	return pg, nil
}

// DeleteSmartTest deletes a test (its executions stay) or returns ErrNotFound.
func (s *Store) DeleteSmartTest(ctx context.Context, org, name string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM smart_tests WHERE org = ? AND name = ?`), org, name)
	if err != nil {
		return fmt.Errorf("delete smart test %s/%s: %w", org, name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("smart test %s/%s: %w", org, name, ErrNotFound)
	}
	return nil
}

// TestExecution is a stored execution of a smart test.
type TestExecution struct {
	Org, ID, Test string
	// Spec is the JSON of the execution's spec (apitypes.TestExecutionSpec).
	Spec       json.RawMessage
	Job        string
	Sandbox    string
	RouteGroup string
	RoutingKey string
	// TriggeredBy is the JSON of what started it (empty: the API).
	TriggeredBy json.RawMessage
	// Phase is empty until the execution finished (then succeeded, failed
	// or canceled, with Message).
	Phase, Message string
	// Results and TrafficDiff are JSON written once with the final phase
	// (empty: none).
	Results, TrafficDiff  json.RawMessage
	CreatedAt, FinishedAt time.Time
}

const testExecCols = `org, id, test, spec, job, sandbox, routegroup, routing_key, triggered_by, phase, message, results, traffic_diff, created_at, finished_at`

// testExecColsLight leaves out the whole traffic diff (lists and gets
// that do not show it).
const testExecColsLight = `org, id, test, spec, job, sandbox, routegroup, routing_key, triggered_by, phase, message, results, '', created_at, finished_at`

func scanTestExecution(sc scanner) (TestExecution, error) {
	var e TestExecution
	var spec, trig, results, td string
	var created, finished int64
	if err := sc.Scan(&e.Org, &e.ID, &e.Test, &spec, &e.Job, &e.Sandbox, &e.RouteGroup, &e.RoutingKey, &trig, &e.Phase, &e.Message,
		&results, &td, &created, &finished); err != nil {
		return TestExecution{}, err
	}
	e.Spec = json.RawMessage(spec)
	if trig != "" {
		e.TriggeredBy = json.RawMessage(trig)
	}
	if results != "" {
		e.Results = json.RawMessage(results)
	}
	if td != "" {
		e.TrafficDiff = json.RawMessage(td)
	}
	e.CreatedAt, e.FinishedAt = fromNano(created), fromNano(finished)
	return e, nil
}

// CreateTestExecution stores a new (unfinished) execution; an execution of
// the same id in the org is ErrAlreadyExists.
func (s *Store) CreateTestExecution(ctx context.Context, e TestExecution) (TestExecution, error) {
	now := s.nowNano()
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO smart_test_executions (org, id, test, spec, job, sandbox, routegroup, routing_key, triggered_by, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, id) DO NOTHING`),
		e.Org, e.ID, e.Test, string(e.Spec), e.Job, e.Sandbox, e.RouteGroup, e.RoutingKey, string(e.TriggeredBy), now)
	if err != nil {
		return TestExecution{}, fmt.Errorf("create test execution %s/%s: %w", e.Org, e.ID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return TestExecution{}, fmt.Errorf("test execution %s/%s: %w", e.Org, e.ID, ErrAlreadyExists)
	}
	e.Phase, e.Message, e.Results, e.TrafficDiff, e.CreatedAt, e.FinishedAt = "", "", nil, nil, fromNano(now), time.Time{}
	return e, nil
}

// GetTestExecution returns an execution (with its whole traffic diff when
// withDiff) or ErrNotFound.
func (s *Store) GetTestExecution(ctx context.Context, org, id string, withDiff bool) (TestExecution, error) {
	cols := testExecColsLight
	if withDiff {
		cols = testExecCols
	}
	e, err := scanRow(ctx, s, s.db, scanTestExecution, `SELECT `+cols+` FROM smart_test_executions WHERE org = ? AND id = ?`, org, id)
	if err != nil {
		return TestExecution{}, fmt.Errorf("test execution %s/%s: %w", org, id, err)
	}
	return e, nil
}

// TestExecutionOfJob returns the execution a job runs, or ErrNotFound (a
// job that is not a smart test's).
func (s *Store) TestExecutionOfJob(ctx context.Context, org, job string) (TestExecution, error) {
	e, err := scanRow(ctx, s, s.db, scanTestExecution, `SELECT `+testExecColsLight+` FROM smart_test_executions WHERE org = ? AND job = ?`, org, job)
	if err != nil {
		return TestExecution{}, fmt.Errorf("test execution of job %s/%s: %w", org, job, err)
	}
	return e, nil
}

// HasTestExecutions reports whether an org has any test execution.
func (s *Store) HasTestExecutions(ctx context.Context, org string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM (SELECT 1 FROM smart_test_executions WHERE org = ? LIMIT 1) AS x`), org).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("test executions of org %s: %w", org, err)
	}
	return n > 0, nil
}

// FinishedTestExecutionsOfSandbox returns up to limit finished executions
// against a sandbox, newest first (without their whole traffic diffs).
func (s *Store) FinishedTestExecutionsOfSandbox(ctx context.Context, org, sandbox string, limit int) ([]TestExecution, error) {
	out, err := scanRows(ctx, s, s.db, scanTestExecution, `SELECT `+testExecColsLight+` FROM smart_test_executions
		WHERE org = ? AND sandbox = ? AND phase <> '' ORDER BY created_at DESC, id DESC LIMIT ?`, org, sandbox, limit)
	if err != nil {
		return nil, fmt.Errorf("test executions of sandbox %s/%s: %w", org, sandbox, err)
	}
	return out, nil
}

// TestExecutionFilter selects executions; empty fields match everything.
type TestExecutionFilter struct {
	Test    string
	Sandbox string
}

// ListTestExecutions returns a page of an org's executions, oldest first
// (without their whole traffic diffs).
func (s *Store) ListTestExecutions(ctx context.Context, org string, f TestExecutionFilter, p PageRequest) (Page[TestExecution], error) {
	q, args := `SELECT `+testExecColsLight+` FROM smart_test_executions WHERE org = ?`, []any{org}
	if f.Test != "" {
		q, args = q+` AND test = ?`, append(args, f.Test)
	}
	if f.Sandbox != "" {
		q, args = q+` AND sandbox = ?`, append(args, f.Sandbox)
	}
	pg, err := scanPage(ctx, s, p, scopeOf("testexecutions", org, f.Test, f.Sandbox), true, "id", scanTestExecution,
		func(e TestExecution) (int64, string) { return e.CreatedAt.UnixNano(), e.ID }, nil, q, args...)
	if err != nil {
		return Page[TestExecution]{}, fmt.Errorf("list test executions of org %s: %w", org, err)
	}
	return pg, nil
}

// FinishTestExecution writes an execution's final phase, message, results
// and traffic diff in one statement, once: an execution already finished
// is ErrConflict (another replica finished it first).
func (s *Store) FinishTestExecution(ctx context.Context, org, id, phase, message string, results, trafficDiff json.RawMessage) error {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE smart_test_executions SET phase = ?, message = ?, results = ?, traffic_diff = ?, finished_at = ?
		WHERE org = ? AND id = ? AND phase = ''`), phase, message, string(results), string(trafficDiff), s.nowNano(), org, id)
	if err != nil {
		return fmt.Errorf("finish test execution %s/%s: %w", org, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		if _, gerr := s.GetTestExecution(ctx, org, id, false); gerr != nil {
			return gerr
		}
		return fmt.Errorf("finish test execution %s/%s: already finished: %w", org, id, ErrConflict)
	}
	return nil
}

// AddTestCaptures stores one batch of captures (data: a JSON array of
// smarttest/diff.Capture, all of execution) that cluster's capture points
// recorded, unless the execution's captures would then exceed maxBytes:
// ErrConflict then, and nothing is stored.
func (s *Store) AddTestCaptures(ctx context.Context, org, execution, cluster string, data []byte, maxBytes int64) error {
	id := fmt.Sprintf("captures of test execution %s/%s", org, execution)
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO smart_test_captures (org, execution, batch, cluster, data, size, created_at)
		SELECT ?, ?, ?, ?, ?, ?, ? WHERE (SELECT COALESCE(SUM(size), 0) FROM smart_test_captures WHERE org = ? AND execution = ?) + ? <= ?`),
		org, execution, NewID(8), cluster, string(data), len(data), s.nowNano(), org, execution, len(data), maxBytes)
	if err != nil {
		return fmt.Errorf("add %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s: more than %d bytes: %w", id, maxBytes, ErrConflict)
	}
	return nil
}

// TestCaptures returns the stored capture batches of an execution (JSON
// arrays of smarttest/diff.Capture), oldest first.
func (s *Store) TestCaptures(ctx context.Context, org, execution string) ([]json.RawMessage, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT data FROM smart_test_captures WHERE org = ? AND execution = ? ORDER BY created_at, batch`), org, execution)
	if err != nil {
		return nil, fmt.Errorf("captures of test execution %s/%s: %w", org, execution, err)
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			return nil, fmt.Errorf("captures of test execution %s/%s: %w", org, execution, err)
		}
		out = append(out, json.RawMessage(d))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("captures of test execution %s/%s: %w", org, execution, err)
	}
	return out, nil
}

// DeleteTestCaptures deletes the stored captures of an execution.
func (s *Store) DeleteTestCaptures(ctx context.Context, org, execution string) error {
	if _, err := s.db.ExecContext(ctx, s.q(`DELETE FROM smart_test_captures WHERE org = ? AND execution = ?`), org, execution); err != nil {
		return fmt.Errorf("delete captures of test execution %s/%s: %w", org, execution, err)
	}
	return nil
}

// DeleteTestExecution deletes an execution (for a create whose job could
// not be made); ErrNotFound when there is none.
func (s *Store) DeleteTestExecution(ctx context.Context, org, id string) error {
	res, err := s.db.ExecContext(ctx, s.q(`DELETE FROM smart_test_executions WHERE org = ? AND id = ?`), org, id)
	if err != nil {
		return fmt.Errorf("delete test execution %s/%s: %w", org, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("test execution %s/%s: %w", org, id, ErrNotFound)
	}
	return nil
}

// ClaimTriggerFiring records that a trigger of a test fires for a version
// of a sandbox and reports whether this call recorded it (false: it had
// fired already, here or on another replica).
func (s *Store) ClaimTriggerFiring(ctx context.Context, org, test, trigger, sandbox string, version int64) (bool, error) {
	res, err := s.db.ExecContext(ctx, s.q(`INSERT INTO smart_test_trigger_firings (org, test, trigger_id, sandbox, sandbox_version, created_at)
		VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (org, test, trigger_id, sandbox, sandbox_version) DO NOTHING`), org, test, trigger, sandbox, version, s.nowNano())
	if err != nil {
		return false, fmt.Errorf("fire trigger %s of smart test %s/%s for sandbox %s version %d: %w", trigger, org, test, sandbox, version, err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}
