package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Start binds every listener (explicit ports, redirect port, admin port) and serves in the background.
// It returns an error if a listener cannot be bound.
func (p *Proxy) Start(ctx context.Context) error {
	if p.started.Swap(true) {
		return fmt.Errorf("devmesh %s: already started", p.cfg.Workload)
	}
	if err := p.startLoops(); err != nil {
		return fmt.Errorf("devmesh %s: %w", p.cfg.Workload, err)
	}
	var lc net.ListenConfig
	for _, pm := range p.cfg.Ports {
		addr := net.JoinHostPort(p.cfg.ListenHost, strconv.Itoa(pm.Listen))
		ln, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			p.closeListeners()
			p.stopLoops()
			return fmt.Errorf("devmesh %s: listen %s for app port %d: %w", p.cfg.Workload, addr, pm.App, err)
		}
		p.listeners = append(p.listeners, ln)
		p.addrs[pm.App] = ln.Addr().String()
		if pm.Protocol == ProtocolTCP {
			p.serveWG.Add(1)
			go func() {
				defer p.serveWG.Done()
				addr := p.localAddr(pm.App)
				acceptEach(ln, func(c net.Conn) { p.pipeTCP(c, addr) })
			}()
			continue
		}
		srv := p.newServer(portHandler{p: p, port: pm.App, proto: pm.Protocol})
		p.servers = append(p.servers, srv)
		var sl net.Listener = &gateListener{Listener: ln, limit: p.cfg.MaxHeaderBytes}
		if p.fastOn && pm.Protocol != ProtocolH2C {
			// The fast path accepts; net/http serves what it hands over.
			hl := newChanListener(ln.Addr())
			sl = hl
			p.serveWG.Add(1)
			go func() {
				defer p.serveWG.Done()
				defer hl.Close()
				info := portInfo{port: pm.App, proto: pm.Protocol}
				acceptEach(ln, func(c net.Conn) { p.serveHTTP1(c, info, hl) })
			}()
		}
		p.serveWG.Add(1)
		go func() {
			defer p.serveWG.Done()
			if err := srv.Serve(sl); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
				p.log.Error("serve", "addr", ln.Addr().String(), "err", err)
			}
		}()
	}
	if p.fastOn {
		p.stopSweep = make(chan struct{})
		go p.sweepPools(p.stopSweep)
	}
	if p.cfg.RedirectListen != "" {
		ln, err := lc.Listen(ctx, "tcp", p.cfg.RedirectListen)
		if err != nil {
			p.closeListeners()
			p.stopLoops()
			return fmt.Errorf("devmesh %s: listen %s (redirect mode): %w", p.cfg.Workload, p.cfg.RedirectListen, err)
		}
		p.listeners = append(p.listeners, ln)
		p.redirectAddr = ln.Addr().String()
		hl := newChanListener(ln.Addr())
		srv := p.newServer(portHandler{p: p})
		srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*portConn); ok {
				return context.WithValue(ctx, portCtxKey{}, pc.info)
			}
			return ctx
		}
		p.servers = append(p.servers, srv)
		p.serveWG.Add(2)
		go func() {
			defer p.serveWG.Done()
			_ = srv.Serve(hl)
		}()
		go func() {
			defer p.serveWG.Done()
			p.acceptRedirect(ln, hl)
		}()
	}
	if p.cfg.AdminListen != "" {
		ln, err := lc.Listen(ctx, "tcp", p.cfg.AdminListen)
		if err != nil {
			p.closeListeners()
			p.stopLoops()
			return fmt.Errorf("devmesh %s: listen %s (admin): %w", p.cfg.Workload, p.cfg.AdminListen, err)
		}
		p.adminAddr = ln.Addr().String()
		p.admin = &http.Server{Handler: p.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = p.admin.Serve(ln) }()
	}
	p.log.Info("devmesh started", "workload", p.cfg.Workload.String(), "ports", p.addrs, "redirect", p.redirectAddr, "admin", p.adminAddr)
	return nil
}

func (p *Proxy) newServer(h http.Handler) *http.Server {
	var pr http.Protocols
	pr.SetHTTP1(true)
	pr.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           h,
		Protocols:         &pr,
		ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
		ReadTimeout:       p.cfg.ReadTimeout,
		WriteTimeout:      p.cfg.WriteTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes, // headGate makes it exact
		HTTP2:             &http.HTTP2Config{MaxReceiveBufferPerStream: 1 << 20},
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
}

