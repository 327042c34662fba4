package nats_test

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// startNATSProcess runs nats-server as a process of its own (built from the module's nats-server/v2 with
// go build, cached after the first time) on 127.0.0.1, so that a benchmark's consumer does not share its
// heap and garbage collector with the server, as in production. It falls back to the in-process server
// when the build fails.
func startNATSProcess(b *testing.B) *nats.Conn {
	b.Helper()
	dir := b.TempDir()
	bin := filepath.Join(dir, "nats-server")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/nats-io/nats-server/v2").CombinedOutput(); err != nil {
		b.Logf("building nats-server failed (%v: %s); using the in-process server", err, out)
		return startNATS(b)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", filepath.Join(dir, "js"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	url := "nats://127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		nc, err := nats.Connect(url, nats.Timeout(time.Second))
		if err == nil {
			b.Cleanup(nc.Close)
			return nc
		}
		if time.Now().After(deadline) {
			b.Fatalf("nats-server on %s: %v", url, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
