package hostnet

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

var catalog = []localtunnel.CatalogService{
	{Name: "route", Namespace: "hotrod", Ports: []int32{8083}},
	{Name: "customer", Namespace: "hotrod", Ports: []int32{8081}},
	{Name: "Bad_Name", Namespace: "hotrod"}, // not a DNS label: left out
	{Name: "db", Namespace: "data", Ports: []int32{5432}},
}

// TestTable: addresses in namespace/name order from the range's first host, stable for the same
// catalog; names that are not DNS labels are left out; the target is the Service's cluster name.
func TestTable(t *testing.T) {
	tb, err := NewTable(DefaultVirtualNet, "", catalog)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"242.242.0.1": "db.data", "242.242.0.2": "customer.hotrod", "242.242.0.3": "route.hotrod"}
	if tb.Len() != 3 {
		t.Fatalf("len %d", tb.Len())
	}
	for ip, name := range want {
		s, ok := tb.Lookup(netip.MustParseAddr(ip))
		if !ok || s.Name+"."+s.Namespace != name {
			t.Errorf("%s: %+v %v, want %s", ip, s, ok, name)
		}
	}
	if got, ok := tb.Target(netip.MustParseAddr("242.242.0.2"), 8081); !ok || got != "customer.hotrod.svc.cluster.local:8081" {
		t.Errorf("target %q %v", got, ok)
	}
	if _, ok := tb.Target(netip.MustParseAddr("242.242.0.9"), 80); ok {
		t.Error("an unused address has a target")
	}
	if _, err := NewTable(netip.MustParsePrefix("242.242.0.0/31"), "", catalog); err == nil {
		t.Error("a /31 is accepted")
	}
	if _, err := NewTable(netip.MustParsePrefix("242.242.0.0/30"), "", catalog); err == nil {
		t.Error("3 Services fit in a /30 with its network and broadcast addresses")
	}
}

// TestHostsRestored: writing our block and removing it gives back the file byte for byte, with and
// without a final newline, empty, and after writing twice; a broken block is refused, not guessed.
func TestHostsRestored(t *testing.T) {
	tb, err := NewTable(DefaultVirtualNet, "cluster.local", catalog)
	if err != nil {
		t.Fatal(err)
	}
	for name, orig := range map[string]string{
		"newline":    "127.0.0.1 localhost\n::1 localhost\n",
		"no newline": "127.0.0.1 localhost",
		"empty":      "",
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "hosts")
			if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := WriteHosts(p, tb); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := os.ReadFile(p)
			if strings.Count(string(got), beginMarker) != 1 || !strings.Contains(string(got), "242.242.0.2 customer.hotrod customer.hotrod.svc customer.hotrod.svc.cluster.local\n") ||
				!strings.HasPrefix(string(got), orig) {
				t.Fatalf("written:\n%s", got)
			}
			if err := RemoveHosts(p); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(p); string(got) != orig {
				t.Fatalf("restored %q, want %q", got, orig)
			}
			if err := RemoveHosts(p); err != nil { // nothing of ours: untouched
				t.Fatal(err)
			}
		})
	}
	p := filepath.Join(t.TempDir(), "hosts")
	_ = os.WriteFile(p, []byte("127.0.0.1 localhost\n"+beginMarker+"\n242.242.0.1 x.y\n"), 0o644)
	if err := RemoveHosts(p); err == nil || !strings.Contains(err.Error(), "no end marker") {
		t.Fatalf("a block without end: %v", err)
	}
}

// FuzzHostsRoundTrip: for any file without our markers, write then remove restores it exactly.
func FuzzHostsRoundTrip(f *testing.F) {
	for _, s := range []string{"", "127.0.0.1 localhost\n", "x", "a\n\nb", "# END sandboxmesh\n"} {
		f.Add(s)
	}
	tb, err := NewTable(DefaultVirtualNet, "", catalog)
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, orig string) {
		if strings.Contains(orig, "sandboxmesh local") {
			t.Skip()
		}
		p := filepath.Join(dir, "hosts")
		if err := os.WriteFile(p, []byte(orig), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := WriteHosts(p, tb); err != nil {
			t.Fatal(err)
		}
		if err := RemoveHosts(p); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(p); string(got) != orig {
			t.Fatalf("restored %q, want %q", got, orig)
		}
	})
}

// TestTableUpdate: Services keep their addresses across catalog changes; new ones take addresses never
// given out (a gone Service's address is not reused).
func TestTableUpdate(t *testing.T) {
	tb, err := NewTable(DefaultVirtualNet, "", catalog) // db 1, customer 2, route 3
	if err != nil {
		t.Fatal(err)
	}
	next, err := tb.Update(DefaultVirtualNet, []localtunnel.CatalogService{
		{Name: "route", Namespace: "hotrod"}, {Name: "aaa", Namespace: "hotrod"}, {Name: "db", Namespace: "data"}})
	if err != nil {
		t.Fatal(err)
	}
	for ip, name := range map[string]string{"242.242.0.1": "db", "242.242.0.3": "route", "242.242.0.4": "aaa"} {
		if s, ok := next.Lookup(netip.MustParseAddr(ip)); !ok || s.Name != name {
			t.Errorf("%s: %+v, want %s", ip, s, name)
		}
	}
	if _, ok := next.Lookup(netip.MustParseAddr("242.242.0.2")); ok || next.Len() != 3 {
		t.Fatalf("customer's address reused, or len %d", next.Len())
	}
}
