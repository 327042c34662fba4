package dbserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pgHBA lets the superuser in over the Unix socket only and everyone else
// over TCP with a password (so a test that logs in with a plugin's outputs
// checks the password too).
const pgHBA = `# written by sandboxmesh dbserver
local all all trust
host  all all 0.0.0.0/0 scram-sha-256
host  all all ::/0      scram-sha-256
`

// StartPostgres initialises a PostgreSQL data folder and starts the server
// (about 1 s for initdb and 0.1 s to ready here). As root the server runs as
// the postgres user (initdb refuses root). The administrator AdminUser has
// CREATEDB and CREATEROLE.
func StartPostgres(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("dbserver: postgres: %w", err)
	}
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	dir, err := os.MkdirTemp(cfg.Dir, "sandboxmesh-postgres-")
	if err != nil {
		return nil, fmt.Errorf("dbserver: postgres: %w", err)
	}
	s := &Server{Engine: "postgres", Dir: dir, Host: cfg.Listen[0], Port: cfg.Port, AdminUser: AdminUser, AdminPassword: randomPassword(),
		socketDir: dir, binDir: bin, log: filepath.Join(dir, "server.log"), stopSig: syscall.SIGINT}
	// As root, every command runs as the postgres user: it owns the folder.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, s.fail(fmt.Errorf("the postgres user (created by the postgresql package): %w", err))
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, s.fail(err)
		}
	}
	asPostgres := func(cmd *exec.Cmd) *exec.Cmd {
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	t0 := time.Now()
	if err := s.run(ctx, asPostgres(exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"))); err != nil {
		return nil, s.fail(fmt.Errorf("initdb (the folder %s must be reachable by the postgres user): %w", dir, err))
	}
	s.InitTime = time.Since(t0)
	if err := os.WriteFile(filepath.Join(data, "pg_hba.conf"), []byte(pgHBA), 0o600); err != nil {
		return nil, s.fail(err)
	}
	if cred != nil {
		if err := os.Chown(filepath.Join(data, "pg_hba.conf"), int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, s.fail(err)
		}
	}
	port := strconv.Itoa(s.Port)
	t0 = time.Now()
	if err := s.start(asPostgres(exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", port, "-k", dir,
		"-c", "listen_addresses="+strings.Join(cfg.Listen, ","),
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "jit=off"))); err != nil {
		return nil, s.fail(err)
	}
	if err := s.waitReady(ctx, t0, func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "pg_isready"), "-q", "-h", dir, "-p", port)
		cmd.Env = cleanEnv()
		return cmd.Run()
	}); err != nil {
		return nil, s.fail(err)
	}
	if _, err := s.Query(ctx, "", fmt.Sprintf("CREATE ROLE %s LOGIN CREATEDB CREATEROLE PASSWORD '%s'", s.AdminUser, s.AdminPassword)); err != nil {
		return nil, s.fail(fmt.Errorf("create the administrator: %w", err))
	}
	return s, nil
}
