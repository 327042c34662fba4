package proxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// The HTTP/1.1 fast path. net/http's server and transport cost two to three goroutine hand-offs and a
// few dozen allocations per proxied request; most sidecar traffic is plain keep-alive HTTP/1.1, which
// this path proxies in the connection's own goroutine: it reads the request head, routes it exactly as
// the net/http path does (Proxy.decide), writes the rewritten head to a pooled upstream connection, then
// relays the response, streaming bodies in both directions.
//
// Whatever it does not fully understand, it does not touch: a request with another HTTP version (h2c's
// preface included), CONNECT, an absolute-form target, Upgrade (WebSocket), Expect, unusual framing, a
// head larger than MaxHeaderBytes or any malformed line hands the whole connection, with the bytes read
// so far, to the net/http server of the port, which then answers it (400, 431, 100-continue, upgrades,
// h2c) exactly as before. With tracing on, or Config.DisableFastPath, every connection goes to net/http.

// upConn is a pooled upstream HTTP/1.1 connection.
type upConn struct {
	c      net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	idleAt time.Time
}

// upPool keeps idle upstream connections per address, each for at most timeout.
type upPool struct {
	mu      sync.Mutex
	idle    map[string][]*upConn
	timeout time.Duration
	max     int
	dialer  net.Dialer
}

func newUpPool(timeout, dial time.Duration, max int) *upPool {
	return &upPool{idle: map[string][]*upConn{}, timeout: timeout, max: max, dialer: net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}}
}

// get returns an idle connection to addr (reused) or dials one.
func (u *upPool) get(addr string) (*upConn, bool, error) {
	now := time.Now()
	u.mu.Lock()
	l := u.idle[addr]
	for len(l) > 0 {
		c := l[len(l)-1]
		l[len(l)-1] = nil
		l = l[:len(l)-1]
		if now.Sub(c.idleAt) < u.timeout && c.br.Buffered() == 0 {
			u.idle[addr] = l
			u.mu.Unlock()
			return c, true, nil
		}
		_ = c.c.Close()
	}
	u.idle[addr] = l
	u.mu.Unlock()
	c, err := u.dial(addr)
	return c, false, err
}

func (u *upPool) dial(addr string) (*upConn, error) {
	c, err := u.dialer.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &upConn{c: c, br: bufio.NewReaderSize(c, 4<<10), bw: bufio.NewWriterSize(c, 4<<10)}, nil
}

// put returns a connection whose last exchange ended cleanly.
func (u *upPool) put(addr string, c *upConn) {
	c.idleAt = time.Now()
	u.mu.Lock()
	if l := u.idle[addr]; len(l) < u.max {
		u.idle[addr] = append(l, c)
		u.mu.Unlock()
		return
	}
	u.mu.Unlock()
	_ = c.c.Close()
}

// closeIdle closes every idle connection (routes changed, or shutdown).
func (u *upPool) closeIdle() {
	u.mu.Lock()
	old := u.idle
	u.idle = map[string][]*upConn{}
	u.mu.Unlock()
	for _, l := range old {
		for _, c := range l {
			_ = c.c.Close()
		}
	}
}

// sweep closes connections idle for longer than the pool's timeout.
func (u *upPool) sweep(now time.Time) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for addr, l := range u.idle {
		kept := l[:0]
		for _, c := range l {
			if now.Sub(c.idleAt) < u.timeout {
				kept = append(kept, c)
			} else {
				_ = c.c.Close()
			}
		}
		clear(l[len(kept):])
		if len(kept) == 0 {
			delete(u.idle, addr)
		} else {
			u.idle[addr] = kept
		}
	}
}

// idleConns counts pooled connections (tests).
func (u *upPool) idleConns() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, l := range u.idle {
		n += len(l)
	}
	return n
}

