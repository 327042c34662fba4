//go:build e2e

package e2e_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/internal/cli"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/localtunnel/hostnet"
)

// localWorkloadCLI is the "What users do" block of local workloads, driven through the CLI as a user types
// it (the daemon runs in this process instead of a detached re-exec of the binary): `local connect` over the
// default PortForward connection (a real port-forward through the API server and kubelet; as root: root
// mode), `sandbox apply -f sb-local.yaml --wait` (the CLI fills in this machine's id and
// registers the mapping with the daemon), the process on the host serves the sandbox's keyed requests,
// `curl http://customer.hotrod:8081/…` works from the host unchanged, `local status`, `local disconnect`
// restores /etc/hosts and iptables and the key falls back to the baseline.
func localWorkloadCLI(ctx context.Context, t *testing.T, e *demo.Env, h *hitter) {
	const sandbox = "route-cli"
	laptop := startLaptopRoute(ctx, t, sandbox, "laptop-cli")
	// A short home: the daemon's unix socket path must fit in 108 bytes (t.TempDir's names are long).
	home, err := os.MkdirTemp("", "smcli")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(home)
	cfgDir := filepath.Join(home, ".sandboxmesh")
	if err := os.MkdirAll(cfgDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The default connection type, PortForward: a Kubernetes port-forward (through the API server and the
	// kubelet) to the operator pod's gateway, with the cluster's kubeconfig.
	config := fmt.Sprintf("local:\n  connections:\n    - cluster: %s\n      type: PortForward\n", e.Cluster)
	if err := os.WriteFile(filepath.Join(cfgDir, "config.yaml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{cli.EnvAPIURL: e.ControlPlaneURL, cli.EnvAPIKey: e.APIKey, cli.EnvOrg: e.Org,
		"KUBECONFIG": e.Kubeconfig, "SANDBOXMESH_OPERATOR_NAMESPACE": e.Namespace}
	var daemons []chan error
	var newApp func(stdout, stderr io.Writer) *cli.App
	newApp = func(stdout, stderr io.Writer) *cli.App {
		return &cli.App{Stdin: strings.NewReader(""), Stdout: stdout, Stderr: stderr, Getenv: func(k string) string { return vars[k] }, Home: home,
			SpawnDaemon: func(args []string, logFile string) (<-chan error, error) {
				lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
				if err != nil {
					return nil, err
				}
				ch, done := make(chan error, 1), make(chan error, 1)
				go func() {
					defer lf.Close()
					code := newApp(io.Discard, lf).Execute(context.Background(), args)
					var err error
					if code != 0 {
						err = fmt.Errorf("daemon exit %d", code)
					}
					ch <- err
					done <- err
				}()
				daemons = append(daemons, done)
				return ch, nil
			}}
	}
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := newApp(&out, &errb).Execute(ctx, args); code != 0 {
			t.Fatalf("sandboxmesh %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out.String(), errb.String())
		}
		return out.String()
	}
	hostsBefore, err := os.ReadFile(hostnet.DefaultHostsFile)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	out := run("local", "connect", "--proxy-address", "127.0.0.1:0", "--wait-timeout", "1m")
	defer func() {
		var o, eb bytes.Buffer
		newApp(&o, &eb).Execute(context.Background(), []string{"local", "disconnect"})
		for _, d := range daemons {
			select {
			case <-d:
			case <-time.After(10 * time.Second):
			}
		}
	}()
	if !strings.Contains(out, "machine ID:") {
		t.Fatalf("local connect: %s", out)
	}
	spec := fmt.Sprintf(`name: %s
spec:
  cluster: %s
  local:
    - name: route
      from: {kind: Deployment, namespace: %s, name: route}
      mappings:
        - {port: 8083, toLocal: "%s"}
`, sandbox, e.Cluster, demo.ExampleNamespace, laptop.HTTPAddr())
	file := filepath.Join(home, "sb-local.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	run("sandbox", "apply", "-f", file, "--wait")
	defer func() { _, _, _ = cliRun(context.Background(), e, home, "", "sandbox", "delete", sandbox) }()
	sb, err := e.API.GetSandbox(ctx, e.Org, sandbox)
	if err != nil || sb.Spec.LocalMachineID == "" {
		t.Fatalf("the CLI did not fill in localMachineID: %+v %v", sb, err)
	}
	waitFor(ctx, t, time.Minute, "a keyed request served by the host process", func() error {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+sb.RoutingKey)
		if err != nil {
			return err
		}
		if r := tree.Find("route"); r == nil || r.Version != "laptop-cli" {
			return fmt.Errorf("route served by %+v", r)
		}
		return nil
	})
	record(t, "local_cli_connect_to_first_local_request", time.Since(start))

	var st cli.LocalDaemonStatus
	waitFor(ctx, t, 30*time.Second, "root mode on", func() error {
		if err := json.Unmarshal([]byte(run("local", "status", "-o", "json")), &st); err != nil {
			return err
		}
		if st.Root == nil || !st.Root.Active {
			return fmt.Errorf("root mode: %+v", st.Root)
		}
		return nil
	})
	if len(st.Sandboxes) != 1 || st.Sandboxes[0].Name != sandbox || st.Phase != "Connected" {
		t.Errorf("local status: %+v", st)
	}
	// From this machine, a cluster name as is (the hosts file names it; the redirect carries it).
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	waitFor(ctx, t, 30*time.Second, "http://customer.hotrod:8081 from the host", func() error {
		resp, err := c.Get("http://customer." + demo.ExampleNamespace + ":8081/customer?id=392")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})

	localOverrideCLI(ctx, t, e, h, run, home)

	run("local", "disconnect")
	if after, _ := os.ReadFile(hostnet.DefaultHostsFile); string(after) != string(hostsBefore) {
		t.Errorf("/etc/hosts not restored by disconnect:\nbefore %q\nafter  %q", hostsBefore, after)
	}
	if out, err := exec.Command("iptables-save", "-t", "nat").Output(); err != nil || strings.Contains(string(out), hostnet.DefaultChain) {
		t.Errorf("the nat table after disconnect (%v):\n%s", err, out)
	}
	waitFor(ctx, t, 30*time.Second, "keyed requests back on the baseline", func() error {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+sb.RoutingKey)
		if err != nil {
			return err
		}
		if got := servedBy(tree)["route"]; got != "" {
			return fmt.Errorf("route served by %q", got)
		}
		return nil
	})
}

// localOverrideCLI: `local override` on a sandbox whose route is virtual: with --except-status 404,503 the
// host process's answers are used (keyed requests show its version); once the process stops, keyed requests
// fall through to the baseline route, without an error; `override delete` removes it. The connected daemon
// of localWorkloadCLI carries it.
func localOverrideCLI(ctx context.Context, t *testing.T, e *demo.Env, h *hitter, run func(...string) string, home string) {
	const sandbox = "route-ovr"
	laptop := startLaptopRoute(ctx, t, sandbox, "laptop-ovr")
	spec := fmt.Sprintf("name: %s\nspec:\n  cluster: %s\n  virtual:\n    - name: route\n      workload: {kind: Deployment, namespace: %s, name: route}\n",
		sandbox, e.Cluster, demo.ExampleNamespace)
	file := filepath.Join(home, "sb-ovr.yaml")
	if err := os.WriteFile(file, []byte(spec), 0o600); err != nil {
		t.Fatal(err)
	}
	run("sandbox", "apply", "-f", file, "--wait")
	defer func() { _, _, _ = cliRun(context.Background(), e, home, "", "sandbox", "delete", sandbox) }()
	start := time.Now()
	out := run("local", "override", "--sandbox", sandbox, "-w", "route", "-p", "8083", "--with", laptop.HTTPAddr(), "--except-status", "404,503", "--detach", "--wait-timeout", "1m")
	if !strings.Contains(out, "override override-1 of sandbox "+sandbox+" is active") {
		t.Fatalf("local override: %s", out)
	}
	sb, err := e.API.GetSandbox(ctx, e.Org, sandbox)
	if err != nil {
		t.Fatal(err)
	}
	keyed := func(want string) func() error {
		return func() error {
			tree, err := h.get(ctx, "baggage", "sm-routing-key="+sb.RoutingKey)
			if err != nil {
				return err
			}
			if got := servedBy(tree)["route"]; got != want {
				return fmt.Errorf("route served by %q, want %q", got, want)
			}
			return nil
		}
	}
	waitFor(ctx, t, time.Minute, "a keyed request answered by the overriding host process", keyed(sandbox))
	record(t, "local_override_to_first_overridden_request", time.Since(start))
	if out := run("local", "override", "list", "--sandbox", sandbox); !strings.Contains(out, "override-1") || !strings.Contains(out, "true") {
		t.Errorf("override list:\n%s", out)
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_ = laptop.Shutdown(sctx)
	cancel()
	stopped := time.Now()
	waitFor(ctx, t, 30*time.Second, "keyed requests falling through to the baseline once the process stopped", keyed(""))
	record(t, "local_override_fall_through_after_stop", time.Since(stopped))
	run("local", "override", "delete", "override-1", "--sandbox", sandbox)
	if sb, err := e.API.GetSandbox(ctx, e.Org, sandbox); err != nil || len(sb.Spec.Middleware) != 0 || sb.Spec.Routing != nil {
		t.Errorf("after override delete: %+v %v", sb, err)
	}
}
