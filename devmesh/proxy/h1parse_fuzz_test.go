package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
)

var fuzzKeyHeader = func(name []byte) int {
	switch {
	case eqFold(name, "baggage"):
		return 0
	case eqFold(name, "tracestate"):
		return 1
	}
	return -1
}

// FuzzParseRequest checks the fast path's request parser against net/http's: whatever the fast path
// accepts, net/http reads the same way (method, target, Host, framing), so the fast path never forwards
// a request net/http would have read differently. It must never panic.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: cart.shop.svc:8080\r\nContent-Length: 5\r\nBaggage: sm-routing-key=abc\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close, X-Drop\r\nX-Drop: 1\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\nTE: trailers\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Sandboxmesh-Hop: shop/Deployment/cart\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Sandboxmesh-Capture: e.target.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nbaggage: a=1, sm-capture = e.target.1;p\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		block, err := readHeaderBlock(bufio.NewReader(bytes.NewReader(in)), nil, 64<<10)
		if err != nil {
			return
		}
		var r fastReq
		r.reset()
		r.hopValue = "shop/Deployment/cart"
		if !parseRequest(block, &r, fuzzKeyHeader) {
			return
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(block)))
		if err != nil {
			if strings.Contains(err.Error(), "invalid URI") || strings.Contains(err.Error(), "parse") {
				return // a target net/http's URL parser refuses is forwarded verbatim, as nginx does
			}
			t.Fatalf("fast path accepted %q, net/http refused it: %v", block, err)
		}
		// Capture on: the fast path keeps only requests the net/http path would not capture.
		var rc fastReq
		rc.reset()
		rc.hopValue, rc.captureOn = r.hopValue, true
		if parseRequest(block, &rc, fuzzKeyHeader) {
			if id, ok := capture.ID(req.Header); ok {
				t.Fatalf("%q: capture id %q kept on the fast path", block, id)
			}
		}
		if req.Method != string(r.method) || req.RequestURI != string(r.target) || req.Host != string(r.host) {
			t.Fatalf("%q: net/http %s %s host %q, fast path %s %s host %q", block, req.Method, req.RequestURI, req.Host, r.method, r.target, r.host)
		}
		chunked := len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"
		if chunked != r.chunked {
			t.Fatalf("%q: chunked net/http %v, fast path %v", block, chunked, r.chunked)
		}
		if !chunked && r.contentLength >= 0 && req.ContentLength != r.contentLength {
			t.Fatalf("%q: content length net/http %d, fast path %d", block, req.ContentLength, r.contentLength)
		}
		if !chunked && r.contentLength < 0 && req.ContentLength != 0 {
			t.Fatalf("%q: net/http sees a body of %d, fast path none", block, req.ContentLength)
		}
		if req.Close != r.closeAfter {
			t.Fatalf("%q: close net/http %v, fast path %v", block, req.Close, r.closeAfter)
		}
		for _, f := range r.fields {
			if !f.skip && len(req.Header.Values(string(f.name))) == 0 && !eqFold(f.name, "host") {
				t.Fatalf("%q: field %q forwarded but unknown to net/http", block, f.name)
			}
		}
	})
}

// FuzzRelayChunked checks the chunked relay against net/http's chunked reader: a body the relay passes
// decodes to the same bytes as its input, and it never panics.
func FuzzRelayChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"5;ext=\"x\"\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 1\r\n\r\n",
		"0\r\n\r\n",
		"a\nhelloworld\n0\n\n",
		"fffffffffffffffff\r\n",
		"5\r\nhelloXX0\r\n\r\n",
		"-1\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		n, err := relayChunked(w, bufio.NewReader(bytes.NewReader(in)), make([]byte, 64), w.Flush)
		if err != nil {
			return
		}
		_ = w.Flush()
		want, werr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(in)))
		if werr != nil {
			t.Fatalf("relay accepted %q (%d bytes), net/http refuses it: %v", in, n, werr)
		}
		got, gerr := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(out.Bytes())))
		if gerr != nil || !bytes.Equal(got, want) || int64(len(got)) != n {
			t.Fatalf("relay of %q gave %q: decodes to %q (%v), want %q", in, out.Bytes(), got, gerr, want)
		}
	})
}

// FuzzParseResponse checks the upstream response parser against net/http's: a head it accepts has the
// status and framing net/http reads. It must never panic.
func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
		"HTTP/1.1 200\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		block, err := readHeaderBlock(bufio.NewReader(bytes.NewReader(in)), nil, 64<<10)
		if err != nil {
			return
		}
		var r fastResp
		if parseResponse(block, &r) != nil {
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(block)), &http.Request{Method: "GET"})
		if err != nil {
			t.Fatalf("fast path accepted %q, net/http refused it: %v", block, err)
		}
		if resp.StatusCode != r.status {
			t.Fatalf("%q: status net/http %d, fast path %d", block, resp.StatusCode, r.status)
		}
		chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
		if r.status >= 200 && r.status != 204 && r.status != 304 {
			if chunked != r.chunked || (!chunked && r.contentLength >= 0 && resp.ContentLength != r.contentLength) {
				t.Fatalf("%q: framing net/http chunked=%v len=%d, fast path chunked=%v len=%d", block, chunked, resp.ContentLength, r.chunked, r.contentLength)
			}
		}
	})
}
