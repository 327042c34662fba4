package localtunnel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// Policy decides which cluster destinations a connected machine may reach.
// Check returns the address to dial (an IP and port it checked, so a second
// resolution cannot change the target) or an error wrapping
// tunnelproto.ErrForbidden with the reason.
type Policy interface {
	Check(ctx context.Context, network, address string) (string, error)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(ctx context.Context, network, address string) (string, error)

// Check calls f.
func (f PolicyFunc) Check(ctx context.Context, network, address string) (string, error) {
	return f(ctx, network, address)
}

// ClusterPolicy is the default Policy: TCP only; the host must be a cluster
// Service name (`<svc>.<ns>`, `<name>.svc` or `<name>.svc.<ClusterDomain>`) or
// an IP; names are made fully qualified under ClusterDomain and resolved with
// Lookup (the cluster's DNS), and every resulting address must lie inside
// CIDRs (the cluster's Service and pod CIDRs) and pass tunnelproto.CheckAddr.
// With no CIDRs everything is refused: the gateway is never an open proxy.
type ClusterPolicy struct {
	CIDRs []netip.Prefix
	// ClusterDomain is the cluster's DNS domain; empty means cluster.local.
	ClusterDomain string
	// Lookup resolves a fully qualified name; nil uses net.DefaultResolver.
	Lookup tunnelproto.LookupFunc
}

func forbidden(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), tunnelproto.ErrForbidden)
}

// Check implements Policy.
func (p ClusterPolicy) Check(ctx context.Context, network, address string) (string, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return "", forbidden("network %q: only tcp is carried", network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", forbidden("address %q: %v", address, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", forbidden("address %q: port %q is not a number in 1..65535", address, port)
	}
	if len(p.CIDRs) == 0 {
		return "", forbidden("%s: the gateway has no cluster CIDRs configured, so it reaches nothing", address)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		fqdn, err := p.canonical(host)
		if err != nil {
			return "", err
		}
		lookup := p.Lookup
		if lookup == nil {
			lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		addrs, err = lookup(ctx, fqdn)
		if err != nil {
			return "", fmt.Errorf("resolve %s: %w", fqdn, err)
		}
		if len(addrs) == 0 {
			return "", fmt.Errorf("resolve %s: no address", fqdn)
		}
	}
	for _, a := range addrs {
		if err := tunnelproto.CheckAddr(a, p.CIDRs); err != nil {
			return "", fmt.Errorf("%s: %w", address, err)
		}
	}
	return net.JoinHostPort(addrs[0].Unmap().String(), port), nil
}

// canonical returns host's fully qualified cluster name (with a trailing dot)
// or a refusal when host is not a cluster Service name.
func (p ClusterPolicy) canonical(host string) (string, error) {
	domain := strings.Trim(strings.ToLower(p.ClusterDomain), ".")
	if domain == "" {
		domain = "cluster.local"
	}
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if !dnsLabel(l) {
			return "", forbidden("host %q is not a cluster name (label %q)", host, l)
		}
	}
	switch {
	case strings.HasSuffix(h, ".svc."+domain) && len(labels) >= 3+len(strings.Split(domain, ".")):
		return h + ".", nil
	case strings.HasSuffix(h, ".svc") && len(labels) >= 3:
		return h + "." + domain + ".", nil
	case len(labels) == 2:
		return h + ".svc." + domain + ".", nil
	}
	return "", forbidden("host %q is not a cluster name (want <svc>.<ns>, <svc>.<ns>.svc or <svc>.<ns>.svc.%s)", host, domain)
}

// dnsLabel reports whether s is an RFC 1123 label.
func dnsLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
