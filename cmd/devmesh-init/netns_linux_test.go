//go:build linux

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// The real test runs devmesh-init against the kernel: the test binary re-executes itself in a new
// network namespace (the "pod", entered with unshare -n), wires a veth pair to a second namespace (the
// "client", another node or pod), programs the rules twice with the real iptables binaries and checks
// where connections land. It needs root (to create namespaces) and iptables; without them it skips
// and says why.
const (
	envMode   = "DEVMESH_INIT_TEST_MODE"
	envPrefix = "DEVMESH_INIT_TEST_IPTABLES"
	envAddr   = "DEVMESH_INIT_TEST_ADDR"
	podIP     = "10.99.0.1"
	clientIP  = "10.99.0.2"
	proxyUID  = 2103
)

func TestInNetworkNamespace(t *testing.T) {
	switch os.Getenv(envMode) {
	case "pod":
		podNamespace(t, os.Getenv(envPrefix))
		return
	case "dial":
		return // TestDialHelper does the work
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	// The binary must be executable by the proxy UID too.
	dir, err := os.MkdirTemp("", "devmesh-init-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "devmesh-init.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	ran := false
	for _, prefix := range []string{"iptables-nft", "iptables-legacy"} {
		if _, err := lookPath(prefix + "-restore"); err != nil {
			continue
		}
		ran = true
		t.Run(prefix, func(t *testing.T) {
			cmd := exec.Command("unshare", "-n", bin, "-test.run=^TestInNetworkNamespace$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), envMode+"=pod", envPrefix+"="+prefix, "PATH="+os.Getenv("PATH")+":/usr/sbin:/sbin")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("in the pod namespace: %v\n%s", err, out)
			}
			t.Logf("%s", out)
		})
	}
	if !ran {
		t.Skip("needs iptables-nft-restore or iptables-legacy-restore")
	}
}

// TestDialHelper dials $DEVMESH_INIT_TEST_ADDR and prints what the server said; it does nothing in a
// normal run.
func TestDialHelper(t *testing.T) {
	if os.Getenv(envMode) != "dial" {
		return
	}
	c, err := net.DialTimeout("tcp", os.Getenv(envAddr), 3*time.Second)
	if err != nil {
		fmt.Printf("RESULT: dial error: %v\n", err)
		return
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	fmt.Printf("RESULT: %s\n", b)
}

func lookPath(name string) (string, error) {
	for _, d := range []string{"", "/usr/sbin/", "/sbin/"} {
		if p, err := exec.LookPath(d + name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found", name)
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

func sh(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// podNamespace runs inside the new network namespace.
func podNamespace(t *testing.T, prefix string) {
	sh(t, "ip", "link", "set", "lo", "up")
	// The client namespace, held by a sleeping process.
	holder := exec.Command("unshare", "-n", "sleep", "120")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Process.Kill(); _ = holder.Wait() }()
	pid := fmt.Sprint(holder.Process.Pid)
	deadline := time.Now().Add(5 * time.Second)
	for {
		self, _ := os.Readlink("/proc/self/ns/net")
		other, err := os.Readlink("/proc/" + pid + "/ns/net")
		if err == nil && other != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("client namespace not ready")
		}
		time.Sleep(10 * time.Millisecond)
	}
	sh(t, "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", pid)
	sh(t, "ip", "addr", "add", podIP+"/24", "dev", "v0")
	sh(t, "ip", "link", "set", "v0", "up")
	sh(t, "nsenter", "-t", pid, "-n", "ip", "addr", "add", clientIP+"/24", "dev", "v1")
	sh(t, "nsenter", "-t", pid, "-n", "ip", "link", "set", "v1", "up")
	sh(t, "nsenter", "-t", pid, "-n", "ip", "link", "set", "lo", "up")

	args := []string{"--ports=8080,8081", "--redirect-to=15006", fmt.Sprintf("--proxy-uid=%d", proxyUID), "--ipv6=false", "--iptables=" + prefix}
	var log strings.Builder
	if err := run(t.Context(), args, &log, &log); err != nil {
		t.Fatalf("first run: %v\n%s", err, log.String())
	}
	first := saveNat(t, prefix)
	if err := run(t.Context(), args, &log, &log); err != nil {
		t.Fatalf("second run: %v\n%s", err, log.String())
	}
	second := saveNat(t, prefix)
	if first != second {
		t.Errorf("second run changed the table:\n%s\n---\n%s", first, second)
	}
	if !Installed(second) {
		t.Errorf("jumps not installed once:\n%s", second)
	}
	t.Logf("nat table:\n%s", second)

	// The app listens on 8080, 8081 and 9090 (not intercepted); the sidecar on 15006.
	for _, port := range []int{8080, 8081, 9090} {
		serve(t, port, func(c net.Conn) string { return fmt.Sprintf("app %d", port) })
	}
	serve(t, 15006, func(c net.Conn) string {
		od, err := originalDst(c)
		if err != nil {
			return "proxy ?" + err.Error()
		}
		return "proxy " + od.String()
	})

	self, _ := os.Readlink("/proc/self/exe")
	tests := []struct {
		name   string
		client bool   // dial from the client namespace (inbound through PREROUTING)
		uid    uint32 // dial as this UID (0: root)
		addr   string
		want   string
	}{
		{name: "inbound app port goes to the sidecar", client: true, addr: podIP + ":8080", want: "proxy " + podIP + ":8080"},
		{name: "inbound second app port", client: true, addr: podIP + ":8081", want: "proxy " + podIP + ":8081"},
		{name: "inbound other port untouched", client: true, addr: podIP + ":9090", want: "app 9090"},
		{name: "pod-local to own pod IP goes to the sidecar", addr: podIP + ":8080", want: "proxy " + podIP + ":8080"},
		{name: "loopback untouched", addr: "127.0.0.1:8080", want: "app 8080"},
		{name: "sidecar UID to pod IP untouched", uid: proxyUID, addr: podIP + ":8080", want: "app 8080"},
		{name: "sidecar UID to loopback untouched", uid: proxyUID, addr: "127.0.0.1:8081", want: "app 8081"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cmd *exec.Cmd
			if tt.client {
				cmd = exec.Command("nsenter", "-t", pid, "-n", self, "-test.run=^TestDialHelper$", "-test.count=1")
			} else {
				cmd = exec.Command(self, "-test.run=^TestDialHelper$", "-test.count=1")
			}
			if tt.uid != 0 {
				cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tt.uid, Gid: tt.uid}}
			}
			cmd.Env = append(os.Environ(), envMode+"=dial", envAddr+"="+tt.addr, "GOCACHE=/tmp/devmesh-init-test-gocache")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("dial helper: %v\n%s", err, out)
			}
			got := ""
			sc := bufio.NewScanner(strings.NewReader(string(out)))
			for sc.Scan() {
				if s, ok := strings.CutPrefix(sc.Text(), "RESULT: "); ok {
					got = s
				}
			}
			if got != tt.want {
				t.Errorf("got %q, want %q\n%s", got, tt.want, out)
			}
		})
	}
}

func saveNat(t *testing.T, prefix string) string {
	t.Helper()
	var keep []string
	for line := range strings.SplitSeq(sh(t, prefix+"-save", "-t", "nat"), "\n") {
		if !strings.HasPrefix(line, "#") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

func serve(t *testing.T, port int, reply func(net.Conn) string) {
	t.Helper()
	l, err := net.Listen("tcp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, reply(c))
			c.Close()
		}
	}()
}

// originalDst reads SO_ORIGINAL_DST (IPv4) of an accepted connection.
func originalDst(c net.Conn) (netip.AddrPort, error) {
	raw, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var sa syscall.RawSockaddrInet4
	var serr error
	cerr := raw.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(sa))
		_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, fd, syscall.IPPROTO_IP, 80, uintptr(unsafe.Pointer(&sa)), uintptr(unsafe.Pointer(&l)), 0)
		if e != 0 {
			serr = e
		}
	})
	if err := errors.Join(cerr, serr); err != nil {
		return netip.AddrPort{}, err
	}
	port := uint16(sa.Port&0xff)<<8 | sa.Port>>8
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port), nil
}
