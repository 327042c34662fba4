package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestRulesGolden renders the iptables-restore input for a current table (testdata/<case>.save) and
// compares it with testdata/<case>[.v6].rules (rewrite with -update). It then applies the script to a
// model of iptables-restore --noflush and checks the result: devmesh's chains hold exactly its rules,
// the jumps exist once, every other rule is untouched, and a second run changes nothing.
func TestRulesGolden(t *testing.T) {
	base := Config{Ports: []uint16{8080, 9090}, RedirectTo: 15006, ProxyUID: 2103}
	tests := []struct {
		name   string
		save   string
		family Family
		cfg    Config
	}{
		{name: "empty", save: "empty", family: IPv4, cfg: base},
		{name: "empty.v6", save: "empty", family: IPv6, cfg: base},
		{name: "installed", save: "installed", family: IPv4, cfg: Config{Ports: []uint16{8080}, RedirectTo: 15006, ProxyUID: 2103}},
		{name: "duplicated-jumps", save: "duplicated-jumps", family: IPv4, cfg: base},
		{name: "beside-linkerd", save: "beside-linkerd", family: IPv4, cfg: base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			current, err := os.ReadFile(filepath.Join("testdata", tt.save+".save"))
			if err != nil {
				t.Fatal(err)
			}
			script, err := Rules(tt.cfg, tt.family, string(current))
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", tt.name+".rules")
			if *update {
				if err := os.WriteFile(golden, []byte(script), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if script != string(want) {
				t.Errorf("rules differ from %s (run go test -update and review):\n%s", golden, script)
			}

			before := parseSave(t, string(current))
			after := before.clone()
			after.restoreNoflush(t, script)
			if !Installed(after.save()) {
				t.Fatalf("jumps not installed once:\n%s", after.save())
			}
			for chain, rules := range before.rules {
				if chain == ChainInbound || chain == ChainOutput {
					continue
				}
				var kept []string
				for _, r := range after.rules[chain] {
					if !slices.Contains(jumps(), r) {
						kept = append(kept, r)
					}
				}
				var orig []string
				for _, r := range rules {
					if !slices.Contains(jumps(), r) {
						orig = append(orig, r)
					}
				}
				if !slices.Equal(kept, orig) {
					t.Errorf("chain %s changed:\nbefore %q\nafter  %q", chain, orig, kept)
				}
			}
			for _, p := range tt.cfg.Ports {
				want := "--dport " + itoa(p) + " -j REDIRECT --to-ports 15006"
				if !containsSuffix(after.rules[ChainInbound], want) || !containsSuffix(after.rules[ChainOutput], want) {
					t.Errorf("port %d not redirected in both chains", p)
				}
			}
			for _, chain := range []string{ChainInbound, ChainOutput} {
				for _, r := range after.rules[chain] {
					if !strings.Contains(r, "-j RETURN") && !slices.ContainsFunc(tt.cfg.Ports, func(p uint16) bool { return strings.Contains(r, "--dport "+itoa(p)+" ") }) {
						t.Errorf("rule %q touches something other than the app ports", r)
					}
				}
			}
			// Idempotence: a second run on the result leaves the table as it is.
			script2, err := Rules(tt.cfg, tt.family, after.save())
			if err != nil {
				t.Fatal(err)
			}
			again := after.clone()
			again.restoreNoflush(t, script2)
			if again.save() != after.save() {
				t.Errorf("second run changed the table:\nfirst\n%s\nsecond\n%s", after.save(), again.save())
			}
		})
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func containsSuffix(rules []string, suffix string) bool {
	return slices.ContainsFunc(rules, func(r string) bool { return strings.HasSuffix(r, suffix) })
}

// table models one iptables table as iptables-save prints it.
type table struct {
	chains []string // declaration order
	heads  map[string]string
	rules  map[string][]string
}

func parseSave(t *testing.T, s string) *table {
	t.Helper()
	tb := &table{heads: map[string]string{}, rules: map[string][]string{}}
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			tb.chains = append(tb.chains, f[0])
			tb.heads[f[0]] = line
		case strings.HasPrefix(line, "-A "):
			chain := strings.Fields(line)[1]
			tb.rules[chain] = append(tb.rules[chain], line)
		}
	}
	return tb
}

func (tb *table) clone() *table {
	c := &table{chains: slices.Clone(tb.chains), heads: map[string]string{}, rules: map[string][]string{}}
	for k, v := range tb.heads {
		c.heads[k] = v
	}
	for k, v := range tb.rules {
		c.rules[k] = slices.Clone(v)
	}
	return c
}

// restoreNoflush applies an iptables-restore --noflush script: a user chain declaration creates or
// flushes the chain, -A appends, -D deletes the first identical rule (failing when there is none).
func (tb *table) restoreNoflush(t *testing.T, script string) {
	t.Helper()
	for line := range strings.SplitSeq(script, "\n") {
		switch {
		case line == "" || line == "*nat" || line == "COMMIT":
		case strings.HasPrefix(line, ":"):
			name := strings.Fields(line[1:])[0]
			if _, ok := tb.heads[name]; !ok {
				tb.chains = append(tb.chains, name)
				tb.heads[name] = ":" + name + " - [0:0]"
			}
			tb.rules[name] = nil
		case strings.HasPrefix(line, "-A "):
			chain := strings.Fields(line)[1]
			if _, ok := tb.heads[chain]; !ok {
				t.Fatalf("restore: chain %s does not exist: %s", chain, line)
			}
			tb.rules[chain] = append(tb.rules[chain], line)
		case strings.HasPrefix(line, "-D "):
			chain := strings.Fields(line)[1]
			rule := "-A" + strings.TrimPrefix(line, "-D")
			i := slices.Index(tb.rules[chain], rule)
			if i < 0 {
				t.Fatalf("restore: no rule to delete: %s", line)
			}
			tb.rules[chain] = slices.Delete(tb.rules[chain], i, i+1)
		default:
			t.Fatalf("restore: unexpected line %q", line)
		}
	}
}

func (tb *table) save() string {
	var b strings.Builder
	b.WriteString("*nat\n")
	for _, c := range tb.chains {
		b.WriteString(tb.heads[c] + "\n")
	}
	for _, c := range tb.chains {
		for _, r := range tb.rules[c] {
			b.WriteString(r + "\n")
		}
	}
	b.WriteString("COMMIT\n")
	return b.String()
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{name: "no ports", args: []string{"--redirect-to=15006"}},
		{name: "bad port", args: []string{"--ports=http"}},
		{name: "port zero", args: []string{"--ports=0"}},
		{name: "port too big", args: []string{"--ports=70000"}},
		{name: "redirect port intercepted", args: []string{"--ports=15006"}},
		{name: "redirect too big", args: []string{"--ports=8080", "--redirect-to=70000"}},
		{name: "root uid", args: []string{"--ports=8080", "--proxy-uid=0"}},
		{name: "bad ipv6", args: []string{"--ports=8080", "--ipv6=maybe"}},
		{name: "extra args", args: []string{"--ports=8080", "extra"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(tt.args, &bytes.Buffer{})
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestParsePortsDeduplicates(t *testing.T) {
	got, err := ParsePorts(" 8080,9090,8080, ")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []uint16{8080, 9090}) {
		t.Errorf("got %v", got)
	}
}

func TestDryRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"--ports=8080", "--dry-run", "--ipv6=true"}, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "# iptables-restore") || !strings.Contains(out.String(), "# ip6tables-restore") || !strings.Contains(out.String(), "-d ::1/128 -j RETURN") {
		t.Errorf("dry run output:\n%s", out.String())
	}
}

func TestHasGlobalIPv6(t *testing.T) {
	tests := []struct {
		name, in string
		want     bool
	}{
		{name: "loopback only", in: "00000000000000000000000000000001 01 80 10 80       lo\n"},
		{name: "link-local only", in: "fe800000000000000000000000000001 02 40 20 80     eth0\n"},
		{name: "global", in: "fe800000000000000000000000000001 02 40 20 80     eth0\nfd000000000000000000000000000005 02 40 00 80     eth0\n", want: true},
		{name: "empty", in: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HasGlobalIPv6(tt.in); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
