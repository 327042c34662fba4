//go:build !linux

package hostnet

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
)

// ErrUnsupported: root mode's redirect exists on Linux only.
var ErrUnsupported = errors.New("hostnet: root mode (iptables redirect) is Linux only; use `sandboxmesh local run`")

// Redirect is Linux only.
func Redirect(string, netip.Prefix, []netip.Prefix, int) error { return ErrUnsupported }

// Unredirect is Linux only (nothing to undo elsewhere).
func Unredirect(string, netip.Prefix) error { return nil }

// OriginalDst is Linux only.
func OriginalDst(net.Conn) (netip.AddrPort, error) { return netip.AddrPort{}, ErrUnsupported }

// DialFunc dials a cluster address through the tunnel (localtunnel.Client.DialCluster).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Serve is Linux only.
func Serve(net.Listener, Targets, DialFunc, *slog.Logger) error { return ErrUnsupported }
