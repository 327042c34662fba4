package localtunnel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// ConnectionType says how a machine reaches the gateway.
type ConnectionType string

// Connection types.
const (
	// PortForward reaches the gateway through a Kubernetes port-forward
	// (the default; needs kube access).
	PortForward ConnectionType = "PortForward"
	// ProxyAddress reaches the gateway at an address an administrator exposes.
	ProxyAddress ConnectionType = "ProxyAddress"
)

// InboundYamux is the only inbound protocol: the tunnel's own multiplexed streams.
const InboundYamux = "yamux"

// LocalConfig is the `local:` section of the CLI configuration
// (~/.sandboxmesh/config.yaml), shaped as Signadot's.
type LocalConfig struct {
	Connections []Connection `json:"connections,omitempty"`
	// VirtualIPNet is the range cluster Service names map to on the machine
	// (optional; the DNS side uses it).
	VirtualIPNet string `json:"virtualIPNet,omitempty"`
}

// Connection is one cluster a machine can connect to.
type Connection struct {
	Cluster     string         `json:"cluster"`
	KubeContext string         `json:"kubeContext,omitempty"`
	Type        ConnectionType `json:"type,omitempty"`
	// ProxyAddress is host:port of the gateway (type ProxyAddress only).
	ProxyAddress string          `json:"proxyAddress,omitempty"`
	Outbound     *OutboundConfig `json:"outbound,omitempty"`
	Inbound      *InboundConfig  `json:"inbound,omitempty"`
}

// OutboundConfig configures traffic from the machine into the cluster.
type OutboundConfig struct {
	// ExcludeCIDRs are ranges never sent through the tunnel.
	ExcludeCIDRs []string `json:"excludeCIDRs,omitempty"`
}

// InboundConfig configures traffic from the cluster to the machine.
type InboundConfig struct {
	// Protocol is "yamux" (the default and only value).
	Protocol string `json:"protocol,omitempty"`
}

// ConnectionType returns c.Type, PortForward when empty.
func (c Connection) ConnectionType() ConnectionType {
	if c.Type == "" {
		return PortForward
	}
	return c.Type
}

// Connection returns the connection of cluster, or the only one when cluster
// is empty.
func (c LocalConfig) Connection(cluster string) (Connection, error) {
	names := make([]string, 0, len(c.Connections))
	for _, k := range c.Connections {
		names = append(names, k.Cluster)
		if k.Cluster == cluster {
			return k, nil
		}
	}
	switch {
	case len(c.Connections) == 0:
		return Connection{}, errors.New("no local.connections configured in the CLI config")
	case cluster == "" && len(c.Connections) == 1:
		return c.Connections[0], nil
	case cluster == "":
		return Connection{}, fmt.Errorf("several local.connections configured; name one with --cluster (%s)", strings.Join(names, ", "))
	}
	return Connection{}, fmt.Errorf("no local.connections entry for cluster %q (configured: %s)", cluster, strings.Join(names, ", "))
}

// ParseLocalConfig parses the `local:` section (YAML or JSON) strictly:
// unknown keys, wrong types and invalid values are errors naming their field
// path (local.connections[1].proxyAddress) and, for keys, the valid ones.
func ParseLocalConfig(data []byte) (LocalConfig, error) {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return LocalConfig{}, fmt.Errorf("local: %w", err)
	}
	var c LocalConfig
	if err := c.UnmarshalJSON(j); err != nil {
		return LocalConfig{}, err
	}
	return c, nil
}

// UnmarshalJSON decodes strictly and validates (see ParseLocalConfig), so a
// CLI Config with a `local` field gets the same errors.
func (c *LocalConfig) UnmarshalJSON(b []byte) error {
	var raw any
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	if err := d.Decode(&raw); err != nil {
		return fmt.Errorf("local: %w", err)
	}
	var p parser
	out := p.local("local", raw)
	// Report value errors too, except at paths whose type or key was wrong.
	for _, e := range out.validate() {
		if !slices.ContainsFunc(p.errs, func(pe fieldError) bool { return pe.path == e.path }) {
			p.errs = append(p.errs, e)
		}
	}
	if len(p.errs) > 0 {
		return joinFieldErrors(p.errs)
	}
	*c = out
	return nil
}

// fieldError is an error at a field path.
type fieldError struct{ path, msg string }

func (e fieldError) Error() string { return e.path + ": " + e.msg }