// Addr returns the bound explicit-mode listen address of an app port ("" if none).
func (p *Proxy) Addr(appPort int32) string { return p.addrs[appPort] }

// RedirectAddr returns the bound redirect-mode listen address ("" if disabled).
func (p *Proxy) RedirectAddr() string { return p.redirectAddr }

// AdminAddr returns the bound admin address ("" if disabled).
func (p *Proxy) AdminAddr() string { return p.adminAddr }

func (p *Proxy) closeListeners() {
	for _, ln := range p.listeners {
		_ = ln.Close()
	}
}

// Shutdown drains: /readyz fails at once, traffic is still served for DrainDelay, then listeners close
// and in-flight requests and TCP connections get until DrainTimeout (or ctx) to finish before they are
// closed.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.draining.Store(true)
	p.log.Info("draining", "delay", p.cfg.DrainDelay, "timeout", p.cfg.DrainTimeout)
	if p.cfg.DrainDelay > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(p.cfg.DrainDelay):
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DrainTimeout)
	defer cancel()
	p.closeListeners()
	var wg sync.WaitGroup
	errs := make([]error, len(p.servers)+2)
	for i, s := range p.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Shutdown(ctx); err != nil && !errors.Is(err, net.ErrClosed) {
				_ = s.Close()
				errs[i] = fmt.Errorf("drain server: %w", err)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !p.fast.wait(ctx) {
			errs[len(errs)-2] = fmt.Errorf("drain http/1.1 connections: %w", ctx.Err())
		}
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		if !p.tcp.wait(ctx) {
			errs[len(errs)-1] = fmt.Errorf("drain tcp connections: %w", ctx.Err())
		}
	}()
	wg.Wait()
	p.serveWG.Wait()
	p.stopLoops()
	for _, t := range []*http.Transport{p.localH1, p.localH2, p.forkH1, p.forkH2, p.ovrH1, p.ovrH2} {
		t.CloseIdleConnections()
	}
	if p.stopSweep != nil {
		p.stopOnce.Do(func() { close(p.stopSweep) })
	}
	p.fastLocal.closeIdle()
	p.fastFork.closeIdle()
	if p.admin != nil {
		_ = p.admin.Close()
	}
	err := errors.Join(errs...)
	p.log.Info("drained", "err", err)
	if err != nil {
		return fmt.Errorf("devmesh %s: %w", p.cfg.Workload, err)
	}
	return nil
}

// acceptRedirect accepts iptables-redirected connections, reads their original destination and hands
// them to the HTTP server (through hl) or to the TCP pass-through.
func (p *Proxy) acceptRedirect(ln net.Listener, hl *chanListener) {
	defer hl.Close()
	_, lport, _ := net.SplitHostPort(ln.Addr().String())
	for {
		c, err := ln.Accept()
		if err != nil {
			if isTemporary(err) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return
		}
		orig, err := p.origDst(c)
		if err != nil || strconv.Itoa(int(orig.Port())) == lport {
			p.log.Warn("redirect mode: connection without original destination; closing", "remote", c.RemoteAddr().String(), "err", err)
			p.m.tcpConns.WithLabelValues("no_original_dst").Inc()
			_ = c.Close()
			continue
		}
		port := int32(orig.Port())
		proto := p.cfg.RedirectProtocols[port]
		if proto == ProtocolTCP {
			go p.pipeTCP(c, p.localAddr(port))
			continue
		}
		info := portInfo{port: port, proto: proto}
		if p.fastOn && proto != ProtocolH2C {
			go p.serveHTTP1(c, info, hl)
			continue
		}
		if !hl.deliver(&portConn{Conn: c, info: info, r: newHeadGate(c, p.cfg.MaxHeaderBytes)}) {
			_ = c.Close()
			return
		}
	}
}

func isTemporary(err error) bool {
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary()
}

// gateListener gives net/http its connections behind a headGate.
type gateListener struct {
	net.Listener
	limit int
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &portConn{Conn: c, r: newHeadGate(c, l.limit)}, nil
}

// portConn carries a connection's app port to the HTTP handler; r, when set, is what net/http reads: the
// connection behind a headGate, after what the fast path already read if it handed the connection over.
type portConn struct {
	net.Conn
	info portInfo
	r    io.Reader
}

func (c *portConn) Read(b []byte) (int, error) {
	if c.r != nil {
		return c.r.Read(b)
	}
	return c.Conn.Read(b)
}

