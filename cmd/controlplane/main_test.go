package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs the binary's main logic until the test stops it, and waits for /readyz.
func start(t *testing.T, args ...string) (string, *syncBuf, func()) {
	t.Helper()
	addr := freeAddr(t)
	var out, logs syncBuf
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"--listen", addr, "--log-level", "warn", "--metrics-listen", "127.0.0.1:0"}, args...), &out, &logs)
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v; logs %s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return addr, &out, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}
}

func TestZeroConfigBootstrap(t *testing.T) {
	dir := t.TempDir()
	addr, out, stop := start(t, "--data-dir", dir)
	text := out.String()
	i := strings.Index(text, "smk_")
	if i < 0 {
		t.Fatalf("no bootstrap key printed: %q", text)
	}
	key := strings.Fields(text[i:])[0]
	req, _ := http.NewRequest("GET", "http://"+addr+"/api/v2/orgs/default/sandboxes", nil)
	req.Header.Set("sandboxmesh-api-key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("bootstrap key does not work: %v %v", resp, err)
	}
	resp.Body.Close()
	stop()

	// A restart on the same data keeps the key and prints nothing.
	_, out2, stop2 := start(t, "--data-dir", dir)
	if strings.Contains(out2.String(), "smk_") {
		t.Fatalf("key printed again: %q", out2.String())
	}
	stop2()
}

func TestBootstrapKeyFromEnv(t *testing.T) {
	key := strongKey(t)
	dir := t.TempDir()
	t.Setenv("SANDBOXMESH_BOOTSTRAP_KEY", key)
	get := func(addr, k string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/api/v2/orgs/acme", nil)
		req.Header.Set("signadot-api-key", k)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	addr, out, stop := start(t, "--data-dir", dir, "--bootstrap-org", "acme")
	if strings.Contains(out.String(), "smk_") {
		t.Fatalf("env key printed: %q", out.String())
	}
	if code := get(addr, key); code != 200 {
		t.Fatalf("env key: %d", code)
	}
	stop()

	// A restart with another value does not add a second admin key.
	other := strongKey(t)
	t.Setenv("SANDBOXMESH_BOOTSTRAP_KEY", other)
	addr, _, stop = start(t, "--data-dir", dir, "--bootstrap-org", "acme", "--log-level", "warn")
	if code := get(addr, other); code != 401 {
		t.Fatalf("changed env key after the first start: %d, want 401", code)
	}
	if code := get(addr, key); code != 200 {
		t.Fatalf("first env key after a restart: %d", code)
	}
	stop()
}

func TestWeakBootstrapKey(t *testing.T) {
	for _, k := range []string{"changeme", "smk_fromtheenvironment0000000000"} {
		t.Run(k, func(t *testing.T) {
			t.Setenv("SANDBOXMESH_BOOTSTRAP_KEY", k)
			var out, logs bytes.Buffer
			err := run(context.Background(), []string{"--data-dir", t.TempDir(), "--listen", "127.0.0.1:0", "--metrics-listen", "none"}, &out, &logs)
			if err == nil || !strings.Contains(err.Error(), "SANDBOXMESH_BOOTSTRAP_KEY") || !strings.Contains(err.Error(), "weak") {
				t.Fatalf("weak key at start-up: %v", err)
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--database-url", "mysql://x"},
		{"--log-level", "loud"},
		{"--preview-url", "ftp://x", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"},
		{"--artifacts", "ftp://x/y", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"},
		{"--artifacts", "s3://user:secret@bucket/p", "--data-dir", t.TempDir(), "--listen", "127.0.0.1:0"},
	} {
		var out, logs bytes.Buffer
		if err := run(context.Background(), args, &out, &logs); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

func TestDefaultAdvertiseURL(t *testing.T) {
	ifaces := func(addrs ...string) func() ([]net.Addr, error) {
		return func() ([]net.Addr, error) {
			var out []net.Addr
			for _, a := range addrs {
				_, n, err := net.ParseCIDR(a)
				if err != nil {
					t.Fatal(err)
				}
				ip, _, _ := net.ParseCIDR(a)
				out = append(out, &net.IPNet{IP: ip, Mask: n.Mask})
			}
			return out, nil
		}
	}
	wildcard := &net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}
	for _, tc := range []struct {
		addr   net.Addr
		ifaces func() ([]net.Addr, error)
		want   string
	}{
		{wildcard, ifaces("127.0.0.1/8", "::1/128", "fe80::1/64", "fd00::7/64", "10.0.3.7/24"), "http://10.0.3.7:8080"},
		{wildcard, ifaces("127.0.0.1/8", "fd00::7/64"), "http://[fd00::7]:8080"},
		{wildcard, ifaces("127.0.0.1/8"), ""},
		{&net.TCPAddr{IP: net.ParseIP("192.168.1.5"), Port: 9000}, ifaces("10.0.3.7/24"), "http://192.168.1.5:9000"},
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 9000}, ifaces("10.0.3.7/24"), "http://127.0.0.1:9000"},
	} {
		if got := defaultAdvertiseURL(tc.addr, tc.ifaces); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestMetricsListener: /metrics is served on its own listener, not on the API's.
func TestMetricsListener(t *testing.T) {
	maddr := freeAddr(t)
	addr, _, stop := start(t, "--data-dir", t.TempDir(), "--metrics-listen", maddr)
	defer stop()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil || resp.StatusCode != 404 {
		t.Fatalf("/metrics on the API listener: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + maddr + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics on the metrics listener: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestOpenArtifactStore(t *testing.T) {
	data := t.TempDir()
	if s, err := openArtifactStore("none", data, 1<<20); s != nil || err != nil {
		t.Fatalf("none = %v, %v; want no store", s, err)
	}
	for _, at := range []string{"", filepath.Join(data, "elsewhere"), "file://" + filepath.Join(data, "url")} {
		s, err := openArtifactStore(at, data, 10)
		if err != nil {
			t.Fatalf("%q: %v", at, err)
		}
		key, _ := artifacts.Key("o", "j", 0, artifacts.SpaceUser, "f")
		if _, err := s.Put(context.Background(), key, strings.NewReader("0123456789x"), -1, ""); !errors.Is(err, artifacts.ErrTooLarge) {
			t.Fatalf("%q: Put of 11 bytes with --max-artifact-bytes 10 = %v; want ErrTooLarge", at, err)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "artifacts")); err != nil {
		t.Fatalf("default folder <data-dir>/artifacts: %v", err)
	}
}
