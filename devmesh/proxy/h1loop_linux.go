//go:build linux

package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The event loop (Config.EventLoop). The fast path (h1fast.go) costs a goroutine park and wake-up per
// socket read that finds nothing yet: two per proxied request. The event loop serves the same plain
// keep-alive HTTP/1.1 exchanges without a goroutine per connection: each loop owns an epoll set of
// client and upstream sockets and, per readiness event, reads what is there, parses it with the fast
// path's parsers, routes it with Proxy.decide and writes the rewritten head (fastConn.writeHead) and
// the body in one system call, then relays the answer the same way.
//
// It serves the common case only and hands everything else, with the bytes read so far, to the fast
// path in a goroutine (which itself hands to net/http what it does not serve): a request the parser
// refuses or whose body is chunked or longer than loopMaxBody, a local override, a destination name
// that does not resolve (names are resolved in a goroutine while the request waits, then kept
// loopDNSTTL). An answer that is chunked or delimited by the upstream closing moves, with both connections, to
// the fast path part-way (its relayResponse), which then keeps the client connection. Timeouts are the
// fast path's (idle, header, body, dial, response header, write), checked against the loop's clock.
//
// A loop waits either on a locked OS thread blocked in epoll_wait (EventLoopThread: one thread wake-up
// per batch of events, like nginx) or parked on Go's netpoller through its epoll descriptor
// (EventLoopNetpoll: no locked thread, one more epoll_wait per wake-up).

const (
	loopReadSize   = 16 << 10
	loopMaxBody    = 64 << 10  // request bodies up to this are buffered whole on the loop
	loopMaxPending = 256 << 10 // answer bytes queued for a slow client before the upstream is left unread
	loopRespLimit  = 1 << 20   // an upstream response head (as readResponseHead)
	loopMaxEvents  = 256
	loopDNSTTL     = 5 * time.Second // how long a resolved destination name is reused (Kubernetes DNS's own TTL)
)

type loopState uint8

const (
	lsRead      loopState = iota // reading (the rest of) a request, or idle
	lsUpstream                   // request sent or being sent; waiting for the response head
	lsRelay                      // relaying the response body
	lsResolving                  // waiting for the destination's name to resolve
	lsClosing                    // writing the last bytes, then closing
)

// loopSide is one socket of a loop: output not yet taken by the socket, readiness as epoll reported it.
type loopSide struct {
	fd             int
	seq            int32 // registration number, in the epoll event: a stale event of a reused fd is ignored
	out            []byte
	rready, wready bool
	eof            bool
	werr, rerr     error
}

// Write writes b to the socket, queueing what it does not take now; a write error is kept in werr.
func (s *loopSide) Write(b []byte) (int, error) {
	size := len(b)
	if s.werr != nil {
		return size, nil
	}
	if len(s.out) == 0 && s.wready {
		n := 0
		for n < len(b) {
			m, err := unix.Write(s.fd, b[n:])
			if m > 0 {
				n += m
			}
			if err == unix.EINTR {
				continue
			}
			if err == unix.EAGAIN {
				s.wready = false
				break
			}
			if err != nil {
				s.werr = err
				return size, nil
			}
		}
		b = b[n:]
	}
	s.out = append(s.out, b...)
	return size, nil
}

// flush writes queued output while the socket takes it.
func (s *loopSide) flush() {
	n := 0
	for n < len(s.out) && s.wready && s.werr == nil {
		m, err := unix.Write(s.fd, s.out[n:])
		if m > 0 {
			n += m
		}
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN:
			s.wready = false
		case err != nil:
			s.werr = err
		}
	}
	if n > 0 {
		s.out = s.out[:copy(s.out, s.out[n:])]
	}
}

// fill reads once into buf[len(buf):cap(buf)]; a short read means the socket is drained (with
// edge-triggered epoll the next byte raises a new event), so rready drops without a read that fails.
func (s *loopSide) fill(buf []byte) []byte {
	for {
		room := buf[len(buf):cap(buf)]
		n, err := unix.Read(s.fd, room)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			s.rready = false
		case err != nil:
			s.rerr, s.rready = err, false
		case n == 0:
			s.eof, s.rready = true, false
		default:
			if n < len(room) {
				s.rready = false
			}
			buf = buf[:len(buf)+n]
		}
		return buf
	}
}

// loopClient is a client connection on a loop.
type loopClient struct {
	loopSide
	l      *evLoop
	fc     *fastConn
	hand   *chanListener
	handle *loopHandle
	in     []byte // input; in[off:] is unread
	off    int
	scan   int // in[off:off+scan] holds complete, non-empty head lines
	head   int // length of the parsed request head at in[off:] (0: none yet); in[off:] is not moved then
	// reading: a request has begun (its header timeout runs); flushing: the last answer is still being
	// written while no request is pending (the idle timeout starts after it)
	reading, flushing bool
	msg               int // head and body length of the request being served (0 while reading one)
	state             loopState
	dl                time.Time // deadline of the current state (zero: none)
	up                *loopUp
	// the current exchange
	hasBody, reused bool
	attempt         int
	interim         int
	left            int64
	closeClient     bool
	keepUp          bool
	closed          bool
}

