package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
	"github.com/sandboxmesh/sandboxmesh/localtunnel/hostnet"
)

// Environment of the daemon's root mode (tests, containers): the hosts file and the iptables chain.
const (
	EnvLocalHostsFile = "SANDBOXMESH_LOCAL_HOSTS_FILE"
	EnvLocalChain     = "SANDBOXMESH_LOCAL_CHAIN"
)

// rootOptions configure the daemon's root mode (localtunnel/hostnet): the cluster's Service names in the
// hosts file at virtual IPs, redirected to a transparent listener that dials through the tunnel.
type rootOptions struct {
	enabled    bool
	hostsFile  string
	chain      string
	virtualNet netip.Prefix
	exclude    []netip.Prefix
	refresh    time.Duration
}

// rootMode is the daemon's root mode while it runs.
type rootMode struct {
	opts   rootOptions
	client *localtunnel.Client
	log    *slog.Logger

	mu      sync.Mutex
	table   *hostnet.Table
	active  bool
	lastErr string
}

// rootModeOptions reads root mode's settings from the connection and the config's local section.
func rootModeOptions(enabled bool, conn localtunnel.Connection, vnet string) (rootOptions, error) {
	o := rootOptions{enabled: enabled, hostsFile: hostnet.DefaultHostsFile, chain: hostnet.DefaultChain, virtualNet: hostnet.DefaultVirtualNet, refresh: 30 * time.Second}
	if vnet != "" {
		p, err := netip.ParsePrefix(vnet)
		if err != nil {
			return o, fmt.Errorf("local.virtualIPNet %q: %w", vnet, err)
		}
		o.virtualNet = p.Masked()
	}
	var exclude []string
	if conn.Outbound != nil {
		exclude = conn.Outbound.ExcludeCIDRs
	}
	for i, c := range exclude {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return o, fmt.Errorf("local.connections[%s].outbound.excludeCIDRs[%d] %q: %w", conn.Cluster, i, c, err)
		}
		o.exclude = append(o.exclude, p.Masked())
	}
	return o, nil
}

// run keeps the hosts block and the redirect in place while ctx lives: it starts once the tunnel is up and
// the catalog answers, refreshes the names every opts.refresh, and undoes everything when ctx ends (a
// crashed daemon's leftovers are undone first).
func (r *rootMode) run(ctx context.Context) {
	r.undo()
	defer r.undo()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.fail(fmt.Errorf("transparent listener: %w", err))
		return
	}
	defer ln.Close()
	go func() {
		err := hostnet.Serve(ln, (*tableSource)(r), r.client.DialCluster, r.log)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			r.fail(err)
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	tick := time.NewTicker(r.opts.refresh)
	defer tick.Stop()
	for {
		if err := r.refresh(ctx, port); err != nil && ctx.Err() == nil {
			r.fail(err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// refresh reads the catalog and rewrites the names (the redirect is installed before the first names).
func (r *rootMode) refresh(ctx context.Context, port int) error {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := r.client.WaitConnected(wctx)
	cancel()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	svcs, err := r.client.Catalog(cctx)
	cancel()
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var next *hostnet.Table
	if r.table == nil {
		next, err = hostnet.NewTable(r.opts.virtualNet, "", svcs)
	} else {
		next, err = r.table.Update(r.opts.virtualNet, svcs)
	}
	if err != nil {
		return err
	}
	if !r.active {
		if err := hostnet.Redirect(r.opts.chain, r.opts.virtualNet, r.opts.exclude, port); err != nil {
			return err
		}
		r.active = true
	}
	r.table = next
	if err := hostnet.WriteHosts(r.opts.hostsFile, next); err != nil {
		return err
	}
	r.lastErr = ""
	return nil
}

func (r *rootMode) fail(err error) {
	r.log.Warn("root mode", "err", err)
	r.mu.Lock()
	r.lastErr = err.Error()
	r.mu.Unlock()
}

// undo removes the names before the redirect: a name never points at an address nothing redirects.
func (r *rootMode) undo() {
	if err := hostnet.RemoveHosts(r.opts.hostsFile); err != nil {
		r.log.Error("root mode: restore the hosts file", "file", r.opts.hostsFile, "err", err)
	}
	if err := hostnet.Unredirect(r.opts.chain, r.opts.virtualNet); err != nil {
		r.log.Error("root mode: remove the redirect", "err", err)
	}
	r.mu.Lock()
	r.active = false
	r.mu.Unlock()
}

// status says whether root mode is on and how many names it serves.
func (r *rootMode) status() *LocalRootStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &LocalRootStatus{Active: r.active, VirtualNet: r.opts.virtualNet.String(), HostsFile: r.opts.hostsFile, LastError: r.lastErr}
	if r.table != nil {
		s.Services = r.table.Len()
	}
	return s
}

// tableSource lets hostnet.Serve read the current table (it changes on refresh).
type tableSource rootMode

// Target implements hostnet.Targets with the table of the moment.
func (s *tableSource) Target(ip netip.Addr, port uint16) (string, bool) {
	s.mu.Lock()
	t := s.table
	s.mu.Unlock()
	if t == nil {
		return "", false
	}
	return t.Target(ip, port)
}

// LocalRootStatus is the root mode part of the daemon's status.
type LocalRootStatus struct {
	Active     bool   `json:"active"`
	VirtualNet string `json:"virtualNet"`
	HostsFile  string `json:"hostsFile"`
	Services   int    `json:"services"`
	LastError  string `json:"lastError,omitempty"`
}
