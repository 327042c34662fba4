package proxy

import (
	"strings"
	"testing"
)

// FuzzParsePorts checks the port-mapping parsers never panic and that a parsed list round-trips.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"15080:8080", "15080:8080/h2c,15081:5432/tcp", " 1:2 , 3:4/http ", "0:1/auto", ":", "a:b", "1:2/x", "65536:1", "1:0", ",,", "15006:8080/grpc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParsePorts(s)
		if err == nil {
			var parts []string
			for _, p := range ps {
				if p.App <= 0 || p.App > 65535 || p.Listen < 0 || p.Listen > 65535 {
					t.Fatalf("%q: out of range %+v", s, p)
				}
				parts = append(parts, p.String())
			}
			again, err := ParsePorts(strings.Join(parts, ","))
			if err != nil || len(again) != len(ps) {
				t.Fatalf("%q: round trip %v: %v", s, parts, err)
			}
			for i := range ps {
				if again[i] != ps[i] {
					t.Fatalf("%q: round trip %+v != %+v", s, again[i], ps[i])
				}
			}
		}
		_, _ = ParsePortProtocols(s)
		_, _ = ParseProtocol(s)
	})
}

func TestParsePorts(t *testing.T) {
	cases := []struct {
		in   string
		want []PortMapping
		err  string
	}{
		{"15080:8080", []PortMapping{{15080, 8080, ProtocolAuto}}, ""},
		{"15080:8080/h2c, 15081:5432/tcp,15082:80/http,15083:9090/grpc", []PortMapping{{15080, 8080, ProtocolH2C}, {15081, 5432, ProtocolTCP}, {15082, 80, ProtocolHTTP1}, {15083, 9090, ProtocolH2C}}, ""},
		{"", nil, ""},
		{"8080", nil, "want listen:app"},
		{"1:0", nil, "out of range"},
		{"1:2/quic", nil, "protocol"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePorts(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(got) != len(tc.want) {
				t.Fatalf("got %+v err %v", got, err)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %+v want %+v", got[i], tc.want[i])
				}
			}
		})
	}
	pp, err := ParsePortProtocols("5432, 9090/h2c")
	if err != nil || pp[5432] != ProtocolTCP || pp[9090] != ProtocolH2C {
		t.Fatalf("ParsePortProtocols = %v, %v", pp, err)
	}
}
