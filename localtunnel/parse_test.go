package localtunnel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

func TestIdentityFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "machine.key")
	id, created, err := LoadOrCreateIdentity(path)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	again, created, err := LoadOrCreateIdentity(path)
	if err != nil || created || again.MachineID() != id.MachineID() {
		t.Fatalf("reload: %v %v %s != %s", created, err, again.MachineID(), id.MachineID())
	}
	if err := ValidMachineID(id.MachineID()); err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadIdentity(path); err == nil || !strings.Contains(err.Error(), "want 0600") {
			t.Fatalf("loading a world-readable key = %v", err)
		}
	}
	for _, bad := range []string{"", "ABCDEFGHIJKLMNOP", "abc", "abcdefghijklmno1"} {
		if ValidMachineID(bad) == nil {
			t.Errorf("ValidMachineID(%q) accepted", bad)
		}
	}
}

// TestMachineIDStable pins the derivation: operators store these IDs.
func TestMachineIDStable(t *testing.T) {
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)).Public().(ed25519.PublicKey)
	if got := MachineIDFor(pub); got != MachineIDFor(pub) || len(got) != MachineIDLen {
		t.Fatalf("MachineIDFor = %q", got)
	}
	t.Logf("machine ID of the fixed key: %s", MachineIDFor(pub))
}

func TestClusterPolicy(t *testing.T) {
	p := ClusterPolicy{
		CIDRs:  []netip.Prefix{netip.MustParsePrefix("10.96.0.0/12"), netip.MustParsePrefix("10.244.0.0/16")},
		Lookup: mapLookup(map[string]string{"customer.hotrod.svc.cluster.local.": "10.96.0.10", "db-0.db.hotrod.svc.cluster.local.": "10.244.1.5", "ext.hotrod.svc.cluster.local.": "8.8.8.8"}),
	}
	ctx := context.Background()
	for in, want := range map[string]string{
		"customer.hotrod:8081":                    "10.96.0.10:8081",
		"Customer.Hotrod.svc:8081":                "10.96.0.10:8081",
		"customer.hotrod.svc.cluster.local.:8081": "10.96.0.10:8081",
		"db-0.db.hotrod.svc:5432":                 "10.244.1.5:5432",
		"10.244.3.3:80":                           "10.244.3.3:80",
	} {
		got, err := p.Check(ctx, "tcp", in)
		if err != nil || got != want {
			t.Errorf("Check(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"www.example.com:443":      "not a cluster name",
		"localhost:80":             "not a cluster name",
		"ext.hotrod:80":            "outside the cluster's allowed CIDRs",
		"127.0.0.1:80":             "outside the cluster's allowed CIDRs",
		"169.254.169.254:80":       "metadata",
		"customer.hotrod:0":        "port",
		"customer.hotrod":          "missing port",
		"under_score.hotrod:80":    "not a cluster name",
		"customer.hotrod.svc.x:80": "not a cluster name",
	} {
		_, err := p.Check(ctx, "tcp", in)
		if !errors.Is(err, tunnelproto.ErrForbidden) || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%s) = %v, want forbidden with %q", in, err, want)
		}
	}
	if _, err := (ClusterPolicy{}).Check(ctx, "tcp", "10.96.0.1:443"); !errors.Is(err, tunnelproto.ErrForbidden) {
		t.Errorf("a policy without CIDRs allowed a destination: %v", err)
	}
}

func FuzzParseIdentity(f *testing.F) {
	id, _ := GenerateIdentity()
	good, _ := id.MarshalPEM()
	f.Add(good)
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, err := ParseIdentity(b)
		if err != nil {
			return
		}
		if len(id.PublicKey()) != ed25519.PublicKeySize {
			t.Fatalf("parsed an identity with a %d-byte public key", len(id.PublicKey()))
		}
	})
}

// FuzzHandshakeFrames feeds arbitrary bytes to every handshake frame parser:
// they never panic, never read past their bounds, and what they accept
// encodes back to the bytes they consumed.
func FuzzHandshakeFrames(f *testing.F) {
	id, _ := GenerateIdentity()
	a := auth{version: 1, label: "laptop"}
	copy(a.pub[:], id.PublicKey())
	f.Add(hello{version: 1}.encode())
	f.Add(a.encode())
	f.Add(result{ok: true, msg: id.MachineID()}.encode())
	f.Add(result{msg: "refused"}.encode())
	f.Add([]byte("SMLA\x01"))
	f.Add(append([]byte("SMLA\x01"), bytes.Repeat([]byte{0xff}, 200)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		if h, err := readHello(r); err == nil && !bytes.Equal(h.encode(), b[:len(b)-r.Len()]) {
			t.Fatalf("hello round trip: %x", b)
		}
		r = bytes.NewReader(b)
		if a, err := readAuth(r); err == nil {
			if len(a.label) > MaxLabel || !bytes.Equal(a.encode(), b[:len(b)-r.Len()]) {
				t.Fatalf("auth round trip: %x", b)
			}
		}
		r = bytes.NewReader(b)
		if res, err := readResult(r); err == nil && !bytes.Equal(res.encode(), b[:len(b)-r.Len()]) {
			t.Fatalf("result round trip: %x", b)
		}
	})
}

