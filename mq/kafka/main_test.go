package kafka_test

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// envKfakeServe makes the test binary a kfake broker process (startKfakeProcess).
const envKfakeServe = "SANDBOXMESH_TEST_KFAKE_SERVE"

func TestMain(m *testing.M) {
	if os.Getenv(envKfakeServe) != "" {
		os.Exit(serveKfake())
	}
	os.Exit(m.Run())
}

// serveKfake runs a one-broker kfake cluster on 127.0.0.1, prints its address on stdout and serves until
// stdin closes.
func serveKfake() int {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kfake:", err)
		return 1
	}
	defer c.Close()
	fmt.Println("ADDR " + strings.Join(c.ListenAddrs(), ","))
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// startKfakeProcess runs kfake in a process of its own (this test binary, re-executed) and returns its
// broker addresses: a benchmark's process CPU is then the consumer's alone, as with a real broker.
func startKfakeProcess(tb testing.TB) []string {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envKfakeServe+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			if a, ok := strings.CutPrefix(s.Text(), "ADDR "); ok {
				line <- a
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case a := <-line:
		return strings.Split(a, ",")
	case <-time.After(30 * time.Second):
		tb.Fatal("kfake process: no address within 30s")
		return nil
	}
}
