package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// BenchmarkListPage reads pages of 100 from an org of 10,000 sandboxes on
// each driver: the whole org in order (the peer), one label in ten
// (labelSelector) and one team in ten. A page's cost should follow the rows
// it returns, not the rows a filter passes over.
func BenchmarkListPage(b *testing.B) {
	for _, d := range storetest.Drivers {
		b.Run(d, func(b *testing.B) {
			s := storetest.Open(b, d)
			ctx := context.Background()
			if _, err := s.CreateOrg(ctx, "acme", 100000); err != nil {
				b.Fatal(err)
			}
			if _, err := s.CreateCluster(ctx, "acme", "c1"); err != nil {
				b.Fatal(err)
			}
			for t := range 10 {
				if _, _, err := s.PutTeam(ctx, store.Team{Org: "acme", Name: fmt.Sprintf("t%d", t)}); err != nil {
					b.Fatal(err)
				}
			}
			spec := []byte(`{"cluster":"c1","forks":[{"forkOf":{"kind":"Deployment","namespace":"shop","name":"cart"},"customizations":{"images":[{"image":"registry.example.com/shop/cart:pr-1234"}],"env":[{"name":"FEATURE","value":"on"}]}}]}`)
			for i := range 10000 {
				if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: fmt.Sprintf("sb%05d", i), Cluster: "c1",
					Spec: spec, Labels: map[string]string{"team": fmt.Sprintf("t%d", i%10), "env": "dev"}, Team: fmt.Sprintf("t%d", i%10), NewRoutingKey: newKey}); err != nil {
					b.Fatal(err)
				}
			}
			for _, tc := range []struct {
				name string
				sel  store.ObjectSelector
			}{
				{"all", store.ObjectSelector{}},
				{"label 1 in 10", store.ObjectSelector{Labels: map[string]string{"team": "t3"}}},
				{"team 1 in 10", store.ObjectSelector{Team: "t3"}},
			} {
				b.Run(tc.name, func(b *testing.B) {
					p := store.PageRequest{Limit: 100}
					for b.Loop() {
						pg, err := s.ListObjects(ctx, store.KindSandbox, "acme", tc.sel, p)
						if err != nil || len(pg.Items) != 100 {
							b.Fatalf("%d items, %v", len(pg.Items), err)
						}
						p.Continue = pg.Continue // walk the org
						if p.Continue == "" {
							p = store.PageRequest{Limit: 100}
						}
					}
				})
			}
		})
	}
}
