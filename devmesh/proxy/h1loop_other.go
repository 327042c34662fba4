//go:build !linux

package proxy

import "net"

// evLoop is the event loop of Config.EventLoop, which needs Linux's epoll; elsewhere there is none.
type evLoop struct{}

func (p *Proxy) startLoops() error {
	if p.cfg.EventLoop != "" && p.cfg.EventLoop != EventLoopOff && p.fastOn {
		p.log.Warn("event loop: needs Linux; serving on the fast path's goroutines", "eventLoop", p.cfg.EventLoop)
	}
	return nil
}

func (p *Proxy) stopLoops() {}

func (p *Proxy) loopsCloseIdleForks() {}

func (p *Proxy) adopt(net.Conn, portInfo, *chanListener) bool { return false }
