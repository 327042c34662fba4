//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSuiteOnEventLoops runs the behaviour tests again on the event loops, with each way of waiting,
// so that the loops keep the fast path's behaviour (the tests run on the fast path's goroutines by
// default).
func TestSuiteOnEventLoops(t *testing.T) {
	if os.Getenv("DEVMESH_TEST_EVENT_LOOP") != "" || os.Getenv("DEVMESH_TEST_NETHTTP") != "" {
		t.Skip("already in a suite run")
	}
	for _, mode := range []string{EventLoopThread, EventLoopNetpoll} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run", "^(TestFastPath|TestEventLoop|TestHeaderFormsRouteToFork|TestForwardedHeaders|TestHTTP1Features|TestRedirectMode|TestForkDown|TestBadRequests|TestRouteChangesUnderLoad|TestGracefulDrain|TestLocalOverride|TestLocalOverrideDeclinedKeepsConnection|TestCapturePoint|TestAdminAndMetrics)$", "-test.count=1")
			cmd.Env = append(os.Environ(), "DEVMESH_TEST_EVENT_LOOP="+mode)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("suite on the %s event loop: %v\n%s", mode, err, out)
			}
		})
	}
}

func loopCounter(e *env, outcome string) float64 {
	return testutil.ToFloat64(e.p.m.loopConns.WithLabelValues(outcome))
}

