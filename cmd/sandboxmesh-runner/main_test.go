package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunArgs(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{name: "none", wantErr: "no subcommand"},
		{name: "unknown", args: []string{"serve"}, wantErr: `unknown subcommand "serve"`},
		{name: "install without folder", args: []string{"install"}, wantErr: "install takes one folder"},
		{name: "run with env missing", args: []string{"run"}, wantErr: "missing environment variable(s) SANDBOXMESH_CONTROL_PLANE_URL"},
		{name: "bad log level", args: []string{"run"}, wantErr: "SANDBOXMESH_LOG_LEVEL"},
		{name: "install", args: []string{"install", dir}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if tc.name == "bad log level" && k == "SANDBOXMESH_LOG_LEVEL" {
					return "loud"
				}
				return ""
			}
			var out, errb bytes.Buffer
			err := run(context.Background(), tc.args, &out, &errb, getenv)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want %q", err, tc.wantErr)
			}
		})
	}
	if st, err := os.Stat(filepath.Join(dir, "sandboxmesh-runner")); err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v %v", st, err)
	}
}

func TestStepCommand(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "termination-log")
	env := map[string]string{
		"SANDBOXMESH_STEP":            `{"script":"#!/bin/sh\necho made > ` + dir + `/out\nexit ${CODE:-0}\n","outputs":[{"name":"what","path":"` + dir + `/out"}]}`,
		"SANDBOXMESH_TERMINATION_LOG": log,
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"step"}, &stdout, &stderr, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("step: %v\n%s", err, stderr.String())
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), `"outputs":{"what":"made"}`) || !strings.Contains(string(b), `"exitCode":0`) {
		t.Fatalf("termination log %s", b)
	}
	t.Setenv("CODE", "5")
	err := run(context.Background(), []string{"step"}, &stdout, &stderr, func(k string) string { return env[k] })
	if code, ok := err.(exitError); !ok || code != 5 {
		t.Fatalf("failing step: %v; want exit code 5", err)
	}
	if err := run(context.Background(), []string{"step"}, &stdout, &stderr, func(string) string { return "" }); err == nil || !strings.Contains(err.Error(), "SANDBOXMESH_STEP is not set") {
		t.Fatalf("no step: %v", err)
	}
}