func joinFieldErrors(fe []fieldError) error {
	errs := make([]error, len(fe))
	for i, e := range fe {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Validate checks values (types and keys are the parser's business).
func (c LocalConfig) Validate() error { return joinFieldErrors(c.validate()) }

func (c LocalConfig) validate() []fieldError {
	var errs []fieldError
	bad := func(path, format string, args ...any) {
		errs = append(errs, fieldError{path, fmt.Sprintf(format, args...)})
	}
	if c.VirtualIPNet != "" {
		if _, err := netip.ParsePrefix(c.VirtualIPNet); err != nil {
			bad("local.virtualIPNet", "%q is not a CIDR (e.g. 242.242.0.1/16)", c.VirtualIPNet)
		}
	}
	seen := map[string]int{}
	for i, k := range c.Connections {
		at := fmt.Sprintf("local.connections[%d]", i)
		switch {
		case k.Cluster == "":
			bad(at+".cluster", "required")
		case strings.ContainsAny(k.Cluster, " \t\n/"):
			bad(at+".cluster", "%q: no spaces or slashes", k.Cluster)
		default:
			if j, dup := seen[k.Cluster]; dup {
				bad(at+".cluster", "%q is also local.connections[%d]", k.Cluster, j)
			}
			seen[k.Cluster] = i
		}
		switch k.ConnectionType() {
		case PortForward:
			if k.ProxyAddress != "" {
				bad(at+".proxyAddress", "only with type ProxyAddress (type is PortForward)")
			}
		case ProxyAddress:
			if k.ProxyAddress == "" {
				bad(at+".proxyAddress", "required when type is ProxyAddress")
			} else if host, port, err := net.SplitHostPort(k.ProxyAddress); err != nil || host == "" {
				bad(at+".proxyAddress", "%q is not host:port", k.ProxyAddress)
			} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				bad(at+".proxyAddress", "%q: port must be a number in 1..65535", k.ProxyAddress)
			}
		default:
			bad(at+".type", "%q is not a connection type (valid: PortForward, ProxyAddress)", k.Type)
		}
		if k.Outbound != nil {
			for j, s := range k.Outbound.ExcludeCIDRs {
				if _, err := netip.ParsePrefix(s); err != nil {
					bad(fmt.Sprintf("%s.outbound.excludeCIDRs[%d]", at, j), "%q is not a CIDR", s)
				}
			}
		}
		if k.Inbound != nil && k.Inbound.Protocol != "" && k.Inbound.Protocol != InboundYamux {
			bad(at+".inbound.protocol", "%q is not supported (valid: %s; SandboxMesh carries inbound traffic over its own multiplexed tunnel)", k.Inbound.Protocol, InboundYamux)
		}
	}
	return errs
}

// parser walks decoded JSON, collecting type and key errors with paths.
type parser struct{ errs []fieldError }

func (p *parser) errorf(path, format string, args ...any) {
	p.errs = append(p.errs, fieldError{path, fmt.Sprintf(format, args...)})
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// object checks v is a mapping with only valid keys, in sorted order of keys.
func (p *parser) object(path string, v any, valid ...string) map[string]any {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.errorf(path, "want a mapping, got %s", kind(v))
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(valid, k) {
			p.errorf(path+"."+k, "unknown key (valid: %s)", strings.Join(valid, ", "))
		}
	}
	return m
}

func (p *parser) str(path string, v any) string {
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		p.errorf(path, "want a string, got %s", kind(v))
	}
	return s
}

func (p *parser) list(path string, v any) []any {
	if v == nil {
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		p.errorf(path, "want a list, got %s", kind(v))
	}
	return l
}

func (p *parser) local(path string, v any) LocalConfig {
	var c LocalConfig
	m := p.object(path, v, "connections", "virtualIPNet")
	c.VirtualIPNet = p.str(path+".virtualIPNet", m["virtualIPNet"])
	for i, e := range p.list(path+".connections", m["connections"]) {
		at := fmt.Sprintf("%s.connections[%d]", path, i)
		km := p.object(at, e, "cluster", "kubeContext", "type", "proxyAddress", "outbound", "inbound")
		if km == nil {
			if e == nil {
				p.errorf(at, "want a mapping, got null")
			}
			continue
		}
		k := Connection{
			Cluster:      p.str(at+".cluster", km["cluster"]),
			KubeContext:  p.str(at+".kubeContext", km["kubeContext"]),
			Type:         ConnectionType(p.str(at+".type", km["type"])),
			ProxyAddress: p.str(at+".proxyAddress", km["proxyAddress"]),
		}
		if om := p.object(at+".outbound", km["outbound"], "excludeCIDRs"); om != nil {
			k.Outbound = &OutboundConfig{}
			for j, s := range p.list(at+".outbound.excludeCIDRs", om["excludeCIDRs"]) {
				k.Outbound.ExcludeCIDRs = append(k.Outbound.ExcludeCIDRs, p.str(fmt.Sprintf("%s.outbound.excludeCIDRs[%d]", at, j), s))
			}
		}
		if im := p.object(at+".inbound", km["inbound"], "protocol"); im != nil {
			k.Inbound = &InboundConfig{Protocol: p.str(at+".inbound.protocol", im["protocol"])}
		}
		c.Connections = append(c.Connections, k)
	}
	return c
}
