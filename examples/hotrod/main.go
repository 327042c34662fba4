// Command hotrod runs hotrod-lite, the example application of SandboxMesh:
// "hotrod frontend|route|driver|customer|worker|all [flags]", and "hotrod broker"
// (a NATS JetStream server for the asynchronous hop). See package app and
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
	var code int
	if len(os.Args) > 1 && os.Args[1] == "broker" {
		code = runBroker(ctx, os.Args[2:], os.Stderr)
	} else {
		code = app.Main(ctx, os.Args[1:], os.Getenv, os.Stderr)
	}
	stop()
	os.Exit(code)
}