// fastConn is one client connection on the fast path.
type fastConn struct {
	p        *Proxy
	c        net.Conn
	info     portInfo
	br       *bufio.Reader
	bw       *bufio.Writer
	flush    func() error
	hdr      []byte // request head
	rhdr     []byte // response head
	req      fastReq
	resp     fastResp
	keyHdr   http.Header
	scratch  []byte
	start    time.Time // of the current request
	recorded bool      // the current request is in the metrics
	ip       string
	trusted  bool
	idle     atomic.Bool // waiting for its next request: a drain closes it at once
	st       reqState
	// handOver: exchange left the current request (head in hdr, body unread) to net/http.
	handOver bool
}

// serveHTTP1 serves one accepted HTTP/1.1 client connection: on an event loop when they run
// (Config.EventLoop, h1loop_linux.go), else on the fast path in this goroutine.
func (p *Proxy) serveHTTP1(c net.Conn, info portInfo, hand *chanListener) {
	if p.loops != nil && p.adopt(c, info, hand) {
		return
	}
	p.serveFast(c, info, hand)
}

// serveFast serves one client connection on the fast path, handing it to hand's net/http server when a
// request needs it.
func (p *Proxy) serveFast(c net.Conn, info portInfo, hand *chanListener) {
	fc := p.newFastConn(c, info)
	if !p.fast.begin(&fc.idle, c) {
		_ = c.Close()
		return
	}
	p.runFast(fc, hand, nil)
}

// newFastConn prepares the fast-path state of client connection c.
func (p *Proxy) newFastConn(c net.Conn, info portInfo) *fastConn {
	fc := &fastConn{p: p, c: c, info: info, keyHdr: http.Header{}}
	fc.req.hopValue = p.hopValue
	fc.req.captureOn = p.capRec != nil
	ip, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		ip = c.RemoteAddr().String()
	}
	fc.ip, fc.trusted = ip, p.isTrusted(ip)
	return fc
}

// runFast serves fc's connection (registered with p.fast) until it ends or is handed to net/http.
// resume, when set, first finishes an exchange an event loop started; it reports whether the connection
// serves another request.
func (p *Proxy) runFast(fc *fastConn, hand *chanListener, resume func() bool) {
	c := fc.c
	handed := false
	defer func() {
		p.fast.end(c)
		if handed {
			p.m.h1HandedOver.Inc()
		} else {
			p.m.h1Fast.Inc()
			_ = c.Close()
		}
	}()
	fc.br = bufio.NewReaderSize(c, 4<<10)
	fc.bw = bufio.NewWriterSize(c, 4<<10)
	fc.flush = fc.bw.Flush
	if resume != nil && !resume() {
		return
	}
	for {
		if fc.br.Buffered() == 0 {
			// Idle first, then the check: a drain that starts in between sees the flag and closes us.
			fc.idle.Store(true)
			if p.fast.closing() {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(p.cfg.IdleTimeout))
			_, err := fc.br.Peek(1)
			fc.idle.Store(false)
			if err != nil {
				return
			}
		}
		_ = c.SetReadDeadline(time.Now().Add(p.cfg.ReadHeaderTimeout))
		block, err := readHeaderBlock(fc.br, fc.hdr[:0], p.cfg.MaxHeaderBytes)
		fc.hdr = block
		if err != nil && err != errHeaderTooLarge {
			return
		}
		fc.req.reset()
		if err == errHeaderTooLarge || !parseRequest(block, &fc.req, p.keyHeaderIndex) {
			handed = fc.hand(hand)
			return
		}
		if !fc.exchange() {
			if fc.handOver {
				handed = fc.hand(hand)
			}
			return
		}
	}
}

// hand passes the connection, with the current request's head (fc.hdr) and what follows it unread, to
// hand's net/http server.
func (fc *fastConn) hand(hand *chanListener) bool {
	_ = fc.c.SetReadDeadline(time.Time{})
	r := io.MultiReader(bytes.NewReader(bytes.Clone(fc.hdr)), fc.br)
	return hand.deliver(&portConn{Conn: fc.c, info: fc.info, r: newHeadGate(r, fc.p.cfg.MaxHeaderBytes)})
}

