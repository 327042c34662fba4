package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sandboxmesh/sandboxmesh/routingkey"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
)

// TestSmartTestCommand: `sandboxmesh-runner smarttest` runs the script from its environment three times,
// writes the report (0600) into the working folder, prints a summary, and exits 0, 1 (script error) or 2
// (bad configuration).
func TestSmartTestCommand(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key, _ := routingkey.Default.Extract(r.Header)
		fmt.Fprintf(w, `{"key":%q}`, key)
	}))
	defer srv.Close()
	dir := t.TempDir()
	t.Chdir(dir)
	src := fmt.Sprintf(`
res = http.get(%q, capture=True, name="who")
smart_test.check("no key", json.decode(res.body())["key"] == "", "the request carried key {}".format(json.decode(res.body())["key"]))
`, srv.URL)
	env := map[string]string{
		executor.EnvScript:     src,
		executor.EnvExecution:  "exec-42",
		executor.EnvRoutingKey: "rk1",
		executor.EnvFilename:   "who.star",
		executor.EnvTimeout:    "30s",
		executor.EnvJobName:    "st-job",
		executor.EnvNamespace:  "sm",
	}
	runCmd := func() (int, string, string) {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{"smarttest"}, &out, &errb, func(k string) string { return env[k] })
		code := 0
		var ee exitError
		if errors.As(err, &ee) {
			code = int(ee)
		} else if err != nil {
			t.Fatalf("error without an exit code: %v", err)
		}
		return code, out.String(), errb.String()
	}

	code, out, stderr := runCmd()
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	for _, want := range []string{"RUN", "target       1        0        1        1          Completed",
		"baseline-a   1        1        0        1          Completed",
		`target: check "no key" failed at who.star:3:17: the request carried key rk1`, "report written to smarttest-report.json"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	path := filepath.Join(dir, executor.ReportFile)
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("report file: %v %v", st, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep executor.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Execution != "exec-42" || rep.RoutingKey != "rk1" || len(rep.Runs) != 3 ||
		rep.Runs[0].Captures[0].ID != "exec-42.target.0" || rep.Runs[0].Captures[0].Point.Name != "st-job" ||
		rep.Runs[0].Captures[0].Point.Namespace != "sm" || string(rep.Runs[1].Captures[0].Response.Body) != `{"key":""}` {
		t.Fatalf("report %s", b)
	}

	// A runtime error in the script: the report is still written, exit 1.
	env[executor.EnvScript] = "x = 1\nfail(\"broken\")\n"
	code, out, _ = runCmd()
	if code != 1 || !strings.Contains(out, "target: error: who.star:2:5: fail: broken") {
		t.Errorf("exit %d, stdout:\n%s", code, out)
	}

	// Bad configuration: exit 2, no report touched.
	for name, mod := range map[string]func(){
		"missing": func() { delete(env, executor.EnvExecution) },
		"large":   func() { env[executor.EnvScript] = strings.Repeat("#", executor.MaxScriptBytes+1) },
		"timeout": func() { env[executor.EnvTimeout] = "soon" },
		"key":     func() { env[executor.EnvRoutingKey] = "Bad Key" },
		"exec id": func() { env[executor.EnvExecution] = "a/b" },
	} {
		saved := map[string]string{}
		for k, v := range env {
			saved[k] = v
		}
		mod()
		code, _, stderr := runCmd()
		if code != 2 || !strings.Contains(stderr, "invalid smart-test execution configuration") || !strings.Contains(stderr, ": SANDBOXMESH_") && !strings.Contains(stderr, "(s) SANDBOXMESH_") {
			t.Errorf("%s: exit %d, stderr %q", name, code, stderr)
		}
		env = saved
	}
}
