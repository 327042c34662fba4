package preview

import (
	"strings"
	"testing"
)

// FuzzSplitHost: parsing preview hosts never panics and round-trips with URL.
func FuzzSplitHost(f *testing.F) {
	for _, s := range []string{"web--feat.preview.localhost", "web--feat.preview.localhost:8080", "a--b--c.preview.localhost", "--x.preview.localhost", "preview.localhost", "x.y--z.preview.localhost", "WEB--FEAT.PREVIEW.LOCALHOST", "[::1]:80"} {
		f.Add(s)
	}
	p := &Proxy{Domain: "preview.localhost:8080", Scheme: "http"}
	f.Fuzz(func(t *testing.T, host string) {
		ep, name, ok := p.splitHost(host)
		if !ok {
			return
		}
		if ep == "" || name == "" || strings.Contains(ep, ".") || strings.Contains(name, ".") {
			t.Fatalf("split %q into %q %q", host, ep, name)
		}
		u := p.URL(ep, name)
		ep2, name2, ok2 := p.splitHost(strings.TrimPrefix(u, "http://"))
		if !ok2 || ep2 != ep || name2 != name {
			t.Fatalf("round trip of %q: %q %q %v", host, ep2, name2, ok2)
		}
	})
}

// FuzzValidToken: only tokens of the generated shape (smp_ and 32 base32
// characters) pass the check made before any database look-up; nothing panics.
func FuzzValidToken(f *testing.F) {
	for _, s := range []string{"smp_abcdefghijklmnopqrstuvwxyz234567", "", "smp_", "smk_abcdefghijklmnopqrstuvwxyz234567", "smp_ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "smp_abcdefghijklmnopqrstuvwxyz23456'", "e30.e30"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidToken(s) {
			return
		}
		if len(s) != 36 || !strings.HasPrefix(s, TokenPrefix) || strings.ToLower(s) != s || strings.ContainsAny(s, "0189=./;, \"\x00\n") {
			t.Fatalf("malformed token accepted: %q", s)
		}
	})
}
