package runner

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func stepEnv(t *testing.T) (inputs, out string) {
	t.Helper()
	inputs, out = t.TempDir(), t.TempDir()
	for k, v := range map[string]string{"param.dbname": "shop_db", "out.provision.user": "u1", "param.seed-sql": "create table t(x int);\n"} {
		if err := os.WriteFile(filepath.Join(inputs, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return inputs, out
}

func TestRunStep(t *testing.T) {
	inputs, out := stepEnv(t)
	seed := filepath.Join(t.TempDir(), "seed", "seed.sql")
	var stdout, stderr strings.Builder
	res := RunStep(context.Background(), StepConfig{InputsDir: inputs, Stdout: &stdout, Stderr: &stderr, Env: []string{"PATH=" + os.Getenv("PATH")},
		Spec: v1alpha1.StepSpec{
			Script: "#!/bin/sh\nset -e\necho \"db $DBNAME user $DB_USER missing=${MISSING-unset}\"\ncat $SEED > " + out + "/host\n" +
				"printf 'h1\\n' > " + out + "/host\nprintf '\\377\\376' > " + out + "/bin\nprintf 'x=%s' \"$(cat " + seed + ")\" > " + out + "/seed\n",
			Inputs: []v1alpha1.StepSpecInput{{Key: "param.dbname", Env: "DBNAME"}, {Key: "out.provision.user", Env: "DB_USER"},
				{Key: "param.seed-sql", Env: "SEED_SQL", Path: seed}, {Key: "param.absent", Env: "MISSING"}},
			Outputs: []v1alpha1.StepSpecOutput{{Name: "host", Path: out + "/host"}, {Name: "raw", Path: out + "/bin"}, {Name: "seed", Path: out + "/seed"}},
		}})
	if res.ExitCode != 0 || res.Error != "" {
		t.Fatalf("step: %+v\nstderr: %s", res, stderr.String())
	}
	if stdout.String() != "db shop_db user u1 missing=unset\n" || !strings.Contains(stderr.String(), "input param.absent has no value") {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if res.Outputs["host"] != "h1" || res.Outputs["raw"] != base64.StdEncoding.EncodeToString([]byte{0xff, 0xfe}) || len(res.Binary) != 1 ||
		res.Outputs["seed"] != "x=create table t(x int);" {
		t.Fatalf("outputs %+v binary %v", res.Outputs, res.Binary)
	}
}

func TestRunStepFailures(t *testing.T) {
	inputs, out := stepEnv(t)
	env := []string{"PATH=" + os.Getenv("PATH")}
	run := func(script string, outputs ...v1alpha1.StepSpecOutput) v1alpha1.StepTermination {
		return RunStep(context.Background(), StepConfig{InputsDir: inputs, Env: env, Spec: v1alpha1.StepSpec{Script: script, Outputs: outputs}})
	}
	res := run("#!/bin/sh\ni=0\nwhile [ $i -lt 50 ]; do echo line $i; i=$((i+1)); done\necho boom >&2\nexit 3\n")
	// stdout and stderr reach the tail through two pipes: their order is not
	// fixed, so stderr's line may come early and fall out of the last 20.
	if res.ExitCode != 3 || !strings.Contains(res.LogTail, "line 49\n") || strings.Contains(res.LogTail, "line 20\n") {
		t.Fatalf("failing script: %+v", res)
	}
	res = run("#!/bin/sh\ntrue\n", v1alpha1.StepSpecOutput{Name: "host", Path: out + "/never"})
	if res.ExitCode != 1 || !strings.Contains(res.Error, "output host: "+out+"/never was not written") {
		t.Fatalf("missing output: %+v", res)
	}
	res = run("#!/bin/sh\nhead -c 5000 /dev/zero | tr '\\0' x > "+out+"/big\n", v1alpha1.StepSpecOutput{Name: "big", Path: out + "/big"})
	if res.ExitCode != 1 || !strings.Contains(res.Error, "at most 4000") {
		t.Fatalf("outputs too large: %+v", res)
	}
	res = run("#!/nonexistent/interpreter\n")
	if res.ExitCode == 0 || res.Error == "" {
		t.Fatalf("bad interpreter: %+v", res)
	}

	// A canceled step stops its whole process group.
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			if b, _ := os.ReadFile(pidFile); len(b) > 0 {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	start := time.Now()
	res = RunStep(ctx, StepConfig{InputsDir: inputs, Env: env, KillGrace: 500 * time.Millisecond,
		Spec: v1alpha1.StepSpec{Script: "#!/bin/sh\nsleep 300 &\necho $! > " + pidFile + "\nwait\n"}})
	if res.ExitCode == 0 || !strings.Contains(res.Error, "stopped") || time.Since(start) > 10*time.Second {
		t.Fatalf("canceled step: %+v after %v", res, time.Since(start))
	}
	waitDead(t, readPids(t, pidFile))
}

func TestStepSpecFromEnvAndTermination(t *testing.T) {
	for _, tc := range []struct{ env, want string }{
		{"", "is not set"},
		{`{"script":"echo"}`, "interpreter line"},
		{`{"script":"#!/bin/sh","bogus":1}`, "unknown field"},
		{`{"script":"#!/bin/sh","inputs":[{"key":"../x","env":"X"}]}`, "not a file name"},
		{`{"script":"#!/bin/sh","inputs":[{"key":"x"}]}`, "neither env nor path"},
		{`{"script":"#!/bin/sh","inputs":[{"key":"x","path":"rel"}]}`, "not absolute"},
		{`{"script":"#!/bin/sh","outputs":[{"name":"x","path":"rel"}]}`, "absolute path"},
	} {
		_, err := StepSpecFromEnv(func(string) string { return tc.env })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v; want %q", tc.env, err, tc.want)
		}
	}
	p := filepath.Join(t.TempDir(), "termination-log")
	// A long log tail is shortened to fit; the verdict stays.
	if err := WriteStepTermination(p, v1alpha1.StepTermination{ExitCode: 3, LogTail: strings.Repeat("y", 9000)}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got, err := v1alpha1.DecodeStepTermination(b)
	if err != nil || got.ExitCode != 3 || len(b) > v1alpha1.MaxStepTermination || len(got.LogTail) == 0 {
		t.Fatalf("termination %d bytes: %+v %v", len(b), got, err)
	}
}
