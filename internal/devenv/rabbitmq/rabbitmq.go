// Package rabbitmq starts a throw-away RabbitMQ broker as a host process from the Debian package, for the
// tests of mq/rabbitmq and the local-cluster e2e. Development tooling: product code never imports it
// (test/layering).
//
// Each broker gets a folder of its own (home with the Erlang cookie, Mnesia data, config), listens on the
// address it is given, runs its own foreground epmd bound to 127.0.0.1 (the one the server would spawn
// detaches, outlives the broker and listens on every address), and binds the Erlang distribution port to
// 127.0.0.1 too. Stop leaves no process and no folder behind. A cold start takes about 7 s: start one broker
// per test binary and give each test its own vhost or queue names.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/debpkg"
)

// Packages are the Debian packages the broker comes from (Erlang comes with it).
var Packages = []debpkg.Package{
	{Name: "rabbitmq-server", File: "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"},
}

// EnsurePackages installs rabbitmq-server when it is missing (root; about 11 s) without starting its
// service. It returns the packages it installed.
func EnsurePackages(ctx context.Context) ([]string, error) {
	installed, err := debpkg.Ensure(ctx, Packages, debpkg.Options{Who: "sandboxmesh devenv/rabbitmq"})
	if err != nil {
		return installed, fmt.Errorf("rabbitmq: %w", err)
	}
	return installed, nil
}

// Installed reports whether the broker's files are present.
func Installed() bool { return len(debpkg.Missing(Packages)) == 0 }

// sbinDir returns the folder of the foreground rabbitmq-server script (the /usr/sbin wrapper would switch
// to the rabbitmq user).
func sbinDir() (string, error) {
	m, _ := filepath.Glob(Packages[0].File)
	if len(m) == 0 {
		return "", errors.New("rabbitmq: rabbitmq-server is not installed (no " + Packages[0].File + "; EnsurePackages installs it)")
	}
	return filepath.Dir(m[len(m)-1]), nil
}

// Config configures a broker.
type Config struct {
	// Dir is where the broker's folder is made (default os.TempDir()).
	Dir string
	// Listen is the AMQP listener, host:port (default 127.0.0.1:0; port 0 picks a free one). The host is
	// the one the URL names; it must exist (RabbitMQ fails to start on an address that does not), use
	// 0.0.0.0 to listen everywhere.
	Listen string
	// StartTimeout bounds the start (default 60 s).
	StartTimeout time.Duration
}

// Server is a running broker.
type Server struct {
	// Dir is the broker's folder; Stop removes it.
	Dir string
	// Host and Port are the AMQP listener.
	Host string
	Port int
	// NodeName is the Erlang node name (for rabbitmqctl, see Ctl).
	NodeName string
	// ReadyTime is how long the broker took from start to accepting AMQP connections.
	ReadyTime time.Duration

	env    []string
	sbin   string
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
	epmd   *exec.Cmd
	epmdCh chan struct{}
}

// URL is the AMQP URL of the default vhost, user guest (loopback_users is none, so guest may connect from
// any address).
func (s *Server) URL() string { return s.VHostURL("/") }