// waitLoopCounter waits until at least want connections ended with outcome (connections of earlier
// subtests may still be counted as they close).
func waitLoopCounter(t *testing.T, e *env, outcome string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for loopCounter(e, outcome) < want {
		if time.Now().After(deadline) {
			t.Fatalf("event loop %s connections = %v, want at least %v", outcome, loopCounter(e, outcome), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEventLoop covers what only the event loops do: which connections stay on them, the hand-offs to
// the fast path, flow control towards a slow client and the loops' own timers.
func TestEventLoop(t *testing.T) {
	mode := os.Getenv("DEVMESH_TEST_EVENT_LOOP")
	if mode == "" {
		mode = EventLoopThread
	}
	e := newEnv(t, envOpts{cfg: func(c *Config) { c.EventLoop = mode }})
	e.publish(e.forkRoute("abc", e.fork1))

	t.Run("keep-alive traffic is served on the loop", func(t *testing.T) {
		served, off := loopCounter(e, "loop"), loopCounter(e, "handed_off")
		tr := &http.Transport{}
		c := &http.Client{Transport: tr}
		for i := range 20 {
			hdr, want := h("Baggage", "sm-routing-key=abc"), "fork1"
			if i%2 == 0 {
				hdr, want = nil, "baseline"
			}
			body := strings.Repeat("x", i*1000)
			if _, ec, _ := e.do(c, "POST", fmt.Sprintf("/x%d", i), hdr, strings.NewReader(body)); ec.Name != want || ec.BodyLen != len(body) {
				t.Fatalf("request %d: %+v", i, ec)
			}
		}
		tr.CloseIdleConnections()
		waitLoopCounter(t, e, "loop", served+1)
		if loopCounter(e, "handed_off") != off {
			t.Fatal("a plain connection was handed off")
		}
	})

	t.Run("a body over 64 KiB is handed off and arrives whole", func(t *testing.T) {
		off := loopCounter(e, "handed_off")
		tr := &http.Transport{}
		c := &http.Client{Transport: tr}
		for _, n := range []int{loopMaxBody, loopMaxBody + 1} {
			if _, ec, _ := e.do(c, "PUT", "/big", nil, bytes.NewReader(make([]byte, n))); ec.BodyLen != n {
				t.Fatalf("body of %d: %+v", n, ec)
			}
		}
		tr.CloseIdleConnections()
		waitLoopCounter(t, e, "handed_off", off+1)
	})

	t.Run("a large answer reaches a slow reader whole", func(t *testing.T) {
		const size = 8 << 20
		addr, _ := rawUpstream(t, func(c net.Conn, br *bufio.Reader, head []byte) bool {
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", size)
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(i % 251)
			}
			for sent := 0; sent < size; sent += len(b) {
				if _, err := c.Write(b); err != nil {
					return false
				}
			}
			return true
		})
		e.publish(e.forkRoute("abc", e.fork1), e.routeTo("big", addr))
		rc := e.dialRaw(t)
		for range 2 {
			rc.send("GET /big HTTP/1.1\r\nHost: a\r\nBaggage: sm-routing-key=big\r\n\r\n")
			resp, err := http.ReadResponse(rc.br, &http.Request{Method: "GET"})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond) // the loop meets a full socket and must wait
			b, err := io.ReadAll(resp.Body)
			if err != nil || len(b) != size {
				t.Fatalf("read %d bytes of %d: %v", len(b), size, err)
			}
			for i := 0; i < size; i += 4093 {
				if b[i] != byte(i%(64<<10)%251) {
					t.Fatalf("byte %d = %d", i, b[i])
				}
			}
		}
	})

	t.Run("a destination by DNS name is resolved off the loop and served on it", func(t *testing.T) {
		served, off := loopCounter(e, "loop"), loopCounter(e, "handed_off")
		r := e.forkRoute("dns", e.fork2)
		r.Destination.Host = "localhost"
		e.publish(e.forkRoute("abc", e.fork1), r)
		rc := e.dialRaw(t)
		for i := range 3 { // the first waits for the name, the others find it resolved (or pooled)
			rc.send(fmt.Sprintf("GET /n%d HTTP/1.1\r\nHost: a\r\nBaggage: sm-routing-key=dns\r\n\r\n", i))
			if resp, b := rc.read("GET"); resp.StatusCode != 200 || !strings.Contains(string(b), `"fork2"`) {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
		}
		_ = rc.c.Close()
		waitLoopCounter(t, e, "loop", served+1)
		if loopCounter(e, "handed_off") != off {
			t.Fatal("the connection was handed off")
		}
	})

	t.Run("a chunked answer moves the connection, which goes on", func(t *testing.T) {
		moved := loopCounter(e, "moved")
		addr, _ := rawUpstream(t, func(c net.Conn, br *bufio.Reader, head []byte) bool {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
			return true
		})
		e.publish(e.forkRoute("abc", e.fork1), e.routeTo("chunk", addr))
		rc := e.dialRaw(t)
		rc.send("GET /c HTTP/1.1\r\nHost: a\r\nBaggage: sm-routing-key=chunk\r\n\r\n")
		if _, b := rc.read("GET"); string(b) != "hello" {
			t.Fatalf("chunked: %q", b)
		}
		rc.send("GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		if _, b := rc.read("GET"); !strings.Contains(string(b), `"/after"`) {
			t.Fatalf("after: %s", b)
		}
		waitLoopCounter(t, e, "moved", moved+1)
	})

	t.Run("the loop's timers: a partial head and an idle connection are closed", func(t *testing.T) {
		te := newEnv(t, envOpts{cfg: func(c *Config) {
			c.EventLoop, c.ReadHeaderTimeout, c.IdleTimeout = mode, 200*time.Millisecond, 400*time.Millisecond
		}})
		for _, tc := range []struct{ name, send string }{{"partial head", "GET / HTTP/1.1\r\nHost: a\r\n"}, {"idle", ""}} {
			c, err := net.Dial("tcp", te.p.Addr(te.appPort))
			if err != nil {
				t.Fatal(err)
			}
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			start := time.Now()
			_, _ = io.WriteString(c, tc.send)
			n, err := c.Read(make([]byte, 1))
			took := time.Since(start)
			_ = c.Close()
			if n != 0 || err == nil || took > 3*time.Second {
				t.Fatalf("%s: read %d, %v after %v; want the connection closed by the timeout", tc.name, n, err, took)
			}
		}
	})
}

// FuzzHeadEnd checks the loop's incremental header-block scanner against readHeaderBlock, the fast
// path's, on the same bytes arriving in two reads.
func FuzzHeadEnd(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\nrest"), uint16(5), uint16(64))
	f.Add([]byte("GET / HTTP/1.1\nHost: a\n\n"), uint16(20), uint16(20))
	f.Add([]byte("\r\n"), uint16(1), uint16(1))
	f.Add([]byte("GET / HTTP/1.1\r\nX: "+strings.Repeat("y", 5000)+"\r\n\r\n"), uint16(4097), uint16(6000))
	f.Fuzz(func(t *testing.T, data []byte, split, limit uint16) {
		lim := int(limit)%8192 + 1
		want := 0
		block, err := readHeaderBlock(bufio.NewReader(bytes.NewReader(data)), nil, lim)
		switch {
		case err == nil:
			want = len(block)
		case errors.Is(err, errHeaderTooLarge):
			want = -1
		}
		scan := 0
		k := 0
		if len(data) > 0 {
			k = int(split) % (len(data) + 1)
		}
		got := headEnd(data[:k], &scan, lim)
		if got == 0 {
			got = headEnd(data, &scan, lim)
		}
		if got != want {
			t.Fatalf("headEnd(%q, split %d, limit %d) = %d, readHeaderBlock says %d (%v)", data, k, lim, got, want, err)
		}
	})
}
