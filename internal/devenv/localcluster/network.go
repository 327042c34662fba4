package localcluster

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// Guard chain names; every rule of ours lives in these chains so that tear-down
// can find and remove them exactly.
const (
	guardFwdChain = "SM-GUARD-FWD"
	guardOutChain = "SM-GUARD-OUT"
)

// ErrGuardMissing is returned by CheckGuard when the network-safety set-up is not complete.
var ErrGuardMissing = errors.New("network safety guard is not in place")

// guardTables are the iptables tables that get the guard. mangle runs before
// filter in both FORWARD and OUTPUT and nobody else adds rules there, so its DROP
// is final whatever kube-proxy or kubelet later insert into filter.
var guardTables = []string{"mangle", "filter"}

func run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "PATH="+systemPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// guardRules returns, per iptables binary, the rules of each guard chain.
func (c Config) guardRules() map[string][][]string {
	br := c.Bridge
	fwd := [][]string{
		{"-i", br, "!", "-o", br, "-j", "DROP"},
		{"!", "-i", br, "-o", br, "-j", "DROP"},
	}
	out := [][]string{
		{"-o", "lo", "-j", "RETURN"},
		{"-d", c.ServiceCIDR.String(), "!", "-o", br, "-j", "DROP"},
		{"-d", c.ClusterCIDR.String(), "!", "-o", br, "-j", "DROP"},
	}
	return map[string][][]string{guardFwdChain: fwd, guardOutChain: out}
}

// SetupGuard creates the bridge with the node address, routes the Service CIDR
// onto it and installs the DROP rules that keep pod traffic on this machine.
// It runs before any component starts, and ends with CheckGuard.
func (c Config) SetupGuard(ctx context.Context) error {
	c.setDefaults()
	br := c.Bridge
	if _, err := os.Stat("/sys/class/net/" + br); err != nil {
		if _, err := run(ctx, "ip", "link", "add", br, "type", "bridge"); err != nil {
			return fmt.Errorf("guard: create bridge %s: %w", br, err)
		}
	}
	addr := netip.PrefixFrom(c.NodeIP(), c.PodCIDR.Bits()).String()
	if _, err := run(ctx, "ip", "addr", "replace", addr, "dev", br); err != nil {
		return fmt.Errorf("guard: address %s on %s: %w", addr, br, err)
	}
	if _, err := run(ctx, "ip", "link", "set", br, "up"); err != nil {
		return fmt.Errorf("guard: bring up %s: %w", br, err)
	}
	for _, cidr := range []netip.Prefix{c.ServiceCIDR, c.ClusterCIDR} {
		if _, err := run(ctx, "ip", "route", "replace", cidr.Masked().String(), "dev", br, "src", c.NodeIP().String()); err != nil {
			return fmt.Errorf("guard: route %s onto %s: %w", cidr, br, err)
		}
	}
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range guardTables {
			for chain, rules := range c.guardRules() {
				if ipt == "ip6tables" && chain == guardOutChain {
					continue // v4 ranges only; v6 needs just the forward isolation
				}
				if _, err := run(ctx, ipt, "-w", "-t", table, "-N", chain); err != nil && !strings.Contains(err.Error(), "exists") {
					return fmt.Errorf("guard: %s -t %s -N %s: %w", ipt, table, chain, err)
				}
				if _, err := run(ctx, ipt, "-w", "-t", table, "-F", chain); err != nil {
					return fmt.Errorf("guard: flush %s/%s: %w", table, chain, err)
				}
				for _, r := range rules {
					if _, err := run(ctx, ipt, append([]string{"-w", "-t", table, "-A", chain}, r...)...); err != nil {
						return fmt.Errorf("guard: %s rule %v: %w", chain, r, err)
					}
				}
				hook := "FORWARD"
				if chain == guardOutChain {
					hook = "OUTPUT"
				}
				if _, err := run(ctx, ipt, "-w", "-t", table, "-C", hook, "-j", chain); err != nil {
					if _, err := run(ctx, ipt, "-w", "-t", table, "-I", hook, "1", "-j", chain); err != nil {
						return fmt.Errorf("guard: jump %s -> %s in %s: %w", hook, chain, table, err)
					}
				}
			}
		}
	}
	return c.CheckGuard(ctx)
}

