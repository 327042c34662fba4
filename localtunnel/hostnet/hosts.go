// Package hostnet owns the root mode of a connected machine's outbound traffic (docs/local.md, "Root
// mode"): the cluster's Service names written into the hosts file, each mapped to a virtual IP of a range no
// network uses (default 242.242.0.0/16), an iptables nat rule that redirects that range to a local
// transparent listener, and the listener, which carries each connection through the tunnel to the Service
// the address stands for. Every change it makes is marked, so Remove restores the machine exactly as it
// was. The hosts-file and address parts are portable; the rule and the listener's original-destination
// lookup are Linux (iptables, SO_ORIGINAL_DST).
package hostnet

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// Defaults of Config.
const (
	DefaultHostsFile     = "/etc/hosts"
	DefaultChain         = "SANDBOXMESH-LOCAL"
	DefaultClusterDomain = "cluster.local"
)

// DefaultVirtualNet is the range the Services' virtual IPs come from (Signadot's default, reserved space).
var DefaultVirtualNet = netip.MustParsePrefix("242.242.0.0/16")

// Markers of the hosts-file block. The begin line says whether the file lacked a final newline, so that
// removing the block restores it byte for byte.
const (
	beginMarker = "# BEGIN sandboxmesh local: managed by `sandboxmesh local connect`, removed by `sandboxmesh local disconnect`"
	noNLSuffix  = " (no newline)"
	endMarker   = "# END sandboxmesh local"
)

// Table maps virtual IPs to the Services they stand for.
type Table struct {
	byIP   map[netip.Addr]localtunnel.CatalogService
	order  []netip.Addr
	domain string
}