// keyHeaderIndex gives the index in p.keyHeaders of a header name that may carry a routing key (-1: none).
func (p *Proxy) keyHeaderIndex(name []byte) int {
	for i, k := range p.keyHeaders {
		if eqFold(name, k.lower) {
			return i
		}
	}
	return -1
}

type keyHeaderName struct{ lower, canonical string }

// keyHeader returns the request's routing-key headers as an http.Header for the KeyExtractor.
func (fc *fastConn) keyHeader() http.Header {
	h := fc.keyHdr
	clear(h)
	for i := range fc.req.fields {
		if f := &fc.req.fields[i]; f.key > 0 && !f.skip {
			k := fc.p.keyHeaders[f.key-1].canonical
			h[k] = append(h[k], string(f.value))
		}
	}
	return h
}

// exchange proxies one parsed request; it reports whether the client connection stays open.
func (fc *fastConn) exchange() bool {
	p, r, st := fc.p, &fc.req, &fc.st
	start := time.Now()
	fc.start, fc.recorded = start, false
	*st = reqState{kind: kindLocal, port: fc.info.port}
	hasBody := r.chunked || r.contentLength > 0
	if hasBody {
		var d time.Time
		if p.cfg.ReadTimeout > 0 {
			d = start.Add(p.cfg.ReadTimeout)
		}
		_ = fc.c.SetReadDeadline(d)
	}
	var h http.Header
	if r.keyFields > 0 {
		h = fc.keyHeader()
	}
	p.decide(st, r.ownHop, h)
	if st.override != "" {
		// A local override (override.go) is tried on the net/http path only.
		fc.handOver = true
		return false
	}
	keep := fc.forward(hasBody)
	fc.record()
	return keep && !r.closeAfter && !p.fast.closing()
}

// record observes the request in the metrics, once; it runs before the last bytes of the answer are
// flushed (as net/http's server does), so a client that got its answer finds it counted.
func (fc *fastConn) record() {
	if fc.recorded {
		return
	}
	fc.recorded = true
	kind := fc.st.kind
	if fc.st.fellBack {
		kind = kindBaseline
	}
	fc.p.m.observe(kind, fc.st.status, time.Since(fc.start))
}

// retryable marks an upstream connection that failed before any byte of the answer: on a reused
// connection (the upstream may have closed it while idle) the request is sent again on a new one.
type retryable struct{ err error }

func (r retryable) Error() string { return r.err.Error() }
func (r retryable) Unwrap() error { return r.err }

