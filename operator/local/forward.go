// Package local owns the cluster end of local workloads (docs/local.md): for every port mapping of a
// sandbox's spec.local whose machine is connected, a listener on the operator's pod that carries each
// connection it accepts into that machine's tunnel (Forwarders), and the Service with its EndpointSlice, in
// the operator's namespace, that names those listeners (Services): routes lead a local workload's keyed
// requests there exactly as they lead a fork's to the fork Service. The tunnels themselves (the machines'
// connections, their authentication and their protocol) are localtunnel's Gateway; each listener is a
// localtunnel.Forwarder.
package local

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// Key names one port mapping of one local workload.
type Key struct {
	// Sandbox is namespace/name of the Sandbox.
	Sandbox string
	// Local is the local workload's name.
	Local string
	// Port is the baseline workload's port (spec.local[].mappings[].port).
	Port int32
}

// Target is where a mapping's connections go.
type Target = localtunnel.LocalRoute

// ErrNoPort means every port of the range is taken.
var ErrNoPort = errors.New("no free port for a local workload listener")

// Forwarders are the listeners of the local workloads' port mappings, one port each from a range.
type Forwarders struct {
	gateway    *localtunnel.Gateway
	host       string
	first, end int32 // ports [first, end)
	log        *slog.Logger

	mu    sync.Mutex
	byKey map[Key]*forwarder
	next  int32
}

type forwarder struct {
	port   int32
	ln     net.Listener
	fw     *localtunnel.Forwarder
	mu     sync.Mutex
	target Target
}

// close stops the forwarder and frees its port at once (also when Serve has not started yet).
func (fw *forwarder) close() {
	_ = fw.fw.Close()
	_ = fw.ln.Close()
}

func (fw *forwarder) route() (Target, bool) {
	fw.mu.Lock()
	defer fw.mu.Unlock()
	return fw.target, true
}

// NewForwarders returns Forwarders that listen on host (e.g. "" for every address of the pod) at ports in
// [first, last].
func NewForwarders(g *localtunnel.Gateway, host string, first, last int32, log *slog.Logger) (*Forwarders, error) {
	if g == nil {
		return nil, errors.New("local: a Gateway is required")
	}
	if first < 1 || last > 65535 || first > last {
		return nil, fmt.Errorf("local: port range %d-%d: want 1 <= first <= last <= 65535", first, last)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Forwarders{gateway: g, host: host, first: first, end: last + 1, log: log, byKey: map[Key]*forwarder{}, next: first}, nil
}

// Gateway returns the machines' tunnels the forwarders carry connections into.
func (f *Forwarders) Gateway() *localtunnel.Gateway { return f.gateway }

// Ensure makes k's listener forward to t and returns its port: the listener is opened on the first call
// (the next free port of the range, after the last one given out, so a port is not reused at once) and
// keeps its port while it is ensured; a changed target applies to the next connection.
func (f *Forwarders) Ensure(k Key, t Target) (int32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fw := f.byKey[k]; fw != nil {
		fw.mu.Lock()
		fw.target = t
		fw.mu.Unlock()
		return fw.port, nil
	}
	used := make(map[int32]bool, len(f.byKey))
	for _, fw := range f.byKey {
		used[fw.port] = true
	}
	n := f.end - f.first
	for i := int32(0); i < n; i++ {
		p := f.first + (f.next-f.first+i)%n
		if used[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(f.host, strconv.Itoa(int(p))))
		if err != nil {
			continue // taken by something else
		}
		fw := &forwarder{port: p, ln: ln, target: t}
		// No fallback: a connection the machine cannot take is closed, and devmesh falls back to the
		// baseline while the operator takes the route away.
		fw.fw = &localtunnel.Forwarder{Gateway: f.gateway, Route: fw.route, Log: f.log}
		f.byKey[k] = fw
		f.next = f.first + (p-f.first+1)%n
		go func() { _ = fw.fw.Serve(ln) }()
		return p, nil
	}
	return 0, fmt.Errorf("local workload %s %s port %d: %w (%d-%d)", k.Sandbox, k.Local, k.Port, ErrNoPort, f.first, f.end-1)
}

// Port returns k's port, if it has a listener.
func (f *Forwarders) Port(k Key) (int32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fw := f.byKey[k]; fw != nil {
		return fw.port, true
	}
	return 0, false
}

// Release closes the listeners of sandbox (namespace/name) whose key keep does not want (nil: all of
// them). Connections already forwarded carry on until either side closes.
func (f *Forwarders) Release(sandbox string, keep func(Key) bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, fw := range f.byKey {
		if k.Sandbox == sandbox && (keep == nil || !keep(k)) {
			fw.close()
			delete(f.byKey, k)
		}
	}
}

// Close closes every listener; connections in flight end on their own.
func (f *Forwarders) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, fw := range f.byKey {
		fw.close()
		delete(f.byKey, k)
	}
}
