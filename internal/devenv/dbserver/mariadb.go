package dbserver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartMariaDB initialises a MariaDB data folder and starts the server as
// root (about 1 s for mariadb-install-db and 0.2 s to ready here). root
// connects only over the Unix socket; the administrator AdminUser@'%' has
// ALL PRIVILEGES WITH GRANT OPTION. No option file is read (--no-defaults),
// so /etc/mysql does not matter.
func StartMariaDB(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, fmt.Errorf("dbserver: mariadb: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	dir, err := os.MkdirTemp(cfg.Dir, "sandboxmesh-mariadb-")
	if err != nil {
		return nil, fmt.Errorf("dbserver: mariadb: %w", err)
	}
	s := &Server{Engine: "mariadb", Dir: dir, Host: cfg.Listen[0], Port: cfg.Port, AdminUser: AdminUser, AdminPassword: randomPassword(),
		socketDir: dir, log: filepath.Join(dir, "server.log"), stopSig: syscall.SIGTERM}
	data := filepath.Join(dir, "data")
	self := "--user=" + currentUser()
	t0 := time.Now()
	if err := s.run(ctx, exec.CommandContext(ctx, "mariadb-install-db", "--no-defaults", "--datadir="+data, self,
		"--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve", "--innodb-log-file-size=8M")); err != nil {
		return nil, s.fail(fmt.Errorf("mariadb-install-db: %w", err))
	}
	s.InitTime = time.Since(t0)
	sock := filepath.Join(dir, "mysqld.sock")
	t0 = time.Now()
	if err := s.start(exec.Command("/usr/sbin/mariadbd", "--no-defaults", "--datadir="+data, self,
		"--socket="+sock, "--pid-file="+filepath.Join(dir, "mariadbd.pid"), "--log-error="+s.log,
		"--port="+strconv.Itoa(s.Port), "--bind-address="+strings.Join(cfg.Listen, ","),
		"--skip-name-resolve", "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=32M",
		"--innodb-flush-log-at-trx-commit=0", "--skip-log-bin")); err != nil {
		return nil, s.fail(err)
	}
	if err := s.waitReady(ctx, t0, func(ctx context.Context) error {
		cmd := exec.CommandContext(ctx, "mariadb-admin", "--no-defaults", "--socket="+sock, "-uroot", "--silent", "ping")
		cmd.Env = cleanEnv()
		return cmd.Run()
	}); err != nil {
		return nil, s.fail(err)
	}
	if _, err := s.Query(ctx, "", fmt.Sprintf("CREATE USER '%[1]s'@'%%' IDENTIFIED BY '%[2]s'; GRANT ALL PRIVILEGES ON *.* TO '%[1]s'@'%%' WITH GRANT OPTION", s.AdminUser, s.AdminPassword)); err != nil {
		return nil, s.fail(fmt.Errorf("create the administrator: %w", err))
	}
	return s, nil
}

// currentUser is the name mariadbd runs as (--user): root when root.
func currentUser() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return strconv.Itoa(os.Geteuid())
}
