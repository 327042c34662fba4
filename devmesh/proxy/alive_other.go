//go:build !linux

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// connAlive cannot peek without blocking here; a stale connection shows as an upstream error.
func connAlive(net.Conn) bool { return true }

// isReset reports a connection reset by the peer.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
