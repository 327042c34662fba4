package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Local override (routeapi.Override): a keyed request whose route has an override for the request's
// port goes first to the override's forward (a developer's process reached through a tunnel Service),
// then, when the forward does not take it, to the route's destination (the fork, or the local app for a
// baseline destination) exactly as if there were no override. The forward takes a request when
//   - ExceptStatusCodes is empty and its answer carries sm-override: true or sd-override: true
//     (case-insensitive value; for gRPC this is response metadata, which is headers), or
//   - ExceptStatusCodes is set and the answer's status is not one of them.
//
// Otherwise (answer declined, forward not dialled within overrideDialTimeout, or failing before its
// response header, or no header within Config.OverrideResponseHeaderTimeout) the request falls through.
// The answer that is used is relayed as it is (the sm-override header included).
//
// Only the net/http path tries overrides (HTTP/1.1, h2c and gRPC, the request sent to the forward in the
// protocol it would be sent to the fork); the HTTP/1.1 fast path hands a request whose lookup names an
// override to net/http. The attempt runs inside the one httputil.ReverseProxy pass: the forward's
// failure or declined answer reaches Proxy.errorHandler, which serves the request again to the route's
// destination, as it does for FallbackToBaseline.
//
// To fall through after the forward read the body, the body is buffered (bufferBody): a request whose
// body is bigger than overrideMaxBody, or whose body of unknown length (chunked, h2 without
// content-length) does not end within overrideBodyWait (a client stream, e.g. streaming gRPC), is not
// overridden and goes straight to the route's destination. Upgrades (WebSocket, h2c upgrade), CONNECT
// and raw TCP ports are never overridden either.

// overrideMaxBody bounds the request body buffered for an override attempt (1 MiB).
const overrideMaxBody = 1 << 20

// overrideDialTimeout bounds dialling the override's forward.
const overrideDialTimeout = 2 * time.Second

// overrideBodyWait bounds waiting for the end of a request body of unknown length before an override
// attempt; a body still streaming then is not overridden.
const overrideBodyWait = 250 * time.Millisecond

// Override outcomes of a request (reqState.ovr), also the result label of devmesh_override_requests_total.
const (
	ovrNone        = iota // no override for the request
	ovrTrying             // sent to the override, no outcome yet
	ovrServed             // the override's answer was used
	ovrFellThrough        // the override answered (or failed after dialling) and the request fell through
	ovrDialFailed         // the override could not be dialled; the request fell through
	ovrSkipped            // the route has an override but the request cannot be overridden (body, upgrade)
	nOvr
)

var ovrNames = [nOvr]string{"", "trying", "served", "fell_through", "dial_failed", "skipped"}

// errOverrideDeclined is what ModifyResponse returns for an override answer that is not to be used:
// the errorHandler then falls through.
var errOverrideDeclined = errors.New("override declined the request")

// overrideUsed reports whether the forward's answer res is used (see the package's override rules).
func overrideUsed(res *http.Response, except []int32) bool {
	if len(except) > 0 {
		return !slices.Contains(except, int32(res.StatusCode))
	}
	return overrideHeader(res.Header["Sm-Override"]) || overrideHeader(res.Header["Sd-Override"])
}

func overrideHeader(vs []string) bool {
	for _, v := range vs {
		if strings.EqualFold(strings.TrimSpace(v), "true") {
			return true
		}
	}
	return false
}

// discardSmall reads a declined HTTP/1.1 answer's body when it is small and of known length, so that
// closing it keeps the connection to the forward for the next request (a declined answer is the common
// case of a forward that takes only some requests); bigger or streamed bodies end the connection.
func discardSmall(res *http.Response) {
	if res.ProtoMajor == 1 && res.ContentLength > 0 && res.ContentLength <= 64<<10 {
		_, _ = io.Copy(io.Discard, res.Body)
	}
}

