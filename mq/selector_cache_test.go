package mq_test

import (
	"sync/atomic"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
)

type swapSource struct {
	t atomic.Pointer[routeapi.Table]
}

func (s *swapSource) Table() *routeapi.Table { return s.t.Load() }

// TestSelectorFollowsTableChanges: the selector's copy of the workload's routes follows each new table,
// route-group keys included, and a nil table again.
func TestSelectorFollowsTableChanges(t *testing.T) {
	src := &swapSource{}
	base := mq.NewSelector(mq.Identity{Baseline: worker}, src)
	sbA := mq.NewSelector(mq.Identity{Baseline: worker, Sandbox: "sb-a", RoutingKey: "keya"}, src)
	check := func(step string, key string, wantBase, wantA mq.Decision) {
		t.Helper()
		if got := base.Decide(key); got != wantBase {
			t.Errorf("%s: baseline Decide(%q) = %s, want %s", step, key, got, wantBase)
		}
		if got := sbA.Decide(key); got != wantA {
			t.Errorf("%s: sb-a Decide(%q) = %s, want %s", step, key, got, wantA)
		}
	}
	check("no table", "groupkey", mq.Process, mq.SkipNotMine)
	t1, _ := routeapi.NewTable(1, []routeapi.Route{route(worker, "keya", "sb-a", routeapi.DestinationFork), groupRoute(worker, "groupkey", "rg-1", "sb-a")})
	src.t.Store(t1)
	check("v1", "groupkey", mq.SkipRoutedAway, mq.Process)
	check("v1", "keya", mq.SkipRoutedAway, mq.Process)
	t2, _ := routeapi.NewTable(2, []routeapi.Route{route(worker, "keya", "sb-a", routeapi.DestinationFork), groupRoute(worker, "groupkey", "rg-1", "sb-b")})
	src.t.Store(t2)
	check("v2: the group leads to sb-b", "groupkey", mq.SkipRoutedAway, mq.SkipNotMine)
	src.t.Store(nil)
	check("table gone", "groupkey", mq.Process, mq.SkipNotMine)
	check("table gone", "keya", mq.Process, mq.Process)
}
