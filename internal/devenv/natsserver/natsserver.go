// Package natsserver runs a real NATS server (github.com/nats-io/nats-server/v2) with JetStream inside the
// calling process, for the mq/nats tests and the local-cluster e2e. Development tooling: product code never
// imports it (test/layering).
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Config configures Start.
type Config struct {
	// Addr is the listen address host:port; port 0 picks a free port. Empty means 127.0.0.1:0.
	Addr string
	// StoreDir holds the JetStream data. Empty means a fresh temporary folder that Stop removes.
	StoreDir string
	// ReadyTimeout bounds the wait for the server to accept connections (default 10s).
	ReadyTimeout time.Duration
}

// Server is a running NATS server with JetStream on.
type Server struct {
	srv     *server.Server
	tmpDir  string
	url     string
	stopped bool
}

// Start starts a server and waits until it accepts connections.
func Start(cfg Config) (*Server, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("natsserver: addr %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("natsserver: addr %q: bad port", cfg.Addr)
	}
	if host == "" {
		return nil, fmt.Errorf("natsserver: addr %q: a host is required (127.0.0.1 in tests)", cfg.Addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s := &Server{}
	dir := cfg.StoreDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "natsserver-"); err != nil {
			return nil, fmt.Errorf("natsserver: %w", err)
		}
		s.tmpDir = dir
	}
	srv, err := server.NewServer(&server.Options{
		Host:      host,
		Port:      port,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
		NoLog:     true,
		HTTPPort:  0,
	})
	if err != nil {
		s.cleanup()
		return nil, fmt.Errorf("natsserver: %w", err)
	}
	s.srv = srv
	go srv.Start()
	if !srv.ReadyForConnections(cfg.ReadyTimeout) {
		s.Stop()
		return nil, fmt.Errorf("natsserver: not ready for connections on %s after %s", cfg.Addr, cfg.ReadyTimeout)
	}
	if !srv.JetStreamEnabled() {
		s.Stop()
		return nil, errors.New("natsserver: JetStream did not start")
	}
	s.url = srv.ClientURL()
	return s, nil
}

// URL is the client URL, e.g. nats://127.0.0.1:4222.
func (s *Server) URL() string { return s.url }

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.srv.Addr() }

// Stop shuts the server down, waits for it and removes the temporary store folder. It is idempotent.
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
	}
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
	}
}
