// Command hotrod runs hotrod-lite, the example application of SandboxMesh:
// "hotrod frontend|route|driver|customer|all [flags]". See package app and
// examples/README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sandboxmesh/sandboxmesh/examples/hotrod/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := app.Main(ctx, os.Args[1:], os.Getenv, os.Stderr)
	stop()
	os.Exit(code)
}