// forward sends the request upstream and relays the response; it reports whether the client
// connection may serve another request.
func (fc *fastConn) forward(hasBody bool) bool {
	p, r, st := fc.p, &fc.req, &fc.st
	pool := p.fastLocal
	if st.kind == kindFork {
		pool = p.fastFork
	}
	// A body already buffered whole is sent from the buffer and consumed only once the upstream answered,
	// so the request can be retried on a new connection like a bodyless one.
	replay := !r.chunked && r.contentLength > 0 && r.contentLength <= int64(fc.br.Buffered())
	replayable := !hasBody || replay
	var uc *upConn
	var async chan error
	for attempt := 0; ; attempt++ {
		var reused bool
		var err error
		if attempt == 0 {
			uc, reused, err = pool.get(st.target)
		} else {
			uc, err = pool.dial(st.target)
		}
		if err != nil {
			if st.kind == kindFork && p.cfg.FallbackToBaseline && !st.fellBack && isDialError(err) {
				p.log.Warn("fork unreachable, falling back to baseline", "sandbox", st.dest.Sandbox.String(), "fork", st.target, "err", err)
				st.kind, st.fellBack, st.target, pool = kindBaseline, true, p.localAddr(st.port), p.fastLocal
				attempt = -1
				continue
			}
			return fc.fail(err, !hasBody)
		}
		if reused && !replayable && !connAlive(uc.c) {
			_ = uc.c.Close()
			if uc, err = pool.dial(st.target); err != nil {
				return fc.fail(err, false)
			}
			reused = false
		}
		async, err = fc.send(uc, hasBody, replay)
		if err == nil {
			err = fc.readResponseHead(uc)
		}
		if err == nil {
			break
		}
		_ = uc.c.Close()
		if async != nil {
			// The body is still streaming from the client: answer, then end both connections.
			fc.fail(err, false)
			_ = fc.c.Close()
			<-async
			return false
		}
		var rt retryable
		if errors.As(err, &rt) {
			if reused && replayable && attempt == 0 {
				continue
			}
			if err = rt.err; err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
		}
		return fc.fail(err, !hasBody)
	}
	if replay {
		_, _ = fc.br.Discard(int(r.contentLength))
	}
	keepClient, keepUp := fc.relayResponse(uc)
	if async != nil {
		select {
		case err := <-async:
			if err != nil {
				keepClient, keepUp = false, false
			}
		default:
			// The upload has not reported yet. Either the upstream answered before the whole body
			// arrived, or the upload is done and merely has not reported: its last flush is what let the
			// upstream answer, so the answer can overtake the report. Cut short whatever it still waits
			// for (a past deadline fails its next read or write at once) and take its outcome.
			_ = fc.c.SetReadDeadline(aLongTimeAgo)
			_ = uc.c.SetWriteDeadline(aLongTimeAgo)
			if err := <-async; err != nil {
				// The rest of the body cannot be skipped cheaply, so both connections end here (as
				// net/http does past a small limit).
				_ = fc.c.Close()
				_ = uc.c.Close()
				return false
			}
			// The body went whole: the client's next request is served (its read deadline is set
			// before it is read), and the upstream connection may be pooled.
			_ = uc.c.SetWriteDeadline(time.Time{})
		}
	}
	if keepUp {
		pool.put(st.target, uc)
	} else {
		_ = uc.c.Close()
	}
	return keepClient
}

// aLongTimeAgo is a deadline in the past: setting it makes a pending read or write return at once.
var aLongTimeAgo = time.Unix(1, 0)

// testHookUploadDone, when set (tests), runs in the upload goroutine after the body went upstream
// whole, before it reports.
var testHookUploadDone atomic.Pointer[func()]

// send writes the request head and, unless it streams in the background (returned channel), its body.
func (fc *fastConn) send(uc *upConn, hasBody, replay bool) (chan error, error) {
	r := &fc.req
	fc.writeHead(uc.bw)
	switch {
	case !hasBody:
	case replay:
		b, _ := fc.br.Peek(int(r.contentLength))
		_, _ = uc.bw.Write(b)
	case !r.chunked && r.contentLength <= 64<<10:
		// A small body is written in line: it fits the upstream's socket buffers, so an upstream that
		// answers before reading it cannot deadlock us.
		buf := fc.p.bufs.Get()
		err := copyN(uc.bw, fc.br, r.contentLength, buf, uc.bw.Flush)
		fc.p.bufs.Put(buf)
		if err != nil {
			return nil, err
		}
	default:
		if err := uc.bw.Flush(); err != nil {
			return nil, retryErr(err)
		}
		async := make(chan error, 1)
		go func() {
			buf := fc.p.bufs.Get()
			defer fc.p.bufs.Put(buf)
			var err error
			if r.chunked {
				_, err = relayChunked(uc.bw, fc.br, buf, uc.bw.Flush)
			} else {
				err = copyN(uc.bw, fc.br, r.contentLength, buf, uc.bw.Flush)
			}
			if err == nil {
				err = uc.bw.Flush()
			}
			if err != nil {
				_ = uc.c.Close() // the upstream must not take a truncated body for a whole one
			} else if hook := testHookUploadDone.Load(); hook != nil {
				(*hook)()
			}
			async <- err
		}()
		return async, nil
	}
	return nil, retryErr(uc.bw.Flush())
}

