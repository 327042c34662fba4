// Command devmesh-init is the devmesh injector's init container: in the pod's network namespace it
// programs the nat table so that TCP connections to the app's inbound ports reach the devmesh sidecar's
// REDIRECT listener (the sidecar recovers the app port with SO_ORIGINAL_DST). The sidecar's own
// connections (by UID) and connections to the loopback address are never redirected; nothing but the
// listed ports is touched. Running it again is harmless: the rules live in two chains of its own that
// are rewritten, and the jumps to them are added once.
//
// It needs NET_ADMIN (and NET_RAW for iptables-legacy) and the iptables-save/iptables-restore binaries
// (and the ip6tables ones for IPv6 pods) in its image. See docs/devmesh-injection.md.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "devmesh-init:", err)
		os.Exit(1)
	}
}

type options struct {
	cfg       Config
	ipv6      string
	iptables  string
	ip6tables string
	dryRun    bool
	ifInet6   string
}

func parse(args []string, out io.Writer) (*options, error) {
	fs := flag.NewFlagSet("devmesh-init", flag.ContinueOnError)
	fs.SetOutput(out)
	o := &options{}
	var ports string
	var redirect uint
	fs.StringVar(&ports, "ports", "", "comma-separated app ports whose inbound TCP connections go to the sidecar (required)")
	fs.UintVar(&redirect, "redirect-to", 15006, "the sidecar's REDIRECT listener port")
	fs.Int64Var(&o.cfg.ProxyUID, "proxy-uid", 2103, "UID the sidecar runs as; its connections are never redirected")
	fs.StringVar(&o.ipv6, "ipv6", "auto", "program ip6tables too: auto (when the pod has a global IPv6 address), true or false")
	fs.StringVar(&o.iptables, "iptables", "iptables", "iptables command prefix: <prefix>-save and <prefix>-restore are run (e.g. iptables-legacy, iptables-nft)")
	fs.StringVar(&o.ip6tables, "ip6tables", "ip6tables", "ip6tables command prefix")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print the iptables-restore input for an empty table and change nothing")
	fs.StringVar(&o.ifInet6, "if-inet6", "/proc/net/if_inet6", "file listing the pod's IPv6 addresses (for --ipv6=auto)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q: %w", fs.Args(), ErrInvalidConfig)
	}
	var err error
	if o.cfg.Ports, err = ParsePorts(ports); err != nil {
		return nil, err
	}
	if redirect > 65535 {
		return nil, fmt.Errorf("--redirect-to %d: out of range: %w", redirect, ErrInvalidConfig)
	}
	o.cfg.RedirectTo = uint16(redirect)
	switch o.ipv6 {
	case "auto", "true", "false":
	default:
		return nil, fmt.Errorf("--ipv6 %q: want auto, true or false: %w", o.ipv6, ErrInvalidConfig)
	}
	if err := o.cfg.Validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parse(args, stderr)
	if err != nil {
		return err
	}
	families := []Family{IPv4}
	switch o.ipv6 {
	case "true":
		families = append(families, IPv6)
	case "auto":
		b, err := os.ReadFile(o.ifInet6)
		if err == nil && HasGlobalIPv6(string(b)) {
			families = append(families, IPv6)
		}
	}
	for _, f := range families {
		prefix := o.iptables
		if f == IPv6 {
			prefix = o.ip6tables
		}
		if o.dryRun {
			script, err := Rules(o.cfg, f, "")
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "# %s-restore --noflush\n%s", prefix, script)
			continue
		}
		if err := apply(ctx, prefix, f, o.cfg, stdout); err != nil {
			return err
		}
	}
	return nil
}

// apply reads the nat table, writes devmesh's rules and checks the result.
func apply(ctx context.Context, prefix string, f Family, cfg Config, log io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	current, err := command(ctx, prefix+"-save", nil, "-t", "nat")
	if err != nil {
		return err
	}
	script, err := Rules(cfg, f, current)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "# %s-restore --noflush\n%s", prefix, script)
	if _, err := command(ctx, prefix+"-restore", strings.NewReader(script), "--noflush", "--wait"); err != nil {
		return err
	}
	after, err := command(ctx, prefix+"-save", nil, "-t", "nat")
	if err != nil {
		return err
	}
	if !Installed(after) {
		return fmt.Errorf("%s: the jumps to %s and %s are not installed exactly once after restore:\n%s", prefix, ChainInbound, ChainOutput, after)
	}
	return nil
}

func command(ctx context.Context, name string, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}
