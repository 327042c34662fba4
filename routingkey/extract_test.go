package routingkey

import (
	"errors"
	"net/http"
	"strings"
	"testing"
)

func mustExtractor(t testing.TB, cfg Config) *Extractor {
	t.Helper()
	e, err := NewExtractor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestExtract(t *testing.T) {
	two := Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"X-Route", "x-sandbox"}}
	long := strings.Repeat("a", 63)
	big := strings.Repeat("x=1,", MaxBaggageBytes/4) + "sm-routing-key=abc"
	tests := []struct {
		name   string
		cfg    Config
		h      map[string][]string // lowercase names; converted to canonical
		want   string
		wantOK bool
	}{
		{"empty", Config{}, nil, "", false},
		{"baggage simple", Config{}, hm("baggage", "sm-routing-key=abc"), "abc", true},
		{"baggage among members", Config{}, hm("baggage", "userId=alice,sm-routing-key=k1x2,isProduction=false"), "k1x2", true},
		{"baggage OWS", Config{}, hm("baggage", "a=1 ,\t sm-routing-key \t= \tabc \t, b=2"), "abc", true},
		{"baggage properties", Config{}, hm("baggage", "sm-routing-key=abc;ttl=60;flag, b=2"), "abc", true},
		{"baggage properties OWS", Config{}, hm("baggage", "sm-routing-key = abc ; ttl = 60"), "abc", true},
		{"baggage percent-encoded", Config{}, hm("baggage", "sm-routing-key=%61bc%2D1"), "abc-1", true},
		{"baggage percent lowercase hex", Config{}, hm("baggage", "sm-routing-key=%2d"), "", false},
		{"baggage bad percent", Config{}, hm("baggage", "sm-routing-key=ab%zz"), "", false},
		{"baggage truncated percent", Config{}, hm("baggage", "sm-routing-key=ab%6"), "", false},
		{"baggage percent decodes to invalid", Config{}, hm("baggage", "sm-routing-key=%41BC"), "", false},
		{"baggage several fields", Config{}, hm("baggage", "a=1", "b=2,sm-routing-key=abc"), "abc", true},
		{"baggage first valid member wins", Config{}, hm("baggage", "sm-routing-key=BAD,sm-routing-key=abc,sm-routing-key=def"), "abc", true},
		{"baggage first name wins", two, hm("baggage", "sd-routing-key=old,sm-routing-key=new"), "new", true},
		{"baggage second name", two, hm("baggage", "sd-routing-key=old"), "old", true},
		{"baggage longest key", Config{}, hm("baggage", "sm-routing-key="+long), long, true},
		{"baggage key too long", Config{}, hm("baggage", "sm-routing-key="+long+"a"), "", false},
		{"baggage prefixed name", Config{}, hm("baggage", "x-sm-routing-key=abc"), "", false},
		{"baggage suffixed name", Config{}, hm("baggage", "sm-routing-keyx=abc"), "", false},
		{"baggage upper-case name", Config{}, hm("baggage", "SM-ROUTING-KEY=abc"), "", false},
		{"baggage name in property", Config{}, hm("baggage", "a=1;sm-routing-key=abc"), "", false},
		{"baggage name in value", Config{}, hm("baggage", "a=sm-routing-key=abc"), "", false},
		{"baggage no equals", Config{}, hm("baggage", "sm-routing-key"), "", false},
		{"baggage empty value", Config{}, hm("baggage", "sm-routing-key=;p"), "", false},
		{"baggage space in value", Config{}, hm("baggage", "sm-routing-key=ab c"), "", false},
		{"baggage invalid chars", Config{}, hm("baggage", "sm-routing-key=ABC"), "", false},
		{"baggage leading dash", Config{}, hm("baggage", "sm-routing-key=-abc"), "", false},
		{"baggage empty members", Config{}, hm("baggage", ",, ,sm-routing-key=abc,,"), "abc", true},
		{"baggage malformed neighbours", Config{}, hm("baggage", "\"bad\"==,;;,sm-routing-key=abc,\x00\xff"), "abc", true},
		{"baggage oversized ignored", Config{}, hm("baggage", big), "", false},
		{"baggage oversized across fields", Config{}, hm("baggage", strings.Repeat("x", 5000), "sm-routing-key=abc,"+strings.Repeat("y", 4000)), "", false},
		{"baggage at limit", Config{}, hm("baggage", strings.Repeat("x", MaxBaggageBytes-len(",sm-routing-key=abc"))+",sm-routing-key=abc"), "abc", true},
		{"tracestate", Config{}, hm("tracestate", "congo=t61rcWkgMzE, sm-routing-key=abc ,rojo=00f067aa0ba902b7"), "abc", true},
		{"tracestate no OWS around =", Config{}, hm("tracestate", "sm-routing-key = abc"), "", false},
		{"tracestate leading space in value", Config{}, hm("tracestate", "sm-routing-key= abc"), "", false},
		{"tracestate no percent decoding", Config{}, hm("tracestate", "sm-routing-key=%61bc"), "", false},
		{"tracestate multi-tenant key not ours", Config{}, hm("tracestate", "t@sm-routing-key=abc"), "", false},
		{"tracestate several fields", Config{}, hm("tracestate", "a=1", " sm-routing-key=abc"), "abc", true},
		{"tracestate oversized", Config{}, hm("tracestate", strings.Repeat("x", MaxTracestateBytes)+",sm-routing-key=abc"), "", false},
		{"ot-baggage", Config{}, hm("ot-baggage-sm-routing-key", "abc"), "abc", true},
		{"uberctx", Config{}, hm("uberctx-sm-routing-key", "abc"), "abc", true},
		{"b3 baggage-", Config{}, hm("baggage-sm-routing-key", "abc"), "abc", true},
		{"single no trimming", Config{}, hm("uberctx-sm-routing-key", " abc"), "", false},
		{"single several fields ignored", Config{}, hm("uberctx-sm-routing-key", "abc", "abc"), "", false},
		{"single invalid then next form", Config{}, merge(hm("ot-baggage-sm-routing-key", "ABC"), hm("uberctx-sm-routing-key", "abc")), "abc", true},
		{"second name single", two, hm("uberctx-sd-routing-key", "old"), "old", true},
		{"custom header", two, hm("x-route", "abc"), "abc", true},
		{"custom header second", two, hm("x-sandbox", "abc"), "abc", true},
		{"custom not configured", Config{}, hm("x-route", "abc"), "", false},
		{"custom beats baggage", two, merge(hm("x-sandbox", "custom"), hm("baggage", "sm-routing-key=bag")), "custom", true},
		{"custom order", two, merge(hm("x-sandbox", "second"), hm("x-route", "first")), "first", true},
		{"invalid custom falls back", two, merge(hm("x-route", "no way"), hm("baggage", "sm-routing-key=bag")), "bag", true},
		{"baggage beats tracestate", Config{}, merge(hm("tracestate", "sm-routing-key=ts"), hm("baggage", "sm-routing-key=bag")), "bag", true},
		{"tracestate beats ot-baggage", Config{}, merge(hm("tracestate", "sm-routing-key=ts"), hm("ot-baggage-sm-routing-key", "ot")), "ts", true},
		{"ot beats uberctx", Config{}, merge(hm("uberctx-sm-routing-key", "ub"), hm("ot-baggage-sm-routing-key", "ot")), "ot", true},
		{"uberctx beats baggage-", Config{}, merge(hm("uberctx-sm-routing-key", "ub"), hm("baggage-sm-routing-key", "b3")), "ub", true},
		{"form beats name order across headers", two, merge(hm("baggage", "sd-routing-key=old"), hm("ot-baggage-sm-routing-key", "new")), "old", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustExtractor(t, tt.cfg)
			h := http.Header{}
			for k, vs := range tt.h {
				for _, v := range vs {
					h.Add(k, v)
				}
			}
			got, ok := e.Extract(h)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("Extract = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
			got, ok = e.ExtractMetadata(tt.h)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ExtractMetadata = %q, %v; want %q, %v", got, ok, tt.want, tt.wantOK)
			}
			if rk, rok := refExtract(e, tt.h); rk != tt.want || rok != tt.wantOK {
				t.Errorf("reference model = %q, %v; want %q, %v", rk, rok, tt.want, tt.wantOK)
			}
		})
	}
}