// VHostURL is the AMQP URL of vhost.
func (s *Server) VHostURL(vhost string) string {
	host := s.Host
	if host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "amqp://guest:guest@" + net.JoinHostPort(host, strconv.Itoa(s.Port)) + "/" + url.PathEscape(vhost)
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("pick a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start starts a broker and waits until it accepts AMQP connections.
func Start(ctx context.Context, cfg Config) (*Server, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = time.Minute
	}
	host, portS, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: listen %q: want host:port: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portS)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("rabbitmq: listen %q: bad port", cfg.Listen)
	}
	if port == 0 {
		if port, err = freePort(host); err != nil {
			return nil, fmt.Errorf("rabbitmq: %w", err)
		}
	}
	distPort, err := freePort("127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	epmdPort, err := freePort("127.0.0.1")
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	sbin, err := sbinDir()
	if err != nil {
		return nil, err
	}
	epmdBin, err := exec.LookPath("epmd")
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: epmd (from erlang-base): %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	dir, err := os.MkdirTemp(cfg.Dir, "sandboxmesh-rabbitmq-")
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %w", err)
	}
	node := "sm" + strconv.Itoa(port) + "@localhost"
	s := &Server{Dir: dir, Host: host, Port: port, NodeName: node, sbin: sbin, log: filepath.Join(dir, "server.log")}
	for _, d := range []string{"home", "mnesia", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, s.fail(err)
		}
	}
	conf := fmt.Sprintf("listeners.tcp.1 = %s\nloopback_users = none\nlog.console = true\nlog.console.level = warning\nlog.file = false\n",
		net.JoinHostPort(host, strconv.Itoa(port)))
	files := map[string]string{"rabbitmq.conf": conf, "enabled_plugins": "[].\n", "rabbitmq-env.conf": ""}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			return nil, s.fail(err)
		}
	}
	s.env = append(cleanEnv(),
		"HOME="+filepath.Join(dir, "home"),
		"RABBITMQ_NODENAME="+node,
		"RABBITMQ_NODE_IP_ADDRESS="+host,
		"RABBITMQ_NODE_PORT="+strconv.Itoa(port),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"ERL_EPMD_PORT="+strconv.Itoa(epmdPort),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbitmq.pid"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}",
	)
	t0 := time.Now()
	// Our own epmd first, in the foreground, so that the broker does not spawn a detached one.
	s.epmd = exec.Command(epmdBin, "-port", strconv.Itoa(epmdPort), "-address", "127.0.0.1")
	if s.epmdCh, err = s.start(s.epmd); err != nil {
		return nil, s.fail(fmt.Errorf("start epmd: %w", err))
	}
	if err := waitTCP(ctx, "127.0.0.1:"+strconv.Itoa(epmdPort), s.epmdCh); err != nil {
		return nil, s.fail(fmt.Errorf("epmd: %w", err))
	}
	s.cmd = exec.Command(filepath.Join(sbin, "rabbitmq-server"))
	if s.exited, err = s.start(s.cmd); err != nil {
		return nil, s.fail(err)
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if host == "0.0.0.0" || host == "::" {
		addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	if err := waitTCP(ctx, addr, s.exited); err != nil {
		return nil, s.fail(fmt.Errorf("%w; %s", err, s.logTail()))
	}
	s.ReadyTime = time.Since(t0)
	return s, nil
}

// Ctl runs rabbitmqctl against the broker (e.g. "add_vhost", "v1") and returns its output.
func (s *Server) Ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(s.sbin, "rabbitmqctl"), append([]string{"-n", s.NodeName}, args...)...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("rabbitmq: rabbitmqctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Stop stops the broker (SIGTERM to its process group, SIGKILL after 20 s), then its epmd, and removes
// its folder. It is safe to call more than once.
func (s *Server) Stop() error {
	stopGroup(s.cmd, s.exited, syscall.SIGTERM)
	stopGroup(s.epmd, s.epmdCh, syscall.SIGTERM)
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("rabbitmq: remove %s: %w", s.Dir, err)
	}
	return nil
}

// stopGroup signals the process group of cmd and waits for cmd, killing the group after 20 s; children
// left in the group (erl_child_setup, inet_gethost) are killed too.
func stopGroup(cmd *exec.Cmd, exited chan struct{}, sig syscall.Signal) {
	if cmd == nil || cmd.Process == nil || exited == nil {
		return
	}
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-exited
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL) // stragglers of the group; ESRCH when none
}

// start runs cmd in its own process group (a ^C in the terminal reaches the test, which stops the
// broker), killed when the process that started it dies, its output into the log.
func (s *Server) start(cmd *exec.Cmd) (chan struct{}, error) {
	lf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = s.env
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	return done, nil
}

// waitTCP dials addr until it answers, exited is closed or ctx ends.
func waitTCP(ctx context.Context, addr string, exited chan struct{}) error {
	t0 := time.Now()
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("exited during start (%s not listening)", addr)
		case <-ctx.Done():
			return fmt.Errorf("%s not listening after %s: %w", addr, time.Since(t0).Round(time.Millisecond), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return "last lines of " + s.log + ":\n" + strings.Join(lines, "\n")
}

func (s *Server) fail(err error) error {
	log := s.logTail()
	_ = s.Stop()
	if !strings.Contains(err.Error(), "last lines of") {
		err = fmt.Errorf("%w; %s", err, log)
	}
	return fmt.Errorf("rabbitmq: broker on %s:%d: %w", s.Host, s.Port, err)
}

// cleanEnv is the process's environment without the variables that would point the broker or its tools
// somewhere else.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "RABBITMQ_") || strings.HasPrefix(kv, "ERL_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