// NewTable gives each Service a virtual IP of vnet, in the order of namespace/name (the same catalog gives
// the same addresses); an error when vnet is too small.
func NewTable(vnet netip.Prefix, domain string, services []localtunnel.CatalogService) (*Table, error) {
	if !vnet.Addr().Is4() || vnet.Bits() > 30 {
		return nil, fmt.Errorf("hostnet: virtual network %s: want an IPv4 range of at least /30", vnet)
	}
	if domain == "" {
		domain = DefaultClusterDomain
	}
	svcs := slices.Clone(services)
	slices.SortFunc(svcs, func(a, b localtunnel.CatalogService) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	t := &Table{byIP: map[netip.Addr]localtunnel.CatalogService{}, domain: domain}
	ip := vnet.Masked().Addr().Next() // skip the network address
	for _, s := range svcs {
		if s.Name == "" || s.Namespace == "" || !validLabel(s.Name) || !validLabel(s.Namespace) {
			continue
		}
		if !vnet.Contains(ip.Next()) { // keep the last address (broadcast) free
			return nil, fmt.Errorf("hostnet: %d Services do not fit in %s", len(svcs), vnet)
		}
		t.byIP[ip] = s
		t.order = append(t.order, ip)
		ip = ip.Next()
	}
	return t, nil
}

func validLabel(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Update returns a table of services that keeps the address of every Service t has and gives new ones
// addresses never given out before, so that an address a program resolved earlier leads to the same
// Service or to none.
func (t *Table) Update(vnet netip.Prefix, services []localtunnel.CatalogService) (*Table, error) {
	next, err := NewTable(vnet, t.domain, services)
	if err != nil {
		return nil, err
	}
	key := func(s localtunnel.CatalogService) string { return s.Namespace + "/" + s.Name }
	old := map[string]netip.Addr{}
	for ip, s := range t.byIP {
		old[key(s)] = ip
	}
	out := &Table{byIP: map[netip.Addr]localtunnel.CatalogService{}, domain: t.domain}
	var fresh []localtunnel.CatalogService
	for _, ip := range next.order { // namespace/name order
		s := next.byIP[ip]
		if prev, ok := old[key(s)]; ok {
			out.byIP[prev] = s
		} else {
			fresh = append(fresh, s)
		}
	}
	// New Services take addresses after every address given out so far: an address a program may have
	// cached for a Service that is gone never leads to another one.
	ip := vnet.Masked().Addr()
	for prev := range t.byIP {
		if prev.Compare(ip) > 0 {
			ip = prev
		}
	}
	ip = ip.Next()
	for _, s := range fresh {
		if !vnet.Contains(ip.Next()) {
			return nil, fmt.Errorf("hostnet: %d Services do not fit in %s", len(services), vnet)
		}
		out.byIP[ip] = s
		ip = ip.Next()
	}
	for ip := range out.byIP {
		out.order = append(out.order, ip)
	}
	slices.SortFunc(out.order, func(a, b netip.Addr) int { return a.Compare(b) })
	return out, nil
}

// Targets says which cluster address a virtual address stands for (*Table does; a daemon whose table
// changes passes its own).
type Targets interface {
	Target(ip netip.Addr, port uint16) (string, bool)
}

// Lookup returns the Service ip stands for.
func (t *Table) Lookup(ip netip.Addr) (localtunnel.CatalogService, bool) {
	s, ok := t.byIP[ip.Unmap()]
	return s, ok
}

// Len is the number of Services with an address.
func (t *Table) Len() int { return len(t.order) }

// Target is the address the tunnel dials for a connection to ip:port: the Service's cluster name.
func (t *Table) Target(ip netip.Addr, port uint16) (string, bool) {
	s, ok := t.Lookup(ip)
	if !ok {
		return "", false
	}
	return fmt.Sprintf("%s.%s.svc.%s:%d", s.Name, s.Namespace, t.domain, port), true
}

// hostsLines are the hosts-file lines of the table: "<ip> <svc>.<ns> <svc>.<ns>.svc <svc>.<ns>.svc.<domain>".
func (t *Table) hostsLines() []string {
	out := make([]string, 0, len(t.order))
	for _, ip := range t.order {
		s := t.byIP[ip]
		n := s.Name + "." + s.Namespace
		out = append(out, fmt.Sprintf("%s %s %s.svc %s.svc.%s", ip, n, n, n, t.domain))
	}
	return out
}

// WriteHosts puts the table's names into the hosts file at path, replacing an earlier block of ours. The
// file is rewritten in place (it may be a bind mount, which cannot be renamed over).
func WriteHosts(path string, t *Table) error {
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("hostnet: read %s: %w", path, err)
	}
	base, err := withoutBlock(cur)
	if err != nil {
		return fmt.Errorf("hostnet: %s: %w", path, err)
	}
	var b bytes.Buffer
	b.Write(base)
	begin := beginMarker
	if len(base) > 0 && base[len(base)-1] != '\n' {
		b.WriteByte('\n')
		begin += noNLSuffix
	}
	b.WriteString(begin + "\n")
	for _, l := range t.hostsLines() {
		b.WriteString(l + "\n")
	}
	b.WriteString(endMarker + "\n")
	return writeInPlace(path, b.Bytes())
}

// RemoveHosts takes our block out of the hosts file at path, restoring it as it was; a file without our
// block is left alone.
func RemoveHosts(path string) error {
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("hostnet: read %s: %w", path, err)
	}
	base, err := withoutBlock(cur)
	if err != nil {
		return fmt.Errorf("hostnet: %s: %w", path, err)
	}
	if bytes.Equal(base, cur) {
		return nil
	}
	return writeInPlace(path, base)
}

// withoutBlock returns data without our block (and the newline the block added before it).
func withoutBlock(data []byte) ([]byte, error) {
	i := bytes.Index(data, []byte(beginMarker))
	if i < 0 {
		return data, nil
	}
	if i > 0 && data[i-1] != '\n' {
		return nil, errors.New("our begin marker is not at the start of a line: fix the file by hand")
	}
	j := bytes.Index(data[i:], []byte(endMarker))
	if j < 0 {
		return nil, errors.New("our begin marker has no end marker: fix the file by hand")
	}
	end := i + j + len(endMarker)
	if end < len(data) && data[end] == '\n' {
		end++
	}
	lineEnd := bytes.IndexByte(data[i:], '\n')
	noNL := lineEnd >= 0 && bytes.HasSuffix(data[i:i+lineEnd], []byte(noNLSuffix))
	start := i
	if noNL && start > 0 {
		start-- // the newline the block added
	}
	return append(slices.Clone(data[:start]), data[end:]...), nil
}

func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("hostnet: write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("hostnet: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("hostnet: write %s: %w", path, err)
	}
	return nil
}
