package rabbitmq

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartStop starts a broker, creates a vhost with rabbitmqctl, stops it and checks that no process of
// it is left (none has the broker's folder on its command line or in its environment).
func TestStartStop(t *testing.T) {
	if !Installed() {
		if os.Geteuid() != 0 {
			t.Skip("rabbitmq-server is not installed and installing it needs root")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if _, err := EnsurePackages(ctx); err != nil {
			t.Skipf("rabbitmq-server cannot be installed: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ready in %s on %s", s.ReadyTime, s.URL())
	c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Host, itoa(s.Port)), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := s.Ctl(ctx, "add_vhost", "v1"); err != nil {
		t.Error(err)
	}
	dir := s.Dir
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal("second Stop:", err)
	}
	if left := processesMentioning(dir); len(left) > 0 {
		t.Fatalf("processes left after Stop: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("folder %s left: %v", dir, err)
	}
}

func TestStartBadListen(t *testing.T) {
	for _, l := range []string{"nohost", "127.0.0.1:x", "127.0.0.1:70000"} {
		if _, err := Start(context.Background(), Config{Listen: l}); err == nil {
			t.Errorf("Start(Listen %q) = nil error", l)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// processesMentioning returns the pids whose command line or environment contains s.
func processesMentioning(s string) []string {
	var out []string
	m, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range m {
		for _, f := range []string{"cmdline", "environ"} {
			b, err := os.ReadFile(filepath.Join(p, f))
			if err == nil && strings.Contains(string(b), s) {
				out = append(out, filepath.Base(p))
				break
			}
		}
	}
	return out
}
