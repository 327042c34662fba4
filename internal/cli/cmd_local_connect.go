package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// localConn returns the local.connections entry for cluster ("" = the only one).
func (a *App) localConn(cluster string) (localtunnel.Connection, string, error) {
	cfg, _, path, err := a.loadConfig()
	if err != nil {
		return localtunnel.Connection{}, path, err
	}
	a.cfg = cfg
	if cfg.Local == nil || len(cfg.Local.Connections) == 0 {
		return localtunnel.Connection{}, path, usageErrorf("no local.connections in %s: add one, e.g.\n  local:\n    connections:\n      - cluster: dev\n        kubeContext: kind-dev\n(see docs/local.md)", path)
	}
	conn, err := cfg.Local.Connection(cluster)
	if err != nil {
		return conn, path, usageErrorf("%s: %v", path, err)
	}
	return conn, path, nil
}

func (a *App) localConnectCommand() *cobra.Command {
	var (
		cluster, proxyAddr string
		waitTimeout        time.Duration
		unprivileged       bool
	)
	cmd := &cobra.Command{
		Use:   "connect [--cluster NAME]",
		Short: "Join this machine to a cluster: a background daemon holds the local-workload tunnel",
		Long: `connect starts a background daemon that holds this machine's tunnel to the
cluster's local gateway (local.connections[] of the config: a Kubernetes
port-forward to the operator, or a proxyAddress), reconnecting after network
loss, and serves a SOCKS5 and HTTP proxy on 127.0.0.1 through which programs
on this machine reach cluster Services by name (see ` + "`local run`" + `).
Sandboxes applied from this machine with spec.local are served by it.

Run as root (sudo), the daemon also puts the cluster's Service names into
/etc/hosts at virtual IPs (local.virtualIPNet, default 242.242.0.0/16) and
redirects those with iptables to the tunnel, so every program on this machine
reaches them unchanged; disconnect restores both exactly. --unprivileged, or
running as another user, skips that (use ` + "`local run`" + `).

connect waits until the tunnel is up (or --wait-timeout passes, exit code 4;
the daemon keeps trying), then prints the machine ID and the proxy address.
The daemon logs to ~/.sandboxmesh/local/daemon.log; stop it with
` + "`sandboxmesh local disconnect`" + `.`,
		Example: `  sandboxmesh local connect --cluster dev
  sandboxmesh local run -- curl http://customer.hotrod:8081/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.localConnect(cmd.Context(), cluster, proxyAddr, waitTimeout, !unprivileged && os.Geteuid() == 0)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cluster, "cluster", "", "cluster of local.connections[] (default: the only one)")
	f.StringVar(&proxyAddr, "proxy-address", DefaultLocalProxyAddress, "where the daemon serves its SOCKS5/HTTP proxy (loopback only)")
	f.BoolVar(&unprivileged, "unprivileged", false, "no root mode (no /etc/hosts names, no iptables redirect) even as root")
	f.DurationVar(&waitTimeout, "wait-timeout", 2*time.Minute, "how long to wait for the tunnel (exit code 4 after it; the daemon keeps trying)")
	return cmd
}

func (a *App) localConnect(ctx context.Context, cluster, proxyAddr string, waitTimeout time.Duration, root bool) error {
	conn, cfgPath, err := a.localConn(cluster)
	if err != nil {
		return err
	}
	dir, err := a.localDir()
	if err != nil {
		return err
	}
	sock, logFile := filepath.Join(dir, localSocketFile), filepath.Join(dir, localLogFile)
	var exited <-chan error
	if st, err := controlStatus(ctx, sock); err == nil {
		if st.Cluster != conn.Cluster {
			return usageErrorf("this machine is connected to cluster %s (daemon pid %d); run `sandboxmesh local disconnect` first", st.Cluster, st.PID)
		}
		fmt.Fprintf(a.Stderr, "local daemon already running (pid %d)\n", st.PID)
	} else {
		id, created, err := localtunnel.LoadOrCreateIdentity(filepath.Join(dir, localKeyFile))
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(a.Stderr, "created machine key %s (machine ID %s)\n", filepath.Join(dir, localKeyFile), id.MachineID())
		}
		args := []string{"--config", cfgPath, "local", "daemon", "--cluster", conn.Cluster, "--proxy-address", proxyAddr, "--state-dir", dir}
		if root {
			args = append(args, "--root")
		}
		spawn := a.SpawnDaemon
		if spawn == nil {
			spawn = spawnDetached
		}
		fmt.Fprintf(a.Stderr, "starting the local daemon for cluster %s (%s; log %s)\n", conn.Cluster, describeConn(conn), logFile)
		exited, err = spawn(args, logFile)
		if err != nil {
			return fmt.Errorf("start the local daemon: %w", err)
		}
	}
	st, err := a.waitConnected(ctx, sock, exited, waitTimeout, logFile)
	if err != nil {
		return err
	}
	if ok, err := a.structured(a.Stdout, st); ok {
		return err
	}
	fmt.Fprintf(a.Stdout, "connected to cluster %s\nmachine ID: %s\nproxy:      %s (SOCKS5 and HTTP; `sandboxmesh local run -- CMD` uses it)\n", st.Cluster, st.MachineID, st.ProxyAddress)
	return nil
}

func describeConn(c localtunnel.Connection) string {
	if c.ConnectionType() == localtunnel.ProxyAddress {
		return "ProxyAddress " + c.ProxyAddress
	}
	kc := c.KubeContext
	if kc == "" {
		kc = "the current kube context"
	}
	return "PortForward via " + kc
}

// waitConnected polls the daemon until its tunnel is up, printing phase
// changes on stderr.
func (a *App) waitConnected(ctx context.Context, sock string, exited <-chan error, timeout time.Duration, logFile string) (LocalDaemonStatus, error) {
	interval := a.WaitInterval
	if interval <= 0 || interval > 250*time.Millisecond {
		interval = 250 * time.Millisecond
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last LocalDaemonStatus
	var lastLine string
	for {
		st, err := controlStatus(ctx, sock)
		if err == nil {
			last = st
			if st.Phase == string(localtunnel.PhaseConnected) {
				return st, nil
			}
			line := "  " + st.Phase
			if st.LastError != "" {
				line += ": " + st.LastError
			}
			if st.Phase == string(localtunnel.PhaseBackoff) {
				line += fmt.Sprintf(" (attempt %d failed; retrying)", st.Failures)
			}
			if line != lastLine {
				fmt.Fprintln(a.Stderr, line)
				lastLine = line
			}
		}
		select {
		case <-ctx.Done():
			return last, withCode(ExitError, fmt.Errorf("wait for the local tunnel: %w", errInterrupted))
		case err := <-exited:
			return last, fmt.Errorf("the local daemon exited before connecting: %v%s", err, logTail(logFile))
		case <-deadline.C:
			why := last.LastError
			if why == "" {
				why = "no answer from the gateway yet"
			}
			return last, withCode(ExitTimeout, fmt.Errorf("the local tunnel is not up after %s (%s: %s); the daemon keeps trying in the background: `sandboxmesh local status` shows it, `sandboxmesh local disconnect` stops it; log %s", timeout, orNone(last.Phase), why, logFile))
		case <-tick.C:
		}
	}
}

// logTail returns the last lines of the daemon log, for an error message.
func logTail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	lines = lines[max(0, len(lines)-5):]
	return "\nlast lines of " + path + ":\n  " + strings.Join(lines, "\n  ")
}

func (a *App) localDaemonCommand() *cobra.Command {
	var opts daemonOptions
	var cluster string
	var root bool
	cmd := &cobra.Command{
		Use:    "daemon",
		Short:  "Run the local daemon in the foreground (started by `local connect`)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			conn, _, err := a.localConn(cluster)
			if err != nil {
				return err
			}
			opts.conn = conn
			vnet := ""
			if a.cfg.Local != nil {
				vnet = a.cfg.Local.VirtualIPNet
			}
			if opts.root, err = rootModeOptions(root, conn, vnet); err != nil {
				return err
			}
			// For tests and containers: another hosts file, another chain name.
			if f := a.getenv(EnvLocalHostsFile); f != "" {
				opts.root.hostsFile = f
			}
			if c := a.getenv(EnvLocalChain); c != "" {
				opts.root.chain = c
			}
			if opts.dir == "" {
				if opts.dir, err = a.localDir(); err != nil {
					return err
				}
			}
			return a.runDaemon(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&cluster, "cluster", "", "cluster of local.connections[]")
	cmd.Flags().StringVar(&opts.proxyAddress, "proxy-address", DefaultLocalProxyAddress, "SOCKS5/HTTP proxy address")
	cmd.Flags().StringVar(&opts.dir, "state-dir", "", "state folder (default ~/.sandboxmesh/local)")
	cmd.Flags().BoolVar(&root, "root", false, "root mode: Service names in /etc/hosts, iptables redirect")
	return cmd
}

func (a *App) localStatusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the local daemon: tunnel phase, machine ID, proxy and the sandboxes it serves",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.localStatus(cmd.Context())
			if err != nil {
				return err
			}
			if ok, err := a.structured(a.Stdout, st); ok {
				return err
			}
			return a.printLocalStatus(a.Stdout, st)
		},
	}
}

// localStatus asks the daemon; when none runs it reports NotRunning with the
// machine ID of the key file, if any.
func (a *App) localStatus(ctx context.Context) (LocalDaemonStatus, error) {
	dir, err := a.localDir()
	if err != nil {
		return LocalDaemonStatus{}, err
	}
	st, err := controlStatus(ctx, filepath.Join(dir, localSocketFile))
	if errors.Is(err, errDaemonNotRunning) {
		st = LocalDaemonStatus{Phase: PhaseNotRunning, Sandboxes: []LocalSandbox{}}
		if id, err := localtunnel.LoadIdentity(filepath.Join(dir, localKeyFile)); err == nil {
			st.MachineID = id.MachineID()
		}
		if l, err := readAllowList(dir); err == nil {
			for name, ls := range l.Sandboxes {
				st.Sandboxes = append(st.Sandboxes, LocalSandbox{Name: name, Locals: ls})
			}
		}
		return st, nil
	}
	return st, err
}

func (a *App) printLocalStatus(w io.Writer, st LocalDaemonStatus) error {
	tw := newTable(w, "MACHINE ID", "CLUSTER", "PHASE", "CONNECTED", "PROXY", "SANDBOXES")
	since := ""
	if st.ConnectedSince != nil {
		since = humanDuration(a.now().Sub(*st.ConnectedSince))
	}
	row(tw, st.MachineID, st.Cluster, st.Phase, since, st.ProxyAddress, fmt.Sprint(len(st.Sandboxes)))
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.LastError != "" && st.Phase != string(localtunnel.PhaseConnected) {
		fmt.Fprintf(w, "\nlast error: %s\n", st.LastError)
	}
	if st.Phase == PhaseNotRunning {
		fmt.Fprintln(w, "\nThe local daemon is not running; start it with `sandboxmesh local connect`.")
	}
	if r := st.Root; r != nil {
		state := "off (waiting for the tunnel)"
		if r.Active {
			state = fmt.Sprintf("on: %d Service names in %s at %s", r.Services, r.HostsFile, r.VirtualNet)
		}
		fmt.Fprintf(w, "\nroot mode: %s\n", state)
		if r.LastError != "" {
			fmt.Fprintf(w, "root mode error: %s\n", r.LastError)
		}
	}
	if len(st.Sandboxes) > 0 {
		fmt.Fprintln(w)
		tw = newTable(w, "SANDBOX", "LOCAL", "TO LOCAL")
		for _, sb := range st.Sandboxes {
			for _, l := range sb.Locals {
				row(tw, sb.Name, l.Local, l.ToLocal)
			}
		}
		return tw.Flush()
	}
	return nil
}

func (a *App) localDisconnectCommand() *cobra.Command {
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "disconnect",
		Short: "Stop the local daemon (idempotent)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.localDisconnect(cmd.Context(), timeout)
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "how long to wait for the daemon to stop")
	return cmd
}

func (a *App) localDisconnect(ctx context.Context, timeout time.Duration) error {
	dir, err := a.localDir()
	if err != nil {
		return err
	}
	sock, pidFile := filepath.Join(dir, localSocketFile), filepath.Join(dir, localPIDFile)
	st, err := controlStatus(ctx, sock)
	if errors.Is(err, errDaemonNotRunning) {
		_ = os.Remove(sock) // stale leftovers of a daemon that died
		if b, err := os.ReadFile(pidFile); err == nil {
			fmt.Fprintf(a.Stderr, "removed a stale pid file (pid %s); if a sandboxmesh daemon still runs as that pid, stop it with kill\n", strings.TrimSpace(string(b)))
			_ = os.Remove(pidFile)
		}
		fmt.Fprintln(a.Stdout, "not connected")
		return nil
	}
	if err != nil {
		return err
	}
	if err := controlCall(ctx, sock, http.MethodPost, "/disconnect", nil, nil); err != nil && !errors.Is(err, errDaemonNotRunning) {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		if _, err := controlStatus(wctx, sock); errors.Is(err, errDaemonNotRunning) {
			break
		}
		select {
		case <-wctx.Done():
			return withCode(ExitTimeout, fmt.Errorf("the local daemon (pid %d) did not stop within %s; stop it with `kill %d`", st.PID, timeout, st.PID))
		case <-time.After(50 * time.Millisecond):
		}
	}
	fmt.Fprintf(a.Stdout, "disconnected machine %s from cluster %s\n", st.MachineID, st.Cluster)
	return nil
}

// maxDaemonLog is the size past which a new daemon moves daemon.log to daemon.log.1.
const maxDaemonLog = 10 << 20

// spawnDetached re-executes this binary with args as a daemon: a new session,
// stdin and stdout on /dev/null, stderr appended to logFile.
func spawnDetached(args []string, logFile string) (<-chan error, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find this program: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(logFile), 0o700); err != nil {
		return nil, err
	}
	if fi, err := os.Stat(logFile); err == nil && fi.Size() > maxDaemonLog {
		_ = os.Rename(logFile, logFile+".1") // keep one older log
	}
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open the daemon log: %w", err)
	}
	defer lf.Close()
	cmd := exec.Command(exe, args...)
	cmd.Stderr = lf
	cmd.Dir = "/"
	detach(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", exe, err)
	}
	ch := make(chan error, 1)
	go func() { ch <- cmd.Wait() }()
	return ch, nil
}

func (a *App) localRunCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run -- CMD [ARGS...]",
		Short: "Run a command whose traffic to the cluster goes through the local daemon's proxy (no root needed)",
		Long: `run starts CMD with ALL_PROXY (socks5h://…), HTTP_PROXY and HTTPS_PROXY (and
their lowercase forms) set to the local daemon's proxy, and NO_PROXY set to
localhost,127.0.0.1,::1, so programs that honour those variables reach
cluster Services by name (customer.hotrod, customer.hotrod.svc.cluster.local).
Names resolve in the cluster. The exit code is CMD's.`,
		Example: `  sandboxmesh local run -- curl http://customer.hotrod:8081/customers
  sandboxmesh local run -- go run ./services/route`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := a.localStatus(cmd.Context())
			if err != nil {
				return err
			}
			if st.Phase == PhaseNotRunning {
				return withCode(ExitUnavailable, errDaemonNotRunning)
			}
			if st.Phase != string(localtunnel.PhaseConnected) {
				fmt.Fprintf(a.Stderr, "warning: the local tunnel is %s (%s); cluster connections fail until it reconnects\n", st.Phase, orNone(st.LastError))
			}
			return runWithProxy(a, args, st.ProxyAddress)
		},
	}
	cmd.Flags().SetInterspersed(false) // CMD's flags are CMD's
	return cmd
}

// proxyEnv is the environment `local run` adds for a proxy at addr.
func proxyEnv(addr string) []string {
	var env []string
	for k, v := range map[string]string{
		"ALL_PROXY": "socks5h://" + addr, "HTTP_PROXY": "http://" + addr, "HTTPS_PROXY": "http://" + addr,
		"NO_PROXY": "localhost,127.0.0.1,::1",
	} {
		env = append(env, k+"="+v, strings.ToLower(k)+"="+v)
	}
	return env
}

func runWithProxy(a *App, args []string, addr string) error {
	c := exec.Command(args[0], args[1:]...)
	c.Env = append(os.Environ(), proxyEnv(addr)...)
	c.Stdin, c.Stdout, c.Stderr = a.Stdin, a.Stdout, a.Stderr
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if code < 0 {
			code = 128 + 1 // killed by a signal
			if ws, ok := exitSignal(ee); ok {
				code = 128 + ws
			}
		}
		return silentExit(code)
	}
	if err != nil {
		return withCode(ExitUsage, fmt.Errorf("run %s: %w", args[0], err))
	}
	return nil
}
