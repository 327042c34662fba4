//go:build !linux

package proxy

import (
	"errors"
	"net"
	"net/netip"
)

// originalDst is only available on Linux (iptables REDIRECT).
func originalDst(c net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("SO_ORIGINAL_DST: only supported on linux")
}
