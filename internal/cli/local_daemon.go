package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/sandboxmesh/sandboxmesh/localtunnel"
)

// Files of the local daemon, in its state folder (~/.sandboxmesh/local).
const (
	localKeyFile       = "machine.key"
	localSocketFile    = "daemon.sock"
	localPIDFile       = "daemon.pid"
	localLogFile       = "daemon.log"
	localAllowFile     = "allowed.json"
	localLockFile      = "daemon.lock"
	envSandboxMeshHome = "SANDBOXMESH_HOME"
)

// DefaultLocalProxyAddress is where `local connect` serves its SOCKS5 and
// HTTP proxy unless --proxy-address says otherwise.
const DefaultLocalProxyAddress = "127.0.0.1:15080"

// PhaseNotRunning is the phase `local status` reports when no daemon runs.
const PhaseNotRunning = "NotRunning"

// localDir is the local daemon's state folder: $SANDBOXMESH_HOME/local, or
// local/ next to the config file (~/.sandboxmesh/local by default).
func (a *App) localDir() (string, error) {
	if h := a.getenv(envSandboxMeshHome); h != "" {
		return filepath.Join(h, "local"), nil
	}
	p, err := a.configPath()
	if err != nil {
		return "", err
	}
	return filepath.Join(filepath.Dir(p), "local"), nil
}

// LocalServed is one local workload mapping the daemon serves.
type LocalServed struct {
	Local   string `json:"local"`
	ToLocal string `json:"toLocal"`
}

// LocalSandbox is a sandbox the daemon serves.
type LocalSandbox struct {
	Name   string        `json:"name"`
	Locals []LocalServed `json:"locals"`
}

// LocalDaemonStatus is what the daemon's control socket answers to status
// (and `local status -o json` prints).
type LocalDaemonStatus struct {
	// Phase is the tunnel's phase (Connecting, Connected, Backoff, Stopped) or NotRunning.
	Phase          string         `json:"phase"`
	MachineID      string         `json:"machineID,omitempty"`
	Cluster        string         `json:"cluster,omitempty"`
	ConnectionType string         `json:"connectionType,omitempty"`
	ConnectedSince *time.Time     `json:"connectedSince,omitempty"`
	ProxyAddress   string         `json:"proxyAddress,omitempty"`
	PID            int            `json:"pid,omitempty"`
	StartedAt      *time.Time     `json:"startedAt,omitempty"`
	Failures       int            `json:"failures,omitempty"`
	LastError      string         `json:"lastError,omitempty"`
	NextAttempt    *time.Time     `json:"nextAttempt,omitempty"`
	LogFile        string         `json:"logFile,omitempty"`
	Sandboxes      []LocalSandbox `json:"sandboxes"`
	// Root is root mode's state (names in the hosts file, redirect); nil when it is off.
	Root *LocalRootStatus `json:"root,omitempty"`
}

// allowRequest is the body of the control socket's allow and revoke.
type allowRequest struct {
	Sandbox string        `json:"sandbox"`
	Locals  []LocalServed `json:"locals,omitempty"`
}

// allowList is the persisted set of sandboxes this machine serves
// (allowed.json): a restarted daemon keeps serving them.
type allowList struct {
	Sandboxes map[string][]LocalServed `json:"sandboxes"`
}

func readAllowList(dir string) (allowList, error) {
	l := allowList{Sandboxes: map[string][]LocalServed{}}
	p := filepath.Join(dir, localAllowFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("read %s: %w", p, err)
	}
	l, err = parseAllowList(b)
	if err != nil {
		return allowList{Sandboxes: map[string][]LocalServed{}}, fmt.Errorf("read %s: %w (delete it and apply the sandboxes again)", p, err)
	}
	return l, nil
}

// parseAllowList decodes allowed.json strictly: unknown fields, trailing
// data and mappings without local or toLocal are errors.
func parseAllowList(b []byte) (allowList, error) {
	var l allowList
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&l); err != nil {
		return allowList{}, err
	}
	if d.More() {
		return allowList{}, errors.New("data after the JSON object")
	}
	if l.Sandboxes == nil {
		l.Sandboxes = map[string][]LocalServed{}
	}
	for name, ls := range l.Sandboxes {
		if name == "" {
			return allowList{}, errors.New("sandboxes: an empty sandbox name")
		}
		for i, m := range ls {
			if m.Local == "" || m.ToLocal == "" {
				return allowList{}, fmt.Errorf("sandboxes[%s][%d]: local and toLocal are required", name, i)
			}
		}
	}
	return l, nil
}