// CheckGuard verifies the network-safety set-up: the bridge holds the node
// address, Service and cluster addresses route onto the bridge, and the DROP
// rules are in place in both directions. It returns an error wrapping
// ErrGuardMissing naming what is missing.
func (c Config) CheckGuard(ctx context.Context) error {
	c.setDefaults()
	br := c.Bridge
	out, err := run(ctx, "ip", "-o", "addr", "show", "dev", br)
	if err != nil || !strings.Contains(out, " "+netip.PrefixFrom(c.NodeIP(), c.PodCIDR.Bits()).String()+" ") {
		return fmt.Errorf("%w: bridge %s does not hold %s", ErrGuardMissing, br, c.NodeIP())
	}
	probes := []netip.Addr{c.APIServiceIP(), lastAddr(c.ServiceCIDR), lastAddr(c.ClusterCIDR)}
	for _, ip := range probes {
		out, err := run(ctx, "ip", "route", "get", ip.String())
		if err != nil || !strings.Contains(out, " dev "+br+" ") {
			return fmt.Errorf("%w: %s does not route onto %s (%s)", ErrGuardMissing, ip, br, strings.TrimSpace(out))
		}
	}
	// One iptables-save per family and table instead of one -C per rule: the
	// check runs before every component starts.
	for _, ipt := range []string{"iptables", "ip6tables"} {
		for _, table := range guardTables {
			dump, err := run(ctx, ipt+"-save", "-t", table)
			if err != nil {
				return fmt.Errorf("%w: %s-save -t %s: %v", ErrGuardMissing, ipt, table, err)
			}
			lines := map[string]bool{}
			for _, l := range strings.Split(dump, "\n") {
				lines[strings.TrimSpace(l)] = true
			}
			for chain, rules := range c.guardRules() {
				if ipt == "ip6tables" && chain == guardOutChain {
					continue
				}
				hook := "FORWARD"
				if chain == guardOutChain {
					hook = "OUTPUT"
				}
				if !lines["-A "+hook+" -j "+chain] {
					return fmt.Errorf("%w: %s -t %s has no jump %s -> %s", ErrGuardMissing, ipt, table, hook, chain)
				}
				for _, r := range rules {
					if !lines["-A "+chain+" "+strings.Join(r, " ")] {
						return fmt.Errorf("%w: %s -t %s chain %s lacks %v", ErrGuardMissing, ipt, table, chain, r)
					}
				}
			}
		}
	}
	return nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := 32 - p.Bits()
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	v |= (1 << host) - 1
	v-- // last usable, not broadcast
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// removeIptablesRules deletes every chain and rule created by the cluster
// (our SM-GUARD-*, kube-proxy's and kubelet's KUBE-*, the CNI plugins' CNI-*)
// from all tables of both families, keeping every other rule as it is now.
func removeIptablesRules(ctx context.Context) error {
	var errs []error
	for _, fam := range []string{"iptables", "ip6tables"} {
		dump, err := run(ctx, fam+"-save")
		if err != nil {
			if _, lerr := exec.LookPath(fam + "-save"); lerr != nil {
				continue
			}
			errs = append(errs, fmt.Errorf("%s-save: %w", fam, err))
			continue
		}
		filtered, changed := filterRules(dump)
		if !changed {
			continue
		}
		cmd := exec.CommandContext(ctx, fam+"-restore", "-w")
		cmd.Stdin = strings.NewReader(filtered)
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("%s-restore: %w: %s", fam, err, out))
		}
	}
	return errors.Join(errs...)
}

// ours reports whether an iptables chain name belongs to the cluster.
func ours(chain string) bool {
	return strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-") || strings.HasPrefix(chain, "SM-GUARD-")
}

// filterRules removes our chains and every rule that is in or jumps to them from an iptables-save dump.
func filterRules(dump string) (string, bool) {
	var b strings.Builder
	changed := false
	for _, line := range strings.Split(dump, "\n") {
		f := strings.Fields(line)
		drop := false
		switch {
		case len(f) > 0 && strings.HasPrefix(f[0], ":"):
			drop = ours(strings.TrimPrefix(f[0], ":"))
		case len(f) > 1 && (f[0] == "-A" || f[0] == "-I"):
			if ours(f[1]) {
				drop = true
			}
			for i := 2; i+1 < len(f); i++ {
				if (f[i] == "-j" || f[i] == "-g") && ours(f[i+1]) {
					drop = true
				}
			}
		}
		if drop {
			changed = true
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String(), changed
}

// nftTables lists the nftables tables as "family name" lines.
func nftTables(ctx context.Context) ([]string, error) {
	if _, err := exec.LookPath("nft"); err != nil {
		if _, err2 := os.Stat("/usr/sbin/nft"); err2 != nil {
			return nil, nil
		}
	}
	out, err := run(ctx, "nft", "list", "tables")
	if err != nil {
		return nil, err
	}
	var t []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "table "))
		if l != "" {
			t = append(t, l)
		}
	}
	return t, nil
}

// removeNewNftTables deletes nft tables that did not exist before Up and now hold no rules.
func removeNewNftTables(ctx context.Context, before []string) error {
	now, err := nftTables(ctx)
	if err != nil {
		return err
	}
	had := map[string]bool{}
	for _, t := range before {
		had[t] = true
	}
	var errs []error
	for _, t := range now {
		if had[t] {
			continue
		}
		f := strings.Fields(t)
		if len(f) != 2 {
			continue
		}
		out, err := run(ctx, "nft", "list", "table", f[0], f[1])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if tableHasRules(out) && f[1] != "kube-proxy" {
			continue // someone else's rules: leave them
		}
		if _, err := run(ctx, "nft", "delete", "table", f[0], f[1]); err != nil {
			errs = append(errs, fmt.Errorf("delete nft table %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

func tableHasRules(listing string) bool {
	for _, l := range strings.Split(listing, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == "}" || strings.HasPrefix(l, "table ") || strings.HasPrefix(l, "chain ") ||
			strings.HasPrefix(l, "type ") || strings.HasPrefix(l, "policy ") || strings.HasPrefix(l, "comment ") {
			continue
		}
		return true
	}
	return false
}
