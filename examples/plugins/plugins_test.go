// Tests of the shipped resource plugins against real servers: PostgreSQL and
// MariaDB from Debian (internal/devenv/dbserver) on loopback, each step run
// by the real step runner (controlplane/runner.RunStep) with the host's
// /bin/sh and clients, then again with busybox sh and busybox tools in
// front of PATH, as in the sandboxmesh-runner:db image.
package plugins_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/runner"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/dbserver"
)

// requireServers skips (fails under CI=true) when the servers cannot be had:
// not root, or the packages cannot be installed.
func requireServers(t *testing.T) {
	t.Helper()
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	if os.Geteuid() != 0 {
		if ci {
			t.Fatalf("%s needs root (PostgreSQL and MariaDB from Debian); CI=%s, so it fails instead of skipping", t.Name(), os.Getenv("CI"))
		}
		t.Skipf("%s needs root (PostgreSQL and MariaDB from Debian); skipped (under CI=true it fails)", t.Name())
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

// shell is how a step's script is run: the interpreter line it is given and
// the folder put in front of PATH.
type shell struct {
	name, interpreter, pathDir string
}

// shells are /bin/sh, and busybox sh with busybox's tools when busybox is
// installed (the runner image's /bin/sh).
func shells(t *testing.T) []shell {
	out := []shell{{name: "sh", interpreter: "#!/bin/sh"}}
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Logf("no /bin/busybox: the scripts run with /bin/sh only")
		return out
	}
	dir := t.TempDir()
	for _, applet := range []string{"sh", "tr", "cut", "head", "sha256sum", "wc", "mkdir", "cat", "printf"} {
		if err := os.Symlink("/bin/busybox", filepath.Join(dir, applet)); err != nil {
			t.Fatal(err)
		}
	}
	return append(out, shell{name: "busybox", interpreter: "#!/bin/busybox sh", pathDir: dir})
}

// step is a resource plugin step as its plugin.yaml declares it, with the
// outputs under OUTPUT_DIR (/tmp/out in the plugin).
type step struct {
	file    string   // script, relative to the plugin's folder
	outputs []string // names; files $OUTPUT_DIR/<name>
	seed    bool     // the optional param seed-sql, as the file $SEED_SQL_FILE
	// wantFail: the step must fail and its log tail hold this.
	wantFail string
}

// world is one run of a plugin's steps for one sandbox resource.
type world struct {
	t        *testing.T
	dir      string // the plugin's folder
	sh       shell
	env      []string
	inputs   string // the step inputs folder (the state Secret's mount)
	outDir   string
	seedPath string
}

func newWorld(t *testing.T, plugin string, sh shell, srv *dbserver.Server, sandbox, resource, id string) *world {
	tmp := t.TempDir()
	w := &world{t: t, dir: plugin, sh: sh, inputs: filepath.Join(tmp, "inputs"), outDir: filepath.Join(tmp, "out"), seedPath: filepath.Join(tmp, "seed", "seed.sql")}
	if err := os.Mkdir(w.inputs, 0o755); err != nil {
		t.Fatal(err)
	}
	path := "/usr/sbin:/usr/bin:/sbin:/bin"
	if bin, err := dbserver.PostgresBinDir(); err == nil {
		path = bin + ":" + path // the real psql, as in the image (/usr/bin/psql is Debian's wrapper)
	}
	if sh.pathDir != "" {
		path = sh.pathDir + ":" + path
	}
	w.env = append([]string{"PATH=" + path, "HOME=" + tmp, "OUTPUT_DIR=" + w.outDir, "SEED_SQL_FILE=" + w.seedPath,
		"SANDBOXMESH_SANDBOX_NAME=" + sandbox, "SANDBOXMESH_RESOURCE_NAME=" + resource, "SANDBOXMESH_RESOURCE_ID=" + id,
		"SANDBOXMESH_STEP_NAME=test"}, srv.AdminEnv()...)
	return w
}

// run runs one step through runner.RunStep and returns its outputs; the
// step must succeed.
func (w *world) run(ctx context.Context, s step) map[string]string {
	w.t.Helper()
	script, err := os.ReadFile(filepath.Join(w.dir, s.file))
	if err != nil {
		w.t.Fatal(err)
	}
	first, rest, _ := strings.Cut(string(script), "\n")
	if first != "#!/bin/sh" {
		w.t.Fatalf("%s starts with %q, want #!/bin/sh", s.file, first)
	}
	spec := v1alpha1.StepSpec{Script: w.sh.interpreter + "\n" + rest}
	if s.seed {
		spec.Inputs = append(spec.Inputs, v1alpha1.StepSpecInput{Key: "param.seed-sql", Path: w.seedPath})
	}
	for _, o := range s.outputs {
		spec.Outputs = append(spec.Outputs, v1alpha1.StepSpecOutput{Name: o, Path: filepath.Join(w.outDir, o)})
	}
	_ = os.RemoveAll(w.outDir) // each attempt writes its outputs afresh
	t0 := time.Now()
	term := runner.RunStep(ctx, runner.StepConfig{Spec: spec, InputsDir: w.inputs, Env: w.env, Stdout: tw{w.t}, Stderr: tw{w.t}})
	w.t.Logf("%s (%s): exit %d in %s", s.file, w.sh.name, term.ExitCode, time.Since(t0).Round(time.Millisecond))
	if s.wantFail != "" {
		if term.ExitCode == 0 || !strings.Contains(term.LogTail, s.wantFail) {
			w.t.Fatalf("%s: exit %d, log tail %q; want a failure whose log says %q", s.file, term.ExitCode, term.LogTail, s.wantFail)
		}
		return nil
	}
	if term.ExitCode != 0 || term.Error != "" {
		w.t.Fatalf("%s failed: exit %d: %s\n%s", s.file, term.ExitCode, term.Error, term.LogTail)
	}
	if _, err := v1alpha1.EncodeStepTermination(term); err != nil {
		w.t.Fatalf("%s: the termination message: %v", s.file, err)
	}
	return term.Outputs
}

// output runs a client command and returns its trimmed output.
func output(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func start(t *testing.T, startFn func(context.Context, dbserver.Config) (*dbserver.Server, error)) *dbserver.Server {
	t.Helper()
	srv, err := startFn(context.Background(), dbserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	t.Logf("%s on %s:%d: data folder in %s, ready %s after start", srv.Engine, srv.Host, srv.Port, srv.InitTime.Round(time.Millisecond), srv.ReadyTime.Round(time.Millisecond))
	return srv
}

func catalog(t *testing.T, srv *dbserver.Server, queries ...string) []string {
	t.Helper()
	var out []string
	for _, q := range queries {
		rows, err := srv.Query(context.Background(), "", q)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, q+":\n"+rows)
	}
	return out
}

func sameCatalog(t *testing.T, when string, got, want []string) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s, the server's catalog differs from before create:\ngot:\n%s\nwant:\n%s", when, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// Sandbox names are DNS labels; resource names too. The name the scripts
// derive keeps [a-z0-9_] and the resource ID.
const (
	sandboxName  = "Customer-DB.v2"
	resourceName = "main-db"
	resourceID   = "0a1b2c3d"
	wantName     = "sm_customer_db_v2_main_db_0a1b2c3d"
)

func TestPostgresSchema(t *testing.T) {
	requireServers(t)
	t.Parallel()
	t0 := time.Now()
	srv := start(t, dbserver.StartPostgres)
	ctx := context.Background()
	create := step{file: "create.sh", outputs: []string{"host", "port", "database", "user", "password", "url"}, seed: true}
	drop := step{file: "delete.sh"}
	queries := []string{
		"SELECT datname FROM pg_database ORDER BY 1",
		"SELECT rolname FROM pg_roles ORDER BY 1",
		"SELECT roleid::regrole, member::regrole FROM pg_auth_members ORDER BY 1, 2",
	}
	before := catalog(t, srv, queries...)

	for i, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			w := newWorld(t, "postgres-schema", sh, srv, sandboxName, resourceName, resourceID)
			name := wantName
			if i > 0 { // another resource: its own names
				w = newWorld(t, "postgres-schema", sh, srv, sandboxName, resourceName, "ffff000"+strconv.Itoa(i))
				name = "sm_customer_db_v2_main_db_ffff000" + strconv.Itoa(i)
			}
			setSeed := func(seed string) {
				if err := os.WriteFile(filepath.Join(w.inputs, "param.seed-sql"), []byte(seed), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			// A seed that fails half-way fails the step and leaves nothing of itself: the next attempt seeds.
			setSeed("CREATE TABLE customers (id int PRIMARY KEY, name text);\nINSERT INTO customers VALUES (1, 'Ada');\nSELEC broken;\n")
			badSeed := create
			badSeed.wantFail = `syntax error at or near "SELEC"`
			w.run(ctx, badSeed)
			setSeed("CREATE TABLE customers (id int PRIMARY KEY, name text);\nINSERT INTO customers VALUES (1, 'Ada'), (2, 'Bob');\n")
			psql := func(url string, sql string) (string, error) {
				return output(t, w.env, "psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", url, "-c", sql)
			}

			out := w.run(ctx, create)
			want := map[string]string{"host": srv.Host, "port": strconv.Itoa(srv.Port), "database": name, "user": name}
			for k, v := range want {
				if out[k] != v {
					t.Errorf("output %s = %q, want %q", k, out[k], v)
				}
			}
			if len(out["password"]) != 32 {
				t.Errorf("password has %d characters, want 32", len(out["password"]))
			}
			wantURL := "postgres://" + name + ":" + out["password"] + "@" + srv.Host + ":" + strconv.Itoa(srv.Port) + "/" + name + "?sslmode=prefer"
			if out["url"] != wantURL {
				t.Errorf("url = %q, want %q", out["url"], wantURL)
			}
			// Log in with the outputs: the seed is there, the role owns its database.
			got, err := psql(out["url"], "SELECT current_user, count(*) FROM customers")
			if err != nil || got != name+"|2" {
				t.Fatalf("log in with the url: %q, %v; want %q", got, err, name+"|2")
			}
			if got, err := psql(out["url"], "CREATE TABLE orders (id int); INSERT INTO orders VALUES (7); SELECT count(*) FROM orders"); err != nil || got != "1" {
				t.Fatalf("create a table as the new role: %q, %v", got, err)
			}
			wrong := strings.Replace(out["url"], out["password"], "wrong", 1)
			if got, err := psql(wrong, "SELECT 1"); err == nil {
				t.Errorf("log in with a wrong password succeeded: %q", got)
			}

			// Create again: same names, a new password, the seed not applied twice, data kept.
			again := w.run(ctx, create)
			if again["database"] != name || again["user"] != name {
				t.Errorf("second create: database %q user %q, want %q", again["database"], again["user"], name)
			}
			if again["password"] == out["password"] {
				t.Error("second create kept the password; each attempt sets a new one")
			}
			if got, err := psql(out["url"], "SELECT 1"); err == nil {
				t.Errorf("the old password still works after the second create: %q", got)
			}
			if got, err := psql(again["url"], "SELECT (SELECT count(*) FROM customers) || ',' || (SELECT count(*) FROM orders)"); err != nil || got != "2,1" {
				t.Errorf("after the second create: customers,orders = %q, %v; want 2,1 (seed once, data kept)", got, err)
			}

			// Delete while a session is open: WITH (FORCE) ends it.
			session := exec.Command("psql", "-X", again["url"], "-c", "SELECT pg_sleep(60)")
			session.Env = w.env
			if err := session.Start(); err != nil {
				t.Fatal(err)
			}
			defer session.Process.Kill()
			waitFor(t, func() bool {
				n, _ := srv.Query(ctx, "", "SELECT count(*) FROM pg_stat_activity WHERE datname = '"+name+"'")
				return strings.TrimSpace(n) == "1"
			})
			w.run(ctx, drop)
			if err := session.Wait(); err == nil {
				t.Error("the open session survived the delete")
			}
			sameCatalog(t, "after delete", catalog(t, srv, queries...), before)
			w.run(ctx, drop)
			sameCatalog(t, "after a second delete", catalog(t, srv, queries...), before)
		})
	}
	t.Logf("TestPostgresSchema took %s", time.Since(t0).Round(time.Millisecond))
}

func TestMariaDBDatabase(t *testing.T) {
	requireServers(t)
	t.Parallel()
	t0 := time.Now()
	srv := start(t, dbserver.StartMariaDB)
	ctx := context.Background()
	create := step{file: "create.sh", outputs: []string{"host", "port", "database", "user", "password"}}
	drop := step{file: "delete.sh"}
	queries := []string{
		"SHOW DATABASES",
		"SELECT user, host FROM mysql.user ORDER BY 1, 2",
		"SELECT host, db, user FROM mysql.db ORDER BY 1, 2, 3",
	}
	before := catalog(t, srv, queries...)

	for i, sh := range shells(t) {
		t.Run(sh.name, func(t *testing.T) {
			id, name := resourceID, wantName
			if i > 0 {
				id = "ffff000" + strconv.Itoa(i)
				name = "sm_customer_db_v2_main_db_" + id
			}
			w := newWorld(t, "mariadb-database", sh, srv, sandboxName, resourceName, id)
			mariadb := func(out map[string]string, password, sql string) (string, error) {
				return output(t, append(w.env, "MYSQL_PWD="+password), "mariadb", "--no-defaults", "--protocol=tcp", "-N", "-B",
					"-h", out["host"], "-P", out["port"], "-u", out["user"], "-D", out["database"], "-e", sql)
			}

			out := w.run(ctx, create)
			want := map[string]string{"host": srv.Host, "port": strconv.Itoa(srv.Port), "database": name, "user": name}
			for k, v := range want {
				if out[k] != v {
					t.Errorf("output %s = %q, want %q", k, out[k], v)
				}
			}
			if got, err := mariadb(out, out["password"], "CREATE TABLE orders (id int); INSERT INTO orders VALUES (7); SELECT current_user(), count(*) FROM orders"); err != nil || got != name+"@%\t1" {
				t.Fatalf("log in with the outputs and create a table: %q, %v", got, err)
			}
			if got, err := mariadb(out, "wrong", "SELECT 1"); err == nil {
				t.Errorf("log in with a wrong password succeeded: %q", got)
			}
			if got, err := mariadb(out, out["password"], "CREATE DATABASE other_"+id); err == nil {
				t.Errorf("the sandbox's user could create another database: %q", got)
			}

			again := w.run(ctx, create)
			if again["database"] != name || again["user"] != name {
				t.Errorf("second create: database %q user %q, want %q", again["database"], again["user"], name)
			}
			if again["password"] == out["password"] {
				t.Error("second create kept the password; each attempt sets a new one")
			}
			if got, err := mariadb(out, out["password"], "SELECT 1"); err == nil {
				t.Errorf("the old password still works after the second create: %q", got)
			}
			if got, err := mariadb(again, again["password"], "SELECT count(*) FROM orders"); err != nil || got != "1" {
				t.Errorf("after the second create: orders = %q, %v; want 1 (data kept)", got, err)
			}

			w.run(ctx, drop)
			sameCatalog(t, "after delete", catalog(t, srv, queries...), before)
			w.run(ctx, drop)
			sameCatalog(t, "after a second delete", catalog(t, srv, queries...), before)
		})
	}
	t.Logf("TestMariaDBDatabase took %s", time.Since(t0).Round(time.Millisecond))
}

// TestStepFailsClearly: without the admin connection the step fails with a
// message that names what is missing, in the log tail the sandbox status
// shows.
func TestStepFailsClearly(t *testing.T) {
	for _, plugin := range []string{"postgres-schema", "mariadb-database"} {
		for _, file := range []string{"create.sh", "delete.sh"} {
			script, err := os.ReadFile(filepath.Join(plugin, file))
			if err != nil {
				t.Fatal(err)
			}
			term := runner.RunStep(context.Background(), runner.StepConfig{
				Spec:      v1alpha1.StepSpec{Script: string(script)},
				InputsDir: t.TempDir(),
				Env:       []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "SANDBOXMESH_SANDBOX_NAME=a", "SANDBOXMESH_RESOURCE_NAME=b", "SANDBOXMESH_RESOURCE_ID=c"},
			})
			if term.ExitCode == 0 || !strings.Contains(term.LogTail, "is not set: the admin Secret gives") {
				t.Errorf("%s/%s without the admin connection: exit %d, log %q", plugin, file, term.ExitCode, term.LogTail)
			}
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 10 s")
}