// loopUp is an upstream connection on a loop, in an exchange (c) or idle in the loop's pool.
type loopUp struct {
	loopSide
	target     string
	fork       bool
	in         []byte
	off        int
	scan       int
	bw         *bufio.Writer
	connecting bool
	c          *loopClient
	idleAt     time.Time
	closed     bool
}

// loopHandle stands for a loop's client connection in Proxy.fast: a drain closes it (if idle) through
// the loop that owns it.
type loopHandle struct {
	net.Conn // nil: only Close is called
	c        *loopClient
}

func (h *loopHandle) Close() error {
	h.c.l.post(loopMsg{closeIdle: h.c})
	return nil
}

type loopMsg struct {
	adopt, closeIdle *loopClient
	resolved         *loopResolved
	closeForks, stop bool
}

// loopAddr is a destination's address: an IP literal, or a name resolved (or being resolved) off the loop.
type loopAddr struct {
	sa      unix.Sockaddr
	expires time.Time // zero: an IP literal
	pending bool
	waiting []*loopClient // requests parked until the name resolves
}

// loopResolved is a name's resolution, posted back to the loop (sa nil: it failed).
type loopResolved struct {
	target string
	sa     unix.Sockaddr
}

// evLoop is one event loop.
type evLoop struct {
	p       *Proxy
	ep      int
	wake    int
	file    *os.File        // the epoll descriptor as a pollable file (netpoll wait)
	rc      syscall.RawConn // of file
	thread  bool
	mu      sync.Mutex
	inbox   []loopMsg
	fds     map[int32]any // *loopClient or *loopUp
	idle    map[string][]*loopUp
	addrs   map[string]*loopAddr
	evs     []unix.EpollEvent
	now     time.Time
	next    time.Time // earliest deadline to check
	done    chan struct{}
	msgs    []loopMsg
	seq     int32
	fileDL  time.Time // the deadline set on file
	stopped bool      // under mu: wake is closed, nothing more is posted
}

// startLoops starts the event loops (Config.EventLoop); with none configured it does nothing.
func (p *Proxy) startLoops() error {
	if p.cfg.EventLoop == "" || p.cfg.EventLoop == EventLoopOff || !p.fastOn {
		return nil
	}
	n := runtime.GOMAXPROCS(0)
	for range n {
		l, err := newEvLoop(p, p.cfg.EventLoop == EventLoopThread)
		if err != nil {
			p.stopLoops()
			return fmt.Errorf("event loop: %w", err)
		}
		p.loops = append(p.loops, l)
		go l.run()
	}
	return nil
}

// stopLoops stops the loops and waits for them; connections still on them are closed.
func (p *Proxy) stopLoops() {
	for _, l := range p.loops {
		l.post(loopMsg{stop: true})
	}
	for _, l := range p.loops {
		<-l.done
	}
	p.loops = nil
}

// loopsCloseIdleForks drops the loops' idle fork connections (routes changed).
func (p *Proxy) loopsCloseIdleForks() {
	for _, l := range p.loops {
		l.post(loopMsg{closeForks: true})
	}
}

func newEvLoop(p *Proxy, thread bool) (*evLoop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		_ = unix.Close(ep)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	l := &evLoop{p: p, ep: ep, wake: wake, thread: thread, fds: map[int32]any{}, idle: map[string][]*loopUp{},
		addrs: map[string]*loopAddr{}, evs: make([]unix.EpollEvent, loopMaxEvents), done: make(chan struct{})}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLET, Fd: int32(wake)}); err != nil {
		_ = unix.Close(ep)
		_ = unix.Close(wake)
		return nil, fmt.Errorf("epoll_ctl eventfd: %w", err)
	}
	if !thread {
		if err := unix.SetNonblock(ep, true); err != nil {
			_ = unix.Close(ep)
			_ = unix.Close(wake)
			return nil, fmt.Errorf("epoll non-blocking: %w", err)
		}
		l.file = os.NewFile(uintptr(ep), "epoll")
		if l.rc, err = l.file.SyscallConn(); err != nil {
			_ = l.file.Close()
			_ = unix.Close(wake)
			return nil, fmt.Errorf("epoll as a file: %w", err)
		}
	}
	return l, nil
}

// post queues m for the loop and wakes it; false once the loop stopped.
func (l *evLoop) post(m loopMsg) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return false
	}
	l.inbox = append(l.inbox, m)
	var one = [8]byte{1}
	_, _ = unix.Write(l.wake, one[:])
	return true
}

// adopt moves accepted connection c onto a loop; false: c is untouched (not TCP), serve it otherwise.
func (p *Proxy) adopt(c net.Conn, info portInfo, hand *chanListener) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	fd := -1
	if cerr := raw.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil || err != nil {
		return false
	}
	fc := p.newFastConn(c, info)
	fc.c = nil // the loop has no net.Conn; fc.c is set again if the connection leaves the loop
	// Closing c takes it out of Go's netpoller; the duplicate keeps the socket open.
	_ = c.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return true
	}
	lc := &loopClient{loopSide: loopSide{fd: fd}, fc: fc, hand: hand}
	lc.handle = &loopHandle{c: lc}
	if !p.fast.begin(&fc.idle, lc.handle) {
		_ = unix.Close(fd)
		return true
	}
	l := p.loops[int(p.loopNext.Add(1))%len(p.loops)]
	lc.l = l
	if !l.post(loopMsg{adopt: lc}) {
		p.fast.end(lc.handle)
		_ = unix.Close(fd)
	}
	return true
}

