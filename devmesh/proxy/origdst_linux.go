package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST.
const soOriginalDst = 80

var errNoSyscallConn = errors.New("connection does not expose its socket")

// originalDst returns the destination a connection had before an iptables REDIRECT (SO_ORIGINAL_DST).
func originalDst(c net.Conn) (netip.AddrPort, error) {
	if pc, ok := c.(*portConn); ok {
		c = pc.Conn
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("original destination of %s: %w", c.RemoteAddr(), errNoSyscallConn)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination of %s: %w", c.RemoteAddr(), err)
	}
	v6 := false
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok && la.IP.To4() == nil {
		v6 = true
	}
	var ap netip.AddrPort
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		if v6 {
			var sa syscall.RawSockaddrInet6
			l := uint32(unsafe.Sizeof(sa))
			_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_IPV6, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)), 0)
			if e != 0 {
				serr = e
				return
			}
			port := netPort(&sa.Port)
			ap = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
			return
		}
		var sa syscall.RawSockaddrInet4
		l := uint32(unsafe.Sizeof(sa))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_IP, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
			return
		}
		port := netPort(&sa.Port)
		ap = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	})
	if err := errors.Join(cerr, serr); err != nil {
		return netip.AddrPort{}, fmt.Errorf("original destination of %s: getsockopt SO_ORIGINAL_DST: %w", c.RemoteAddr(), err)
	}
	return ap, nil
}

// netPort reads a port stored in network byte order.
func netPort(p *uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(p))
	return uint16(b[0])<<8 | uint16(b[1])
}
