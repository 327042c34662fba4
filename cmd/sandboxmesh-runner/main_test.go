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
