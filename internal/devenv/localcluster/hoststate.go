package localcluster

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// trackedSysctls are the kernel settings the cluster's components may change
// (kubelet's kernel tunables, the bridge plugin's forwarding, kube-proxy's
// conntrack and localnet settings); Up records them and Down restores them.
var trackedSysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv4.conf.all.forwarding",
	"net.ipv4.conf.default.forwarding",
	"net.ipv6.conf.all.forwarding",
	"net.ipv4.conf.all.route_localnet",
	"net.bridge.bridge-nf-call-iptables",
	"net.bridge.bridge-nf-call-ip6tables",
	"net.netfilter.nf_conntrack_max",
	"net.netfilter.nf_conntrack_tcp_timeout_established",
	"net.netfilter.nf_conntrack_tcp_timeout_close_wait",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
	"vm.overcommit_memory",
	"vm.panic_on_oom",
}

// trackedDirs are host folders outside the state folder that containerd, the
// CNI plugins and kubelet insist on; Down removes those that Up did not find.
var trackedDirs = []string{
	"/run/containerd",
	"/var/lib/cni",
	"/var/lib/kubelet",
	"/var/run/netns",
	"/run/netns",
	"/etc/cni",
	"/opt/cni",
	"/var/log/pods",
	"/var/log/containers",
}

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func readSysctls() map[string]string {
	m := map[string]string{}
	for _, k := range trackedSysctls {
		b, err := os.ReadFile(sysctlPath(k))
		if err != nil {
			continue // absent (module not loaded): nothing to restore
		}
		m[k] = strings.TrimSpace(string(b))
	}
	return m
}

func restoreSysctls(saved map[string]string) error {
	var errs []string
	// ip_forward rewrites every conf.*.forwarding, so write it first.
	keys := make([]string, 0, len(saved))
	for k := range saved {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if a == "net.ipv4.ip_forward" {
			return -1
		}
		if b == "net.ipv4.ip_forward" {
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		cur, err := os.ReadFile(sysctlPath(k))
		if err != nil || strings.TrimSpace(string(cur)) == saved[k] {
			continue
		}
		if err := os.WriteFile(sysctlPath(k), []byte(saved[k]+"\n"), 0o644); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%s: %v", k, saved[k], err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("restore sysctls: %s", strings.Join(errs, "; "))
	}
	return nil
}

// HostSnapshot is the part of the host that the cluster touches, in a form
// that compares equal before Up and after Down.
type HostSnapshot struct {
	Links    []string          // interface names
	Routes   []string          // every route of every table
	Iptables []string          // iptables-save and ip6tables-save lines without counters
	Nft      []string          // nft tables
	Mounts   []string          // mount points
	Sysctls  map[string]string // trackedSysctls
	Dirs     []string          // trackedDirs that exist
	Cgroups  []string          // /sys/fs/cgroup/*/kubepods that exist
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// SnapshotHost records the host state that Up changes and Down must restore.
func SnapshotHost(ctx context.Context) (HostSnapshot, error) {
	var s HostSnapshot
	out, err := run(ctx, "ip", "-o", "link", "show")
	if err != nil {
		return s, fmt.Errorf("snapshot links: %w", err)
	}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			s.Links = append(s.Links, strings.TrimSuffix(f[1], ":"))
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		out, err := run(ctx, "ip", fam, "route", "show", "table", "all")
		if err != nil {
			return s, fmt.Errorf("snapshot routes: %w", err)
		}
		for _, l := range strings.Split(out, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				s.Routes = append(s.Routes, l)
			}
		}
	}
	for _, fam := range []string{"iptables-save", "ip6tables-save"} {
		out, err := run(ctx, fam)
		if err != nil {
			continue // not installed yet
		}
		for _, l := range withoutEmptyTables(out) {
			s.Iptables = append(s.Iptables, fam+": "+counters.ReplaceAllString(l, ""))
		}
	}
	// A table with no rules (e.g. nat after a chain was made and removed) is no state: Down may remove it.
	tables, _ := nftTables(ctx)
	for _, t := range tables {
		if f := strings.Fields(t); len(f) == 2 {
			if out, err := run(ctx, "nft", "list", "table", f[0], f[1]); err == nil && !tableHasRules(out) {
				continue
			}
		}
		s.Nft = append(s.Nft, t)
	}
	mounts, err := mountPoints()
	if err != nil {
		return s, err
	}
	s.Mounts = mounts
	s.Sysctls = readSysctls()
	for _, d := range trackedDirs {
		if _, err := os.Stat(d); err == nil {
			s.Dirs = append(s.Dirs, d)
		}
	}
	s.Cgroups = kubepodsCgroups()
	return s, nil
}

// Diff lists the differences between two snapshots, one line each.
func (s HostSnapshot) Diff(o HostSnapshot) []string {
	var d []string
	list := func(name string, a, b []string) {
		for _, x := range a {
			if !slices.Contains(b, x) {
				d = append(d, fmt.Sprintf("%s: %q gone", name, x))
			}
		}
		for _, x := range b {
			if !slices.Contains(a, x) {
				d = append(d, fmt.Sprintf("%s: %q added", name, x))
			}
		}
	}
	list("link", s.Links, o.Links)
	list("route", s.Routes, o.Routes)
	list("iptables", s.Iptables, o.Iptables)
	list("nft", s.Nft, o.Nft)
	list("mount", s.Mounts, o.Mounts)
	list("dir", s.Dirs, o.Dirs)
	list("cgroup", s.Cgroups, o.Cgroups)
	for k, v := range s.Sysctls {
		if o.Sysctls[k] != v {
			d = append(d, fmt.Sprintf("sysctl %s: %q -> %q", k, v, o.Sysctls[k]))
		}
	}
	for k, v := range o.Sysctls {
		if _, ok := s.Sysctls[k]; !ok {
			d = append(d, fmt.Sprintf("sysctl %s: appeared as %q", k, v))
		}
	}
	return d
}

func mountPoints() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var m []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 4 {
			m = append(m, unescapeMount(f[4]))
		}
	}
	return m, sc.Err()
}

func unescapeMount(s string) string {
	return strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace(s)
}

func kubepodsCgroups() []string {
	var out []string
	ctrls, _ := os.ReadDir("/sys/fs/cgroup")
	for _, c := range ctrls {
		p := filepath.Join("/sys/fs/cgroup", c.Name(), "kubepods")
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
		if c.Name() == "kubepods" {
			out = append(out, filepath.Join("/sys/fs/cgroup", c.Name()))
		}
	}
	return out
}

// withoutEmptyTables returns the lines of an iptables-save output (comments and blank lines dropped)
// without the tables that hold no rule and only built-in chains with policy ACCEPT: such a table is the
// same as none.
func withoutEmptyTables(save string) []string {
	var out, block []string
	empty := true
	for _, l := range strings.Split(save, "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		switch {
		case strings.HasPrefix(l, "*"):
			block, empty = []string{l}, true
		case l == "COMMIT":
			block = append(block, l)
			if !empty {
				out = append(out, block...)
			}
			block = nil
		default:
			if strings.HasPrefix(l, "-") || strings.HasPrefix(l, ":") && !strings.Contains(l, " ACCEPT ") {
				empty = false
			}
			block = append(block, l)
		}
	}
	return append(out, block...)
}
