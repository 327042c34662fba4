package naming

import (
	"regexp"
	"strings"
	"testing"
)

var dns1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]*[a-z0-9])?$`)

func TestForkName(t *testing.T) {
	long := strings.Repeat("a", 253)
	cases := []struct{ sns, sn, bns, bn string }{
		{"default", "feature-x", "hotrod", "route"},
		{"default", strings.Repeat("s", 30), "hotrod", long},
		{"default", "a", "hotrod", "my.dotted.deployment"},
		{"default", "a", "hotrod", "9starts-with-digit"},
		{"default", strings.Repeat("z", 30), strings.Repeat("n", 63), strings.Repeat("b", 63)},
	}
	seen := map[string]bool{}
	for _, c := range cases {
		n := ForkName(c.sns, c.sn, c.bns, c.bn)
		if len(n) > MaxNameLength || !dns1035.MatchString(n) {
			t.Errorf("ForkName(%v) = %q: not a DNS-1035 label of <= 63 chars", c, n)
		}
		if seen[n] {
			t.Errorf("collision on %q", n)
		}
		seen[n] = true
		if ForkName(c.sns, c.sn, c.bns, c.bn) != n {
			t.Errorf("not deterministic")
		}
	}
	if ForkName("default", "a", "ns", "route") == ForkName("other", "a", "ns", "route") {
		t.Error("sandboxes of the same name in different namespaces collide")
	}
	if got := ForkName("default", "feature-x", "hotrod", "route"); !strings.HasPrefix(got, "feature-x-route-") {
		t.Errorf("readable prefix lost: %q", got)
	}
}

func FuzzForkName(f *testing.F) {
	f.Add("default", "feature-x", "hotrod", "route")
	f.Add("", "", "", "")
	f.Fuzz(func(t *testing.T, a, b, c, d string) {
		n := ForkName(a, b, c, d)
		if len(n) > MaxNameLength || !dns1035.MatchString(n) {
			t.Fatalf("ForkName = %q", n)
		}
	})
}

func TestOwnedBy(t *testing.T) {
	own := func(managedBy string) map[string]string {
		return map[string]string{"app.kubernetes.io/managed-by": managedBy, LabelSandbox: "sb", LabelSandboxNamespace: "team"}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   bool
	}{
		{"this sandbox's fork", own("sandboxmesh"), true},
		{"this sandbox's fork, written by an older version", own("sandboxmesh-operator"), true},
		{"another tool's object with our labels", own("Helm"), false},
		{"a user's object", map[string]string{"app": "cart"}, false},
		{"another sandbox's fork", map[string]string{"app.kubernetes.io/managed-by": "sandboxmesh", LabelSandbox: "other", LabelSandboxNamespace: "team"}, false},
		{"a same-named sandbox of another namespace", map[string]string{"app.kubernetes.io/managed-by": "sandboxmesh", LabelSandbox: "sb", LabelSandboxNamespace: "x"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := OwnedBy(tc.labels, "team", "sb"); got != tc.want {
				t.Errorf("OwnedBy(%v) = %v, want %v", tc.labels, got, tc.want)
			}
		})
	}
}
