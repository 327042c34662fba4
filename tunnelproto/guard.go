package tunnelproto

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// ErrForbiddenAddress means a tunnel target resolved to an address a tunnel
// never dials. It wraps ErrForbidden, so Serve answers it as a policy refusal.
var ErrForbiddenAddress error = forbiddenAddress{}

type forbiddenAddress struct{}

func (forbiddenAddress) Error() string        { return "forbidden address" }
func (forbiddenAddress) Is(target error) bool { return target == ErrForbidden }

// DialFunc dials an address (net.Dialer.DialContext's shape).
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// LookupFunc resolves a host name to its addresses.
type LookupFunc func(ctx context.Context, host string) ([]netip.Addr, error)

// metadataAddrs are cloud instance-metadata endpoints outside the link-local range.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("fd00:ec2::254"),   // AWS IMDS over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud metadata
}

// CheckAddr refuses addresses a preview must never reach: unspecified,
// loopback, link-local (169.254.0.0/16 holds the cloud metadata service),
// multicast, broadcast and other metadata endpoints. When allowed is not
// empty the address must also lie in one of its prefixes (the cluster's pod
// and Service CIDRs); an allowed prefix may admit loopback or link-local
// addresses explicitly, never unspecified, multicast or metadata ones.
func CheckAddr(a netip.Addr, allowed []netip.Prefix) error {
	a = a.Unmap()
	switch {
	case !a.IsValid(), a.IsUnspecified(), a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("%v: %w", a, ErrForbiddenAddress)
	}
	for _, m := range metadataAddrs {
		if a == m {
			return fmt.Errorf("%v is a metadata address: %w", a, ErrForbiddenAddress)
		}
	}
	if a == netip.AddrFrom4([4]byte{169, 254, 169, 254}) {
		return fmt.Errorf("%v is the metadata address: %w", a, ErrForbiddenAddress)
	}
	in := false
	for _, p := range allowed {
		in = in || p.Contains(a)
	}
	switch {
	case len(allowed) > 0 && !in:
		return fmt.Errorf("%v is outside the cluster's allowed CIDRs %v: %w", a, allowed, ErrForbiddenAddress)
	case !in && (a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast()):
		return fmt.Errorf("%v is a loopback or link-local address: %w", a, ErrForbiddenAddress)
	}
	return nil
}

// GuardedDial returns a DialFunc that resolves the host of each address
// itself (lookup; nil: the system resolver), refuses it when any resolved
// address fails CheckAddr (an ExternalName Service may point anywhere), and
// dials the checked IP, so a second resolution cannot change the target.
func GuardedDial(dial DialFunc, lookup LookupFunc, allowed []netip.Prefix) DialFunc {
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, fmt.Errorf("dial %s: %w", address, err)
		}
		var addrs []netip.Addr
		if a, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{a}
		} else if addrs, err = lookup(ctx, host); err != nil {
			return nil, fmt.Errorf("dial %s: resolve: %w", address, err)
		}
		if len(addrs) == 0 {
			return nil, fmt.Errorf("dial %s: no address", address)
		}
		for _, a := range addrs {
			if err := CheckAddr(a, allowed); err != nil {
				return nil, fmt.Errorf("dial %s: %w", address, err)
			}
		}
		return dial(ctx, network, net.JoinHostPort(addrs[0].Unmap().String(), port))
	}
}
