package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigErrors(t *testing.T) {
	t.Setenv("SANDBOXMESH_CLUSTER_TOKEN", "")
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("smc_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no token", []string{"--control-plane-url", "http://cp"}, "no cluster token"},
		{"unreadable token file", []string{"--token-file", "/nonexistent/token"}, "token file"},
		{"bad log level", []string{"--log-level", "loud"}, "log-level"},
		{"unknown flag", []string{"--nope"}, "flag provided but not defined"},
		{"bad allowed CIDR", []string{"--allowed-cidrs", "10.96.0.0/12, 10.244.0.0"}, "--allowed-cidrs[1]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
	if got := string(trimSpace([]byte("smc_x \r\n"))); got != "smc_x" {
		t.Fatalf("trimSpace: %q", got)
	}
}
