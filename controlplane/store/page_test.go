package store_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// all reads every page of a list with pages of limit items and returns the
// items and the number of pages.
func all[T any](t *testing.T, limit int, list func(store.PageRequest) (store.Page[T], error)) ([]T, int) {
	t.Helper()
	var out []T
	p := store.PageRequest{Limit: limit}
	for pages := 1; ; pages++ {
		pg, err := list(p)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		if len(pg.Items) > limit {
			t.Fatalf("page %d has %d items, limit %d", pages, len(pg.Items), limit)
		}
		out = append(out, pg.Items...)
		if pg.Continue == "" {
			return out, pages
		}
		if pages > 1000 {
			t.Fatal("endless paging")
		}
		p.Continue = pg.Continue
	}
}

func TestListPages(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		seed(t, s, "other", 0, "c1")
		if _, _, err := s.PutTeam(ctx, store.Team{Org: "acme", Name: "web"}); err != nil {
			t.Fatal(err)
		}
		var want, wantTeamA, wantWeb []string
		for i := range 23 {
			name := fmt.Sprintf("sb%02d", i)
			labels, team := map[string]string{"team": "b"}, ""
			if i%3 == 0 {
				labels["team"] = "a"
				wantTeamA = append(wantTeamA, name)
			}
			if i%4 == 0 {
				team = "web"
				wantWeb = append(wantWeb, name)
			}
			if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: name, Cluster: "c1",
				Spec: []byte(`{}`), Labels: labels, Team: team, NewRoutingKey: newKey}); err != nil {
				t.Fatal(err)
			}
			want = append(want, name)
		}
		// Tombstones, other orgs and other kinds stay out of the pages.
		for _, name := range []string{"sb05", "sb17"} {
			if err := s.Delete(ctx, store.KindSandbox, "acme", name); err != nil {
				t.Fatal(err)
			}
			want = slices.DeleteFunc(want, func(n string) bool { return n == name })
		}
		if _, _, err := apply(s, "other", "zz", "c1", `{}`); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindRouteGroup, Org: "acme", Name: "rg", Cluster: "c1", Spec: []byte(`{}`), NewRoutingKey: newKey}); err != nil {
			t.Fatal(err)
		}
		names := func(objs []store.Object) []string {
			out := []string{}
			for _, o := range objs {
				out = append(out, o.Name)
			}
			return out
		}
		for _, tc := range []struct {
			name      string
			limit     int
			sel       store.ObjectSelector
			want      []string
			wantPages int
		}{
			{"limit 1", 1, store.ObjectSelector{}, want, 21},
			{"limit 7", 7, store.ObjectSelector{}, want, 3},
			{"exact fit", 21, store.ObjectSelector{}, want, 1},
			{"one page", 500, store.ObjectSelector{}, want, 1},
			{"selector", 2, store.ObjectSelector{Labels: map[string]string{"team": "a"}}, wantTeamA, 4},
			{"selector, nothing", 5, store.ObjectSelector{Labels: map[string]string{"team": "c"}}, []string{}, 1},
			{"team", 2, store.ObjectSelector{Team: "web"}, wantWeb, 3},
			{"team and labels", 5, store.ObjectSelector{Team: "web", Labels: map[string]string{"team": "a"}}, []string{"sb00", "sb12"}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				got, pages := all(t, tc.limit, func(p store.PageRequest) (store.Page[store.Object], error) {
					return s.ListObjects(ctx, store.KindSandbox, "acme", tc.sel, p)
				})
				if !slices.Equal(names(got), tc.want) || pages != tc.wantPages {
					t.Fatalf("got %v in %d pages, want %v in %d", names(got), pages, tc.want, tc.wantPages)
				}
			})
		}

		t.Run("writes between pages", func(t *testing.T) {
			// A keyset cursor is a position, not an offset: a create before it
			// and a delete of a seen item do not shift or repeat later items.
			pg, err := s.ListObjects(ctx, store.KindSandbox, "acme", store.ObjectSelector{}, store.PageRequest{Limit: 5})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := apply(s, "acme", "aa-new", "c1", `{}`); err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, store.KindSandbox, "acme", pg.Items[0].Name); err != nil {
				t.Fatal(err)
			}
			next, err := s.ListObjects(ctx, store.KindSandbox, "acme", store.ObjectSelector{}, store.PageRequest{Limit: 5, Continue: pg.Continue})
			if err != nil {
				t.Fatal(err)
			}
			if got := names(next.Items); !slices.Equal(got, want[5:10]) {
				t.Fatalf("second page %v, want %v", got, want[5:10])
			}
		})

		t.Run("clusters, tokens and keys", func(t *testing.T) {
			var wantClusters, wantTokens, wantKeys []string
			for i := range 7 {
				c := fmt.Sprintf("k%d", i)
				if _, err := s.CreateCluster(ctx, "acme", c); err != nil {
					t.Fatal(err)
				}
				wantClusters = append(wantClusters, c)
			}
			wantClusters = append([]string{"c1"}, wantClusters...)
			same := time.Unix(1700000000, 0) // equal creation times: the ID breaks the tie
			for _, id := range []string{"t3", "t1", "t2"} {
				if _, err := s.CreateClusterToken(ctx, store.ClusterToken{ID: id, Org: "acme", Cluster: "c1", Hash: "h" + id, Masked: "m", CreatedAt: same}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.CreateClusterToken(ctx, store.ClusterToken{ID: "t0", Org: "acme", Cluster: "c1", Hash: "ht0", Masked: "m", CreatedAt: same.Add(time.Second)}); err != nil {
				t.Fatal(err)
			}
			wantTokens = []string{"t1", "t2", "t3", "t0"}
			for i := range 5 {
				id := fmt.Sprintf("key%d", 4-i)
				if _, err := s.CreateAPIKey(ctx, store.APIKey{ID: id, Org: "acme", Name: id, Hash: "hk" + id, Masked: "m", CreatedAt: same.Add(time.Duration(i) * time.Second)}); err != nil {
					t.Fatal(err)
				}
				wantKeys = append(wantKeys, id)
			}
			cls, _ := all(t, 3, func(p store.PageRequest) (store.Page[store.Cluster], error) { return s.ListClusters(ctx, "acme", p) })
			toks, _ := all(t, 2, func(p store.PageRequest) (store.Page[store.ClusterToken], error) {
				return s.ListClusterTokens(ctx, "acme", "c1", p)
			})
			keys, _ := all(t, 2, func(p store.PageRequest) (store.Page[store.APIKey], error) { return s.ListAPIKeys(ctx, "acme", p) })
			var gotC, gotT, gotK []string
			for _, c := range cls {
				gotC = append(gotC, c.Name)
			}
			for _, tk := range toks {
				gotT = append(gotT, tk.ID)
			}
			for _, k := range keys {
				gotK = append(gotK, k.ID)
			}
			if !slices.Equal(gotC, wantClusters) || !slices.Equal(gotT, wantTokens) || !slices.Equal(gotK, wantKeys) {
				t.Fatalf("clusters %v (want %v), tokens %v (want %v), keys %v (want %v)", gotC, wantClusters, gotT, wantTokens, gotK, wantKeys)
			}
		})

		t.Run("bad continue tokens", func(t *testing.T) {
			first, err := s.ListObjects(ctx, store.KindSandbox, "acme", store.ObjectSelector{}, store.PageRequest{Limit: 2})
			if err != nil || first.Continue == "" {
				t.Fatalf("first page: %+v %v", first, err)
			}
			b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
			for _, tc := range []struct {
				name string
				list func(tok string) error
			}{
				{"garbage", func(string) error { return listObjects(s, "acme", nil, "%%%") }},
				{"not JSON", func(string) error { return listObjects(s, "acme", nil, b64("nope")) }},
				{"unknown field", func(string) error { return listObjects(s, "acme", nil, b64(`{"v":1,"s":"x","n":"a","evil":1}`)) }},
				{"unknown version", func(string) error { return listObjects(s, "acme", nil, b64(`{"v":2,"s":"x","n":"a"}`)) }},
				{"too long", func(string) error { return listObjects(s, "acme", nil, strings.Repeat("A", 2000)) }},
				{"other org", func(tok string) error { return listObjects(s, "other", nil, tok) }},
				{"other selector", func(tok string) error { return listObjects(s, "acme", map[string]string{"team": "a"}, tok) }},
				{"other kind", func(tok string) error {
					_, err := s.ListObjects(ctx, store.KindRouteGroup, "acme", store.ObjectSelector{}, store.PageRequest{Continue: tok})
					return err
				}},
				{"other list", func(tok string) error {
					_, err := s.ListClusters(ctx, "acme", store.PageRequest{Continue: tok})
					return err
				}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					if err := tc.list(first.Continue); !errors.Is(err, store.ErrBadCursor) {
						t.Fatalf("got %v, want ErrBadCursor", err)
					}
				})
			}
		})
	})
}