func writeAllowList(dir string, l allowList) error {
	p := filepath.Join(dir, localAllowFile)
	b, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	tmp, err := os.CreateTemp(dir, ".allowed-*.json")
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func targetsOf(ls []LocalServed) []localtunnel.LocalTarget {
	out := make([]localtunnel.LocalTarget, len(ls))
	for i, l := range ls {
		out[i] = localtunnel.LocalTarget{Local: l.Local, ToLocal: l.ToLocal}
	}
	return out
}

// daemonOptions are the hidden `local daemon` command's inputs.
type daemonOptions struct {
	dir          string
	conn         localtunnel.Connection
	proxyAddress string
	root         rootOptions
}

// daemon is a running local daemon.
type daemon struct {
	opts    daemonOptions
	log     *slog.Logger
	client  *localtunnel.Client
	proxy   string
	started time.Time
	stop    context.CancelFunc

	mu    sync.Mutex // guards allow and the allow-list file
	allow allowList
	root  *rootMode // nil without root mode
}

// maxSocketPath is the longest unix socket path every platform takes (sun_path is 104 bytes on macOS, 108
// on Linux, with the final NUL).
const maxSocketPath = 103

// runDaemon runs the local daemon until ctx ends or a disconnect request:
// the tunnel client (reconnecting), the SOCKS5/HTTP proxy and the control
// socket. It removes its socket and pid file when it stops.
func (a *App) runDaemon(ctx context.Context, opts daemonOptions) error {
	log := slog.New(slog.NewTextHandler(a.Stderr, nil))
	if err := os.MkdirAll(opts.dir, 0o700); err != nil {
		return fmt.Errorf("local daemon: %w", err)
	}
	sock := filepath.Join(opts.dir, localSocketFile)
	// A daemon that was just asked to disconnect may still hold the lock for
	// a moment after its socket went quiet: wait a little for it.
	var (
		unlock func()
		err    error
	)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if unlock, err = lockDaemon(filepath.Join(opts.dir, localLockFile)); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("local daemon: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("local daemon: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	defer unlock()
	if st, err := controlStatus(ctx, sock); err == nil {
		return fmt.Errorf("local daemon: already running (pid %d, cluster %s)", st.PID, st.Cluster)
	}
	id, _, err := localtunnel.LoadOrCreateIdentity(filepath.Join(opts.dir, localKeyFile))
	if err != nil {
		return fmt.Errorf("local daemon: %w", err)
	}
	dial, err := a.gatewayDialer(opts.conn, log)
	if err != nil {
		return fmt.Errorf("local daemon: %w", err)
	}
	allow, err := readAllowList(opts.dir)
	if err != nil {
		log.Warn("ignoring the allow-list", "err", err)
	}
	c, err := localtunnel.NewClient(localtunnel.ClientConfig{Identity: id, Dial: dial, Label: localtunnel.HostLabel(), Log: log})
	if err != nil {
		return fmt.Errorf("local daemon: %w", err)
	}
	for sb, ls := range allow.Sandboxes {
		c.Allow(sb, targetsOf(ls))
	}
	var lc net.ListenConfig
	pl, err := lc.Listen(ctx, "tcp", opts.proxyAddress)
	if err != nil {
		return fmt.Errorf("local daemon: proxy on %s: %w (is another `local connect` or program using the port? pass --proxy-address)", opts.proxyAddress, err)
	}
	defer pl.Close()
	socks, err := localtunnel.NewSOCKSServer(localtunnel.SOCKSConfig{Dial: c.DialCluster, Log: log})
	if err != nil {
		return fmt.Errorf("local daemon: %w", err)
	}
	defer socks.Close()
	if len(sock) > maxSocketPath {
		return fmt.Errorf("local daemon: control socket path %s is %d bytes, more than a unix socket takes (%d): set %s to a shorter folder", sock, len(sock), maxSocketPath, envSandboxMeshHome)
	}
	_ = os.Remove(sock) // not answering (checked above): a stale socket of a daemon that died
	cl, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("local daemon: control socket %s: %w", sock, err)
	}
	defer os.Remove(sock)
	defer cl.Close()
	if err := os.Chmod(sock, 0o600); err != nil {
		return fmt.Errorf("local daemon: control socket %s: %w", sock, err)
	}
	pidFile := filepath.Join(opts.dir, localPIDFile)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return fmt.Errorf("local daemon: %w", err)
	}
	defer os.Remove(pidFile)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &daemon{opts: opts, log: log, client: c, proxy: pl.Addr().String(), started: time.Now(), stop: cancel, allow: allow}
	if opts.root.enabled {
		d.root = &rootMode{opts: opts.root, client: c, log: log} // before the control socket serves: status reads it
	}
	srv := &http.Server{Handler: d.handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(cl) }()
	go func() {
		if err := socks.Serve(pl); err != nil {
			log.Error("proxy stopped", "err", err)
			cancel()
		}
	}()
	rootDone := make(chan struct{})
	if d.root != nil {
		go func() { defer close(rootDone); d.root.run(ctx) }()
	} else {
		close(rootDone)
	}
	log.Info("local daemon started", "machine", id.MachineID(), "cluster", opts.conn.Cluster, "type", opts.conn.ConnectionType(), "proxy", d.proxy, "pid", os.Getpid())
	runErr := c.Run(ctx)
	cancel()
	<-rootDone             // the hosts file and the redirect are restored before disconnect returns
	_ = os.Remove(pidFile) // before the socket goes quiet: disconnect waits for that
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	_ = srv.Shutdown(sctx)
	scancel()
	log.Info("local daemon stopped", "reason", runErr)
	return nil
}

