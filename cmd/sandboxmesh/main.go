// Command sandboxmesh is the SandboxMesh CLI and MCP server (`sandboxmesh mcp`);
// its logic lives in internal/cli. See docs/cli.md and docs/mcp.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sandboxmesh/sandboxmesh/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	app := &cli.App{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr}
	code := app.Execute(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}
