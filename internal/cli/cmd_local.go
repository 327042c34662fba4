package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

func (a *App) localCommand() *cobra.Command {
	cmd := group(&cobra.Command{Use: "local", Short: "Reach sandboxes from your machine"})
	var (
		sandbox string
		maps    []string
	)
	proxy := &cobra.Command{
		Use:   "proxy --sandbox NAME --map TARGET@LOCAL [--map ...]",
		Short: "Serve a local port whose requests reach an in-cluster target with the sandbox's routing key",
		Long: `proxy listens on LOCAL (host:port) and sends every request through the
control plane's preview path (<preview_url>/preview/<org>/<sandbox>/<endpoint>/...)
to the in-cluster TARGET, with the sandbox's routing key injected, so your
browser or test suite hits the sandbox. TARGET must be an endpoint the sandbox
declares in spec.defaultRouteGroup.endpoints (by target URL or by endpoint
name): the preview proxy reaches nothing else. Runs until interrupted.`,
		Example: `  sandboxmesh local proxy --sandbox feat-x --map http://frontend.shop.svc:8080@localhost:9000
  curl localhost:9000/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sandbox == "" || len(maps) == 0 {
				return usageErrorf("--sandbox and at least one --map TARGET@LOCAL are required")
			}
			return a.runLocalProxy(cmd.Context(), sandbox, maps)
		},
	}
	proxy.Flags().StringVar(&sandbox, "sandbox", "", "sandbox whose routing key requests carry")
	proxy.Flags().StringArrayVar(&maps, "map", nil, "TARGET@LOCAL, e.g. http://frontend.shop.svc:8080@localhost:9000 (repeatable)")
	_ = proxy.RegisterFlagCompletionFunc("sandbox", a.completeSandboxes)
	cmd.AddCommand(proxy, a.localConnectCommand(), a.localStatusCommand(), a.localDisconnectCommand(), a.localRunCommand(), a.localOverrideCommand(), a.localDaemonCommand())
	return cmd
}

type mapping struct{ target, local string }

func parseMap(s string) (mapping, error) {
	i := strings.LastIndex(s, "@")
	if i <= 0 || i == len(s)-1 {
		return mapping{}, usageErrorf("--map %q: want TARGET@LOCAL, e.g. http://frontend.shop.svc:8080@localhost:9000", s)
	}
	m := mapping{target: s[:i], local: s[i+1:]}
	if u, err := url.Parse(m.target); err == nil && u.Host != "" && u.Scheme != "http" {
		return mapping{}, usageErrorf("--map %q: only http targets can be proxied (got %s)", s, u.Scheme)
	}
	if _, _, err := net.SplitHostPort(m.local); err != nil {
		return mapping{}, usageErrorf("--map %q: LOCAL %q: want host:port, e.g. localhost:9000", s, m.local)
	}
	return m, nil
}

func (a *App) runLocalProxy(ctx context.Context, name string, maps []string) error {
	var ms []mapping
	for _, s := range maps {
		m, err := parseMap(s)
		if err != nil {
			return err
		}
		ms = append(ms, m)
	}
	c, err := a.setup(true)
	if err != nil {
		return err
	}
	sb, err := c.GetSandbox(ctx, a.cfg.Org, name)
	if err != nil {
		return a.explain(err, "sandbox "+name)
	}
	if !sb.Status.Ready {
		fmt.Fprintf(a.Stderr, "warning: sandbox %s is not ready (%s); requests may fail until it is\n", name, blocking(sb))
	}
	var servers []*http.Server
	errc := make(chan error, len(ms))
	defer func() {
		for _, s := range servers {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = s.Shutdown(sctx)
			cancel()
		}
	}()
	for _, m := range ms {
		ep, err := client.FindEndpoint(sb, m.target)
		if err != nil {
			return withCode(ExitUsage, err)
		}
		rp, err := client.PreviewProxy(a.cfg.previewBase(), a.cfg.Org, name, ep.Name, a.cfg.APIKey, sb.RoutingKey, a.httpClient().Transport)
		if err != nil {
			return usageErrorf("preview_url: %v", err)
		}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", m.local)
		if err != nil {
			return fmt.Errorf("listen on %s: %w (is the port in use?)", m.local, err)
		}
		srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
		servers = append(servers, srv)
		go func() { errc <- srv.Serve(ln) }()
		fmt.Fprintf(a.Stdout, "http://%s -> %s (endpoint %s of sandbox %s, routing key %s)\n", ln.Addr(), ep.Target, ep.Name, name, sb.RoutingKey)
		if a.OnListen != nil {
			a.OnListen(ln.Addr().String())
		}
	}
	fmt.Fprintln(a.Stderr, "Proxying; press Ctrl-C to stop.")
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("local proxy: %w", err)
	}
}