// CloseWrite half-closes the connection, so that net/http can send a FIN after an error answer (400,
// 431) and wait before closing, instead of a reset that may destroy the answer unread.
func (c *portConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// chanListener is a net.Listener fed by acceptRedirect.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(a net.Addr) *chanListener {
	return &chanListener{addr: a, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) deliver(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// acceptEach accepts the connections of ln and hands each to serve in its own goroutine, until ln is
// closed.
func acceptEach(ln net.Listener, serve func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if isTemporary(err) {
				time.Sleep(5 * time.Millisecond)
				continue
			}
			return
		}
		go serve(c)
	}
}

// connTracker tracks connections for draining: HTTP client connections on the fast path, and TCP
// pass-through pairs.
type connTracker struct {
	mu    sync.Mutex
	conns map[net.Conn]*atomic.Bool // each connection's idle flag (nil: never idle, e.g. a pass-through pair)
	// active counts registered groups (a pass-through pair is one).
	active   int
	draining atomic.Bool // read lock-free on the request path
	idle     chan struct{}
}

// begin registers a group of connections with their idle flag (may be nil); it reports false once
// draining started.
func (t *connTracker) begin(idle *atomic.Bool, c ...net.Conn) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.draining.Load() {
		return false
	}
	if t.conns == nil {
		t.conns = map[net.Conn]*atomic.Bool{}
	}
	for _, x := range c {
		t.conns[x] = idle
	}
	t.active++
	return true
}

func (t *connTracker) end(c ...net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, x := range c {
		delete(t.conns, x)
	}
	t.active--
	if t.active == 0 && t.idle != nil {
		close(t.idle)
		t.idle = nil
	}
}

// swap moves old's registration to c with its idle flag, draining or not: an event loop handing its
// connection to a goroutine keeps the group counted.
func (t *connTracker) swap(old, c net.Conn, idle *atomic.Bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, old)
	if t.conns == nil {
		t.conns = map[net.Conn]*atomic.Bool{}
	}
	t.conns[c] = idle
}

// closing reports that draining started (keep-alive ends).
func (t *connTracker) closing() bool { return t.draining.Load() }

// wait stops new connections, closes idle ones and waits for the others to end; at ctx's end it closes
// the rest and reports false.
func (t *connTracker) wait(ctx context.Context) bool {
	t.mu.Lock()
	t.draining.Store(true)
	for c, idle := range t.conns {
		if idle != nil && idle.Load() {
			_ = c.Close()
		}
	}
	if t.active == 0 {
		t.mu.Unlock()
		return true
	}
	idle := make(chan struct{})
	t.idle = idle
	t.mu.Unlock()
	select {
	case <-idle:
		return true
	case <-ctx.Done():
		t.mu.Lock()
		for c := range t.conns {
			_ = c.Close()
		}
		t.mu.Unlock()
		<-idle
		return false
	}
}

func (p *Proxy) pipeTCP(in net.Conn, addr string) {
	d := net.Dialer{Timeout: p.cfg.DialTimeout, KeepAlive: 30 * time.Second}
	out, err := d.Dial("tcp", addr)
	if err != nil {
		p.log.Warn("tcp pass-through: app unreachable", "app", addr, "err", err)
		p.m.tcpConns.WithLabelValues("dial_error").Inc()
		_ = in.Close()
		return
	}
	if !p.tcp.begin(nil, in, out) {
		p.m.tcpConns.WithLabelValues("draining").Inc()
		_ = in.Close()
		_ = out.Close()
		return
	}
	defer p.tcp.end(in, out)
	p.m.tcpConns.WithLabelValues("ok").Inc()
	p.m.tcpActive.Inc()
	defer p.m.tcpActive.Dec()
	var wg sync.WaitGroup
	wg.Add(2)
	closeBoth := func() { _ = in.Close(); _ = out.Close() }
	go func() { defer wg.Done(); copyHalf(out, in, closeBoth) }()
	go func() { defer wg.Done(); copyHalf(in, out, closeBoth) }()
	wg.Wait()
	_ = in.Close()
	_ = out.Close()
}

// copyHalf copies src to dst, then half-closes dst's write side; on an error it closes both.
func copyHalf(dst, src net.Conn, closeBoth func()) {
	if _, err := io.Copy(dst, src); err != nil {
		closeBoth()
		return
	}
	type closeWriter interface{ CloseWrite() error }
	if cw, ok := dst.(closeWriter); ok {
		_ = cw.CloseWrite()
	} else {
		_ = dst.Close()
	}
}
