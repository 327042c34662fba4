package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// chunkReader returns in's bytes in reads of the sizes in split (cycled; 0 counts as 1).
type chunkReader struct {
	in    []byte
	split []byte
	i     int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.in) == 0 {
		return 0, io.EOF
	}
	n := 1 << 20
	if len(r.split) > 0 {
		n = max(int(r.split[r.i%len(r.split)]), 1)
		r.i++
	}
	n = min(n, len(p), len(r.in))
	copy(p, r.in[:n])
	r.in = r.in[n:]
	return n, nil
}

// gateOut reads in through a headGate with the given read sizes, up to len(in)+extra bytes.
func gateOut(in, split []byte, limit, extra int) ([]byte, *headGate) {
	g := newHeadGate(&chunkReader{in: in, split: split}, limit)
	var out []byte
	buf := make([]byte, 512)
	for len(out) < len(in)+extra {
		n, err := g.Read(buf[:min(len(buf), len(in)+extra-len(out))])
		out = append(out, buf[:n]...)
		if err != nil {
			break
		}
	}
	return out, g
}

func TestHeadGate(t *testing.T) {
	const limit = 64
	head := func(n int) string { // a head of exactly n bytes
		const pre, post = "GET / HTTP/1.1\r\nX: ", "\r\n\r\n"
		return pre + strings.Repeat("p", n-len(pre)-len(post)) + post
	}
	chunked := "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n"
	withBody := "POST / HTTP/1.1\r\nContent-Length: 70\r\n\r\n" + strings.Repeat("b", 70)
	cases := []struct {
		name   string
		in     string
		passed int // bytes passed before the filler (len(in): all)
		state  gateState
	}{
		{"head at the limit", head(limit), len(head(limit)), gateHead},
		{"head one byte over", head(limit + 1), limit, gateFill},
		{"pipelined heads at the limit", head(limit) + head(limit), 2 * limit, gateHead},
		{"over after a content-length body bigger than the limit", withBody + head(limit+1), len(withBody) + limit, gateFill},
		{"over after a chunked body with trailers", chunked + head(limit+1), len(chunked) + limit, gateFill},
		{"empty lines before a head are not counted", "\r\n\n" + head(limit), len(head(limit)) + 3, gateHead},
		{"h2c preface: off", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + head(limit+100), -1, gateOff},
		{"upgrade: off", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n" + strings.Repeat("z", 200), -1, gateOff},
		{"unknown transfer coding: off", "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n" + head(limit+1), -1, gateOff},
		{"bad chunk size: off", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" + head(limit+1), -1, gateOff},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, split := range [][]byte{nil, {1}, {3, 7}} {
				out, g := gateOut([]byte(tc.in), split, limit, 100)
				passed := tc.passed
				if passed < 0 {
					passed = len(tc.in)
				}
				if !bytes.Equal(out[:passed], []byte(tc.in[:passed])) {
					t.Fatalf("split %v: passed %q, want %q", split, out[:passed], tc.in[:passed])
				}
				if tc.state == gateFill && strings.Trim(string(out[passed:]), "x") != "" {
					t.Fatalf("split %v: after %d bytes %q, want filler", split, passed, out[passed:])
				}
				if g.state != tc.state {
					t.Fatalf("split %v: state %d, want %d", split, g.state, tc.state)
				}
			}
		})
	}
}

// FuzzHeadGate checks that the gate passes a prefix of the stream followed only by filler, whatever the
// read sizes, and that it follows the framing as net/http does: a stream net/http reads as complete
// requests leaves the gate at the start of a head (or off).
func FuzzHeadGate(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("p", 300) + "\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nzGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	} {
		f.Add([]byte(s), []byte{1, 5, 64})
	}
	f.Fuzz(func(t *testing.T, in, split []byte) {
		const limit = 256
		whole, g := gateOut(in, nil, limit, 64)
		parts, _ := gateOut(in, split, limit, 64)
		if !bytes.Equal(whole, parts) {
			t.Fatalf("split %v changes what passes:\n%q\n%q", split, whole, parts)
		}
		m := 0
		for m < len(in) && m < len(whole) && whole[m] == in[m] {
			m++
		}
		if strings.Trim(string(whole[m:]), "x") != "" {
			t.Fatalf("%q: after %d bytes %q, not filler", in, m, whole[m:])
		}
		// net/http's reading of the same stream: every request complete, bodies included.
		br := bufio.NewReader(bytes.NewReader(in))
		for {
			if _, err := br.Peek(1); err == io.EOF {
				break
			}
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, req.Body); err != nil {
				return
			}
			if req.Method == "PRI" || req.Method == "CONNECT" || req.Header.Get("Upgrade") != "" {
				return
			}
		}
		if g.state != gateOff && g.state != gateFill && (g.state != gateHead || len(g.buf) != 0) {
			t.Fatalf("%q: net/http read whole requests, gate in state %d with %q", in, g.state, g.buf)
		}
	})
}
