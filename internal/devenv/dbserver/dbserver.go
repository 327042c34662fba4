// Package dbserver starts throw-away PostgreSQL and MariaDB servers as host
// processes from the Debian packages, for the resource plugin tests and the
// e2e (docs/design/resource-plugins.md §6). Development tooling: product
// code never imports it (test/layering).
//
// Each server gets a data folder of its own, listens on the addresses and
// port it is given, runs without durability (fsync off: data does not
// survive a crash, which a test does not need) and has an administrator with
// a random password that is not a superuser where the engine allows it, so
// that plugins are tested with the privileges a real operator would give
// them. hack/postgres-test.sh starts the store tests' PostgreSQL with the
// same initdb and server settings; it stays a shell script because it must
// leave a detached server running for later `make test` runs.
package dbserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/debpkg"
)

// Packages are the Debian packages the servers and their clients come from.
// "postgresql" is Debian's supported version (15 on bookworm); the binaries
// are found under /usr/lib/postgresql/<version>/bin.
var Packages = []debpkg.Package{
	{Name: "postgresql", File: "/usr/lib/postgresql/*/bin/initdb"},
	{Name: "postgresql-client", File: "/usr/lib/postgresql/*/bin/psql"},
	{Name: "mariadb-server", File: "/usr/sbin/mariadbd"},
	{Name: "mariadb-client", File: "/usr/bin/mariadb"},
}

// Default ports (the store tests' PostgreSQL uses 55432).
const (
	DefaultPostgresPort = 35432
	DefaultMariaDBPort  = 33306
)

// AdminUser is the name of the administrator each server is given.
const AdminUser = "smadmin"

// EnsurePackages installs the missing server and client packages (root;
// about 15–20 s for MariaDB the first time) without starting their
// services. It returns the packages it installed; a failure carries the end
// of apt-get's output.
func EnsurePackages(ctx context.Context) ([]string, error) {
	installed, err := debpkg.Ensure(ctx, Packages, debpkg.Options{Who: "sandboxmesh dbserver"})
	if err != nil {
		return installed, fmt.Errorf("dbserver: %w", err)
	}
	return installed, nil
}

// PostgresBinDir returns the newest /usr/lib/postgresql/<version>/bin that
// holds initdb and postgres. The real psql is there too (/usr/bin/psql is
// Debian's Perl wrapper).
func PostgresBinDir() (string, error) {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	best, bestV := "", -1
	for _, p := range m {
		v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		if err == nil && v > bestV {
			best, bestV = filepath.Dir(p), v
		}
	}
	if best == "" {
		return "", errors.New("dbserver: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres; EnsurePackages installs it)")
	}
	return best, nil
}

// Config configures a server.
type Config struct {
	// Dir is where the server's folder is made (default os.TempDir()). The
	// postgres user must be able to enter it.
	Dir string
	// Port is the TCP port; 0 picks a free one.
	Port int
	// Listen are the addresses to listen on (default 127.0.0.1). The first is
	// the one clients are told (Server.Host). PostgreSQL only warns about an
	// address that does not exist and does not listen there: start it after
	// the address is up.
	Listen []string
	// StartTimeout bounds initialisation and start (default 60 s).
	StartTimeout time.Duration
}

func (c *Config) setDefaults() error {
	if len(c.Listen) == 0 {
		c.Listen = []string{"127.0.0.1"}
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = time.Minute
	}
	if c.Port == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(c.Listen[0], "0"))
		if err != nil {
			return fmt.Errorf("pick a free port on %s: %w", c.Listen[0], err)
		}
		c.Port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	return nil
}

// Server is a running database server.
type Server struct {
	// Engine is "postgres" or "mariadb".
	Engine string
	// Dir is the server's folder (data, socket, log); Stop removes it.
	Dir string
	// Host and Port are where clients connect (Config.Listen[0]).
	Host string
	Port int
	// AdminUser and AdminPassword are the administrator's credentials
	// (PostgreSQL: CREATEDB CREATEROLE, not a superuser; MariaDB: ALL
	// PRIVILEGES WITH GRANT OPTION on '%').
	AdminUser, AdminPassword string
	// InitTime is how long creating the data folder took; ReadyTime how long
	// the server took from start to answering.
	InitTime, ReadyTime time.Duration

	socketDir string
	binDir    string
	log       string
	cmd       *exec.Cmd
	exited    chan struct{}
	stopSig   syscall.Signal
}

