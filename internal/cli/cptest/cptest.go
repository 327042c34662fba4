// Package cptest starts a real SandboxMesh control plane in-process for the
// tests of the CLI and the MCP server: the API server of controlplane/api on a
// fresh SQLite store behind an httptest.Server, with an org, a cluster, an org
// API key and a cluster token. It reports status through the agent API with the
// cluster token, as an agent does, and can hold a real preview tunnel whose agent
// side dials a local backend instead of the in-cluster address.
package cptest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
	"github.com/sandboxmesh/sandboxmesh/controlplane/runner"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/controlplane/tunnel"
	"github.com/sandboxmesh/sandboxmesh/smarttest/executor"
)

// Names of the objects every Env has.
const (
	Org     = "acme"
	Cluster = "c1"
)

// Env is a running control plane.
type Env struct {
	t testing.TB
	// Server is the API server.
	Server *api.Server
	// HTTP serves it.
	HTTP *httptest.Server
	// URL is the control plane's base URL.
	URL string
	// AdminKey is the bootstrap admin key.
	AdminKey string
	// Key is an API key of Org.
	Key string
	// ClusterToken is a token of Org/Cluster.
	ClusterToken string
	// Client uses Key.
	Client *client.Client
}

// Start starts a control plane that stops at the end of the test. Routing keys
// are deterministic (rk-<n>), so outputs can be compared with golden files.
func Start(t testing.TB) *Env {
	t.Helper()
	ctx := context.Background()
	st := storetest.Open(t, store.DriverSQLite)
	arts, err := artifacts.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	srv, err := api.New(ctx, api.Config{
		Store: st, PreviewURL: "http://preview.localhost", LongPollTimeout: 2 * time.Second, PollInterval: 50 * time.Millisecond,
		Jobs: jobs.Config{Artifacts: arts, SweepInterval: 100 * time.Millisecond, ClaimPoll: 100 * time.Millisecond, LogPoll: 50 * time.Millisecond},
		NewRoutingKey: func() string {
			mu.Lock()
			defer mu.Unlock()
			n++
			return fmt.Sprintf("rk%04d", n)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	adminKey, _, err := api.Bootstrap(ctx, st, "", "")
	if err != nil {
		t.Fatalf("bootstrap: %v", err)
	}
	admin, err := client.New(hs.URL, adminKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateOrg(ctx, Org, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RegisterCluster(ctx, Org, Cluster); err != nil {
		t.Fatal(err)
	}
	k, err := admin.CreateAPIKey(ctx, Org, "test")
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(hs.URL, k.Key)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.CreateClusterToken(ctx, Org, Cluster)
	if err != nil {
		t.Fatal(err)
	}
	return &Env{t: t, Server: srv, HTTP: hs, URL: hs.URL, AdminKey: adminKey, Key: k.Key, ClusterToken: tok.Token, Client: c}
}

// StartRunner runs a real job runner (controlplane/runner) of the runner
// group name, with the token the agent gets, until the test ends.
func (e *Env) StartRunner(name string) {
	t := e.t
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	token := e.RunnerToken(name)
	r, err := runner.New(runner.Config{ControlPlaneURL: e.URL, Org: Org, RunnerGroup: name, Token: token, Pod: name + "-0", Namespace: "sandboxmesh-jobs",
		WorkRoot: t.TempDir(), Log: slog.New(slog.DiscardHandler), ClaimWait: 500 * time.Millisecond, FlushInterval: 50 * time.Millisecond,
		HeartbeatInterval: 200 * time.Millisecond, KillGrace: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// RunnerToken is the runner token of the runner group name, as the agent
// gets it.
func (e *Env) RunnerToken(name string) string {
	t := e.t
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.URL+"/api/v2/agent/state?wait=0s", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(apitypes.HeaderClusterToken, e.ClusterToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var state apitypes.AgentState
	err = json.NewDecoder(resp.Body).Decode(&state)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	token := ""
	for _, o := range state.Objects {
		if o.Kind == "runnergroup" && o.Org == Org && o.Name == name {
			token = o.RunnerToken
		}
	}
	if token == "" {
		t.Fatalf("runner group %s is not in the agent's state", name)
	}
	return token
}

// StartSmartTestRunner plays a runner pod of the runner group name that
// runs smart-test jobs with the real executor in process, as
// `sandboxmesh-runner smarttest` does: it claims each job, reads its
// environment with executor.ConfigFromEnv, runs executor.Execute with every
// request sent to cluster (a loopback "cluster": host names are ignored),
// uploads the report and finishes the job, until the test ends.
func (e *Env) StartSmartTestRunner(name string, cluster http.Handler) {
	t := e.t
	t.Helper()
	hs := httptest.NewServer(cluster)
	t.Cleanup(hs.Close)
	rc, err := client.NewRunnerClient(e.URL, Org, name, e.RunnerToken(name), "sandboxmesh-jobs", name+"-0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			rj, err := rc.Claim(ctx, 500*time.Millisecond)
			if err != nil || rj == nil {
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
				continue
			}
			code := 0
			if err := runSmartTestJob(ctx, rc, rj, hs.Listener.Addr().String()); err != nil {
				code = 1
			}
			_, _ = rc.Finish(ctx, rj.Name, rj.Attempt, apitypes.RunnerFinish{ExitCode: code})
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func runSmartTestJob(ctx context.Context, rc *client.RunnerClient, rj *apitypes.RunnerJob, addr string) error {
	env := map[string]string{}
	for _, v := range rj.Env {
		env[v.Name] = v.Value
	}
	cfg, err := executor.ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		return err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	cfg.Transport = tr
	rep, err := executor.Execute(ctx, cfg)
	if err != nil {
		return err
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return err
	}
	if _, err := rc.UploadArtifact(ctx, rj.Name, rj.Attempt, executor.ReportFile, "application/json", bytes.NewReader(body), int64(len(body))); err != nil {
		return err
	}
	if rep.HasErrors() {
		return errors.New("a run of the script failed")
	}
	return nil
}

// ReportStatus reports the status of a sandbox at its current version through
// POST /api/v2/agent/status with the cluster token, as the cluster's agent does.
func (e *Env) ReportStatus(ctx context.Context, name string, st apitypes.ObservedStatus) error {
	sb, err := e.Client.GetSandbox(ctx, Org, name)
	if err != nil {
		return err
	}
	return e.Report(ctx, apitypes.AgentStatusItem{Kind: "sandbox", Org: Org, Name: name, Version: sb.Version, Status: st})
}

// ReportWorkloads reports the cluster's workloads through PUT
// /api/v2/agent/workloads with the cluster token, as the agent does.
func (e *Env) ReportWorkloads(ctx context.Context, ws ...apitypes.Workload) error {
	b, err := json.Marshal(apitypes.WorkloadReport{Workloads: ws})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, e.URL+"/api/v2/agent/workloads", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set(apitypes.HeaderClusterToken, e.ClusterToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("report workloads: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("report workloads: %s: %s", resp.Status, body)
	}
	return nil
}

// Report posts status items through the agent API.
func (e *Env) Report(ctx context.Context, items ...apitypes.AgentStatusItem) error {
	b, err := json.Marshal(apitypes.AgentStatusReport{OperatorVersion: "v0.0.0-test", Items: items})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL+"/api/v2/agent/status", bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set(apitypes.HeaderClusterToken, e.ClusterToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("report status: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("report status: %d %s", resp.StatusCode, body)
	}
	return nil
}

// Backend is a real HTTP server standing in for an in-cluster service; it
// answers "backend <method> <request URI>" and records the requests it got.
type Backend struct {
	mu   sync.Mutex
	reqs []*http.Request
	// Server is the HTTP server.
	Server *httptest.Server
}

// NewBackend starts a Backend.
func NewBackend(t testing.TB) *Backend {
	b := &Backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.reqs = append(b.reqs, r.Clone(context.Background()))
		b.mu.Unlock()
		w.Header().Set("X-Backend", "yes")
		w.Header().Set("Content-Type", "text/plain")
		if r.URL.Path == "/teapot" {
			w.WriteHeader(http.StatusTeapot)
		}
		fmt.Fprintf(w, "backend %s %s", r.Method, r.URL.RequestURI())
		if len(body) > 0 {
			fmt.Fprintf(w, " body=%s", body)
		}
	}))
	t.Cleanup(b.Server.Close)
	return b
}

// Last returns the last request the backend got, or nil.
func (b *Backend) Last() *http.Request {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.reqs) == 0 {
		return nil
	}
	return b.reqs[len(b.reqs)-1]
}

// ConnectAgent holds a real preview tunnel (WebSocket + yamux, the agent side
// of controlplane/tunnel) for Org/Cluster. The agent side admits only the given
// in-cluster addresses and dials the backend instead of them.
func (e *Env) ConnectAgent(t testing.TB, b *Backend, allowed ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	u := "ws" + strings.TrimPrefix(e.URL, "http") + "/api/v2/agent/tunnel"
	h := http.Header{}
	h.Set(apitypes.HeaderClusterToken, e.ClusterToken)
	ws, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		t.Fatal(err)
	}
	conn := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	allow := func(d apitypes.TunnelDial) (string, error) {
		for _, a := range allowed {
			if d.Address == a && d.Org == Org {
				return a, nil
			}
		}
		return "", errors.New("not declared")
	}
	addr := b.Server.Listener.Addr().String()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	go tunnel.ServeAgent(ctx, conn, allow, dial, nil)
	deadline := time.Now().Add(10 * time.Second)
	for !e.Server.Hub().Connected(Org, Cluster) {
		if time.Now().After(deadline) {
			t.Fatal("tunnel did not connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
