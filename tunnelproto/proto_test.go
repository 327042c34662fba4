package tunnelproto

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
)

type testReq struct {
	Address string `json:"address"`
}

// sessionPair returns a yamux client and server over a real loopback TCP connection.
func sessionPair(t *testing.T) (client, server *yamux.Session) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-acc
	client, err = yamux.Client(c, YamuxConfig(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	server, err = yamux.Server(s, YamuxConfig(nil, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

func echoServer(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return l.Addr().String()
}

func TestDialServe(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cl, sv := sessionPair(t)
	echo := echoServer(t)
	go AcceptStreams(ctx, sv, func(st *yamux.Stream) {
		_ = Serve(ctx, st, func(ctx context.Context, line []byte) (net.Conn, error) {
			var r testReq
			if err := DecodeStrict(line, &r); err != nil {
				return nil, fmt.Errorf("malformed: %w", err)
			}
			if r.Address != echo {
				return nil, fmt.Errorf("%s: %w", r.Address, ErrForbidden)
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", r.Address)
		})
	})

	t.Run("ok", func(t *testing.T) {
		st, err := cl.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		c, err := Dial(ctx, st, testReq{Address: echo})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		msg := bytes.Repeat([]byte("hello tunnel "), 10000)
		go func() { _, _ = c.Write(msg) }()
		got := make([]byte, len(msg))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("echo: %v (equal %v)", err, bytes.Equal(got, msg))
		}
	})
	t.Run("forbidden", func(t *testing.T) {
		st, _ := cl.OpenStream()
		_, err := Dial(ctx, st, testReq{Address: "10.0.0.1:80"})
		var re *RemoteError
		if !errors.As(err, &re) || !errors.Is(err, ErrRefused) || !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "10.0.0.1:80") {
			t.Fatalf("got %v, want a forbidden *RemoteError naming the address", err)
		}
	})
	t.Run("failed dial is not forbidden", func(t *testing.T) {
		st, _ := cl.OpenStream()
		_, err := Dial(ctx, st, map[string]any{"address": echo, "extra": 1})
		if !errors.Is(err, ErrRefused) || errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "unknown field") {
			t.Fatalf("got %v, want a non-forbidden refusal naming the unknown field", err)
		}
	})
	t.Run("request line too long", func(t *testing.T) {
		st, _ := cl.OpenStream()
		_, err := Dial(ctx, st, testReq{Address: strings.Repeat("a", MaxLine)})
		if !errors.Is(err, ErrLineTooLong) {
			t.Fatalf("got %v, want ErrLineTooLong", err)
		}
	})
	t.Run("peer sends an endless line", func(t *testing.T) {
		st, _ := cl.OpenStream()
		go func() { _, _ = st.Write(bytes.Repeat([]byte("x"), 3*MaxLine)) }()
		_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
		// the server gives up at MaxLine and closes the stream without an answer
		if b, _ := io.ReadAll(st); len(b) != 0 {
			t.Fatalf("answer %q to an over-long request", b)
		}
	})
	t.Run("context deadline bounds a silent peer", func(t *testing.T) {
		a, b := net.Pipe()
		defer b.Close()
		dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer dcancel()
		go func() { _, _ = io.Copy(io.Discard, b) }()
		_, err := Dial(dctx, a, testReq{Address: echo})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want context.DeadlineExceeded", err)
		}
	})
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte("{\"ok\":true}\n"), 16)
	f.Add([]byte("no newline"), 4)
	f.Add(bytes.Repeat([]byte("a"), 5000), 4096)
	f.Add([]byte("\n\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, max int) {
		if max <= 0 || max > 1<<16 {
			return
		}
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		line, err := ReadLine(br, max)
		if err != nil {
			return
		}
		if len(line)+1 > max {
			t.Fatalf("line of %d bytes accepted with limit %d", len(line), max)
		}
		if bytes.IndexByte(line, '\n') >= 0 || !bytes.HasPrefix(in, append(line, '\n')) {
			t.Fatalf("line %q is not the first line of %q", line, in)
		}
	})
}

// FuzzDialResult feeds arbitrary answers to Dial: it never panics, and it
// returns a conn only for an OK result.
func FuzzDialResult(f *testing.F) {
	f.Add([]byte("{\"ok\":true}\nraw"))
	f.Add([]byte("{\"ok\":false,\"error\":\"nope\",\"code\":\"forbidden\"}\n"))
	f.Add([]byte("{\"ok\":tru"))
	f.Add([]byte("[]\n"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		a, b := net.Pipe()
		defer b.Close()
		go func() {
			br := bufio.NewReader(b)
			_, _ = ReadLine(br, MaxLine)
			_, _ = b.Write(answer)
			b.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := Dial(ctx, a, testReq{Address: "x:1"})
		if err == nil {
			defer c.Close()
			if !bytes.Contains(answer, []byte("true")) {
				t.Fatalf("conn returned for answer %q", answer)
			}
		}
	})
}
