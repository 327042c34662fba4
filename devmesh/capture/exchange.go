package capture

import (
	"io"
	"net/http"
	"time"

	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// Exchange records one request/response exchange served through net/http: the request as received and
// the response written to the client. Start it with Recorder.Start, use it as the handler's
// http.ResponseWriter, and call Finish when the handler has returned. The devmesh proxy and the control
// plane's preview proxy are both capture points built on it.
type Exchange struct {
	http.ResponseWriter
	rec       *Recorder
	c         diff.Capture
	start     time.Time
	status    int
	hdr       map[string][]string
	reqBody   *Body
	respBody  *Body
	hasReqBdy bool
}

// Start begins recording r under capture id id; r's body (if any) is recorded as the handler reads it.
func (r *Recorder) Start(w http.ResponseWriter, req *http.Request, id string) *Exchange {
	x := &Exchange{ResponseWriter: w, rec: r, start: time.Now(), respBody: r.NewBody()}
	x.c = diff.Capture{ID: id, Point: r.Point}
	x.c.Request.Method = req.Method
	x.c.Request.Path = req.URL.EscapedPath()
	if x.c.Request.Path == "" || x.c.Request.Path[0] != '/' {
		x.c.Request.Path = "/" + x.c.Request.Path
	}
	x.c.Request.Query = req.URL.RawQuery
	x.c.Request.Headers = r.Headers(req.Header)
	if req.Body != nil && req.Body != http.NoBody {
		x.reqBody, x.hasReqBdy = r.NewBody(), true
		req.Body = &teeBody{ReadCloser: req.Body, b: x.reqBody}
	}
	return x
}

// WriteHeader records the final status and the response headers.
func (x *Exchange) WriteHeader(code int) {
	if x.status == 0 && code >= 200 {
		x.status, x.hdr = code, x.rec.Headers(x.ResponseWriter.Header())
	}
	x.ResponseWriter.WriteHeader(code)
}

// Write records the first bytes of the response body.
func (x *Exchange) Write(b []byte) (int, error) {
	if x.status == 0 {
		x.status, x.hdr = http.StatusOK, x.rec.Headers(x.ResponseWriter.Header())
	}
	n, err := x.ResponseWriter.Write(b)
	_, _ = x.respBody.Write(b[:n])
	return n, err
}

// Unwrap lets http.ResponseController (flushes, hijacks) reach the server's writer.
func (x *Exchange) Unwrap() http.ResponseWriter { return x.ResponseWriter }

// Finish returns the capture of the finished exchange.
func (x *Exchange) Finish() diff.Capture {
	c := x.c
	c.Duration = time.Since(x.start)
	c.Response.Status, c.Response.Headers = x.status, x.hdr
	c.Response.Body, c.Response.BodyTruncated = x.respBody.Bytes()
	if x.hasReqBdy {
		c.Request.Body, c.Request.BodyTruncated = x.reqBody.Bytes()
	}
	return c
}

// teeBody keeps the first bytes of the request body as the handler reads it.
type teeBody struct {
	io.ReadCloser
	b *Body
}

func (t *teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	_, _ = t.b.Write(p[:n])
	return n, err
}
