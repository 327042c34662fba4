package runner

import (
	"bytes"
	"context"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// startRunner runs a Runner against f with short timings until the test
// ends (or the returned stop is called).
func startRunner(t *testing.T, f *fakeCP, tweak func(*Config)) (stop func()) {
	t.Helper()
	cfg := Config{
		ControlPlaneURL: f.srv.URL, Org: "acme", RunnerGroup: "grp", Token: testToken, Pod: "pod-1", Namespace: "jobs",
		WorkRoot: t.TempDir(), Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		ClaimWait: 200 * time.Millisecond, FlushInterval: 20 * time.Millisecond, HeartbeatInterval: 100 * time.Millisecond,
		KillGrace: 500 * time.Millisecond, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// alive reports whether process pid runs (a zombie is not running).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func readPids(t *testing.T, file string) []int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		p, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, p)
	}
	return pids
}

func waitDead(t *testing.T, pids []int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range pids {
		for alive(p) {
			if time.Now().After(deadline) {
				t.Fatalf("process %d of the job still runs", p)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestScriptOutputInOrderAndExitCode(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, nil)
	f.add(apitypes.RunnerJob{Name: "order", Attempt: 2, Script: "#!/bin/sh\necho out1\nsleep 0.2\necho err1 >&2\nsleep 0.2\necho out2\nexit 3\n"})
	fin := f.waitFinish(t, "order")
	if fin.ExitCode != 3 || fin.Canceled || fin.Message != "" {
		t.Fatalf("finish %+v, want exit code 3 without message", fin)
	}
	want := []string{"stdout:out1\n", "stderr:err1\n", "stdout:out2\n"}
	if got := f.sequence("order"); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("output %q, want %q", got, want)
	}
}

func TestLargeOutputArrivesWhole(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, nil)
	// 1.2 MB as fast as the shell writes it: more than one 64 KiB flush and
	// more than one events request.
	f.add(apitypes.RunnerJob{Name: "big", Script: "#!/bin/sh\ni=0\nwhile [ $i -lt 100000 ]; do echo \"line $i\"; i=$((i+1)); done\n"})
	if fin := f.waitFinish(t, "big"); fin.ExitCode != 0 {
		t.Fatalf("finish %+v", fin)
	}
	var want strings.Builder
	for i := range 100000 {
		want.WriteString("line " + strconv.Itoa(i) + "\n")
	}
	if got := f.output("big", "stdout"); got != want.String() {
		t.Fatalf("stdout %d bytes, want %d (first difference matters: order)", len(got), want.Len())
	}
	f.mu.Lock()
	n := len(f.events["big"])
	f.mu.Unlock()
	if n < 2 {
		t.Fatalf("%d events requests for 1.2 MB", n)
	}
}

// TestOutputKeptWhileControlPlaneFails: output the control plane refused
// (503) is kept and sent again, nothing lost or reordered.
func TestOutputKeptWhileControlPlaneFails(t *testing.T) {
	f := newFakeCP(t)
	f.failEvents = 8
	startRunner(t, f, nil)
	f.add(apitypes.RunnerJob{Name: "outage", Script: "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; echo err $i >&2; sleep 0.05; done\n"})
	if fin := f.waitFinish(t, "outage"); fin.ExitCode != 0 {
		t.Fatalf("finish %+v", fin)
	}
	var out, errs strings.Builder
	for i := 1; i <= 10; i++ {
		out.WriteString("line " + strconv.Itoa(i) + "\n")
		errs.WriteString("err " + strconv.Itoa(i) + "\n")
	}
	if got := f.output("outage", "stdout"); got != out.String() {
		t.Fatalf("stdout %q", got)
	}
	if got := f.output("outage", "stderr"); got != errs.String() {
		t.Fatalf("stderr %q", got)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failEvents != 0 {
		t.Fatalf("%d failures left: the runner did not retry", f.failEvents)
	}
}

func TestCommandAndStartErrors(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, nil)
	for _, tc := range []struct {
		name     string
		job      apitypes.RunnerJob
		code     int
		msg, out string
	}{
		{name: "cmd", job: apitypes.RunnerJob{Command: []string{"sh", "-c", "echo hi; exit 5"}}, code: 5, out: "hi\n"},
		{name: "cmd-missing", job: apitypes.RunnerJob{Command: []string{"/no/such/program"}}, code: 127, msg: `cannot run the command "/no/such/program"`},
		{name: "interp-missing", job: apitypes.RunnerJob{Script: "#!/no/such/sh\necho x\n"}, code: 127, msg: `interpreter "/no/such/sh" is not in the runner image`},
		{name: "no-shebang", job: apitypes.RunnerJob{Script: "echo x\n"}, code: 126, msg: "does not start with #!"},
		{name: "killed-by-signal", job: apitypes.RunnerJob{Script: "#!/bin/sh\nkill -KILL $$\n"}, code: 137, msg: "ended by a signal (killed)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.job.Name = tc.name
			f.add(tc.job)
			fin := f.waitFinish(t, tc.name)
			if fin.ExitCode != tc.code || !strings.Contains(fin.Message, tc.msg) || (tc.msg == "" && fin.Message != "") {
				t.Fatalf("finish %+v, want code %d and message with %q", fin, tc.code, tc.msg)
			}
			if got := f.output(tc.name, "stdout"); got != tc.out {
				t.Fatalf("stdout %q, want %q", got, tc.out)
			}
		})
	}
}

// TestSelfCommand: a job whose argv[0] is exactly "sandboxmesh-runner" runs
// the runner's own executable (Config.Self, by default os.Executable()),
// wherever it is installed; any other argv[0] is looked up as usual.
func TestSelfCommand(t *testing.T) {
	self := filepath.Join(t.TempDir(), "installed-runner")
	if err := os.WriteFile(self, []byte("#!/bin/sh\necho \"self $*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFakeCP(t)
	startRunner(t, f, func(c *Config) { c.Self = self })
	f.add(apitypes.RunnerJob{Name: "self", Command: []string{"sandboxmesh-runner", "smarttest"}})
	f.add(apitypes.RunnerJob{Name: "other", Command: []string{"./sandboxmesh-runner", "smarttest"}})
	if fin := f.waitFinish(t, "self"); fin.ExitCode != 0 {
		t.Fatalf("finish %+v", fin)
	}
	if got, want := f.output("self", "stdout"), "self smarttest\n"; got != want {
		t.Fatalf("stdout %q, want %q", got, want)
	}
	if fin := f.waitFinish(t, "other"); fin.ExitCode != 127 {
		t.Fatalf("a relative ./sandboxmesh-runner must not be the runner: finish %+v", fin)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	c.defaults()
	if c.Self != exe {
		t.Fatalf("default Self %q, want os.Executable() %q", c.Self, exe)
	}
}

// TestCancelKillsProcessGroup: a cancel answer stops the whole process
// group (the script and a child it started), SIGKILL when SIGTERM is
// ignored.
func TestCancelKillsProcessGroup(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, nil)
	for _, tc := range []struct {
		name, trap, msg string
		code            int
	}{
		{name: "sigterm", msg: "canceled (apiRequest): the runner stopped the job's processes with SIGTERM", code: 143},
		{name: "ignores-sigterm", trap: "trap '' TERM\n", msg: "SIGTERM, then SIGKILL after 500ms", code: 137},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidFile := filepath.Join(t.TempDir(), "pids")
			f.mu.Lock()
			f.cancel[tc.name] = apitypes.CancelReasonAPIRequest
			f.mu.Unlock()
			f.add(apitypes.RunnerJob{Name: tc.name, Env: []apitypes.EnvVar{{Name: "PIDFILE", Value: pidFile}},
				Script: "#!/bin/sh\n" + tc.trap + "sleep 300 &\necho $! > $PIDFILE\necho $$ >> $PIDFILE\necho started\nwait\necho never\n"})
			fin := f.waitFinish(t, tc.name)
			if !fin.Canceled || fin.ExitCode != tc.code || !strings.Contains(fin.Message, tc.msg) {
				t.Fatalf("finish %+v, want canceled, code %d, message with %q", fin, tc.code, tc.msg)
			}
			pids := readPids(t, pidFile)
			if len(pids) != 2 {
				t.Fatalf("pids %v", pids)
			}
			waitDead(t, pids)
			if out := f.output(tc.name, "stdout"); strings.Contains(out, "never") {
				t.Fatalf("the script went on after cancel: %q", out)
			}
		})
	}
}

func TestArtifactsUploaded(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, nil)
	keep := t.TempDir()
	abs := filepath.Join(t.TempDir(), "abs.json")
	f.add(apitypes.RunnerJob{Name: "art", Env: []apitypes.EnvVar{{Name: "KEEP", Value: keep}, {Name: "ABS", Value: abs}},
		Script:         "#!/bin/sh\nset -e\nmkdir -p out sub\nhead -c 300001 /dev/urandom > out/data.bin\ncp out/data.bin $KEEP/\necho '{\"ok\":true}' > $ABS\n",
		UploadArtifact: []apitypes.ArtifactToUpload{{Path: "out/data.bin"}, {Path: abs}, {Path: "missing.txt"}, {Path: "sub"}}})
	fin := f.waitFinish(t, "art")
	if fin.ExitCode != 0 || fin.Canceled {
		t.Fatalf("finish %+v: a missing artifact must not change the exit code", fin)
	}
	for _, m := range []string{"artifact missing.txt not uploaded: no such file", "artifact sub not uploaded: not a regular file"} {
		if !strings.Contains(fin.Message, m) {
			t.Errorf("finish message %q lacks %q", fin.Message, m)
		}
	}
	want, err := os.ReadFile(filepath.Join(keep, "data.bin"))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	got := f.artifacts["art"]
	if a := got["out/data.bin"]; !bytes.Equal(a.data, want) || a.contentType != "application/octet-stream" {
		t.Fatalf("out/data.bin: %d bytes (%s), want %d identical bytes", len(a.data), a.contentType, len(want))
	}
	if a := got[abs]; string(a.data) != "{\"ok\":true}\n" || a.contentType != "application/json" {
		t.Fatalf("%s: %q (%s)", abs, a.data, a.contentType)
	}
	if len(got) != 2 {
		t.Fatalf("uploaded %d artifacts, want 2", len(got))
	}
}