func (l *evLoop) run() {
	defer close(l.done)
	if l.thread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	for {
		n, err := l.wait()
		l.now = time.Now()
		if err != nil && err != unix.EINTR {
			l.p.log.Error("event loop: epoll_wait", "err", err)
			l.shutdown()
			return
		}
		for i := range n {
			ev := &l.evs[i]
			if int(ev.Fd) == l.wake {
				if l.inboxes() {
					l.shutdown()
					return
				}
				continue
			}
			switch x := l.fds[ev.Fd].(type) {
			case *loopClient:
				if x.seq == ev.Pad {
					x.events(ev.Events)
					l.drive(x)
				}
			case *loopUp:
				if x.seq != ev.Pad {
					continue
				}
				x.events(ev.Events)
				c := x.c
				if x.connecting && x.wready {
					l.connected(x)
				}
				if c != nil {
					l.drive(c)
				} else if x.rready {
					l.closeUp(x) // an idle upstream said something (it is closing): drop it
				}
			}
		}
		if !l.next.IsZero() && !l.now.Before(l.next) {
			l.expire()
		}
	}
}

func (s *loopSide) events(e uint32) {
	if e&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.rready = true
	}
	if e&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		s.wready = true
	}
}

// wait returns the next batch of events, waiting at most until the earliest deadline.
func (l *evLoop) wait() (int, error) {
	if l.thread {
		ms := -1
		if !l.next.IsZero() {
			ms = max(0, int((time.Until(l.next)+time.Millisecond-1)/time.Millisecond))
		}
		return unix.EpollWait(l.ep, l.evs, ms)
	}
	if !l.next.Equal(l.fileDL) {
		l.fileDL = l.next
		_ = l.file.SetReadDeadline(l.next)
	}
	var n int
	var werr error
	err := l.rc.Read(func(uintptr) bool {
		n, werr = unix.EpollWait(l.ep, l.evs, 0)
		return n > 0 || (werr != nil && werr != unix.EINTR)
	})
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return n, werr
}

// inboxes handles posted messages; it reports a stop.
func (l *evLoop) inboxes() bool {
	var b [8]byte
	_, _ = unix.Read(l.wake, b[:])
	l.mu.Lock()
	l.msgs, l.inbox = l.inbox, l.msgs[:0]
	l.mu.Unlock()
	stop := false
	for _, m := range l.msgs {
		switch {
		case m.stop:
			stop = true
		case m.adopt != nil:
			c := m.adopt
			if err := l.register(&c.loopSide, c); err != nil {
				l.p.log.Debug("event loop: register client", "err", err)
				l.p.fast.end(c.handle)
				_ = unix.Close(c.fd)
				c.closed = true
				continue
			}
			c.wready = true
			l.setIdle(c)
		case m.closeIdle != nil:
			if c := m.closeIdle; !c.closed && c.fc.idle.Load() {
				l.closeClient(c)
			}
		case m.resolved != nil:
			l.resolved(m.resolved)
		case m.closeForks:
			for t, e := range l.addrs {
				if !e.pending && !e.expires.IsZero() {
					delete(l.addrs, t) // a fork Service may have a new address
				}
			}
			for t, us := range l.idle {
				if len(us) > 0 && us[0].fork {
					for _, u := range us {
						l.closeUp(u)
					}
					delete(l.idle, t)
				}
			}
		}
	}
	clear(l.msgs)
	return stop
}

func (l *evLoop) register(s *loopSide, x any) error {
	fd := s.fd
	l.seq++
	s.seq = l.seq
	l.fds[int32(fd)] = x
	err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: s.seq})
	if err != nil {
		delete(l.fds, int32(fd))
	}
	return err
}

// deadline sets c's deadline d from now (d ≤ 0: none).
func (l *evLoop) deadline(c *loopClient, d time.Duration) {
	if d <= 0 {
		c.dl = time.Time{}
		return
	}
	c.dl = l.now.Add(d)
	if l.next.IsZero() || c.dl.Before(l.next) {
		l.next = c.dl
	}
}

// setIdle puts c in lsRead waiting for a request, idle.
func (l *evLoop) setIdle(c *loopClient) {
	c.state, c.reading = lsRead, false
	if c.off == len(c.in) && cap(c.in) > 4<<10 {
		c.in, c.off = nil, 0 // an idle connection keeps no large buffer
	}
	c.fc.idle.Store(true)
	l.deadline(c, l.p.cfg.IdleTimeout)
	if l.p.fast.closing() {
		l.closeClient(c)
	}
}