// overridable reports whether r may be tried at an override at all: not an upgrade nor CONNECT.
func overridable(r *http.Request) bool {
	return r.Method != http.MethodConnect && len(r.Header["Upgrade"]) == 0
}

// prepareOverride buffers r's body for an override attempt (st.replay). It reports false when the
// request cannot be overridden; r.Body then still gives the whole body. The returned stop (may be nil)
// must be called, once, when the request is over.
func prepareOverride(r *http.Request, st *reqState) (bool, func()) {
	if !overridable(r) {
		return false, nil
	}
	buf, ok, stop := bufferBody(r)
	if ok {
		st.replay, st.replayOK = buf, true
	}
	return ok, stop
}

// bodyChunk is one read of a request body streamed by bufferBody's reader goroutine.
type bodyChunk struct {
	b   []byte
	err error
}

// bufferBody reads r's whole body when it is at most overrideMaxBody and (unknown length) ends within
// overrideBodyWait: it returns it and true. Otherwise it returns false, and r.Body is replaced by a
// reader giving the same bytes (those already read, then the rest); stop, when not nil, ends the
// goroutine that reads the rest and must be called, once, when the request is over.
func bufferBody(r *http.Request) (buf []byte, ok bool, stop func()) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, true, nil
	}
	if r.ContentLength > overrideMaxBody {
		return nil, false, nil
	}
	if r.ContentLength > 0 {
		buf = make([]byte, r.ContentLength)
		n, err := io.ReadFull(r.Body, buf)
		if err != nil {
			// A broken body: the route's destination gets what arrived, then the same error.
			r.Body = &streamedBody{pending: []bodyChunk{{buf[:n], err}}}
			return nil, false, nil
		}
		return buf, true, nil
	}
	// Unknown length: one goroutine reads the body, so that a client stream that waits for an answer
	// before it ends is not stalled; the waiting ends at its end, the limit or overrideBodyWait.
	ch, done := make(chan bodyChunk), make(chan struct{})
	go func(body io.Reader) {
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := body.Read(b)
			select {
			case ch <- bodyChunk{b[:n], err}:
			case <-done:
				return
			}
			if err != nil {
				return
			}
		}
	}(r.Body)
	timer := time.NewTimer(overrideBodyWait)
	defer timer.Stop()
	var got []bodyChunk
	size := 0
wait:
	for {
		select {
		case c := <-ch:
			got = append(got, c)
			size += len(c.b)
			if size > overrideMaxBody || c.err != nil && c.err != io.EOF {
				break wait
			}
			if c.err == io.EOF {
				buf = make([]byte, 0, size)
				for _, g := range got {
					buf = append(buf, g.b...)
				}
				return buf, true, nil
			}
		case <-timer.C:
			break wait
		}
	}
	r.Body = &streamedBody{pending: got, ch: ch}
	return nil, false, func() { close(done) }
}

// streamedBody gives the chunks bufferBody already read, then those its goroutine sends on ch (nil: none).
// Close does nothing: the server closes the real body.
type streamedBody struct {
	pending []bodyChunk
	cur     []byte
	err     error
	ch      <-chan bodyChunk
}

func (c *streamedBody) Read(p []byte) (int, error) {
	for len(c.cur) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		switch {
		case len(c.pending) > 0:
			c.cur, c.err = c.pending[0].b, c.pending[0].err
			c.pending = c.pending[1:]
		case c.ch != nil:
			b, ok := <-c.ch
			if !ok {
				return 0, io.ErrUnexpectedEOF
			}
			c.cur, c.err = b.b, b.err
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, c.cur)
	c.cur = c.cur[n:]
	return n, nil
}

func (c *streamedBody) Close() error { return nil }

// replayBody sets out's body to a new reader of st.replay (each attempt reads the buffered body anew).
func replayBody(out *http.Request, b []byte) {
	if len(b) == 0 {
		out.Body, out.GetBody = nil, nil
		return
	}
	out.Body = io.NopCloser(bytes.NewReader(b))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
