package preview

import (
	"strings"
	"testing"
	"time"
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

// FuzzVerify: only tokens the proxy signed verify; nothing panics.
func FuzzVerify(f *testing.F) {
	p := &Proxy{Secret: []byte("0123456789abcdef0123456789abcdef")}
	good := p.sign(token{Typ: "session", Org: "acme", Name: "feat", Exp: 1 << 40})
	f.Add(good)
	f.Add("")
	f.Add(".")
	f.Add("e30.e30")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := p.verify(s, "session", time.Unix(0, 0)); err == nil && strings.SplitN(s, ".", 2)[0] != strings.SplitN(good, ".", 2)[0] {
			t.Fatalf("forged token verified: %q", s)
		}
	})
}
