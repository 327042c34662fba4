package preview

import (
	"strings"
	"testing"
)

func TestParseBase(t *testing.T) {
	for _, tc := range []struct {
		in, login, url, err string
	}{
		{in: "", url: "http://web--feat-x.preview.localhost"},
		{in: "https://preview.example.com:8443", url: "https://web--feat-x.preview.example.com:8443"},
		{in: "http://10.0.0.5:8080/preview", url: "http://10.0.0.5:8080/preview/acme/feat-x/web", login: "http://10.0.0.5:8080/preview/acme/feat-x/web/__sandboxmesh/login?token=smp_t"},
		{in: "https://sm.example.com/preview/", url: "https://sm.example.com/preview/acme/feat-x/web"},
		{in: "/preview", url: "http://api.local:9000/preview/acme/feat-x/web"},
		{in: "preview.localhost", err: "want http(s)"},
		{in: "ftp://x", err: "want http(s)"},
		{in: "http://u:p@x", err: "want http(s)"},
		{in: "http://x/other", err: "only path allowed is /preview"},
		{in: "http://]:", err: "port"},
		{in: "http://]", err: "neither a DNS name"},
		{in: "http://x:99999", err: "port"},
		{in: "http://10.0.0.5:8080", err: "host form needs a domain"},
		{in: "http://[::1]:8080/preview", url: "http://[::1]:8080/preview/acme/feat-x/web"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			b, err := ParseBase(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseBase(%q) = %+v, %v; want error with %q", tc.in, b, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b = b.For("http", "api.local:9000")
			if got := b.EndpointURL("acme", "web", "feat-x"); got != tc.url {
				t.Errorf("EndpointURL = %q, want %q", got, tc.url)
			}
			if tc.login != "" {
				if got := b.LoginURL("acme", "web", "feat-x", "smp_t"); got != tc.login {
					t.Errorf("LoginURL = %q, want %q", got, tc.login)
				}
			}
		})
	}
}
