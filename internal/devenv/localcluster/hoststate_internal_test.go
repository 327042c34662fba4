package localcluster

import (
	"strings"
	"testing"
)

// TestWithoutEmptyTables: a table with only built-in ACCEPT chains is dropped, one with a rule or a chain of
// its own is kept.
func TestWithoutEmptyTables(t *testing.T) {
	save := "# Generated\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [3:180]\nCOMMIT\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j DROP\nCOMMIT\n*mangle\n:INPUT ACCEPT [0:0]\n:SM-X - [0:0]\nCOMMIT\n"
	got := strings.Join(withoutEmptyTables(save), "|")
	want := "*filter|:INPUT ACCEPT [0:0]|-A INPUT -j DROP|COMMIT|*mangle|:INPUT ACCEPT [0:0]|:SM-X - [0:0]|COMMIT"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
