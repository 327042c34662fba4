package routingkey

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestInject(t *testing.T) {
	two := Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"X-Route"}}
	tests := []struct {
		name string
		cfg  Config
		in   map[string][]string // lowercase
		key  string
		want map[string]string // lowercase header -> joined value
	}{
		{"empty", Config{}, nil, "abc", map[string]string{
			"baggage": "sm-routing-key=abc", "tracestate": "sm-routing-key=abc",
			"ot-baggage-sm-routing-key": "abc", "uberctx-sm-routing-key": "abc", "baggage-sm-routing-key": "abc",
		}},
		{"preserve members", Config{}, map[string][]string{
			"baggage":                {"userId=alice, sm-routing-key=old;p=1", "isProduction=false;x"},
			"tracestate":             {"rojo=00f067aa0ba902b7, sm-routing-key=old", "congo=t61rcWkgMzE"},
			"uberctx-sm-routing-key": {"old"},
		}, "new", map[string]string{
			"baggage":                "sm-routing-key=new,userId=alice,isProduction=false;x",
			"tracestate":             "sm-routing-key=new,rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
			"uberctx-sm-routing-key": "new",
		}},
		{"replace with OWS and other names kept", Config{}, map[string][]string{
			"baggage": {" sm-routing-key = old ; p , x-sm-routing-key=keep,,"},
		}, "new", map[string]string{"baggage": "sm-routing-key=new,x-sm-routing-key=keep"}},
		{"two names and custom", two, map[string][]string{"baggage": {"sd-routing-key=old,a=1"}}, "new", map[string]string{
			"x-route":                   "new",
			"baggage":                   "sm-routing-key=new,sd-routing-key=new,a=1",
			"tracestate":                "sm-routing-key=new,sd-routing-key=new",
			"ot-baggage-sd-routing-key": "new",
			"baggage-sm-routing-key":    "new",
		}},
		{"invalid key is a no-op", Config{}, map[string][]string{"baggage": {"a=1"}}, "NOPE", map[string]string{"baggage": "a=1", "tracestate": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustExtractor(t, tt.cfg)
			h := http.Header{}
			md := map[string][]string{}
			for k, vs := range tt.in {
				for _, v := range vs {
					h.Add(k, v)
				}
				md[k] = append([]string(nil), vs...)
			}
			e.Inject(h, tt.key)
			e.InjectMetadata(md, tt.key)
			for k, want := range tt.want {
				if got := strings.Join(h.Values(k), ","); got != want {
					t.Errorf("Inject %s = %q, want %q", k, got, want)
				}
				if got := strings.Join(md[k], ","); got != want {
					t.Errorf("InjectMetadata %s = %q, want %q", k, got, want)
				}
			}
			if Validate(tt.key) == nil {
				if got, ok := e.Extract(h); got != tt.key || !ok {
					t.Errorf("Extract after Inject = %q, %v", got, ok)
				}
				if got, ok := e.ExtractMetadata(md); got != tt.key || !ok {
					t.Errorf("ExtractMetadata after InjectMetadata = %q, %v", got, ok)
				}
			}
		})
	}
	Default.Inject(nil, "abc") // must not panic
}

func TestInjectLimits(t *testing.T) {
	t.Run("tracestate members", func(t *testing.T) {
		var ms []string
		for i := range 40 {
			ms = append(ms, fmt.Sprintf("v%d=x", i))
		}
		h := http.Header{"Tracestate": {strings.Join(ms, ",")}}
		Default.Inject(h, "abc")
		got := strings.Split(h.Get("Tracestate"), ",")
		if len(got) != MaxTracestateMembers || got[0] != "sm-routing-key=abc" || got[1] != "v0=x" || got[31] != "v30=x" {
			t.Fatalf("tracestate = %q", got)
		}
	})
	t.Run("baggage bytes", func(t *testing.T) {
		huge := "big=" + strings.Repeat("x", MaxBaggageBytes)
		h := http.Header{"Baggage": {"a=1," + huge + ",b=2"}}
		Default.Inject(h, "abc")
		if got := h.Get("Baggage"); got != "sm-routing-key=abc,a=1,b=2" {
			t.Fatalf("baggage = %q", got)
		}
		if k, ok := Default.Extract(h); k != "abc" || !ok {
			t.Fatalf("Extract = %q %v", k, ok)
		}
	})
}
