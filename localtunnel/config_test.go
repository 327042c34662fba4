package localtunnel

import (
	"strings"
	"testing"
)

func TestParseLocalConfig(t *testing.T) {
	c, err := ParseLocalConfig([]byte(`
connections:
  - cluster: dev
    kubeContext: kind-dev
    outbound:
      excludeCIDRs: [10.0.0.0/8, 192.168.0.0/16]
    inbound:
      protocol: yamux
  - cluster: staging
    type: ProxyAddress
    proxyAddress: gateway.staging.internal:7777
virtualIPNet: 242.242.0.1/16
`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Connections) != 2 || c.Connections[0].ConnectionType() != PortForward || c.Connections[1].ProxyAddress != "gateway.staging.internal:7777" ||
		c.Connections[0].Outbound.ExcludeCIDRs[1] != "192.168.0.0/16" || c.VirtualIPNet != "242.242.0.1/16" {
		t.Fatalf("parsed %+v", c)
	}
	if k, err := c.Connection("staging"); err != nil || k.ConnectionType() != ProxyAddress {
		t.Fatalf("Connection(staging) = %+v, %v", k, err)
	}
	if _, err := c.Connection(""); err == nil || !strings.Contains(err.Error(), "dev, staging") {
		t.Fatalf("Connection(\"\") with two = %v", err)
	}
	if _, err := c.Connection("prod"); err == nil || !strings.Contains(err.Error(), `"prod"`) {
		t.Fatalf("Connection(prod) = %v", err)
	}
}

func TestParseLocalConfigErrors(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"unknown key":          {"connections:\n- cluster: a\n  proxyAdress: x:1\n", "local.connections[0].proxyAdress: unknown key (valid: cluster, kubeContext, type, proxyAddress, outbound, inbound)"},
		"unknown top key":      {"debug: true\n", "local.debug: unknown key (valid: connections, virtualIPNet)"},
		"proxy required":       {"connections:\n- cluster: a\n- cluster: b\n  type: ProxyAddress\n", "local.connections[1].proxyAddress: required when type is ProxyAddress"},
		"proxy not host:port":  {"connections:\n- cluster: b\n  type: ProxyAddress\n  proxyAddress: nope\n", `local.connections[0].proxyAddress: "nope" is not host:port`},
		"proxy with forward":   {"connections:\n- cluster: b\n  proxyAddress: h:1\n", "local.connections[0].proxyAddress: only with type ProxyAddress"},
		"bad type":             {"connections:\n- cluster: b\n  type: ControlPlaneProxy\n", `local.connections[0].type: "ControlPlaneProxy" is not a connection type (valid: PortForward, ProxyAddress)`},
		"cluster required":     {"connections:\n- kubeContext: x\n", "local.connections[0].cluster: required"},
		"duplicate cluster":    {"connections:\n- cluster: a\n- cluster: a\n", `local.connections[1].cluster: "a" is also local.connections[0]`},
		"bad CIDR":             {"connections:\n- cluster: a\n  outbound:\n    excludeCIDRs: [10.0.0.0/33]\n", `local.connections[0].outbound.excludeCIDRs[0]: "10.0.0.0/33" is not a CIDR`},
		"wrong type":           {"connections:\n- cluster: 3\n", "local.connections[0].cluster: want a string, got a number"},
		"connections not list": {"connections: dev\n", "local.connections: want a list, got a string"},
		"inbound protocol":     {"connections:\n- cluster: a\n  inbound:\n    protocol: ssh\n", `local.connections[0].inbound.protocol: "ssh" is not supported (valid: yamux`},
		"outbound unknown":     {"connections:\n- cluster: a\n  outbound:\n    macOSVPNInterface: utun3\n", "local.connections[0].outbound.macOSVPNInterface: unknown key (valid: excludeCIDRs)"},
		"virtualIPNet":         {"virtualIPNet: 242.242/16\n", `local.virtualIPNet: "242.242/16" is not a CIDR`},
		"null entry":           {"connections:\n- null\n", "local.connections[0]: want a mapping, got null"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseLocalConfig([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	// every error is reported, not just the first
	_, err := ParseLocalConfig([]byte("connections:\n- cluster: a\n  typo: 1\n- type: ProxyAddress\n"))
	if err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Fatalf("want several errors, got %v", err)
	}
}

func FuzzParseLocalConfig(f *testing.F) {
	f.Add([]byte("connections:\n- cluster: dev\n  type: ProxyAddress\n  proxyAddress: h:1\n"))
	f.Add([]byte("connections:\n- cluster: a\n  outbound:\n    excludeCIDRs: [10.0.0.0/8]\n  inbound: {protocol: yamux}\nvirtualIPNet: 242.242.0.1/16\n"))
	f.Add([]byte("{\"connections\":[null, 1, \"x\", {\"cluster\": {}}]}"))
	f.Add([]byte("- - -"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseLocalConfig(b)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("parsed config does not validate: %v", err)
		}
		for _, k := range c.Connections {
			if k.Cluster == "" || (k.ConnectionType() == ProxyAddress) != (k.ProxyAddress != "") {
				t.Fatalf("accepted connection %+v", k)
			}
		}
	})
}
