package mq_test

import (
	"strconv"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
)

// BenchmarkSelectorDecide measures the per-message decision on a 10,000-route table (100 workloads, 100
// routes each): the baseline's and a sandbox's questions for a key with a route (hit), without one (miss),
// a route group's key and a message without a key.
func BenchmarkSelectorDecide(b *testing.B) {
	routes := make([]routeapi.Route, 0, 10001)
	for i := range 10000 {
		w := routeapi.WorkloadRef{Namespace: "shop", Name: "w" + strconv.Itoa(i%100)}
		routes = append(routes, route(w, "k"+strconv.Itoa(i), "sb-"+strconv.Itoa(i), routeapi.DestinationFork))
	}
	w7 := routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "w7"}
	routes = append(routes, groupRoute(w7, "rg", "team", "sb-4207"))
	tbl, err := routeapi.NewTable(1, routes)
	if err != nil {
		b.Fatal(err)
	}
	src := staticSource{tbl}
	base := mq.NewSelector(mq.Identity{Baseline: w7}, src)
	sb := mq.NewSelector(mq.Identity{Baseline: w7, Sandbox: "sb-4207", RoutingKey: "k4207"}, src)
	for _, bc := range []struct {
		name string
		sel  *mq.Selector
		key  string
		want mq.Decision
	}{
		{"baseline-hit", base, "k4307", mq.SkipRoutedAway},
		{"baseline-miss", base, "nokey", mq.Process},
		{"baseline-nokey", base, "", mq.Process},
		{"sandbox-own", sb, "k4207", mq.Process},
		{"sandbox-hit-other", sb, "k4307", mq.SkipNotMine},
		{"sandbox-miss", sb, "nokey", mq.SkipNotMine},
		{"sandbox-routegroup", sb, "rg", mq.Process},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bc.sel.Decide(bc.key) != bc.want {
					b.Fatal("wrong decision")
				}
			}
		})
	}
}