// TestEnvAndWorkDir: the job gets its env (injected variables win), not the
// runner's token, and runs in a fresh folder removed afterwards.
func TestEnvAndWorkDir(t *testing.T) {
	t.Setenv(EnvRunnerToken, "smr_must-not-leak")
	f := newFakeCP(t)
	root := t.TempDir()
	startRunner(t, f, func(c *Config) { c.WorkRoot = root })
	env := []apitypes.EnvVar{{Name: "FOO", Value: "bar baz"}, {Name: "SANDBOXMESH_ROUTING_KEY", Value: "user-set"},
		{Name: "SANDBOXMESH_ROUTING_KEY", Value: "rk123"}, {Name: "SIGNADOT_ROUTING_KEY", Value: "rk123"}}
	for _, n := range []string{"env1", "env2"} {
		f.add(apitypes.RunnerJob{Name: n, Env: env, Script: "#!/bin/sh\necho \"$FOO|$SANDBOXMESH_ROUTING_KEY|$SIGNADOT_ROUTING_KEY|${SANDBOXMESH_RUNNER_TOKEN:-none}\"\npwd\nls -A\ntouch leftover\n"})
	}
	var dirs []string
	for _, n := range []string{"env1", "env2"} {
		if fin := f.waitFinish(t, n); fin.ExitCode != 0 {
			t.Fatalf("finish %+v", fin)
		}
		lines := strings.Split(strings.TrimSpace(f.output(n, "stdout")), "\n")
		if len(lines) != 2 || lines[0] != "bar baz|rk123|rk123|none" {
			t.Fatalf("job output %q", lines)
		}
		dirs = append(dirs, lines[1])
	}
	if dirs[0] == dirs[1] || !strings.HasPrefix(dirs[0], root) {
		t.Fatalf("work folders %v (root %s): want a fresh one per attempt", dirs, root)
	}
	// The folder goes after finish, before the next claim.
	deadline := time.Now().Add(10 * time.Second)
	for _, d := range dirs {
		for {
			_, err := os.Stat(filepath.Dir(d))
			if os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("work folder %s not removed: %v", d, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestHeartbeatWhileSilent(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, nil)
	f.add(apitypes.RunnerJob{Name: "quiet", Script: "#!/bin/sh\nsleep 1\n"})
	f.waitFinish(t, "quiet")
	f.mu.Lock()
	defer f.mu.Unlock()
	empty := 0
	for _, ev := range f.events["quiet"] {
		if len(ev.Logs) == 0 {
			empty++
		}
	}
	// HeartbeatInterval is 100ms: about 10 in one second; 4 leaves room for a
	// loaded machine.
	if empty < 4 {
		t.Fatalf("%d heartbeats while a job was silent for 1s", empty)
	}
}

// TestConflictStopsJob: a 409 answer (the attempt is not this pod's any
// more) kills the job without finishing it; the runner claims the next one.
func TestConflictStopsJob(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, nil)
	pidFile := filepath.Join(t.TempDir(), "pids")
	f.mu.Lock()
	f.conflict["taken"] = true
	f.mu.Unlock()
	f.add(apitypes.RunnerJob{Name: "taken", Env: []apitypes.EnvVar{{Name: "PIDFILE", Value: pidFile}},
		Script: "#!/bin/sh\necho $$ > $PIDFILE\necho started\nsleep 300\n", UploadArtifact: []apitypes.ArtifactToUpload{{Path: "x"}}})
	f.add(apitypes.RunnerJob{Name: "next", Script: "#!/bin/sh\necho next\n"})
	if fin := f.waitFinish(t, "next"); fin.ExitCode != 0 {
		t.Fatalf("next job: %+v", fin)
	}
	waitDead(t, readPids(t, pidFile))
	f.mu.Lock()
	defer f.mu.Unlock()
	if fin, ok := f.finished["taken"]; ok {
		t.Fatalf("the taken attempt was finished: %+v", fin)
	}
}

// TestRunnerStopFailsRunningJob: the runner's own SIGTERM (its context)
// stops the job and reports it failed, then Run returns.
func TestRunnerStopFailsRunningJob(t *testing.T) {
	f := newFakeCP(t)
	stop := startRunner(t, f, nil)
	f.add(apitypes.RunnerJob{Name: "long", Script: "#!/bin/sh\ntrap 'exit 0' TERM\necho started\nsleep 300 &\nwait\n"})
	for !strings.Contains(f.output("long", "stdout"), "started") {
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	f.mu.Lock()
	fin, ok := f.finished["long"]
	claims := f.claims
	f.mu.Unlock()
	if !ok || fin.Canceled || fin.ExitCode == 0 || !strings.Contains(fin.Message, "runner pod jobs/pod-1 was stopped while the job ran") {
		t.Fatalf("finish %+v (reported %v): want a failure with a message (the script exited 0 on SIGTERM)", fin, ok)
	}
	time.Sleep(300 * time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claims != claims {
		t.Fatalf("claims after Run returned: %d -> %d", claims, f.claims)
	}
}

func TestClaimRetriesWithBackoff(t *testing.T) {
	f := newFakeCP(t)
	f.failClaims = 3
	f.add(apitypes.RunnerJob{Name: "after-errors", Script: "#!/bin/sh\necho ok\n"})
	startRunner(t, f, nil)
	if fin := f.waitFinish(t, "after-errors"); fin.ExitCode != 0 {
		t.Fatalf("finish %+v", fin)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.claims < 4 {
		t.Fatalf("%d claims", f.claims)
	}
}

func TestConfigFromEnv(t *testing.T) {
	full := map[string]string{EnvControlPlaneURL: "http://cp:8080", EnvOrg: "acme", EnvRunnerGroup: "grp", EnvRunnerToken: "smr_x",
		EnvPodName: "p", EnvPodNamespace: "ns"}
	for _, tc := range []struct {
		name    string
		change  map[string]string
		wantErr string
	}{
		{name: "ok"},
		{name: "missing two", change: map[string]string{EnvRunnerToken: "", EnvPodName: ""}, wantErr: "missing environment variable(s) SANDBOXMESH_RUNNER_TOKEN, POD_NAME"},
		{name: "bad url", change: map[string]string{EnvControlPlaneURL: "cp:8080"}, wantErr: "not an http(s) URL"},
		{name: "creds in url", change: map[string]string{EnvControlPlaneURL: "http://u:p@cp"}, wantErr: "without credentials"},
		{name: "not a runner token", change: map[string]string{EnvRunnerToken: "smc_cluster"}, wantErr: `does not start with "smr_"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range full {
				env[k] = v
			}
			for k, v := range tc.change {
				env[k] = v
			}
			c, err := ConfigFromEnv(func(k string) string { return env[k] })
			if tc.wantErr == "" {
				if err != nil || c.Token != "smr_x" || c.Pod != "p" {
					t.Fatalf("%+v %v", c, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "smc_cluster") {
				t.Fatalf("error shows the token: %v", err)
			}
		})
	}
}

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	dst, err := Install(dir)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	want, _ := os.ReadFile(exe)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) || dst != filepath.Join(dir, BinaryName) {
		t.Fatalf("installed %s: %d bytes, want %d identical (%v)", dst, len(got), len(want), err)
	}
	st, _ := os.Stat(dst)
	if st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", st.Mode())
	}
	// Again over the first copy; nothing else is left in the folder.
	if _, err := Install(dir); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("folder holds %d entries", len(ents))
	}
}

func TestOutBufTakePutBack(t *testing.T) {
	var b outBuf
	b.init(10)
	b.write("stdout", []byte("abc"))
	b.write("stdout", []byte("def"))
	b.write("stderr", []byte("XY"))
	b.write("stdout", []byte("gh"))
	first := b.take(4)
	if len(first) != 1 || string(first[0].Data) != "abcd" {
		t.Fatalf("take(4) = %q", first)
	}
	b.putBack(first)
	var got []string
	for b.pending() > 0 {
		for _, c := range b.take(3) {
			got = append(got, c.Stream+":"+string(c.Data))
		}
	}
	want := "stdout:abc stdout:d stdout:ef stderr:XY stdout:g stdout:h"
	if strings.Join(got, " ") != want {
		t.Fatalf("got %q, want %q", strings.Join(got, " "), want)
	}
}

// FuzzConfigFromEnv: whatever the environment holds, ConfigFromEnv does not
// panic, never puts the token in its error, and what it accepts is an
// http(s) URL without credentials and a runner token.
func FuzzConfigFromEnv(f *testing.F) {
	f.Add("http://cp:8080", "smr_x", "acme", "grp")
	f.Add("https://u:p@cp", "smr_abc", "o", "g")
	f.Add("cp:8080", "smc_cluster", "", "g")
	f.Add("http://[::1]:80/prefix/", "smr_a b", "o\n", "g")
	f.Fuzz(func(t *testing.T, u, token, org, group string) {
		env := map[string]string{EnvControlPlaneURL: u, EnvRunnerToken: token, EnvOrg: org, EnvRunnerGroup: group, EnvPodName: "p", EnvPodNamespace: "ns"}
		c, err := ConfigFromEnv(func(k string) string { return env[k] })
		if err != nil {
			if strings.HasPrefix(token, "smr_") && len(token) > 8 && strings.Contains(err.Error(), token) {
				t.Fatalf("error shows the token: %v", err)
			}
			return
		}
		if !strings.HasPrefix(c.Token, "smr_") || !(strings.HasPrefix(c.ControlPlaneURL, "http://") || strings.HasPrefix(c.ControlPlaneURL, "https://")) {
			t.Fatalf("accepted %+v", c)
		}
		if _, err := New(Config{ControlPlaneURL: c.ControlPlaneURL, Org: c.Org, RunnerGroup: c.RunnerGroup, Token: c.Token, Pod: c.Pod, Namespace: c.Namespace, WorkRoot: t.TempDir()}); err != nil {
			t.Fatalf("New refuses what ConfigFromEnv accepted: %v", err)
		}
	})
}

// TestStartErrorBlamesTheRightThing: only an exec failure is the script's
// interpreter or the command; a failure of the runner's own set-up (here:
// opening a file for the process) says so.
func TestStartErrorBlamesTheRightThing(t *testing.T) {
	for _, tc := range []struct {
		name string
		job  apitypes.RunnerJob
		err  error
		code int
		msg  string
	}{
		{"interpreter", apitypes.RunnerJob{Script: "#!/bin/bash\n"}, &fs.PathError{Op: "fork/exec", Path: "/w/script", Err: syscall.ENOENT}, 127, `interpreter "/bin/bash" is not in the runner image`},
		{"not executable", apitypes.RunnerJob{Script: "#!/bin/sh\n"}, &fs.PathError{Op: "fork/exec", Path: "/w/script", Err: syscall.EACCES}, 126, "cannot run the script (#!/bin/sh)"},
		{"command", apitypes.RunnerJob{Command: []string{"pytest"}}, &exec.Error{Name: "pytest", Err: exec.ErrNotFound}, 127, `cannot run the command "pytest"`},
		{"runner set-up", apitypes.RunnerJob{Script: "#!/bin/sh\n"}, &fs.PathError{Op: "open", Path: "/dev/null", Err: syscall.ENOENT}, 1, "runner: cannot start the job: open /dev/null"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &attempt{job: &tc.job}
			code, msg := a.startError(tc.err)
			if code != tc.code || !strings.Contains(msg, tc.msg) {
				t.Fatalf("startError = %d %q, want %d and %q", code, msg, tc.code, tc.msg)
			}
		})
	}
}

// TestTimeoutBackstop: when the control plane does not cancel a job past its
// timeout (it cannot be asked), the runner stops the job itself and says so.
func TestTimeoutBackstop(t *testing.T) {
	f := newFakeCP(t)
	startRunner(t, f, func(c *Config) { c.TimeoutBackstop = 200 * time.Millisecond })
	start := time.Now()
	f.add(apitypes.RunnerJob{Name: "overdue", TimeoutSeconds: 1, Script: "#!/bin/sh\necho started\nsleep 300\n"})
	fin := f.waitFinish(t, "overdue")
	if fin.Canceled || fin.ExitCode != 143 || !strings.Contains(fin.Message, "ran past its timeout (1s)") {
		t.Fatalf("finish %+v; want exit 143, not canceled, a timeout message", fin)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stopped after %v", d)
	}
}