// FuzzSOCKS feeds arbitrary bytes to the SOCKS5 parsers.
func FuzzSOCKS(f *testing.F) {
	f.Add([]byte{5, 1, 0})
	f.Add([]byte{5, 2, 0, 2})
	f.Add([]byte{1, 1, 'u', 1, 'p'})
	f.Add([]byte{5, 1, 0, 3, 19, 'c', 'u', 's', 't', 'o', 'm', 'e', 'r', '.', 'h', 'o', 't', 'r', 'o', 'd', '.', 's', 'v', 'c', 0x1f, 0x91})
	f.Add([]byte{5, 1, 0, 1, 10, 96, 0, 1, 0, 80})
	f.Add([]byte{5, 1, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80})
	f.Add([]byte{5, 2, 0, 3, 1, 'a', 0, 80})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := readGreeting(bytes.NewReader(b)); err == nil && (len(m) == 0 || len(m) > 255) {
			t.Fatalf("greeting with %d methods", len(m))
		}
		if u, p, err := readUserPass(bytes.NewReader(b)); err == nil && (len(u) > 255 || len(p) > 255) {
			t.Fatalf("credentials too long")
		}
		req, err := readRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if req.cmd != cmdConnect || req.host == "" || strings.ContainsAny(req.host, " /") {
			t.Fatalf("accepted request %+v", req)
		}
	})
}

// FuzzClusterPolicy: whatever the address, a destination the policy accepts
// is an IP inside its CIDRs.
func FuzzClusterPolicy(f *testing.F) {
	for _, s := range []string{"customer.hotrod:80", "10.96.0.1:443", "a.b.c.d.e:1", "[::1]:80", "customer.hotrod.svc.cluster.local.:8080", "x:y:z"} {
		f.Add(s)
	}
	cidr := netip.MustParsePrefix("10.96.0.0/12")
	p := ClusterPolicy{CIDRs: []netip.Prefix{cidr}, Lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		if strings.HasPrefix(host, "out") {
			return []netip.Addr{netip.MustParseAddr("1.1.1.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("10.96.0.10")}, nil
	}}
	f.Fuzz(func(t *testing.T, addr string) {
		got, err := p.Check(context.Background(), "tcp", addr)
		if err != nil {
			return
		}
		ap, perr := netip.ParseAddrPort(got)
		if perr != nil || !cidr.Contains(ap.Addr()) {
			t.Fatalf("Check(%q) = %q outside %v", addr, got, cidr)
		}
	})
}

// FuzzServerHandshake plays an arbitrary machine against the gateway side of
// the handshake: it never panics, never hangs past its deadline, and never
// accepts (a signature over a fresh nonce cannot be guessed).
func FuzzServerHandshake(f *testing.F) {
	id, _ := GenerateIdentity()
	a := auth{version: ProtocolVersion, label: "x"}
	copy(a.pub[:], id.PublicKey())
	f.Add(a.encode())
	f.Add([]byte("SMLA"))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add(append([]byte("SMLA\x02"), make([]byte, 200)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		srv, cli := net.Pipe()
		defer cli.Close()
		go func() {
			_, _ = io.CopyN(io.Discard, cli, int64(len(helloMagic)+1+nonceLen))
			go func() { _, _ = io.Copy(io.Discard, cli) }() // drain answers: net.Pipe has no buffer
			_, _ = cli.Write(b)
			cli.Close() // end of input: the gateway sees EOF rather than waiting for its deadline
		}()
		p, err := ServerHandshake(srv, time.Second, nil)
		if err == nil {
			t.Fatalf("handshake accepted %x as machine %s", b, p.MachineID)
		}
		if !errors.Is(err, ErrHandshake) {
			t.Fatalf("error %v is not ErrHandshake", err)
		}
	})
}

func TestHostLabel(t *testing.T) {
	if err := checkLabel(HostLabel()); err != nil {
		t.Fatalf("HostLabel() = %q: %v", HostLabel(), err)
	}
}

// FuzzHTTPProxyRequest feeds arbitrary bytes to the HTTP proxy's request
// parser: an accepted request always names a host:port to dial.
func FuzzHTTPProxyRequest(f *testing.F) {
	f.Add([]byte("CONNECT customer.hotrod.svc:443 HTTP/1.1\r\nHost: customer.hotrod.svc:443\r\n\r\n"))
	f.Add([]byte("GET http://customer.hotrod:8081/customer?id=1 HTTP/1.1\r\nHost: customer.hotrod:8081\r\nProxy-Authorization: Basic dTpw\r\n\r\n"))
	f.Add([]byte("GET /relative HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Add([]byte("CONNECT nohostport HTTP/1.1\r\n\r\n"))
	f.Add([]byte("GET http://[::1]/ HTTP/1.0\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pr, _, err := readProxyRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		host, port, err := net.SplitHostPort(pr.addr)
		if err != nil || host == "" || port == "" {
			t.Fatalf("accepted %q with target %q", b, pr.addr)
		}
	})
}
