package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// TestSmartTestStore: tests with versions and If-Match, executions kept
// after their test, filters and pages, and an execution finished once: of
// concurrent finishes exactly one writes, the others get ErrConflict.
func TestSmartTestStore(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		spec := json.RawMessage(`{"script":"x = 1","runnerGroup":"rg"}`)
		st, created, err := s.PutSmartTest(ctx, "acme", "eta", spec, -1)
		if err != nil || !created || st.Version != 1 {
			t.Fatalf("create: %+v %v %v", st, created, err)
		}
		if _, _, err := s.PutSmartTest(ctx, "acme", "eta", spec, -1); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("create again with -1: %v", err)
		}
		if st, created, err = s.PutSmartTest(ctx, "acme", "eta", json.RawMessage(`{"runnerGroup":"rg", "script":"x = 1"}`), 0); err != nil || created || st.Version != 1 {
			t.Fatalf("same spec: %+v %v %v", st, created, err)
		}
		spec2 := json.RawMessage(`{"script":"x = 2","runnerGroup":"rg"}`)
		if _, _, err := s.PutSmartTest(ctx, "acme", "eta", spec2, 5); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale version: %v", err)
		}
		if st, _, err = s.PutSmartTest(ctx, "acme", "eta", spec2, 1); err != nil || st.Version != 2 || string(st.Spec) != string(spec2) {
			t.Fatalf("update: %+v %v", st, err)
		}
		if _, err := s.GetSmartTest(ctx, "other", "eta"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("another org: %v", err)
		}
		if has, err := s.HasTestExecutions(ctx, "acme"); err != nil || has {
			t.Fatalf("executions before any: %v %v", has, err)
		}
		for i := range 5 {
			test, sb := "eta", "sb"
			if i%2 == 1 {
				test, sb = "other-test", "sb2"
			}
			if _, err := s.CreateTestExecution(ctx, store.TestExecution{Org: "acme", ID: fmt.Sprintf("e%d", i), Test: test, Spec: []byte(`{}`), Job: fmt.Sprintf("j%d", i), Sandbox: sb}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.CreateTestExecution(ctx, store.TestExecution{Org: "acme", ID: "e0", Test: "eta", Spec: []byte(`{}`), Job: "x"}); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("duplicate id: %v", err)
		}
		if has, err := s.HasTestExecutions(ctx, "acme"); err != nil || !has {
			t.Fatalf("executions: %v %v", has, err)
		}
		if has, err := s.HasTestExecutions(ctx, "other"); err != nil || has {
			t.Fatalf("executions of another org: %v %v", has, err)
		}
		pg, err := s.ListTestExecutions(ctx, "acme", store.TestExecutionFilter{Test: "eta"}, store.PageRequest{Limit: 2})
		if err != nil || len(pg.Items) != 2 || pg.Items[0].ID != "e0" || pg.Items[1].ID != "e2" || pg.Continue == "" {
			t.Fatalf("page 1: %+v %v", pg, err)
		}
		if _, err := s.ListTestExecutions(ctx, "acme", store.TestExecutionFilter{Sandbox: "sb2"}, store.PageRequest{Continue: pg.Continue}); !errors.Is(err, store.ErrBadCursor) {
			t.Fatalf("cursor of another list: %v", err)
		}
		if pg, err = s.ListTestExecutions(ctx, "acme", store.TestExecutionFilter{Test: "eta"}, store.PageRequest{Limit: 2, Continue: pg.Continue}); err != nil || len(pg.Items) != 1 || pg.Items[0].ID != "e4" || pg.Continue != "" {
			t.Fatalf("page 2: %+v %v", pg, err)
		}
		if l, err := s.ListTestExecutions(ctx, "acme", store.TestExecutionFilter{Sandbox: "sb2"}, store.PageRequest{}); err != nil || len(l.Items) != 2 {
			t.Fatalf("by sandbox: %+v %v", l, err)
		}

		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.FinishTestExecution(ctx, "acme", "e0", "succeeded", fmt.Sprintf("writer %d", i), json.RawMessage(`{"checks":{}}`), json.RawMessage(`{"summary":{}}`))
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("finish: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d finishes wrote, want 1", won)
		}
		if fin, err := s.FinishedTestExecutionsOfSandbox(ctx, "acme", "sb", 10); err != nil || len(fin) != 1 || fin[0].ID != "e0" {
			t.Fatalf("finished of sandbox sb: %+v %v", fin, err)
		}
		e, err := s.GetTestExecution(ctx, "acme", "e0", true)
		if err != nil || e.Phase != "succeeded" || string(e.Results) != `{"checks":{}}` || string(e.TrafficDiff) != `{"summary":{}}` || e.FinishedAt.IsZero() {
			t.Fatalf("finished: %+v %v", e, err)
		}
		if light, err := s.GetTestExecution(ctx, "acme", "e0", false); err != nil || light.TrafficDiff != nil || light.Results == nil {
			t.Fatalf("without the diff: %+v %v", light, err)
		}
		if err := s.FinishTestExecution(ctx, "acme", "nope", "failed", "", nil, nil); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("finish a missing execution: %v", err)
		}

		if err := s.DeleteSmartTest(ctx, "acme", "eta"); err != nil {
			t.Fatal(err)
		}
		if l, err := s.ListTestExecutions(ctx, "acme", store.TestExecutionFilter{Test: "eta"}, store.PageRequest{}); err != nil || len(l.Items) != 3 {
			t.Fatalf("executions after their test's deletion: %+v %v", l, err)
		}
		if err := s.DeleteTestExecution(ctx, "acme", "e1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteTestExecution(ctx, "acme", "e1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("delete twice: %v", err)
		}
		if ts, err := s.ListSmartTests(ctx, "acme", store.PageRequest{}); err != nil || len(ts.Items) != 0 {
			t.Fatalf("tests: %+v %v", ts, err)
		}
	})
}

// TestSmartTestCaptures: capture batches kept per execution and org, read back oldest first, bounded per
// execution (a batch beyond the bound is refused whole), deleted with the conclusion.
func TestSmartTestCaptures(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		b1, b2 := []byte(`[{"id":"e1.target.0"}]`), []byte(`[{"id":"e1.baseline-a.0"}]`)
		if err := s.AddTestCaptures(ctx, "acme", "e1", "c1", b1, 100); err != nil {
			t.Fatal(err)
		}
		if err := s.AddTestCaptures(ctx, "acme", "e1", "c1", b2, 100); err != nil {
			t.Fatal(err)
		}
		if err := s.AddTestCaptures(ctx, "acme", "e1", "c1", []byte(strings.Repeat("x", 100-len(b1)-len(b2)+1)), 100); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("beyond the bound: %v", err)
		}
		if err := s.AddTestCaptures(ctx, "other", "e1", "c1", b1, 100); err != nil {
			t.Fatal(err)
		}
		got, err := s.TestCaptures(ctx, "acme", "e1")
		if err != nil || len(got) != 2 || string(got[0]) != string(b1) || string(got[1]) != string(b2) {
			t.Fatalf("captures: %q %v", got, err)
		}
		if err := s.DeleteTestCaptures(ctx, "acme", "e1"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.TestCaptures(ctx, "acme", "e1"); err != nil || len(got) != 0 {
			t.Fatalf("after delete: %q %v", got, err)
		}
		if got, err := s.TestCaptures(ctx, "other", "e1"); err != nil || len(got) != 1 {
			t.Fatalf("another org's: %q %v", got, err)
		}
	})
}
