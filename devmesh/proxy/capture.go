package proxy

import (
	"io"
	"net/http"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/capture"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// Capture points (docs/devmesh.md): a request carrying a capture id is recorded on the net/http path only.
// The fast path's parser hands a connection whose request may carry an id (the capture header, or a
// baggage field containing capture.BaggageKey) to net/http, so that with capture off, or on and no id,
// the fast path pays one switch arm per header name and nothing else. The id is only read: the request
// is forwarded unchanged.

// captureWriter records the response written to the client and, with teeBody, the request body the
// upstream read.
type captureWriter struct {
	http.ResponseWriter
	rec       *capture.Recorder
	c         diff.Capture
	start     time.Time
	status    int
	hdr       map[string][]string
	reqBody   *capture.Body
	respBody  *capture.Body
	hasReqBdy bool
}

// startCapture begins recording r (the inbound request) with capture id id.
func (p *Proxy) startCapture(w http.ResponseWriter, r *http.Request, id string) *captureWriter {
	rec := p.capRec
	cw := &captureWriter{ResponseWriter: w, rec: rec, start: time.Now(), respBody: rec.NewBody()}
	cw.c = diff.Capture{ID: id, Point: rec.Point}
	cw.c.Request.Method = r.Method
	cw.c.Request.Path = r.URL.EscapedPath()
	if cw.c.Request.Path == "" || cw.c.Request.Path[0] != '/' {
		cw.c.Request.Path = "/" + cw.c.Request.Path
	}
	cw.c.Request.Query = r.URL.RawQuery
	cw.c.Request.Headers = rec.Headers(r.Header)
	if r.Body != nil && r.Body != http.NoBody {
		cw.reqBody, cw.hasReqBdy = rec.NewBody(), true
		r.Body = &teeBody{ReadCloser: r.Body, b: cw.reqBody}
	}
	return cw
}

// WriteHeader records the final status and the response headers.
func (cw *captureWriter) WriteHeader(code int) {
	if cw.status == 0 && code >= 200 {
		cw.status, cw.hdr = code, cw.rec.Headers(cw.ResponseWriter.Header())
	}
	cw.ResponseWriter.WriteHeader(code)
}

// Write records the first bytes of the response body.
func (cw *captureWriter) Write(b []byte) (int, error) {
	if cw.status == 0 {
		cw.status, cw.hdr = http.StatusOK, cw.rec.Headers(cw.ResponseWriter.Header())
	}
	n, err := cw.ResponseWriter.Write(b)
	_, _ = cw.respBody.Write(b[:n])
	return n, err
}

// Unwrap lets http.ResponseController (flushes, hijacks) reach the server's writer.
func (cw *captureWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// finish returns the capture of the finished exchange.
func (cw *captureWriter) finish() diff.Capture {
	c := cw.c
	c.Duration = time.Since(cw.start)
	c.Response.Status, c.Response.Headers = cw.status, cw.hdr
	c.Response.Body, c.Response.BodyTruncated = cw.respBody.Bytes()
	if cw.hasReqBdy {
		c.Request.Body, c.Request.BodyTruncated = cw.reqBody.Bytes()
	}
	return c
}

// teeBody keeps the first bytes of the request body as the upstream reads it.
type teeBody struct {
	io.ReadCloser
	b *capture.Body
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	_, _ = t.b.Write(p[:n])
	return n, err
}