// drive advances c (and its upstream) as far as the sockets allow.
func (l *evLoop) drive(c *loopClient) {
	for !c.closed {
		if len(c.out) > 0 {
			c.flush()
			if c.werr != nil {
				l.abort(c)
				return
			}
		}
		if c.flushing && len(c.out) == 0 {
			c.flushing = false
			if c.state == lsRead && c.off == len(c.in) {
				l.setIdle(c)
			}
		}
		var progressed bool
		switch c.state {
		case lsRead:
			progressed = l.stepRead(c)
		case lsUpstream:
			progressed = l.stepUpstream(c)
		case lsRelay:
			progressed = l.stepRelay(c)
		case lsClosing:
			c.flush()
			if len(c.out) == 0 || c.werr != nil {
				l.closeClient(c)
			}
		}
		if !progressed {
			return
		}
	}
}

// headEnd finds the end of the header block starting at b[0], resuming at *scan (the start of the
// first incomplete line): the length of the block, 0 while incomplete, -1 past limit (as readHeaderBlock).
func headEnd(b []byte, scan *int, limit int) int {
	pos := *scan
	for {
		i := bytes.IndexByte(b[pos:], '\n')
		if i < 0 {
			*scan = pos
			if len(b) > limit {
				return -1
			}
			return 0
		}
		end := pos + i + 1
		if end > limit {
			return -1
		}
		if line := b[pos:end]; len(line) == 1 || (len(line) == 2 && line[0] == '\r') {
			*scan = 0
			return end
		}
		pos = end
	}
}

// stepRead reads and parses a request; true once an exchange started (or the connection left).
func (l *evLoop) stepRead(c *loopClient) bool {
	p := l.p
	if len(c.out) > loopMaxPending {
		return false // pipelined requests wait while the client does not read its answers
	}
	for {
		b := c.in[c.off:]
		if len(b) > 0 && c.head == 0 {
			c.fc.idle.Store(false)
			if !c.reading {
				c.reading = true
				l.deadline(c, p.cfg.ReadHeaderTimeout)
			}
			end := headEnd(b, &c.scan, p.cfg.MaxHeaderBytes)
			if end < 0 {
				l.handOff(c)
				return false
			}
			if end > 0 {
				r := &c.fc.req
				r.reset()
				if !parseRequest(b[:end], r, p.keyHeaderIndex) || r.chunked || r.contentLength > loopMaxBody {
					l.handOff(c)
					return false
				}
				c.head, c.msg = end, end+int(max(r.contentLength, 0))
				if len(b) < c.msg {
					l.deadline(c, p.cfg.ReadTimeout) // the body's, as the fast path (none by default)
				}
			}
		}
		if c.head > 0 && len(b) >= c.msg {
			c.hasBody = c.msg > c.head
			l.exchange(c)
			return true
		}
		if c.eof || c.rerr != nil {
			l.closeClient(c)
			return false
		}
		if !c.rready {
			return false
		}
		if c.head > 0 && cap(c.in)-len(c.in) < 2<<10 {
			// The parsed head points into c.in: grow into a new array, never move bytes within it.
			grown := make([]byte, len(c.in), 2*cap(c.in))
			copy(grown, c.in)
			c.in = grown
		} else {
			c.in, c.off = l.room(c.in, c.off, 4<<10)
		}
		c.in = c.fill(c.in)
	}
}

// exchange routes the parsed request and sends it upstream.
func (l *evLoop) exchange(c *loopClient) {
	p, fc := l.p, c.fc
	r, st := &fc.req, &fc.st
	fc.start, fc.recorded = time.Now(), false
	*st = reqState{kind: kindLocal, port: fc.info.port}
	var h http.Header
	if r.keyFields > 0 {
		h = fc.keyHeader()
	}
	p.decide(st, r.ownHop, h)
	if st.override != "" {
		l.handOff(c)
		return
	}
	c.attempt, c.interim = 0, 0
	l.send(c, true)
}

// sockaddr returns target's address. A name is resolved off the loop: c is parked until it is (false),
// or handed off when target cannot be parsed.
func (l *evLoop) sockaddr(c *loopClient, target string) (unix.Sockaddr, bool) {
	e := l.addrs[target]
	switch {
	case e != nil && e.pending:
		e.waiting = append(e.waiting, c)
		l.park(c)
		return nil, false
	case e != nil && (e.expires.IsZero() || l.now.Before(e.expires)):
		return e.sa, true
	}
	if len(l.addrs) > 1024 {
		for t, x := range l.addrs {
			if !x.pending {
				delete(l.addrs, t)
			}
		}
	}
	if ap, err := netip.ParseAddrPort(target); err == nil {
		if sa := sockaddrOf(ap); sa != nil {
			l.addrs[target] = &loopAddr{sa: sa}
			return sa, true
		}
	}
	host, port, err := net.SplitHostPort(target)
	pn, perr := strconv.ParseUint(port, 10, 16)
	if err != nil || perr != nil || host == "" || pn == 0 {
		l.handOff(c)
		return nil, false
	}
	l.addrs[target] = &loopAddr{pending: true, waiting: []*loopClient{c}}
	l.park(c)
	go l.resolve(target, host, uint16(pn))
	return nil, false
}

