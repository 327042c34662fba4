package routeapi

import (
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestForSandboxMatchesRoutesTo: SandboxRoutes.RoutesTo answers as WorkloadTable.RoutesTo on random tables
// mixing sandboxes' and route groups' forks, local tunnels and virtual workloads over shared hosts.
func TestForSandboxMatchesRoutesTo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	kinds := []DestinationKind{DestinationFork, DestinationLocal, DestinationBaseline}
	for round := range 200 {
		w := WorkloadRef{Namespace: "ns", Name: "w"}
		var routes []Route
		for i := range 1 + r.IntN(12) {
			d := Destination{Sandbox: SandboxRef{Namespace: "ns", Name: "sb" + strconv.Itoa(r.IntN(4))}, Kind: kinds[r.IntN(3)]}
			if r.IntN(3) == 0 {
				d.Sandbox = SandboxRef{Kind: OwnerRouteGroup, Namespace: "ns", Name: "rg" + strconv.Itoa(r.IntN(3))}
			}
			if d.Kind != DestinationBaseline {
				d.Host = "h" + strconv.Itoa(r.IntN(4))
			}
			routes = append(routes, Route{Workload: w, RoutingKey: "k" + strconv.Itoa(i), Destination: d})
		}
		tab, err := NewTable(1, routes)
		if err != nil {
			t.Fatal(err)
		}
		wt := tab.Workload(w)
		for sb := range 5 {
			name := "sb" + strconv.Itoa(sb)
			sr := wt.ForSandbox(name)
			for k := range 14 {
				key := "k" + strconv.Itoa(k)
				if got, want := sr.RoutesTo(key), wt.RoutesTo(key, name); got != want {
					t.Fatalf("round %d: ForSandbox(%s).RoutesTo(%s) = %v, RoutesTo %v; routes %+v", round, name, key, got, want, routes)
				}
			}
		}
	}
	if (WorkloadTable{}).ForSandbox("x").RoutesTo("k") {
		t.Error("empty table routes")
	}
}
