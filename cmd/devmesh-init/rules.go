package main

import (
	"bufio"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Chains owned by devmesh-init in the nat table. Nothing else is created or changed, except one jump
// to each from PREROUTING and OUTPUT.
const (
	ChainInbound = "SANDBOXMESH_INBOUND"
	ChainOutput  = "SANDBOXMESH_OUTPUT"
)

// Family is an IP family: iptables (IPv4) or ip6tables (IPv6).
type Family int

const (
	// IPv4 is programmed with iptables-restore.
	IPv4 Family = 4
	// IPv6 is programmed with ip6tables-restore.
	IPv6 Family = 6
)

func (f Family) loopback() string {
	if f == IPv6 {
		return "::1/128"
	}
	return "127.0.0.0/8"
}

// ErrInvalidConfig is wrapped by every flag error.
var ErrInvalidConfig = errors.New("invalid devmesh-init config")

// Config is what the injector passes on the command line.
type Config struct {
	// Ports are the app's inbound container ports to redirect.
	Ports []uint16
	// RedirectTo is the sidecar's inbound (REDIRECT) port.
	RedirectTo uint16
	// ProxyUID is the sidecar's UID; its connections are never redirected.
	ProxyUID int64
}

// Validate checks c.
func (c Config) Validate() error {
	var errs []error
	if len(c.Ports) == 0 {
		errs = append(errs, fmt.Errorf("--ports: at least one port required: %w", ErrInvalidConfig))
	}
	if c.RedirectTo == 0 {
		errs = append(errs, fmt.Errorf("--redirect-to: required: %w", ErrInvalidConfig))
	}
	if slices.Contains(c.Ports, c.RedirectTo) {
		errs = append(errs, fmt.Errorf("--ports: %d is the redirect port: %w", c.RedirectTo, ErrInvalidConfig))
	}
	if c.ProxyUID < 1 || c.ProxyUID > 1<<31-1 {
		errs = append(errs, fmt.Errorf("--proxy-uid %d: want a non-root UID: %w", c.ProxyUID, ErrInvalidConfig))
	}
	return errors.Join(errs...)
}

// ParsePorts parses a comma-separated list of TCP ports (1-65535); duplicates are dropped.
func ParsePorts(s string) ([]uint16, error) {
	var out []uint16
	for i, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("--ports[%d] %q: not a port 1-65535: %w", i, f, ErrInvalidConfig)
		}
		if !slices.Contains(out, uint16(n)) {
			out = append(out, uint16(n))
		}
	}
	return out, nil
}

// jumps are the rules devmesh-init adds to built-in chains, exactly as iptables-save prints them.
func jumps() []string {
	return []string{
		"-A PREROUTING -p tcp -j " + ChainInbound,
		"-A OUTPUT -p tcp -j " + ChainOutput,
	}
}

// Rules returns the iptables-restore --noflush input that makes the nat table of one family hold
// exactly devmesh's rules, given the table's current iptables-save output. It is idempotent: the
// "-N"-style chain declarations create or flush devmesh's own chains, and the jumps from PREROUTING and
// OUTPUT are added only when missing (and de-duplicated when present more than once). It never
// touches other chains' rules.
//
// Inbound: TCP connections arriving for the app's ports are REDIRECTed to the sidecar's port (the
// sidecar reads the app port with SO_ORIGINAL_DST). Pod-local: connections a container of the pod
// makes to its own pod address on an app port (they leave through lo) are redirected too, except the
// sidecar's own (by UID) and any to the loopback address, where the sidecar reaches the app.
// Connections to other pods, and every other port, are left alone.
func Rules(c Config, f Family, current string) (string, error) {
	if err := c.Validate(); err != nil {
		return "", err
	}
	count := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(current))
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		count[strings.TrimSpace(sc.Text())]++
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read iptables-save output: %w", err)
	}
	to := strconv.Itoa(int(c.RedirectTo))
	var b strings.Builder
	b.WriteString("*nat\n")
	b.WriteString(":" + ChainInbound + " - [0:0]\n")
	b.WriteString(":" + ChainOutput + " - [0:0]\n")
	for _, p := range c.Ports {
		fmt.Fprintf(&b, "-A %s -p tcp -m tcp --dport %d -j REDIRECT --to-ports %s\n", ChainInbound, p, to)
	}
	fmt.Fprintf(&b, "-A %s -m owner --uid-owner %d -j RETURN\n", ChainOutput, c.ProxyUID)
	fmt.Fprintf(&b, "-A %s -d %s -j RETURN\n", ChainOutput, f.loopback())
	for _, p := range c.Ports {
		fmt.Fprintf(&b, "-A %s -o lo -p tcp -m tcp --dport %d -j REDIRECT --to-ports %s\n", ChainOutput, p, to)
	}
	for _, j := range jumps() {
		switch n := count[j]; {
		case n == 0:
			b.WriteString(j + "\n")
		case n > 1:
			del := "-D" + strings.TrimPrefix(j, "-A")
			for range n - 1 {
				b.WriteString(del + "\n")
			}
		}
	}
	b.WriteString("COMMIT\n")
	return b.String(), nil
}

// Installed reports whether current (iptables-save output) has devmesh's jumps exactly once each.
func Installed(current string) bool {
	count := map[string]int{}
	for line := range strings.SplitSeq(current, "\n") {
		count[strings.TrimSpace(line)]++
	}
	for _, j := range jumps() {
		if count[j] != 1 {
			return false
		}
	}
	return true
}

// HasGlobalIPv6 reports whether /proc/net/if_inet6 (its content) lists an address of global scope on
// an interface other than lo: only then does the pod need ip6tables rules.
func HasGlobalIPv6(ifInet6 string) bool {
	for line := range strings.SplitSeq(ifInet6, "\n") {
		f := strings.Fields(line)
		// address ifindex prefixlen scope flags name
		if len(f) == 6 && f[3] == "00" && f[5] != "lo" {
			return true
		}
	}
	return false
}
