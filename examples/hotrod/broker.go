package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// runBroker is "hotrod broker": a NATS server with JetStream for the example's asynchronous hop
// (k8s/async), so the demo needs no image from elsewhere. It serves until ctx ends.
func runBroker(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("hotrod broker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":4222", "listen address host:port")
	store := fs.String("store", "/data", "JetStream storage folder")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := serveBroker(ctx, *addr, *store); err != nil {
		fmt.Fprintf(stderr, "hotrod broker: %v\n", err)
		return 1
	}
	return 0
}

func serveBroker(ctx context.Context, addr, store string) error {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--addr %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return fmt.Errorf("--addr %q: want a port from 1 to 65535", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	s, err := server.NewServer(&server.Options{
		ServerName: "hotrod-broker", Host: host, Port: port, JetStream: true, StoreDir: store,
		NoSigs: true, MaxPayload: 1 << 20, WriteDeadline: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	s.ConfigureLogger()
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return errors.New("not ready for connections within 30s")
	}
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
