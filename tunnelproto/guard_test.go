package tunnelproto

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddr(t *testing.T) {
	podCIDRs := []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.96.0.0/12")}
	for _, tc := range []struct {
		addr    string
		allowed []netip.Prefix
		ok      bool
	}{
		{"10.96.0.10", nil, true},
		{"192.168.1.20", nil, true},
		{"fd12::5", nil, true},
		{"127.0.0.1", nil, false},
		{"::1", nil, false},
		{"0.0.0.0", nil, false},
		{"::", nil, false},
		{"169.254.169.254", nil, false},
		{"169.254.10.1", nil, false},
		{"fe80::1", nil, false},
		{"::ffff:127.0.0.1", nil, false},
		{"::ffff:169.254.169.254", nil, false},
		{"fd00:ec2::254", nil, false},
		{"100.100.100.200", nil, false},
		{"224.0.0.1", nil, false},
		{"255.255.255.255", nil, false},
		{"10.244.3.7", podCIDRs, true},
		{"192.168.1.20", podCIDRs, false},
		{"169.254.169.254", []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16")}, false},
		{"127.0.0.1", []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, true},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			err := CheckAddr(netip.MustParseAddr(tc.addr), tc.allowed)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForbiddenAddress)) {
				t.Fatalf("%v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestGuardedDial dials through the guard on a real socket: a name that
// resolves to a link-local or loopback address (an ExternalName Service, a
// poisoned record) is refused before any connection; an allowed one is dialed
// at the checked IP.
func TestGuardedDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	records := map[string][]netip.Addr{
		"metadata.evil.svc": {netip.MustParseAddr("169.254.169.254")},
		"loop.evil.svc":     {netip.MustParseAddr("127.0.0.1")},
		"mixed.evil.svc":    {netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("127.0.0.1")},
		"frontend.shop.svc": {netip.MustParseAddr("127.0.0.1")},
		"nothing.shop.svc":  {},
	}
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) { return records[host], nil }
	var dialed []string
	var d net.Dialer
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		return d.DialContext(ctx, network, addr)
	}
	ctx := context.Background()
	deny := GuardedDial(dial, lookup, nil)
	for _, host := range []string{"metadata.evil.svc", "loop.evil.svc", "mixed.evil.svc", "127.0.0.1", "[::1]", "169.254.169.254", "nothing.shop.svc"} {
		addr := host + ":" + port
		if strings.HasPrefix(host, "[") {
			addr = "[::1]:" + port
		}
		if c, err := deny(ctx, "tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s was dialed", addr)
		}
	}
	if len(dialed) != 0 {
		t.Fatalf("refused targets reached the dialer: %v", dialed)
	}
	// With the cluster's CIDRs configured to include loopback (this test's
	// "cluster"), the resolved address is dialed, by IP.
	allow := GuardedDial(dial, lookup, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	c, err := allow(ctx, "tcp", "frontend.shop.svc:"+port)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(dialed) != 1 || dialed[0] != "127.0.0.1:"+port {
		t.Fatalf("dialed %v", dialed)
	}
}
