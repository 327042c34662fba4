package mcpserver_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/internal/cli/cptest"
	"github.com/sandboxmesh/sandboxmesh/internal/mcpserver"
)

// TestListToolsPage: the list tools answer one page (limit, default 100) and
// a next_cursor to pass back as cursor; a bad cursor is a tool error.
func TestListToolsPage(t *testing.T) {
	e := cptest.Start(t)
	s := connect(t, e.URL, e.Key)
	ctx := context.Background()
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("sb%d", i)
		s.mustCall("sandbox_fork", map[string]any{"name": name, "workload": "shop/cart", "image": "cart:v2"}, nil)
		want = append(want, name)
	}
	var all mcpserver.SandboxList
	s.mustCall("sandbox_list", map[string]any{}, &all)
	if len(all.Sandboxes) != 5 || all.NextCursor != "" {
		t.Fatalf("default page: %+v", all)
	}
	var got []string
	args := map[string]any{"limit": 2}
	for pages := 1; ; pages++ {
		var pg mcpserver.SandboxList
		s.mustCall("sandbox_list", args, &pg)
		for _, sb := range pg.Sandboxes {
			got = append(got, sb.Name)
		}
		if pg.NextCursor == "" {
			if pages != 3 {
				t.Fatalf("%d pages", pages)
			}
			break
		}
		args = map[string]any{"limit": 2, "cursor": pg.NextCursor}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
	if _, err := e.Client.RegisterCluster(ctx, cptest.Org, "c2"); err != nil {
		t.Fatal(err)
	}
	var cls mcpserver.ClusterList
	s.mustCall("cluster_list", map[string]any{"limit": 1}, &cls)
	if len(cls.Clusters) != 1 || cls.NextCursor == "" {
		t.Fatalf("cluster page: %+v", cls)
	}
	var rgs mcpserver.RouteGroupList
	s.mustCall("routegroup_list", map[string]any{"limit": 1}, &rgs)
	if rgs.NextCursor != "" {
		t.Fatalf("route groups: %+v", rgs)
	}
	for _, tool := range []string{"sandbox_list", "cluster_list", "routegroup_list"} {
		if res := s.call(tool, map[string]any{"cursor": "bogus"}, nil); !res.IsError || !strings.Contains(text(res), "continue") {
			t.Fatalf("%s with a bad cursor: %q", tool, text(res))
		}
	}
}
