// Package mcpserver is SandboxMesh's MCP server (`sandboxmesh mcp`): tools with
// which AI agents create and update sandboxes (from a spec, or by forking a
// workload with a new image), wait for them, inspect and delete sandboxes and
// route groups, get preview URLs and send HTTP requests through a sandbox with
// its routing key injected, to validate a change end to end. It talks to the
// control plane through the Go SDK (controlplane/client). Tool errors say what
// the agent can do next.
package mcpserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// Options configure the server.
type Options struct {
	// Client talks to the control plane; required.
	Client *client.Client
	// Org the tools act on; required.
	Org string
	// APIKey authenticates preview requests (the client's key).
	APIKey string
	// PreviewBase is the base URL of the preview proxy's path form (default: the client's base URL).
	PreviewBase string
	// HTTPClient sends requests through the preview proxy (default: 60s timeout).
	HTTPClient *http.Client
	// Version is reported to MCP clients.
	Version string
	// LocalMachine, when set, is called before a sandbox is validated and applied: the CLI fills in
	// spec.localMachineID from this machine for a spec with local workloads or forwards and registers them
	// with its local daemon, as `sandboxmesh sandbox apply` does. The function it returns runs after a
	// successful apply.
	LocalMachine func(ctx context.Context, sb *client.Sandbox) (after func(context.Context) error, err error)
	// WaitInterval is the poll interval while waiting for a sandbox (default 1s).
	WaitInterval time.Duration
	// Logger receives the SDK's logs; nil discards.
	Logger *slog.Logger
}

type server struct {
	o Options
}

// Instructions tell the agent how to use the tools together.
const Instructions = `SandboxMesh runs request-isolated sandboxes on Kubernetes: a sandbox forks
workloads (e.g. with a new image) and receives only requests that carry its
routing key. Typical flow: cluster_list (to pick spec.cluster) -> sandbox_fork
(or sandbox_apply with a full spec) with wait=true -> preview_url or
http_request to validate the change -> sandbox_delete when done.`

// New returns the MCP server with every tool registered.
func New(o Options) *mcp.Server {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 60 * time.Second}
	}
	if o.PreviewBase == "" && o.Client != nil {
		o.PreviewBase = o.Client.BaseURL()
	}
	if o.WaitInterval <= 0 {
		o.WaitInterval = time.Second
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &server{o: o}
	srv := mcp.NewServer(&mcp.Implementation{Name: "sandboxmesh", Title: "SandboxMesh", Version: o.Version},
		&mcp.ServerOptions{Instructions: Instructions, Logger: o.Logger})
	s.register(srv)
	return srv
}

func ptr[T any](v T) *T { return &v }

// agentError turns an SDK error into a message that says what to do next.
func (s *server) agentError(err error, what string) error {
	if err == nil {
		return nil
	}
	var ae *client.APIError
	if errors.As(err, &ae) {
		msg := ae.Message
		for _, f := range ae.Fields {
			msg += fmt.Sprintf("\n- %s: %s", f.Path, f.Message)
		}
		switch {
		case errors.Is(err, client.ErrNotFound) && strings.HasPrefix(ae.Message, "org "):
			return fmt.Errorf("%s: %s. The MCP server is configured for org %q, which its API key cannot access; ask the user to fix the org (sandboxmesh auth login --org ...)", what, msg, s.o.Org)
		case errors.Is(err, client.ErrNotFound):
			return fmt.Errorf("%s: %s. Call sandbox_list (or routegroup_list / cluster_list) to see what exists", what, msg)
		case errors.Is(err, client.ErrInvalid):
			return fmt.Errorf("%s: the control plane rejected the input: %s\nFix the listed fields and call the tool again", what, msg)
		case errors.Is(err, client.ErrUnauthorized):
			return fmt.Errorf("%s: %s. The API key of this MCP server was rejected; ask the user to run `sandboxmesh auth login` and restart the MCP server", what, msg)
		case errors.Is(err, client.ErrQuotaExceeded):
			return fmt.Errorf("%s: %s. Delete a sandbox that is no longer needed (sandbox_list, sandbox_delete) and retry", what, msg)
		case errors.Is(err, client.ErrConflict):
			return fmt.Errorf("%s: %s. Read the object again (sandbox_get) and retry", what, msg)
		}
		return fmt.Errorf("%s: %s (HTTP %d)", what, msg, ae.Status)
	}
	if unreachable(err) {
		return fmt.Errorf("%s: the control plane at %s is unreachable (%v); ask the user to check that it runs and that api_url is right (sandboxmesh auth status)", what, s.o.Client.BaseURL(), err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func unreachable(err error) bool {
	var ne *net.OpError
	var de *net.DNSError
	var ue *url.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &ne) || errors.As(err, &de) || (errors.As(err, &ue) && ue.Timeout())
}

// notify sends a progress notification when the client asked for them.
func notify(ctx context.Context, req *mcp.CallToolRequest, n int, msg string) {
	if req == nil || req.Session == nil || req.Params == nil {
		return
	}
	tok := req.Params.GetProgressToken()
	if tok == nil {
		return
	}
	_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(n), Message: msg})
}