// retryErr marks write errors on a connection that may have been closed by the upstream while idle.
func retryErr(err error) error {
	if err != nil && !isTimeout(err) {
		return retryable{err}
	}
	return err
}

// writeHead writes the rewritten request head: the client's fields minus hop-by-hop and proxy headers,
// then the framing, the hop header (to forks) and X-Forwarded-*/Forwarded (as setForwarded does).
func (fc *fastConn) writeHead(w *bufio.Writer) {
	r, st := &fc.req, &fc.st
	_, _ = w.Write(r.method)
	_ = w.WriteByte(' ')
	_, _ = w.Write(r.target)
	_, _ = w.WriteString(" HTTP/1.1\r\n")
	writeFields(w, r.fields)
	if r.chunked {
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if r.teTrailers {
		_, _ = w.WriteString("Te: trailers\r\n")
	}
	if st.kind == kindFork {
		_, _ = w.WriteString(HopHeader + ": ")
		_, _ = w.WriteString(fc.p.hopValue)
		_, _ = w.WriteString("\r\n")
	}
	_, _ = w.WriteString("X-Forwarded-For: ")
	if fc.trusted && len(r.xff) > 0 {
		fc.writeJoined(w, r.xff)
		_, _ = w.WriteString(", ")
	}
	_, _ = w.WriteString(fc.ip)
	_, _ = w.WriteString("\r\nX-Forwarded-Host: ")
	if fc.trusted && len(r.xfh) > 0 {
		_, _ = w.Write(r.fields[r.xfh[0]].value)
	} else {
		_, _ = w.Write(r.host)
	}
	_, _ = w.WriteString("\r\nX-Forwarded-Proto: ")
	if fc.trusted && len(r.xfp) > 0 {
		_, _ = w.Write(r.fields[r.xfp[0]].value)
	} else {
		_, _ = w.WriteString("http")
	}
	_, _ = w.WriteString("\r\nForwarded: ")
	if fc.trusted && len(r.fwd) > 0 {
		fc.writeJoined(w, r.fwd)
		_, _ = w.WriteString(", ")
	}
	fc.scratch = appendForwardedElement(fc.scratch[:0], fc.ip, r.host)
	_, _ = w.Write(fc.scratch)
	_, _ = w.WriteString("\r\n\r\n")
}

// writeFields writes the fields that are forwarded, as received.
func writeFields(w *bufio.Writer, fields []hfield) {
	for i := range fields {
		if f := &fields[i]; !f.skip {
			_, _ = w.Write(f.name)
			_, _ = w.WriteString(": ")
			_, _ = w.Write(f.value)
			_, _ = w.WriteString("\r\n")
		}
	}
}

func (fc *fastConn) writeJoined(w *bufio.Writer, idx []int) {
	for i, j := range idx {
		if i > 0 {
			_, _ = w.WriteString(", ")
		}
		_, _ = w.Write(fc.req.fields[j].value)
	}
}

// readResponseHead reads the final response head into fc.resp, relaying interim (1xx) responses to the
// client. A connection that ends before the first byte gives a retryable error.
func (fc *fastConn) readResponseHead(uc *upConn) error {
	if t := fc.p.cfg.ResponseHeaderTimeout; t > 0 {
		_ = uc.c.SetReadDeadline(time.Now().Add(t))
		defer func() { _ = uc.c.SetReadDeadline(time.Time{}) }()
	}
	for interim := 0; ; interim++ {
		block, err := readHeaderBlock(uc.br, fc.rhdr[:0], 1<<20)
		fc.rhdr = block
		if err != nil {
			if len(block) == 0 && interim == 0 && (err == io.EOF || errors.Is(err, net.ErrClosed) || isReset(err)) {
				return retryable{err}
			}
			if err == errHeaderTooLarge {
				return errBadResponse
			}
			return err
		}
		if err := parseResponse(block, &fc.resp); err != nil {
			return err
		}
		if fc.resp.status == http.StatusSwitchingProtocols || interim >= 8 {
			return errBadResponse // never asked for an upgrade
		}
		if fc.resp.status >= 200 {
			return nil
		}
		fc.writeResponseHead(false, false)
		if err := fc.bw.Flush(); err != nil {
			return err
		}
	}
}

// writeResponseHead writes fc.resp's head to the client.
func (fc *fastConn) writeResponseHead(addChunked, close bool) {
	w, rs := fc.bw, &fc.resp
	var code [3]byte
	code[0], code[1], code[2] = byte('0'+rs.status/100), byte('0'+rs.status/10%10), byte('0'+rs.status%10)
	_, _ = w.WriteString("HTTP/1.1 ")
	_, _ = w.Write(code[:])
	_ = w.WriteByte(' ')
	_, _ = w.Write(rs.reason)
	_, _ = w.WriteString("\r\n")
	writeFields(w, rs.fields)
	if addChunked {
		_, _ = w.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if close {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	_, _ = w.WriteString("\r\n")
}

// relayResponse relays the response head and body; it reports whether the client and the upstream
// connections can be reused.
func (fc *fastConn) relayResponse(uc *upConn) (keepClient, keepUp bool) {
	p, r, rs := fc.p, &fc.req, &fc.resp
	fc.st.status = rs.status
	if p.cfg.WriteTimeout > 0 {
		_ = fc.c.SetWriteDeadline(time.Now().Add(p.cfg.WriteTimeout))
	}
	closeClient := r.closeAfter || p.fast.closing()
	noBody := bodyless(r.method, rs.status)
	untilClose := !noBody && !rs.chunked && rs.contentLength < 0
	fc.writeResponseHead(untilClose, closeClient)
	var err error
	switch {
	case noBody:
	case rs.chunked:
		buf := p.bufs.Get()
		_, err = relayChunked(fc.bw, uc.br, buf, fc.flush)
		p.bufs.Put(buf)
	case rs.contentLength >= 0:
		buf := p.bufs.Get()
		err = copyN(fc.bw, uc.br, rs.contentLength, buf, fc.flush)
		p.bufs.Put(buf)
	default:
		buf := p.bufs.Get()
		err = copyChunkedUntilEOF(fc.bw, uc.br, buf, fc.flush)
		p.bufs.Put(buf)
	}
	fc.record()
	if ferr := fc.bw.Flush(); err == nil {
		err = ferr
	}
	if p.cfg.WriteTimeout > 0 {
		_ = fc.c.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		p.log.Debug("fast path: response relay ended", "target", fc.st.target, "err", err)
		return false, false
	}
	return !closeClient, !rs.closeAfter && !untilClose
}

// fail answers the client with the JSON error of Proxy.failure; the connection stays open when keep
// (no request body is left unread).
func (fc *fastConn) fail(err error, keep bool) bool {
	st := &fc.st
	code, body := fc.p.failure(st, requestIDOr(string(fc.req.requestID)), err)
	b, _ := json.Marshal(body)
	b = append(b, '\n')
	w := fc.bw
	_, _ = w.WriteString("HTTP/1.1 ")
	_, _ = w.WriteString(strconv.Itoa(code))
	_ = w.WriteByte(' ')
	_, _ = w.WriteString(http.StatusText(code))
	_, _ = w.WriteString("\r\nContent-Type: application/json\r\nContent-Length: ")
	_, _ = w.WriteString(strconv.Itoa(len(b)))
	_, _ = w.WriteString("\r\n")
	if !keep {
		_, _ = w.WriteString("Connection: close\r\n")
	}
	_, _ = w.WriteString("\r\n")
	_, _ = w.Write(b)
	fc.record()
	return w.Flush() == nil && keep
}

// sweepPools closes expired idle upstream connections until stop is closed.
func (p *Proxy) sweepPools(stop <-chan struct{}) {
	every := min(p.cfg.ForkIdleConnTimeout, localIdleConnTimeout) / 2
	t := time.NewTicker(max(every, 100*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			p.fastLocal.sweep(now)
			p.fastFork.sweep(now)
		}
	}
}
