// Package tunnelproto owns the low-level pieces every SandboxMesh tunnel shares
// (the control plane's preview tunnel and the local-workload tunnel): the yamux
// configuration, the stream-dial framing (one line of JSON naming the target,
// one line of JSON answering it, then raw bytes), the two-way copy, and the
// guarded dial that refuses addresses a tunnel must never reach. It knows
// nothing of who is at either end or what the request line holds.
package tunnelproto

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/yamux"
)

// MaxLine is the longest request or result line (newline included) either
// side accepts; a longer line ends the stream.
const MaxLine = 8 << 10

// DefaultTimeout bounds the dial handshake of one stream (request, dial,
// result) when the caller's context has no deadline.
const DefaultTimeout = 10 * time.Second

// ErrRefused means the far end refused to connect the stream (policy or dial
// failure); the error is a *RemoteError carrying its reason.
var ErrRefused = errors.New("tunnel peer refused the target")

// ErrForbidden marks a refusal by policy (the target is not allowed); a
// handler returns an error wrapping it, and Dial's *RemoteError matches it.
var ErrForbidden = errors.New("target not allowed")

// ErrLineTooLong means a request or result line exceeded MaxLine.
var ErrLineTooLong = errors.New("tunnel line too long")

// Result codes carried in Result.Code.
const (
	CodeForbidden = "forbidden"
	CodeFailed    = "failed"
)

// Result is the one-line JSON answer to a dial request before raw bytes flow.
type Result struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Code classifies a refusal: CodeForbidden (policy) or CodeFailed (the
	// dial itself failed); empty from peers that predate it.
	Code string `json:"code,omitempty"`
}

// RemoteError is a refusal answered by the far end of a stream.
type RemoteError struct {
	Code   string
	Reason string
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("%s: %s", ErrRefused.Error(), e.Reason)
}

// Is makes errors.Is match ErrRefused always, and ErrForbidden for policy refusals.
func (e *RemoteError) Is(target error) bool {
	return target == ErrRefused || (target == ErrForbidden && e.Code == CodeForbidden)
}

// YamuxConfig is the yamux configuration of every tunnel session: keepalive
// on, bounded writes, stream opens and windows; log receives yamux's messages
// at debug level (nil: discarded).
func YamuxConfig(log *slog.Logger, keepAlive time.Duration) *yamux.Config {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if keepAlive <= 0 {
		keepAlive = 15 * time.Second
	}
	c := yamux.DefaultConfig()
	c.LogOutput = nil
	c.Logger = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	c.EnableKeepAlive = true
	c.KeepAliveInterval = keepAlive
	c.ConnectionWriteTimeout = 15 * time.Second
	c.MaxStreamWindowSize = 1 << 20
	c.StreamOpenTimeout = 10 * time.Second
	return c
}

