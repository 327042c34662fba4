package hostnet

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
	"github.com/sandboxmesh/sandboxmesh/localtunnel/hostnet/hostnettest"
)

// TestRedirectRoundTrip (root): with the hosts block and the nat rule of a small virtual range in place,
// a plain HTTP client resolving a Service name through the hosts file reaches the Service through the
// transparent listener (the tunnel's dial is played by a loopback dial here; the e2e uses the real
// tunnel); an address of no Service is closed; removing both restores iptables' nat table and the hosts
// file exactly.
func TestRedirectRoundTrip(t *testing.T) {
	hostnettest.RequireRoot(t)
	saveNAT := func() string {
		out, err := exec.Command("iptables-save", "-t", "nat").Output()
		if err != nil {
			t.Fatal(err)
		}
		var keep []byte
		for _, l := range splitLines(out) { // counters and the date line change by themselves
			if len(l) > 0 && l[0] == '#' {
				continue
			}
			keep = append(keep, stripCounters(l)...)
			keep = append(keep, '\n')
		}
		return string(keep)
	}
	before := saveNAT()
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "customer via %s", r.Host)
	}))
	defer svc.Close()
	vnet := netip.MustParsePrefix("242.243.7.0/29")
	chain := "SM-LOCAL-TEST-" + strconv.Itoa(os.Getpid()%100000)
	tb, err := NewTable(vnet, "", []localtunnel.CatalogService{{Name: "customer", Namespace: "hotrod", Ports: []int32{8081}}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dialedc := make(chan string, 8)
	go func() {
		_ = Serve(ln, tb, func(ctx context.Context, network, addr string) (net.Conn, error) {
			dialedc <- addr
			var d net.Dialer
			return d.DialContext(ctx, network, svc.Listener.Addr().String())
		}, nil)
	}()
	if err := Redirect(chain, vnet, nil, ln.Addr().(*net.TCPAddr).Port); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = Unredirect(chain, vnet) }()
	hosts := filepath.Join(t.TempDir(), "hosts")
	_ = os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644)
	if err := WriteHosts(hosts, tb); err != nil {
		t.Fatal(err)
	}
	// Resolve through the test's hosts file as the system resolver would through /etc/hosts.
	ip := netip.MustParseAddr("242.243.7.1")
	if s, ok := tb.Lookup(ip); !ok || s.Name != "customer" {
		t.Fatalf("table: %+v", s)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + ip.String() + ":8081/customer?id=1")
	if err != nil {
		t.Fatalf("through the redirect: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "customer via 242.243.7.1:8081" || len(dialedc) != 1 || <-dialedc != "customer.hotrod.svc.cluster.local:8081" {
		t.Fatalf("answer %d %q", resp.StatusCode, b)
	}
	if _, err := c.Get("http://242.243.7.5:8081/"); err == nil {
		t.Fatal("an address of no Service answered")
	}
	if err := Unredirect(chain, vnet); err != nil {
		t.Fatal(err)
	}
	if err := RemoveHosts(hosts); err != nil {
		t.Fatal(err)
	}
	if after := saveNAT(); after != before {
		t.Fatalf("nat table not restored:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if got, _ := os.ReadFile(hosts); string(got) != "127.0.0.1 localhost\n" {
		t.Fatalf("hosts not restored: %q", got)
	}
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		out = append(out, b[:i])
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}

// stripCounters drops the "[packets:bytes]" of chain lines.
func stripCounters(l []byte) []byte {
	for i := 0; i+1 < len(l); i++ {
		if l[i] == ' ' && l[i+1] == '[' {
			return l[:i]
		}
	}
	return l
}
