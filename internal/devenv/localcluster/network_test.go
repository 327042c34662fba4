package localcluster

import (
	"strings"
	"testing"
)

func TestFilterRules(t *testing.T) {
	dump := `*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:KUBE-FORWARD - [0:0]
:SM-GUARD-FWD - [0:0]
:OTHER - [0:0]
-A FORWARD -j SM-GUARD-FWD
-A FORWARD -m comment --comment "kubernetes forwarding rules" -j KUBE-FORWARD
-A FORWARD -j OTHER
-A KUBE-FORWARD -j ACCEPT
-A SM-GUARD-FWD -i smbr0 ! -o smbr0 -j DROP
-A OTHER -j ACCEPT
COMMIT
`
	got, changed := filterRules(dump)
	if !changed {
		t.Fatal("changed = false")
	}
	for _, gone := range []string{"KUBE-", "SM-GUARD"} {
		if strings.Contains(got, gone) {
			t.Errorf("%s left in:\n%s", gone, got)
		}
	}
	for _, kept := range []string{":OTHER", "-A FORWARD -j OTHER", "-A OTHER -j ACCEPT", "COMMIT"} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q removed:\n%s", kept, got)
		}
	}
}

func TestAddresses(t *testing.T) {
	c := Defaults()
	if got := c.NodeIP().String(); got != "10.244.0.1" {
		t.Errorf("NodeIP = %s", got)
	}
	if got := c.APIServiceIP().String(); got != "10.96.0.1" {
		t.Errorf("APIServiceIP = %s", got)
	}
	if got := lastAddr(c.ServiceCIDR).String(); got != "10.96.255.254" {
		t.Errorf("lastAddr = %s", got)
	}
	if err := c.validate(); err != nil {
		t.Errorf("validate defaults: %v", err)
	}
}