func sockaddrOf(ap netip.AddrPort) unix.Sockaddr {
	if a := ap.Addr().Unmap(); a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}
	} else if a.Is6() && a.Zone() == "" {
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}
	}
	return nil
}

// park makes c wait for its destination's name.
func (l *evLoop) park(c *loopClient) {
	c.state = lsResolving
	l.deadline(c, l.p.cfg.DialTimeout)
}

// resolve looks host up (an IPv4 address first) and posts the result to the loop.
func (l *evLoop) resolve(target, host string, port uint16) {
	ctx, cancel := context.WithTimeout(context.Background(), l.p.cfg.DialTimeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	var sa unix.Sockaddr
	if err == nil {
		slices.SortStableFunc(ips, func(a, b netip.Addr) int {
			if a.Unmap().Is4() == b.Unmap().Is4() {
				return 0
			}
			if a.Unmap().Is4() {
				return -1
			}
			return 1
		})
		for _, ip := range ips {
			if sa = sockaddrOf(netip.AddrPortFrom(ip, port)); sa != nil {
				break
			}
		}
	}
	l.post(loopMsg{resolved: &loopResolved{target: target, sa: sa}})
}

// resolved takes a name's resolution and sends (or hands off) the requests that waited for it.
func (l *evLoop) resolved(r *loopResolved) {
	e := l.addrs[r.target]
	if e == nil || !e.pending {
		return
	}
	waiting := e.waiting
	if r.sa != nil {
		e.sa, e.pending, e.expires, e.waiting = r.sa, false, l.now.Add(loopDNSTTL), nil
	} else {
		delete(l.addrs, r.target) // not cached: the fast path resolves again and answers the error
	}
	for _, c := range waiting {
		if c.closed || c.state != lsResolving {
			continue
		}
		if r.sa == nil {
			l.handOff(c)
			continue
		}
		l.send(c, true)
		l.drive(c)
	}
}

// send takes an upstream connection for the request (pooled when pool) and writes the request.
func (l *evLoop) send(c *loopClient, pool bool) {
	p, fc := l.p, c.fc
	st := &fc.st
	var u *loopUp
	if pool {
		u = l.getIdle(st.target)
	}
	c.reused = u != nil
	if u == nil {
		sa, ok := l.sockaddr(c, st.target)
		if !ok {
			return // parked until the name resolves, or handed off
		}
		var err error
		if u, err = l.dial(st.target, sa); err != nil {
			l.dialFailed(c, err)
			return
		}
		u.fork = st.kind == kindFork
	}
	c.up, u.c = u, c
	c.state = lsUpstream
	if u.connecting {
		l.deadline(c, p.cfg.DialTimeout)
	} else {
		l.deadline(c, p.cfg.ResponseHeaderTimeout)
	}
	if u.bw == nil {
		u.bw = bufio.NewWriterSize(&u.loopSide, 4<<10)
	}
	fc.writeHead(u.bw)
	if c.hasBody {
		_, _ = u.bw.Write(c.in[c.off+c.msg-int(fc.req.contentLength) : c.off+c.msg])
	}
	_ = u.bw.Flush()
}

func (l *evLoop) getIdle(target string) *loopUp {
	us := l.idle[target]
	for len(us) > 0 {
		u := us[len(us)-1]
		us[len(us)-1] = nil
		us = us[:len(us)-1]
		if l.now.Sub(u.idleAt) < l.idleTimeout(u) {
			l.idle[target] = us
			return u
		}
		l.closeUp(u)
	}
	delete(l.idle, target)
	return nil
}

func (l *evLoop) idleTimeout(u *loopUp) time.Duration {
	if u.fork {
		return l.p.cfg.ForkIdleConnTimeout
	}
	return localIdleConnTimeout
}

// dial starts a non-blocking connect to sa.
func (l *evLoop) dial(target string, sa unix.Sockaddr) (*loopUp, error) {
	family := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, dialError(target, os.NewSyscallError("socket", err))
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 30)
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 30)
	u := &loopUp{loopSide: loopSide{fd: fd}, target: target}
	switch err := unix.Connect(fd, sa); err {
	case nil:
		u.wready = true
	case unix.EINPROGRESS:
		u.connecting = true
	default:
		_ = unix.Close(fd)
		return nil, dialError(target, os.NewSyscallError("connect", err))
	}
	if err := l.register(&u.loopSide, u); err != nil {
		_ = unix.Close(fd)
		return nil, dialError(target, os.NewSyscallError("epoll_ctl", err))
	}
	return u, nil
}

func dialError(target string, err error) error {
	var addr net.Addr
	if ap, perr := netip.ParseAddrPort(target); perr == nil {
		addr = net.TCPAddrFromAddrPort(ap)
	}
	return &net.OpError{Op: "dial", Net: "tcp", Addr: addr, Err: err}
}

// connected finishes a non-blocking connect (the socket became writable).
func (l *evLoop) connected(u *loopUp) {
	u.connecting = false
	errno, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && errno != 0 {
		err = syscall.Errno(errno)
	}
	c := u.c
	if err != nil {
		u.c = nil
		l.closeUp(u)
		if c != nil {
			c.up = nil
			l.dialFailed(c, dialError(u.target, os.NewSyscallError("connect", err)))
		}
		return
	}
	if c != nil {
		l.deadline(c, l.p.cfg.ResponseHeaderTimeout)
	}
}