func hm(k string, vs ...string) map[string][]string { return map[string][]string{k: vs} }

func merge(ms ...map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = append(out[k], v...)
		}
	}
	return out
}

func TestHeaderNames(t *testing.T) {
	e := mustExtractor(t, Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"X-Route"}})
	want := []string{"x-route", "baggage", "tracestate",
		"ot-baggage-sm-routing-key", "ot-baggage-sd-routing-key",
		"uberctx-sm-routing-key", "uberctx-sd-routing-key",
		"baggage-sm-routing-key", "baggage-sd-routing-key"}
	if got := e.HeaderNames(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("HeaderNames = %q, want %q", got, want)
	}
	if got := Default.HeaderNames(); len(got) != 5 || got[0] != "baggage" {
		t.Errorf("Default.HeaderNames = %q", got)
	}
}

func TestConfig(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string // substrings, each must appear
	}{
		{"zero", Config{}, nil},
		{"two names and headers", Config{KeyNames: []string{"sm-routing-key", "sd-routing-key"}, CustomHeaders: []string{"X-Route", "x_b"}}, nil},
		{"empty name", Config{KeyNames: []string{"a", ""}}, []string{"keyNames[1]: empty"}},
		{"upper-case name", Config{KeyNames: []string{"Sm"}}, []string{"keyNames[0]:", "lowercase letter"}},
		{"dot in name", Config{KeyNames: []string{"a.b"}}, []string{"keyNames[0]:", "only lowercase"}},
		{"digit first", Config{KeyNames: []string{"1a"}}, []string{"keyNames[0]:"}},
		{"long name", Config{KeyNames: []string{strings.Repeat("a", MaxKeyNameLen+1)}}, []string{"keyNames[0]:", "at most"}},
		{"duplicate name", Config{KeyNames: []string{"a", "b", "a"}}, []string{"keyNames[2]:", "duplicates keyNames[0]"}},
		{"too many names", Config{KeyNames: make([]string, MaxKeyNames+1)}, []string{"keyNames: 9 names"}},
		{"bad header", Config{CustomHeaders: []string{"ok", "x route"}}, []string{"customHeaders[1]:", "not a valid HTTP header name"}},
		{"empty header", Config{CustomHeaders: []string{""}}, []string{"customHeaders[0]: empty"}},
		{"header is baggage", Config{CustomHeaders: []string{"Baggage"}}, []string{"customHeaders[0]:", "W3C baggage"}},
		{"header is derived", Config{CustomHeaders: []string{"uberctx-sm-routing-key"}}, []string{"customHeaders[0]:", "uberctx header"}},
		{"duplicate header", Config{CustomHeaders: []string{"x-a", "X-A"}}, []string{"customHeaders[1]:", "duplicates customHeaders[0]"}},
		{"several errors", Config{KeyNames: []string{"A"}, CustomHeaders: []string{"a b"}}, []string{"keyNames[0]", "customHeaders[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			_, nerr := NewExtractor(tt.cfg)
			if len(tt.wantErr) == 0 {
				if err != nil || nerr != nil {
					t.Fatalf("Validate = %v, NewExtractor = %v", err, nerr)
				}
				return
			}
			if err == nil || nerr == nil {
				t.Fatalf("Validate = %v, NewExtractor = %v; want errors", err, nerr)
			}
			if !errors.Is(err, ErrInvalidConfig) || !errors.Is(nerr, ErrInvalidConfig) {
				t.Errorf("errors do not wrap ErrInvalidConfig: %v", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestConfigCopy(t *testing.T) {
	names := []string{"a", "b"}
	e := mustExtractor(t, Config{KeyNames: names, CustomHeaders: []string{"X-Route"}})
	names[0] = "zzz"
	c := e.Config()
	if c.KeyNames[0] != "a" || c.CustomHeaders[0] != "x-route" {
		t.Fatalf("Config = %+v", c)
	}
	c.KeyNames[0] = "mutated"
	if e.Config().KeyNames[0] != "a" {
		t.Fatal("Config returned an alias")
	}
	if got := Default.Config().KeyNames; len(got) != 1 || got[0] != DefaultKeyName {
		t.Fatalf("default KeyNames = %q", got)
	}
}

func TestKeys(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		k := New()
		if err := Validate(k); err != nil || len(k) != 16 {
			t.Fatalf("New() = %q: %v", k, err)
		}
		if seen[k] {
			t.Fatalf("New() repeated %q", k)
		}
		seen[k] = true
	}
	tests := []struct {
		key string
		ok  bool
	}{
		{"a", true}, {"0", true}, {"abc-123", true}, {"a--b", true}, {strings.Repeat("a", 63), true},
		{"", false}, {strings.Repeat("a", 64), false}, {"-a", false}, {"a-", false}, {"A", false},
		{"a_b", false}, {"a.b", false}, {"a b", false}, {"ä", false}, {"a\x00", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			err := Validate(tt.key)
			if (err == nil) != tt.ok || validKeyRE.MatchString(tt.key) != tt.ok {
				t.Fatalf("Validate(%q) = %v, want ok=%v", tt.key, err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("error does not wrap ErrInvalidKey: %v", err)
			}
		})
	}
}
