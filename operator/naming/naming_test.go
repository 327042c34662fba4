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

func TestResourceNames(t *testing.T) {
	long := strings.Repeat("x", 63)
	names := map[string]bool{}
	for _, c := range []struct{ ns, sb, uid, res, step string }{
		{"default", "feature-x", "uid-1", "db", "provision"},
		{"default", "feature-x", "uid-2", "db", "provision"}, // the sandbox made again
		{"other", "feature-x", "uid-1", "db", "provision"},
		{"default", "feature-x", "uid-1", "db", "seed"},
		{"default", "feature-x", "uid-1", "cache", "provision"},
		{long, strings.Repeat("s", 30), long, long, long},
	} {
		for _, n := range []string{StepPodName(c.ns, c.sb, c.uid, c.res, c.step, 1), StepPodName(c.ns, c.sb, c.uid, c.res, c.step, 12)} {
			if len(n) > MaxNameLength || !dns1035.MatchString(n) || names[n] {
				t.Errorf("StepPodName(%v) = %q: not a unique DNS-1035 label of <= 63 chars", c, n)
			}
			names[n] = true
		}
		rs := ResourceStateName(c.ns, c.sb, c.uid, c.res)
		if len(rs) > MaxNameLength || !dns1035.MatchString(rs) || (c.step == "provision" && names[rs]) {
			t.Errorf("ResourceStateName(%v) = %q", c, rs)
		}
		if c.step == "provision" {
			names[rs] = true
		}
		if ResourceStateName(c.ns, c.sb, c.uid, c.res) != rs || StepPodName(c.ns, c.sb, c.uid, c.res, c.step, 1) != StepPodName(c.ns, c.sb, c.uid, c.res, c.step, 1) {
			t.Error("not deterministic")
		}
		if n := ResourceSecretName(c.ns, c.sb); len(n) > MaxNameLength || !dns1035.MatchString(n) {
			t.Errorf("ResourceSecretName(%v) = %q", c, n)
		}
	}
	if got := StepPodName("default", "feature-x", "uid-1", "db", "provision", 3); !regexp.MustCompile(`^sm-step-[0-9a-f]{12}-3$`).MatchString(got) {
		t.Errorf("StepPodName = %q", got)
	}
	if got := ResourceStateName("default", "feature-x", "uid-1", "db"); !strings.HasPrefix(got, "sm-rs-feature-x-db-") {
		t.Errorf("ResourceStateName = %q", got)
	}
	if got := ResourceSecretName("default", "feature-x"); !strings.HasPrefix(got, "sm-res-feature-x-") || got == ResourceSecretName("other", "feature-x") {
		t.Errorf("ResourceSecretName = %q", got)
	}
	if ResourceID("uid-1", "db") == ResourceID("uid-2", "db") || len(ResourceID("uid-1", "db")) != 8 {
		t.Error("ResourceID")
	}
}

func FuzzResourceNames(f *testing.F) {
	f.Add("default", "feature-x", "uid", "db", "provision", 1)
	f.Add("", "", "", "", "", 0)
	f.Fuzz(func(t *testing.T, ns, sb, uid, res, step string, attempt int) {
		if attempt < 0 || attempt > 1000 {
			return
		}
		for _, n := range []string{StepPodName(ns, sb, uid, res, step, attempt), ResourceStateName(ns, sb, uid, res), ResourceSecretName(ns, sb)} {
			if len(n) > MaxNameLength || !dns1035.MatchString(n) {
				t.Fatalf("name %q", n)
			}
		}
	})
}