// dialFailed falls back from an unreachable fork to the baseline when configured, else answers the error.
func (l *evLoop) dialFailed(c *loopClient, err error) {
	p, st := l.p, &c.fc.st
	if st.kind == kindFork && p.cfg.FallbackToBaseline && !st.fellBack && isDialError(err) {
		p.log.Warn("fork unreachable, falling back to baseline", "sandbox", st.dest.Sandbox.String(), "fork", st.target, "err", err)
		st.kind, st.fellBack, st.target = kindBaseline, true, p.localAddr(st.port)
		l.send(c, true)
		return
	}
	l.fail(c, err)
}

// fail answers the current request with the fast path's error answer; the upstream, if any, is closed.
func (l *evLoop) fail(c *loopClient, err error) {
	if u := c.up; u != nil {
		c.up, u.c = nil, nil
		l.closeUp(u)
	}
	fc := c.fc
	fc.bw = l.clientWriter(c)
	keep := fc.fail(err, !c.hasBody) && !fc.req.closeAfter && !l.p.fast.closing()
	l.endExchange(c, keep)
}

// clientWriter returns the writer of c's answers (fc.bw on the loop).
func (l *evLoop) clientWriter(c *loopClient) *bufio.Writer {
	if c.fc.bw == nil {
		c.fc.bw = bufio.NewWriterSize(&c.loopSide, 4<<10)
	}
	return c.fc.bw
}

// upstreamFailed handles an upstream connection that failed before the answer's head: a reused one
// (it may have been closed while idle) is retried once on a new connection, as the fast path does.
func (l *evLoop) upstreamFailed(c *loopClient, err error, retryable bool) {
	u := c.up
	c.up, u.c = nil, nil
	l.closeUp(u)
	if retryable && c.reused && c.attempt == 0 && c.interim == 0 {
		c.attempt++
		l.send(c, false)
		return
	}
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	l.fail(c, err)
}

// stepUpstream writes the request and reads the answer's head; true once relaying started.
func (l *evLoop) stepUpstream(c *loopClient) bool {
	u := c.up
	if u.connecting {
		return false
	}
	u.flush()
	if u.werr != nil {
		l.upstreamFailed(c, &net.OpError{Op: "write", Net: "tcp", Err: os.NewSyscallError("write", u.werr)}, true)
		return false
	}
	for {
		b := u.in[u.off:]
		if len(b) > 0 {
			end := headEnd(b, &u.scan, loopRespLimit)
			if end < 0 {
				l.fail(c, errBadResponse)
				return false
			}
			if end > 0 {
				rs := &c.fc.resp
				if err := parseResponse(b[:end], rs); err != nil {
					l.fail(c, err)
					return false
				}
				if rs.status == http.StatusSwitchingProtocols || c.interim >= 8 {
					l.fail(c, errBadResponse)
					return false
				}
				if rs.status < 200 {
					w := l.clientWriter(c)
					c.fc.writeResponseHead(false, false)
					_ = w.Flush()
					u.off += end
					c.interim++
					continue
				}
				l.beginRelay(c, end)
				return true
			}
		}
		if u.eof || u.rerr != nil {
			first := len(b) == 0 && c.interim == 0
			err := u.rerr
			if err == nil {
				err = io.EOF
				if !first {
					err = io.ErrUnexpectedEOF
				}
			}
			l.upstreamFailed(c, err, first && (err == io.EOF || isReset(err)))
			return false
		}
		if !u.rready {
			return false
		}
		u.in, u.off = l.room(u.in, u.off, loopReadSize)
		u.in = u.fill(u.in)
	}
}

// room makes space to read into buf, whose unread part starts at off (size: of a new buffer).
func (l *evLoop) room(buf []byte, off, size int) ([]byte, int) {
	if off > 0 && off == len(buf) {
		return buf[:0], 0
	}
	if cap(buf)-len(buf) >= 2<<10 {
		return buf, off
	}
	if off > 0 {
		buf, off = buf[:copy(buf, buf[off:])], 0
		if cap(buf)-len(buf) >= 2<<10 {
			return buf, off
		}
	}
	grown := make([]byte, len(buf), max(size, 2*cap(buf)))
	copy(grown, buf)
	return grown, off
}

// beginRelay writes the answer's head (head bytes in c.up.in[off:off+end]) and starts relaying its body;
// a chunked answer or one delimited by the upstream closing moves to the fast path.
func (l *evLoop) beginRelay(c *loopClient, end int) {
	p, fc, u := l.p, c.fc, c.up
	r, rs := &fc.req, &fc.resp
	fc.st.status = rs.status
	noBody := bodyless(r.method, rs.status)
	if !noBody && (rs.chunked || rs.contentLength < 0) {
		l.migrate(c, end)
		return
	}
	c.closeClient = r.closeAfter || p.fast.closing()
	c.keepUp = !rs.closeAfter
	l.clientWriter(c)
	fc.writeResponseHead(false, c.closeClient)
	u.off += end
	u.scan = 0
	c.left = 0
	if !noBody {
		c.left = rs.contentLength
	}
	c.state = lsRelay
	l.deadline(c, p.cfg.WriteTimeout)
}