func listObjects(s *store.Store, org string, sel map[string]string, tok string) error {
	_, err := s.ListObjects(context.Background(), store.KindSandbox, org, store.ObjectSelector{Labels: sel}, store.PageRequest{Limit: 2, Continue: tok})
	return err
}

func TestDefaultQuota(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		for _, tc := range []struct {
			name string
			max  int64
			want int64
		}{{"default", 0, store.DefaultMaxSandboxes}, {"explicit", 3, 3}} {
			t.Run(tc.name, func(t *testing.T) {
				o, err := s.CreateOrg(ctx, "org-"+tc.name, tc.max)
				if err != nil || o.MaxSandboxes != tc.want {
					t.Fatalf("created %+v, %v; want quota %d", o, err, tc.want)
				}
			})
		}
		// An admin raises it, or lifts it.
		for _, max := range []int64{10000, 0} {
			if err := s.SetQuota(ctx, "org-default", max); err != nil {
				t.Fatal(err)
			}
			if o, _ := s.GetOrg(ctx, "org-default"); o.MaxSandboxes != max {
				t.Fatalf("quota %d, want %d", o.MaxSandboxes, max)
			}
		}
	})
}

// TestLabelSelectorValues: a label selector matches exactly, whatever characters the key and value hold
// (LIKE's wildcards and escape, JSON's escapes, HTML characters json.Marshal escapes, non-ASCII), and a
// value found under another key does not match.
func TestLabelSelectorValues(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if _, err := s.CreateOrg(ctx, "lbl", 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateCluster(ctx, "lbl", "c1"); err != nil {
			t.Fatal(err)
		}
		values := []string{"a%b", "a_b", "aXb", `a\b`, `a\\b`, `a"b`, "<x&y>", "ünï", "", "%", "_", "a"}
		for i, v := range values {
			labels := map[string]string{"v": v, "other": "a_b", "k_1": v}
			if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "lbl", Name: fmt.Sprintf("sb%02d", i), Cluster: "c1",
				Spec: []byte(`{}`), Labels: labels, NewRoutingKey: func() (string, error) { return store.NewID(6), nil }}); err != nil {
				t.Fatal(err)
			}
		}
		for i, v := range values {
			for _, key := range []string{"v", "k_1"} {
				pg, err := s.ListObjects(ctx, store.KindSandbox, "lbl", store.ObjectSelector{Labels: map[string]string{key: v}}, store.PageRequest{Limit: 50})
				if err != nil {
					t.Fatal(err)
				}
				if len(pg.Items) != 1 || pg.Items[0].Name != fmt.Sprintf("sb%02d", i) {
					var got []string
					for _, o := range pg.Items {
						got = append(got, o.Name)
					}
					t.Errorf("%s=%q matched %v, want sb%02d only", key, v, got, i)
				}
			}
		}
		pg, err := s.ListObjects(ctx, store.KindSandbox, "lbl", store.ObjectSelector{Labels: map[string]string{"k%1": "a"}}, store.PageRequest{Limit: 50})
		if err != nil || len(pg.Items) != 0 {
			t.Errorf("k%%1=a matched %d objects (%v), want none", len(pg.Items), err)
		}
	})
}
