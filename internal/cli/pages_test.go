package cli_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// TestListPaging: list commands read every page by default; --limit prints
// one page and the --continue token for the next on stderr.
func TestListPaging(t *testing.T) {
	h := newHarness(t)
	var want []string
	for i := range 7 {
		name := fmt.Sprintf("sb%d", i)
		h.mustRun(applyArgs(name, "cart:v2")...)
		want = append(want, name)
	}
	names := func(out string) []string {
		var sbs []apitypes.Sandbox
		if err := json.Unmarshal([]byte(out), &sbs); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var n []string
		for _, sb := range sbs {
			n = append(n, sb.Name)
		}
		return n
	}
	if r := h.mustRun("sandbox", "list", "-o", "json"); !slices.Equal(names(r.stdout), want) || r.stderr != "" {
		t.Fatalf("all: %+v", r)
	}
	var got []string
	args := []string{"sandbox", "list", "-o", "json", "--limit", "3"}
	for pages := 1; ; pages++ {
		r := h.mustRun(args...)
		got = append(got, names(r.stdout)...)
		tok, ok := strings.CutPrefix(strings.TrimSpace(r.stderr), "More items: add --continue ")
		if !ok {
			if r.stderr != "" || pages != 3 {
				t.Fatalf("page %d: %+v", pages, r)
			}
			break
		}
		args = []string{"sandbox", "list", "-o", "json", "--limit", "3", "--continue", tok}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %v, want %v", got, want)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad continue", []string{"sandbox", "list", "--continue", "bogus"}, "continue"},
		{"negative limit", []string{"sandbox", "list", "--limit", "-1"}, "--limit"},
		{"cluster list", []string{"cluster", "list", "--limit", "1", "--continue", "bogus"}, "continue"},
		{"routegroup list", []string{"routegroup", "list", "--continue", "bogus"}, "continue"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := h.run(tc.args...); r.code == 0 || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("%+v", r)
			}
		})
	}
	if r := h.mustRun("cluster", "list", "--limit", "1"); !strings.Contains(r.stdout, "c1") {
		t.Fatalf("cluster page: %+v", r)
	}
}