// stepRelay relays the answer's body; true once the exchange ended.
func (l *evLoop) stepRelay(c *loopClient) bool {
	u, fc := c.up, c.fc
	w := fc.bw
	for c.left > 0 {
		if b := u.in[u.off:]; len(b) > 0 {
			n := int(min(int64(len(b)), c.left))
			_, _ = w.Write(b[:n])
			u.off += n
			c.left -= int64(n)
			continue
		}
		_ = w.Flush()
		c.flush()
		if c.werr != nil {
			l.abort(c)
			return false
		}
		if len(c.out) > loopMaxPending {
			return false // the client is slow: leave the upstream unread until it catches up
		}
		if u.eof || u.rerr != nil {
			fc.record()
			l.abort(c)
			return false
		}
		if !u.rready {
			return false
		}
		u.in, u.off = l.room(u.in, u.off, loopReadSize)
		u.in = u.fill(u.in)
	}
	fc.record()
	_ = w.Flush()
	if c.werr != nil {
		l.abort(c)
		return false
	}
	c.up, u.c = nil, nil
	if c.keepUp && u.off == len(u.in) && len(u.out) == 0 && !u.eof && u.rerr == nil && u.werr == nil {
		l.putIdle(u)
	} else {
		l.closeUp(u)
	}
	l.endExchange(c, !c.closeClient && !l.p.fast.closing())
	return true
}

// endExchange consumes the served request and waits for the next one (keep) or closes after the
// answer is written.
func (l *evLoop) endExchange(c *loopClient, keep bool) {
	c.off += c.msg
	c.msg, c.head, c.scan, c.hasBody, c.reading = 0, 0, 0, false, false
	if !keep || c.werr != nil {
		c.state = lsClosing
		l.deadline(c, max(l.p.cfg.WriteTimeout, l.p.cfg.IdleTimeout))
		return
	}
	c.state = lsRead
	switch {
	case len(c.out) > 0 && c.off == len(c.in):
		// The answer is still being written: the idle timeout starts once it is (drive).
		c.flushing = true
		l.deadline(c, l.p.cfg.WriteTimeout)
	case c.off == len(c.in):
		l.setIdle(c)
	default:
		c.reading = true
		l.deadline(c, l.p.cfg.ReadHeaderTimeout)
	}
}

// abort ends a client connection and its upstream part-way through an answer.
func (l *evLoop) abort(c *loopClient) {
	c.fc.record()
	var rerr error
	if c.up != nil {
		rerr = c.up.rerr
	}
	l.p.log.Debug("event loop: response relay ended", "target", c.fc.st.target, "err", errors.Join(c.werr, rerr))
	l.closeClient(c)
}

func (l *evLoop) putIdle(u *loopUp) {
	us := l.idle[u.target]
	if len(us) >= l.p.cfg.MaxIdleConnsPerHost {
		l.closeUp(u)
		return
	}
	u.idleAt, u.in, u.off, u.scan = l.now, u.in[:0], 0, 0
	l.idle[u.target] = append(us, u)
}

func (l *evLoop) unregister(fd int) {
	delete(l.fds, int32(fd))
	_ = unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil)
}

func (l *evLoop) closeUp(u *loopUp) {
	if u.closed {
		return
	}
	u.closed = true
	l.unregister(u.fd)
	_ = unix.Close(u.fd)
}

// closeClient closes c and its upstream, if any.
func (l *evLoop) closeClient(c *loopClient) {
	if c.closed {
		return
	}
	c.closed = true
	if u := c.up; u != nil {
		c.up, u.c = nil, nil
		l.closeUp(u)
	}
	l.unregister(c.fd)
	_ = unix.Close(c.fd)
	l.p.fast.end(c.handle)
	l.p.m.h1Fast.Inc()
	l.p.m.loopServed.Inc()
}

// release takes fd off the loop and returns it as a net.Conn (Go's netpoller takes it over).
func (l *evLoop) release(fd int) (net.Conn, error) {
	l.unregister(fd)
	f := os.NewFile(uintptr(fd), "")
	nc, err := net.FileConn(f)
	_ = f.Close()
	return nc, err
}

// handOff gives c, with its unread bytes, to the fast path in a goroutine (before any exchange began).
func (l *evLoop) handOff(c *loopClient) {
	if u := c.up; u != nil {
		c.up, u.c = nil, nil
		l.closeUp(u)
	}
	rest := bytes.Clone(c.in[c.off:])
	_ = l.clientWriter(c).Flush()
	pending := bytes.Clone(c.out)
	c.closed = true
	nc, err := l.release(c.fd)
	if err != nil {
		l.p.log.Debug("event loop: hand-off", "err", err)
		l.p.fast.end(c.handle)
		return
	}
	p := l.p
	fc := p.newFastConn(nc, c.fc.info)
	pc := &portConn{Conn: nc, info: c.fc.info, r: io.MultiReader(bytes.NewReader(rest), nc)}
	fc.c = pc
	p.fast.swap(c.handle, pc, &fc.idle)
	p.m.loopHandedOff.Inc()
	go func() {
		if len(pending) > 0 {
			if _, err := nc.Write(pending); err != nil {
				p.fast.end(pc)
				_ = nc.Close()
				return
			}
		}
		p.runFast(fc, c.hand, nil)
	}()
}