// ReadLine reads one newline-terminated line of at most max bytes (newline
// included) and returns it without the newline.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(line)+len(frag) > max {
			return nil, fmt.Errorf("%w (limit %d bytes)", ErrLineTooLong, max)
		}
		line = append(line, frag...)
		switch {
		case err == nil:
			return bytes.TrimSuffix(line, []byte{'\n'}), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

// WriteLine writes v as one line of JSON.
func WriteLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if len(b)+1 > MaxLine {
		return fmt.Errorf("%w: %d bytes (limit %d)", ErrLineTooLong, len(b)+1, MaxLine)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// DecodeStrict decodes one JSON line into v, refusing unknown fields and
// trailing data.
func DecodeStrict(line []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(line))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// Dial asks the far end of st (a freshly opened stream) to connect it to the
// target req describes: it writes req as one JSON line, waits for the Result
// and returns a conn carrying raw bytes afterwards. A refusal is a
// *RemoteError (errors.Is ErrRefused). ctx bounds the exchange (DefaultTimeout
// when it has no deadline); st is closed on any error.
func Dial(ctx context.Context, st net.Conn, req any) (net.Conn, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(DefaultTimeout)
	}
	_ = st.SetDeadline(dl)
	stop := context.AfterFunc(ctx, func() { st.Close() })
	defer stop()
	fail := func(err error) (net.Conn, error) {
		st.Close()
		switch {
		case ctx.Err() != nil:
			return nil, fmt.Errorf("%w (%w)", ctx.Err(), err)
		case errors.Is(err, os.ErrDeadlineExceeded): // the conn deadline fired before ctx noticed
			return nil, fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
		}
		return nil, err
	}
	if err := WriteLine(st, req); err != nil {
		return fail(fmt.Errorf("send dial request: %w", err))
	}
	br := bufio.NewReader(st)
	line, err := ReadLine(br, MaxLine)
	if err != nil {
		return fail(fmt.Errorf("read dial result: %w", err))
	}
	var res Result
	if err := json.Unmarshal(line, &res); err != nil {
		return fail(fmt.Errorf("bad dial result: %w", err))
	}
	if !res.OK {
		st.Close()
		return nil, &RemoteError{Code: res.Code, Reason: res.Error}
	}
	if !stop() {
		return fail(errors.New("dial cancelled"))
	}
	_ = st.SetDeadline(time.Time{})
	return &BufConn{Conn: st, R: br}, nil
}

// Handler connects one stream's target: it receives the request line (the
// JSON the dialling side wrote) and returns the connection to pipe the stream
// to. Its error's message goes back to the dialling side as the reason; an
// error wrapping ErrForbidden is answered with CodeForbidden.
type Handler func(ctx context.Context, line []byte) (net.Conn, error)

// Serve answers one dial request on st: it reads the request line (bounded
// by MaxLine and DefaultTimeout), calls h, answers with a Result, and on
// success copies bytes both ways until both directions end. It closes st.
// The error it returns is h's refusal or a transport failure, for logging.
func Serve(ctx context.Context, st net.Conn, h Handler) error {
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(DefaultTimeout))
	br := bufio.NewReader(st)
	line, err := ReadLine(br, MaxLine)
	if err != nil {
		return fmt.Errorf("read dial request: %w", err)
	}
	hctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
	up, herr := h(hctx, line)
	cancel()
	if herr != nil {
		code := CodeFailed
		if errors.Is(herr, ErrForbidden) {
			code = CodeForbidden
		}
		_ = WriteLine(st, Result{Error: herr.Error(), Code: code})
		return herr
	}
	defer up.Close()
	if err := WriteLine(st, Result{OK: true}); err != nil {
		return fmt.Errorf("answer dial request: %w", err)
	}
	_ = st.SetDeadline(time.Time{})
	Pipe(&BufConn{Conn: st, R: br}, up)
	return nil
}

// BufConn is a net.Conn whose reads drain a bufio.Reader first.
type BufConn struct {
	net.Conn
	R *bufio.Reader
}

func (c *BufConn) Read(p []byte) (int, error) { return c.R.Read(p) }

// CloseWrite half-closes the underlying conn when it supports it.
func (c *BufConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// copyBufs holds Pipe's copy buffers: a stream's two copies would otherwise
// allocate 64 KiB per connection.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// Pipe copies both ways until both directions end, half-closing where possible.
func Pipe(a, b net.Conn) {
	var wg sync.WaitGroup
	cp := func(dst, src net.Conn) {
		defer wg.Done()
		buf := copyBufs.Get().(*[]byte)
		// Plain Reader/Writer so io.CopyBuffer uses the pooled buffer (tunnel
		// streams are never both kernel sockets, so nothing is lost to splice).
		_, _ = io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *buf)
		copyBufs.Put(buf)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		} else {
			_ = dst.Close()
		}
	}
	wg.Add(2)
	go cp(a, b)
	go cp(b, a)
	wg.Wait()
}

// AcceptStreams accepts the streams of sess until it closes or ctx ends and
// runs handle for each in its own goroutine. It closes sess when it returns,
// with ctx's error or the one that ended the session (yamux.ErrSessionShutdown
// or io.EOF when it was closed; see SessionClosed).
func AcceptStreams(ctx context.Context, sess *yamux.Session, handle func(st *yamux.Stream)) error {
	defer sess.Close()
	stop := context.AfterFunc(ctx, func() { sess.Close() })
	defer stop()
	for {
		st, err := sess.AcceptStream()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
		go handle(st)
	}
}

// SessionClosed reports whether err (from AcceptStreams) only says the
// session was closed, by either side or by the network going away.
func SessionClosed(err error) bool {
	return errors.Is(err, yamux.ErrSessionShutdown) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed)
}