func (d *daemon) status() LocalDaemonStatus {
	st := d.client.State()
	s := LocalDaemonStatus{Phase: string(st.Phase), MachineID: st.MachineID, Cluster: d.opts.conn.Cluster,
		ConnectionType: string(d.opts.conn.ConnectionType()), ProxyAddress: d.proxy, PID: os.Getpid(),
		Failures: st.Failures, LastError: st.LastError, LogFile: filepath.Join(d.opts.dir, localLogFile), Sandboxes: []LocalSandbox{}}
	started := d.started
	s.StartedAt = &started
	if !st.ConnectedAt.IsZero() {
		t := st.ConnectedAt
		s.ConnectedSince = &t
	}
	if !st.NextAttempt.IsZero() {
		t := st.NextAttempt
		s.NextAttempt = &t
	}
	d.mu.Lock()
	for name, ls := range d.allow.Sandboxes {
		s.Sandboxes = append(s.Sandboxes, LocalSandbox{Name: name, Locals: slices.Clone(ls)})
	}
	d.mu.Unlock()
	sort.Slice(s.Sandboxes, func(i, j int) bool { return s.Sandboxes[i].Name < s.Sandboxes[j].Name })
	if d.root != nil {
		s.Root = d.root.status()
	}
	return s
}

func (d *daemon) handler() http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	fail := func(w http.ResponseWriter, code int, err error) {
		reply(w, code, map[string]string{"error": err.Error()})
	}
	decode := func(r *http.Request) (allowRequest, error) {
		var req allowRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return req, fmt.Errorf("decode request: %w", err)
		}
		if req.Sandbox == "" {
			return req, errors.New("sandbox: required")
		}
		return req, nil
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, d.status()) })
	mux.HandleFunc("POST /disconnect", func(w http.ResponseWriter, _ *http.Request) {
		d.log.Info("disconnect requested")
		reply(w, http.StatusOK, map[string]bool{"stopping": true})
		d.stop()
	})
	mux.HandleFunc("POST /allow", func(w http.ResponseWriter, r *http.Request) {
		req, err := decode(r)
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		for i, l := range req.Locals {
			if l.Local == "" || l.ToLocal == "" {
				fail(w, http.StatusBadRequest, fmt.Errorf("locals[%d]: local and toLocal are required", i))
				return
			}
		}
		d.mu.Lock()
		d.allow.Sandboxes[req.Sandbox] = req.Locals
		err = writeAllowList(d.opts.dir, d.allow)
		d.mu.Unlock()
		d.client.Allow(req.Sandbox, targetsOf(req.Locals))
		d.log.Info("serving sandbox", "sandbox", req.Sandbox, "locals", len(req.Locals))
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		reply(w, http.StatusOK, d.status())
	})
	mux.HandleFunc("POST /revoke", func(w http.ResponseWriter, r *http.Request) {
		req, err := decode(r)
		if err != nil {
			fail(w, http.StatusBadRequest, err)
			return
		}
		d.client.Revoke(req.Sandbox)
		d.mu.Lock()
		_, had := d.allow.Sandboxes[req.Sandbox]
		delete(d.allow.Sandboxes, req.Sandbox)
		if had {
			err = writeAllowList(d.opts.dir, d.allow)
		}
		d.mu.Unlock()
		if had {
			d.log.Info("no longer serving sandbox", "sandbox", req.Sandbox)
		}
		if err != nil {
			fail(w, http.StatusInternalServerError, err)
			return
		}
		reply(w, http.StatusOK, d.status())
	})
	return mux
}

// errDaemonNotRunning says no daemon answers on the control socket.
var errDaemonNotRunning = errors.New("the local daemon is not running (start it with `sandboxmesh local connect`)")

// controlClient is an HTTP client that reaches the daemon's unix socket.
func controlClient(sock string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
}

// controlCall sends one request to the daemon's control socket and decodes
// its JSON answer into out; it wraps errDaemonNotRunning when nothing answers.
func controlCall(ctx context.Context, sock, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("local daemon %s: %w", path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://local-daemon"+path, rd)
	if err != nil {
		return fmt.Errorf("local daemon %s: %w", path, err)
	}
	hc := controlClient(sock)
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "dial" {
			return fmt.Errorf("%w: %s: %v", errDaemonNotRunning, sock, err)
		}
		return fmt.Errorf("local daemon %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("local daemon %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.Unmarshal(b, &e)
		return fmt.Errorf("local daemon %s: %s: %s", path, resp.Status, e.Error)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("local daemon %s: %w", path, err)
		}
	}
	return nil
}

func controlStatus(ctx context.Context, sock string) (LocalDaemonStatus, error) {
	var st LocalDaemonStatus
	err := controlCall(ctx, sock, http.MethodGet, "/status", nil, &st)
	return st, err
}