// AdminEnv is the administrator's connection as the environment variables
// the engine's client reads (and the plugins' admin Secrets hold):
// PGHOST PGPORT PGUSER PGPASSWORD, or MYSQL_HOST MYSQL_TCP_PORT MYSQL_USER
// MYSQL_PWD.
func (s *Server) AdminEnv() []string {
	if s.Engine == "postgres" {
		return []string{"PGHOST=" + s.Host, "PGPORT=" + strconv.Itoa(s.Port), "PGUSER=" + s.AdminUser, "PGPASSWORD=" + s.AdminPassword}
	}
	return []string{"MYSQL_HOST=" + s.Host, "MYSQL_TCP_PORT=" + strconv.Itoa(s.Port), "MYSQL_USER=" + s.AdminUser, "MYSQL_PWD=" + s.AdminPassword}
}

// Query runs sql as the server's superuser over its Unix socket and returns
// the rows, one a line, columns separated by tabs.
func (s *Server) Query(ctx context.Context, db, sql string) (string, error) {
	var cmd *exec.Cmd
	if s.Engine == "postgres" {
		if db == "" {
			db = "postgres"
		}
		cmd = exec.CommandContext(ctx, filepath.Join(s.binDir, "psql"), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
			"-h", s.socketDir, "-p", strconv.Itoa(s.Port), "-U", "postgres", "-d", db, "-c", sql)
	} else {
		args := []string{"--no-defaults", "--socket=" + filepath.Join(s.socketDir, "mysqld.sock"), "-uroot", "-N", "-B"}
		if db != "" {
			args = append(args, "-D", db)
		}
		cmd = exec.CommandContext(ctx, "mariadb", append(args, "-e", sql)...)
	}
	cmd.Env = cleanEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s query %q: %w: %s", s.Engine, sql, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// Stop stops the server (PostgreSQL: SIGINT, a fast shutdown; MariaDB:
// SIGTERM), waits up to 20 s before SIGKILL, and removes its folder.
func (s *Server) Stop() error {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(s.stopSig)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.exited
		}
	}
	if err := os.RemoveAll(s.Dir); err != nil {
		return fmt.Errorf("dbserver: remove %s: %w", s.Dir, err)
	}
	return nil
}

// start runs the server process: in its own process group (a ^C in the
// terminal reaches the test, which stops the server), killed when the
// process that started it dies.
func (s *Server) start(cmd *exec.Cmd) error {
	lf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.Env = cleanEnv()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.exited) }()
	return nil
}

// waitReady runs probe until it succeeds, the server exits or ctx ends.
func (s *Server) waitReady(ctx context.Context, t0 time.Time, probe func(context.Context) error) error {
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			s.ReadyTime = time.Since(t0)
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited during start: %s", s.Engine, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (%v): %s", s.Engine, time.Since(t0).Round(time.Millisecond), err, s.logTail())
		case <-time.After(20 * time.Millisecond):
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

// fail stops what was started and wraps err.
func (s *Server) fail(err error) error {
	_ = s.Stop()
	return fmt.Errorf("dbserver: %s on %s:%d: %w", s.Engine, s.Host, s.Port, err)
}

// run runs a setup command, its output into the server's log.
func (s *Server) run(ctx context.Context, cmd *exec.Cmd) error {
	lf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	if cmd.Env == nil {
		cmd.Env = cleanEnv()
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w; %s", strings.Join(cmd.Args, " "), err, s.logTail())
	}
	return ctx.Err()
}

// cleanEnv is the environment of the servers and setup commands: the
// process's, without the client variables a test may have set, so that
// nothing connects somewhere else by accident.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "MYSQL") || strings.HasPrefix(kv, "MARIADB") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// randomPassword returns 32 hex digits.
func randomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
