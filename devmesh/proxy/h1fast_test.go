package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
)

// TestSuiteOnNetHTTPPath runs the behaviour tests again with the fast path off, so that both paths keep
// the same behaviour (the tests run on the fast path by default).
func TestSuiteOnNetHTTPPath(t *testing.T) {
	if os.Getenv("DEVMESH_TEST_NETHTTP") != "" {
		t.Skip("already on the net/http path")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^(TestHeaderFormsRouteToFork|TestForwardedHeaders|TestHTTP1Features|TestRedirectMode|TestForkDown|TestBadRequests|TestRouteChangesUnderLoad|TestGracefulDrain)$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DEVMESH_TEST_NETHTTP=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("suite on the net/http path: %v\n%s", err, out)
	}
}

// rawUpstream is an HTTP/1.1 app speaking raw bytes: answer is called with each request head and
// writes the response; it returns false to close the connection.
func rawUpstream(t *testing.T, answer func(c net.Conn, br *bufio.Reader, head []byte) bool) (addr string, conns *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	conns = &atomic.Int32{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					head, err := readHeaderBlock(br, nil, 1<<20)
					if err != nil || !answer(c, br, head) {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), conns
}

// routeTo routes key to the raw upstream at addr.
func (e *env) routeTo(key, addr string) routeapi.Route {
	r := e.forkRoute(key, e.fork1)
	r.Destination.Ports[0].DestinationPort = portOf(e.t, addr)
	return r
}

// rawConn is a client connection to the sidecar speaking raw HTTP/1.1.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (e *env) dialRaw(t *testing.T) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", e.p.Addr(e.appPort))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// read reads one response and its body.
func (r *rawConn) read(method string) (*http.Response, []byte) {
	r.t.Helper()
	resp, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return resp, b
}

func counter(t *testing.T, e *env, outcome string) float64 {
	t.Helper()
	return testutil.ToFloat64(e.p.m.h1Conns.WithLabelValues(outcome))
}

// waitCounter waits for a connection counter (it moves when a connection ends).
func waitCounter(t *testing.T, e *env, outcome string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for counter(t, e, outcome) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s connections = %v, want %v", outcome, counter(t, e, outcome), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFastPath(t *testing.T) {
	if os.Getenv("DEVMESH_TEST_NETHTTP") != "" {
		t.Skip("fast path off")
	}
	e := newEnv(t, envOpts{cfg: func(c *Config) { c.ForkIdleConnTimeout = 300 * time.Millisecond }})
	e.publish(e.forkRoute("abc", e.fork1))

	t.Run("plain keep-alive traffic stays on the fast path", func(t *testing.T) {
		fast, handed := counter(t, e, "fast"), counter(t, e, "handed_over")
		tr := &http.Transport{}
		c := &http.Client{Transport: tr}
		for i := range 10 {
			hdr := h("Baggage", "sm-routing-key=abc")
			want := "fork1"
			if i%2 == 0 {
				hdr, want = nil, "baseline"
			}
			if _, ec, _ := e.do(c, "POST", "/x", hdr, strings.NewReader("body")); ec.Name != want || ec.BodyLen != 4 {
				t.Fatalf("request %d: %+v", i, ec)
			}
		}
		tr.CloseIdleConnections()
		waitCounter(t, e, "fast", fast+1)
		if counter(t, e, "handed_over") != handed {
			t.Fatal("a plain connection was handed over")
		}
	})

	t.Run("hand-over part-way keeps every byte", func(t *testing.T) {
		handed := counter(t, e, "handed_over")
		rc := e.dialRaw(t)
		rc.send("GET /first HTTP/1.1\r\nHost: a\r\nBaggage: sm-routing-key=abc\r\n\r\n")
		_, b := rc.read("GET")
		var ec echo
		_ = json.Unmarshal(b, &ec)
		if ec.Name != "fork1" || ec.Path != "/first" {
			t.Fatalf("first: %s", b)
		}
		// HTTP/1.0 is net/http's: the request (and the next, pipelined) must arrive whole.
		rc.send("GET /second HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\nBaggage: sm-routing-key=abc\r\n\r\nGET /third HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		for _, want := range []struct{ path, name string }{{"/second", "fork1"}, {"/third", "baseline"}} {
			_, b = rc.read("GET")
			ec = echo{}
			_ = json.Unmarshal(b, &ec)
			if ec.Name != want.name || ec.Path != want.path {
				t.Fatalf("after hand-over: %s, want %s at %s", b, want.path, want.name)
			}
		}
		waitCounter(t, e, "handed_over", handed+1)
	})

	t.Run("pipelined requests are answered in order", func(t *testing.T) {
		rc := e.dialRaw(t)
		rc.send("GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /p2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nBaggage: sm-routing-key=abc\r\n\r\nxyzGET /p3 HTTP/1.1\r\nHost: a\r\n\r\n")
		for _, want := range []struct{ path, name string }{{"/p1", "baseline"}, {"/p2", "fork1"}, {"/p3", "baseline"}} {
			_, b := rc.read("GET")
			var ec echo
			_ = json.Unmarshal(b, &ec)
			if ec.Path != want.path || ec.Name != want.name {
				t.Fatalf("got %s, want %s from %s", b, want.path, want.name)
			}
		}
	})

	t.Run("HEAD response has no body and the connection goes on", func(t *testing.T) {
		rc := e.dialRaw(t)
		rc.send("HEAD /h HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		resp, b := rc.read("HEAD")
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Fatalf("HEAD: %d %q", resp.StatusCode, b)
		}
		_, b = rc.read("GET")
		if !bytes.Contains(b, []byte(`"path":"/after"`)) {
			t.Fatalf("after HEAD: %s", b)
		}
	})

	t.Run("response delimited by close is re-framed as chunked", func(t *testing.T) {
		addr, _ := rawUpstream(t, func(c net.Conn, _ *bufio.Reader, _ []byte) bool {
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nX-Backend: raw\r\n\r\nuntil-")
			time.Sleep(20 * time.Millisecond)
			_, _ = io.WriteString(c, "close")
			return false
		})
		e.publish(e.forkRoute("abc", e.fork1), e.routeTo("raw", addr))
		rc := e.dialRaw(t)
		for range 2 { // the client connection survives
			rc.send("GET / HTTP/1.1\r\nHost: a\r\nBaggage: sm-routing-key=raw\r\n\r\n")
			resp, b := rc.read("GET")
			if string(b) != "until-close" || len(resp.TransferEncoding) != 1 || resp.Close {
				t.Fatalf("body %q te %v close %v", b, resp.TransferEncoding, resp.Close)
			}
		}
	})

	t.Run("interim responses are relayed", func(t *testing.T) {
		addr, _ := rawUpstream(t, func(c net.Conn, _ *bufio.Reader, _ []byte) bool {
			_, _ = io.WriteString(c, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return true
		})
		e.publish(e.forkRoute("abc", e.fork1), e.routeTo("hints", addr))
		var hints []string
		req, _ := http.NewRequest("GET", e.url+"/", nil)
		req.Header.Set("Baggage", "sm-routing-key=hints")
		req = req.WithContext(httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
				return nil
			},
		}))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" || len(hints) != 1 || hints[0] != "103 </a.css>; rel=preload" {
			t.Fatalf("body %q hints %q", b, hints)
		}
	})

	t.Run("a pooled connection the upstream closed is replaced", func(t *testing.T) {
		// This upstream answers one request per connection and closes it without saying so.
		addr, conns := rawUpstream(t, func(c net.Conn, br *bufio.Reader, head []byte) bool {
			if i := bytes.Index(bytes.ToLower(head), []byte("content-length: ")); i >= 0 {
				var n int
				fmt.Sscanf(string(head[i+16:]), "%d", &n)
				_, _ = br.Discard(n)
			}
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
			return false
		})
		e.publish(e.forkRoute("abc", e.fork1), e.routeTo("flaky", addr))
		c := &http.Client{}
		for i, body := range []string{"", "", "small", strings.Repeat("b", 200<<10), "", strings.Repeat("c", 200<<10)} {
			time.Sleep(10 * time.Millisecond) // the close reaches the sidecar first
			method := "GET"
			if body != "" {
				method = "POST"
			}
			resp, _, b := e.do(c, method, "/", h("Baggage", "sm-routing-key=flaky"), strings.NewReader(body))
			if resp.StatusCode != 200 || string(b) != "ok" {
				t.Fatalf("request %d (%d bytes): %d %s", i, len(body), resp.StatusCode, b)
			}
		}
		if conns.Load() < 6 {
			t.Fatalf("%d upstream connections for 6 requests", conns.Load())
		}
	})

	t.Run("an early answer to a large upload ends the connection", func(t *testing.T) {
		rc := e.dialRaw(t)
		go func() {
			_, _ = io.WriteString(rc.c, fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: a\r\nX-Reject: 1\r\nContent-Length: %d\r\n\r\n", 64<<20))
			chunk := bytes.Repeat([]byte("x"), 64<<10)
			for range 1024 {
				if _, err := rc.c.Write(chunk); err != nil {
					return
				}
			}
		}()
		resp, _ := rc.read("POST")
		if resp.StatusCode != 413 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if _, err := rc.br.ReadByte(); err == nil {
			t.Fatal("connection still open after an unread upload")
		}
	})

	t.Run("an upload that reports after the answer keeps both connections", func(t *testing.T) {
		// The upload goroutine's last flush lets the upstream answer, so the answer can be relayed
		// before the goroutine reports; the hook makes that happen every time.
		delay := func() { time.Sleep(50 * time.Millisecond) }
		testHookUploadDone.Store(&delay)
		t.Cleanup(func() { testHookUploadDone.Store(nil) })
		addr, conns := rawUpstream(t, func(c net.Conn, br *bufio.Reader, _ []byte) bool {
			n, err := io.Copy(io.Discard, httputil.NewChunkedReader(br))
			if err != nil {
				return false
			}
			if line, err := br.ReadString('\n'); err != nil || line != "\r\n" {
				return false
			}
			fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(fmt.Sprint(n)), fmt.Sprint(n))
			return true
		})
		e.publish(e.forkRoute("abc", e.fork1), e.routeTo("late", addr))
		rc := e.dialRaw(t)
		const up = "POST /upload HTTP/1.1\r\nHost: a\r\nBaggage: sm-routing-key=late\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
		rc.send(up + up + "GET /after HTTP/1.1\r\nHost: a\r\n\r\n")
		for i := range 2 {
			if resp, b := rc.read("POST"); resp.StatusCode != 200 || string(b) != "5" || resp.Close {
				t.Fatalf("upload %d: %d %q close %v", i, resp.StatusCode, b, resp.Close)
			}
		}
		if _, b := rc.read("GET"); !bytes.Contains(b, []byte(`"path":"/after"`)) {
			t.Fatalf("pipelined request: %s", b)
		}
		if n := conns.Load(); n != 1 {
			t.Fatalf("%d upstream connections for two uploads, want 1 (pooled)", n)
		}
	})

	t.Run("chunked upload with trailers reaches the app", func(t *testing.T) {
		rc := e.dialRaw(t)
		rc.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nBaggage: sm-routing-key=abc\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n")
		_, b := rc.read("POST")
		if string(b) != "fork1 got 11 bytes err=<nil>" {
			t.Fatalf("body %q", b)
		}
		// Malformed chunk framing never reaches the app as a whole body.
		rc2 := e.dialRaw(t)
		rc2.send("POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(rc2.br, nil)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			if strings.Contains(string(b), "err=<nil>") {
				t.Fatalf("malformed chunked body accepted: %d %q", resp.StatusCode, b)
			}
		}
	})

	t.Run("malformed upstream response is a 502 naming the sandbox", func(t *testing.T) {
		addr, _ := rawUpstream(t, func(c net.Conn, _ *bufio.Reader, _ []byte) bool {
			_, _ = io.WriteString(c, "HTTP/1.1 2xx Nope\r\n\r\n")
			return false
		})
		e.publish(e.forkRoute("abc", e.fork1), e.routeTo("bad", addr))
		resp, _, b := e.do(&http.Client{}, "GET", "/", h("Baggage", "sm-routing-key=bad"), nil)
		var eb errorBody
		if err := json.Unmarshal(b, &eb); err != nil || resp.StatusCode != 502 || eb.Sandbox != "sandboxes/sb-bad" || eb.Code != "fork_unreachable" {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	})

	t.Run("idle fork connections are closed on route changes and after their idle timeout", func(t *testing.T) {
		e.publish(e.forkRoute("abc", e.fork1))
		c := &http.Client{}
		e.do(c, "GET", "/", h("Baggage", "sm-routing-key=abc"), nil)
		// The connection is pooled right after the response reached the client: wait for it.
		deadline := time.Now().Add(5 * time.Second)
		for e.p.fastFork.idleConns() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("no pooled fork connection")
			}
			time.Sleep(time.Millisecond)
		}
		e.publish(e.forkRoute("abc", e.fork2))
		e.do(c, "GET", "/", h("Baggage", "sm-routing-key=zzz"), nil) // the next lookup sees the new table
		if n := e.p.fastFork.idleConns(); n != 0 {
			t.Fatalf("%d idle fork connections after a route change", n)
		}
		e.do(c, "GET", "/", h("Baggage", "sm-routing-key=abc"), nil)
		deadline = time.Now().Add(5 * time.Second)
		for e.p.fastFork.idleConns() != 0 {
			if time.Now().After(deadline) {
				t.Fatal("idle fork connection kept past its idle timeout")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("idle client connections close at shutdown", func(t *testing.T) {
		e2 := newEnv(t, envOpts{})
		rc := e2.dialRaw(t)
		rc.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		rc.read("GET")
		done := make(chan error, 1)
		go func() { done <- e2.p.Shutdown(context.Background()) }()
		if _, err := rc.br.ReadByte(); err == nil {
			t.Fatal("idle connection got bytes at shutdown")
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}