// migrate moves c and its upstream, in the middle of an exchange whose answer head is parsed (end bytes
// at c.up.in[off:]), to the fast path, which relays the answer and keeps serving the client.
func (l *evLoop) migrate(c *loopClient, end int) {
	p, fc, u := l.p, c.fc, c.up
	c.up, u.c = nil, nil
	rest := bytes.Clone(c.in[c.off+c.msg:])
	body := bytes.Clone(u.in[u.off+end:])
	_ = l.clientWriter(c).Flush()
	pending := bytes.Clone(c.out)
	c.closed, u.closed = true, true
	nu, uerr := l.release(u.fd)
	nc, err := l.release(c.fd)
	if err != nil || uerr != nil {
		l.p.log.Debug("event loop: migrate", "err", errors.Join(err, uerr))
		for _, x := range []net.Conn{nc, nu} {
			if x != nil {
				_ = x.Close()
			}
		}
		p.fast.end(c.handle)
		return
	}
	pc := &portConn{Conn: nc, info: fc.info}
	if len(rest) > 0 {
		pc.r = io.MultiReader(bytes.NewReader(rest), nc)
	}
	fc.c = pc
	p.fast.swap(c.handle, pc, &fc.idle)
	p.m.loopMoved.Inc()
	upr := &prefixReader{prefix: body, r: nu}
	uc := &upConn{c: nu, br: bufio.NewReaderSize(upr, 4<<10), bw: bufio.NewWriterSize(nu, 4<<10)}
	go p.runFast(fc, c.hand, func() bool {
		if len(pending) > 0 {
			_, _ = fc.bw.Write(pending)
		}
		keepClient, keepUp := fc.relayResponse(uc)
		pool := p.fastLocal
		if fc.st.kind == kindFork {
			pool = p.fastFork
		}
		if keepUp && len(upr.prefix) == 0 {
			pool.put(fc.st.target, uc)
		} else {
			_ = uc.c.Close()
		}
		return keepClient && !fc.req.closeAfter && !p.fast.closing()
	})
}

// prefixReader reads prefix, then r.
type prefixReader struct {
	prefix []byte
	r      io.Reader
}

func (x *prefixReader) Read(b []byte) (int, error) {
	if len(x.prefix) > 0 {
		n := copy(b, x.prefix)
		x.prefix = x.prefix[n:]
		return n, nil
	}
	return x.r.Read(b)
}

// expire acts on passed deadlines and idle upstream timeouts, and finds the next deadline.
func (l *evLoop) expire() {
	l.next = time.Time{}
	for _, x := range l.fds {
		c, ok := x.(*loopClient)
		if !ok || c.closed || c.dl.IsZero() {
			continue
		}
		if l.now.Before(c.dl) {
			if l.next.IsZero() || c.dl.Before(l.next) {
				l.next = c.dl
			}
			continue
		}
		c.dl = time.Time{}
		switch {
		case c.state == lsUpstream && c.up != nil && c.up.connecting:
			u := c.up
			c.up, u.c = nil, nil
			l.closeUp(u)
			l.dialFailed(c, dialError(u.target, os.ErrDeadlineExceeded))
		case c.state == lsUpstream:
			l.fail(c, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded})
		case c.state == lsResolving:
			l.handOff(c) // the fast path resolves again and answers what it finds
		default:
			l.closeClient(c)
		}
		if !c.closed {
			l.drive(c)
			if !c.dl.IsZero() && (l.next.IsZero() || c.dl.Before(l.next)) {
				l.next = c.dl
			}
		}
	}
	for t, us := range l.idle {
		kept := us[:0]
		for _, u := range us {
			if l.now.Sub(u.idleAt) < l.idleTimeout(u) {
				kept = append(kept, u)
			} else {
				l.closeUp(u)
			}
		}
		clear(us[len(kept):])
		if len(kept) == 0 {
			delete(l.idle, t)
		} else {
			l.idle[t] = kept
		}
	}
	if len(l.idle) > 0 {
		if soon := l.now.Add(time.Second); l.next.IsZero() || soon.Before(l.next) {
			l.next = soon
		}
	}
}

// shutdown closes everything still on the loop.
func (l *evLoop) shutdown() {
	for _, x := range l.fds {
		switch x := x.(type) {
		case *loopClient:
			l.closeClient(x)
		case *loopUp:
			l.closeUp(x)
		}
	}
	l.mu.Lock()
	l.stopped = true
	for _, m := range l.inbox {
		if c := m.adopt; c != nil {
			l.p.fast.end(c.handle)
			_ = unix.Close(c.fd)
		}
	}
	l.inbox = nil
	_ = unix.Close(l.wake)
	l.mu.Unlock()
	if l.file != nil {
		_ = l.file.Close()
	} else {
		_ = unix.Close(l.ep)
	}
}
