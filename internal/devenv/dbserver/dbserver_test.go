package dbserver_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/internal/devenv/dbserver"
)

// requireServers skips (fails under CI=true) when the servers cannot be had:
// not root, or the packages cannot be installed.
func requireServers(t *testing.T) {
	t.Helper()
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	if os.Geteuid() != 0 {
		if ci {
			t.Fatalf("%s needs root (initdb as the postgres user, apt-get); CI=%s, so it fails instead of skipping", t.Name(), os.Getenv("CI"))
		}
		t.Skipf("%s needs root (initdb as the postgres user, apt-get); skipped (under CI=true it fails)", t.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t0 := time.Now()
	installed, err := dbserver.EnsurePackages(ctx)
	if err != nil {
		if ci {
			t.Fatal(err)
		}
		t.Skipf("%v; skipped (under CI=true it fails)", err)
	}
	if len(installed) > 0 {
		t.Logf("installed %v in %s", installed, time.Since(t0).Round(100*time.Millisecond))
	}
}

type tw struct{ t *testing.T }

func (w tw) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestServers(t *testing.T) {
	requireServers(t)
	ctx := context.Background()
	pgBin, err := dbserver.PostgresBinDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		start func(context.Context, dbserver.Config) (*dbserver.Server, error)
		login func(s *dbserver.Server, password string) *exec.Cmd
	}{
		{"postgres", dbserver.StartPostgres, func(s *dbserver.Server, pw string) *exec.Cmd {
			cmd := exec.Command(filepath.Join(pgBin, "psql"), "-X", "-At", "-d", "postgres", "-c", "SELECT current_user")
			cmd.Env = append(os.Environ(), "PGHOST="+s.Host, "PGPORT="+strconv.Itoa(s.Port), "PGUSER="+s.AdminUser, "PGPASSWORD="+pw)
			return cmd
		}},
		{"mariadb", dbserver.StartMariaDB, func(s *dbserver.Server, pw string) *exec.Cmd {
			cmd := exec.Command("mariadb", "--no-defaults", "--protocol=tcp", "-h", s.Host, "-P", strconv.Itoa(s.Port), "-u", s.AdminUser, "-N", "-B", "-e", "SELECT current_user()")
			cmd.Env = append(os.Environ(), "MYSQL_PWD="+pw)
			return cmd
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Two listen addresses (all of 127.0.0.0/8 is local on Linux).
			listen := []string{"127.0.0.1", "127.0.0.2"}
			s, err := tc.start(ctx, dbserver.Config{Listen: listen})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s on %s:%d: init %s, ready %s", s.Engine, s.Host, s.Port, s.InitTime.Round(time.Millisecond), s.ReadyTime.Round(time.Millisecond))
			if s.Host != listen[0] {
				t.Errorf("Host = %q, want the first listen address %q", s.Host, listen[0])
			}
			for _, addr := range listen {
				at := *s
				at.Host = addr
				out, err := tc.login(&at, s.AdminPassword).CombinedOutput()
				if err != nil || !strings.HasPrefix(strings.TrimSpace(string(out)), dbserver.AdminUser) {
					t.Errorf("administrator login over TCP on %s: %v: %s", addr, err, out)
				}
			}
			if out, err := tc.login(s, "wrong").CombinedOutput(); err == nil {
				t.Errorf("login with a wrong password succeeded: %s", out)
			}
			if _, err := s.Query(ctx, "", "SELECT 1"); err != nil {
				t.Error(err)
			}
			t0 := time.Now()
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			t.Logf("stopped in %s", time.Since(t0).Round(time.Millisecond))
			if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
				t.Errorf("%s still exists after Stop: %v", s.Dir, err)
			}
		})
	}
}
