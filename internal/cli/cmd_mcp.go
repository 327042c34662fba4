package cli

import (
	"context"
	"io"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/internal/mcpserver"
)

func (a *App) mcpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "mcp",
		Short: "Run the MCP server on stdio (for AI agents)",
		Long: `mcp serves the Model Context Protocol on stdin/stdout, so AI coding agents
can create sandboxes, wait for them, get preview URLs and send requests through
them. It uses the same configuration as the CLI. Example client configuration:

  {"mcpServers": {"sandboxmesh": {"command": "sandboxmesh", "args": ["mcp"]}}}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.setup(true)
			if err != nil {
				return err
			}
			srv := mcpserver.New(mcpserver.Options{Client: c, Org: a.cfg.Org, APIKey: a.cfg.APIKey, PreviewBase: a.cfg.previewBase(), HTTPClient: a.httpClient(), Version: Version,
				LocalMachine: func(ctx context.Context, sb *client.Sandbox) (func(context.Context) error, error) {
					machine, err := a.localMachineForApply(sb)
					if err != nil {
						return nil, err
					}
					if err := a.syncLocal(ctx, sb, machine, true); err != nil {
						return nil, err
					}
					return func(ctx context.Context) error { return a.syncLocal(ctx, sb, machine, false) }, nil
				}})
			// Stdin and Stdout are the process's in cmd/sandboxmesh: this is the stdio transport.
			return srv.Run(cmd.Context(), &mcp.IOTransport{Reader: io.NopCloser(a.Stdin), Writer: nopWriteCloser{a.Stdout}})
		},
	}
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
