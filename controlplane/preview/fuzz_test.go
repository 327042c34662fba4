package preview

import (
	"net/http"
	"strings"
	"testing"
)

// FuzzSplitHost: parsing preview hosts never panics and round-trips with URL.
func FuzzSplitHost(f *testing.F) {
	for _, s := range []string{"web--feat.preview.localhost", "web--feat.preview.localhost:8080", "a--b--c.preview.localhost", "--x.preview.localhost", "preview.localhost", "x.y--z.preview.localhost", "WEB--FEAT.PREVIEW.LOCALHOST", "[::1]:80"} {
		f.Add(s)
	}
	p := &Proxy{Base: Base{Scheme: "http", Host: "preview.localhost:8080"}}
	f.Fuzz(func(t *testing.T, host string) {
		ep, name, ok := p.splitHost(host)
		if !ok {
			return
		}
		if ep == "" || name == "" || strings.Contains(ep, ".") || strings.Contains(name, ".") {
			t.Fatalf("split %q into %q %q", host, ep, name)
		}
		u := p.Base.EndpointURL("org", ep, name)
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

// FuzzParseBase: a --preview-url either parses into a base whose endpoint
// URLs parse back to the same org, name and endpoint, or is refused; nothing panics.
func FuzzParseBase(f *testing.F) {
	for _, s := range []string{"", "/preview", "/preview/", "http://preview.localhost", "https://preview.example.com:8443",
		"http://10.0.0.1:8080/preview", "https://sm.example.com/preview/", "ftp://x", "http://x/y", "http://u:p@x", "http://x?q", "preview.localhost"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBase(s)
		if err != nil {
			return
		}
		b = b.For("http", "api.example:8080")
		u := b.EndpointURL("acme", "web", "feat-x")
		r, err := http.NewRequest(http.MethodGet, u+"/x", nil)
		if err != nil {
			t.Fatalf("base %q gave an unparsable URL %q: %v", s, u, err)
		}
		p := &Proxy{Base: b}
		req, ok := p.parse(r)
		if !ok || req.name != "feat-x" || req.endpoint != "web" || req.path != "/x" || (req.org != "" && req.org != "acme") {
			t.Fatalf("base %q: URL %q parsed back as %+v %v", s, u, req, ok)
		}
	})
}
