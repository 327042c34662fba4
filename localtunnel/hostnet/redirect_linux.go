package hostnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/sandboxmesh/sandboxmesh/tunnelproto"
)

// soOriginalDst is SO_ORIGINAL_DST (linux/netfilter_ipv4.h).
const soOriginalDst = 80

// Redirect sends TCP connections to vnet (except excluded ranges) to 127.0.0.1:port: a nat chain of ours,
// jumped to from OUTPUT for vnet only. Call Unredirect to undo it; Redirect first undoes an earlier one.
func Redirect(chain string, vnet netip.Prefix, exclude []netip.Prefix, port int) error {
	if err := Unredirect(chain, vnet); err != nil {
		return err
	}
	if err := iptables("-t", "nat", "-N", chain); err != nil {
		return err
	}
	for _, x := range exclude {
		if err := iptables("-t", "nat", "-A", chain, "-d", x.Masked().String(), "-j", "RETURN"); err != nil {
			return errors.Join(err, Unredirect(chain, vnet))
		}
	}
	if err := iptables("-t", "nat", "-A", chain, "-p", "tcp", "-j", "REDIRECT", "--to-ports", strconv.Itoa(port)); err != nil {
		return errors.Join(err, Unredirect(chain, vnet))
	}
	if err := iptables("-t", "nat", "-I", "OUTPUT", "-d", vnet.Masked().String(), "-j", chain); err != nil {
		return errors.Join(err, Unredirect(chain, vnet))
	}
	return nil
}

// Unredirect removes what Redirect added (every jump to chain from OUTPUT for vnet, and the chain); it is
// a no-op when there is nothing.
func Unredirect(chain string, vnet netip.Prefix) error {
	for iptables("-t", "nat", "-C", "OUTPUT", "-d", vnet.Masked().String(), "-j", chain) == nil {
		if err := iptables("-t", "nat", "-D", "OUTPUT", "-d", vnet.Masked().String(), "-j", chain); err != nil {
			return err
		}
	}
	if iptables("-t", "nat", "-L", chain, "-n") != nil {
		return nil // no chain
	}
	if err := iptables("-t", "nat", "-F", chain); err != nil {
		return err
	}
	return iptables("-t", "nat", "-X", chain)
}

func iptables(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "iptables", append([]string{"-w", "5"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("hostnet: iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// OriginalDst returns where a redirected connection was headed (SO_ORIGINAL_DST).
func OriginalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("hostnet: not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var sa syscall.RawSockaddrInet4
	var serr error
	if err := rc.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(sa))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.SOL_IP, soOriginalDst, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&size)), 0)
		if e != 0 {
			serr = e
		}
	}); err != nil {
		return netip.AddrPort{}, err
	}
	if serr != nil {
		return netip.AddrPort{}, fmt.Errorf("hostnet: SO_ORIGINAL_DST: %w", serr)
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), nil
}

// DialFunc dials a cluster address through the tunnel (localtunnel.Client.DialCluster).
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Serve accepts the redirected connections on ln until it closes: each goes through dial to the Service
// its virtual IP stands for (Table.Target); a connection to an address of no Service is closed.
func Serve(ln net.Listener, t Targets, dial DialFunc, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			dst, err := OriginalDst(c)
			if err != nil {
				log.Warn("redirected connection without its destination", "err", err)
				return
			}
			target, ok := t.Target(dst.Addr(), dst.Port())
			if !ok {
				log.Info("connection to a virtual address of no Service", "address", dst.String())
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), tunnelproto.DefaultTimeout)
			up, err := dial(ctx, "tcp", target)
			cancel()
			if err != nil {
				log.Warn("dial through the tunnel", "target", target, "err", err)
				return
			}
			defer up.Close()
			tunnelproto.Pipe(c, up)
		}()
	}
}
