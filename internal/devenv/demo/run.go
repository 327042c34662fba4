package demo

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"path/filepath"
	"time"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
)

// SandboxSpec is the first sandbox of the demo: the route service forked with
// the hotrod:v2 image.
const SandboxSpec = "examples/specs/cli/sandbox-route-image.yaml"

// ApplySandbox PUTs the control-plane form spec file (relative to RepoDir)
// into cluster e.Cluster and waits until it is ready, printing what blocks it.
func (e *Env) ApplySandbox(ctx context.Context, file string, timeout time.Duration) (*cpclient.Sandbox, time.Duration, error) {
	sb, err := ReadSandbox(filepath.Join(e.RepoDir, file))
	if err != nil {
		return nil, 0, err
	}
	sb.Spec.Cluster = e.Cluster
	start := time.Now()
	if _, err := e.API.ApplySandbox(ctx, e.Org, sb); err != nil {
		return nil, 0, fmt.Errorf("PUT sandbox %s: %w", sb.Name, err)
	}
	e.Step("sandbox %s created over REST; waiting until ready", sb.Name)
	got, err := e.WaitReady(ctx, sb.Name, timeout)
	return got, time.Since(start), err
}

// WaitReady waits until the sandbox is ready, printing changes of what blocks it.
func (e *Env) WaitReady(ctx context.Context, name string, timeout time.Duration) (*cpclient.Sandbox, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	got, err := e.API.WaitForReady(wctx, e.Org, name, &cpclient.WaitOptions{Interval: 100 * time.Millisecond, Progress: func(sb *cpclient.Sandbox) {
		msg := sb.Status.Reason + ": " + sb.Status.Message
		if sb.Status.Ready {
			msg = "ready"
		}
		if msg != last {
			e.Step("sandbox %s: %s", name, msg)
			last = msg
		}
	}})
	if err != nil {
		return got, fmt.Errorf("sandbox %s not ready: %w", name, err)
	}
	return got, nil
}

// PortalInvitation invites email to the demo's org with role (with the
// bootstrap key) and returns the portal link that joins it: it works once,
// for 7 days, and is shown nowhere else.
func (e *Env) PortalInvitation(ctx context.Context, email, role string) (string, error) {
	inv, err := e.API.CreateInvitation(ctx, e.Org, email, role)
	if err != nil {
		return "", fmt.Errorf("invite %s to org %s: %w", email, e.Org, err)
	}
	if inv.Token == "" {
		return "", fmt.Errorf("invite %s to org %s: the answer has no token", email, e.Org)
	}
	return e.ControlPlaneURL + "/invite?token=" + url.QueryEscape(inv.Token), nil
}

// PrintTryIt writes what a user can try against the demo; portalLink is the
// invitation that opens the portal ("" when it could not be made).
func (e *Env) PrintTryIt(w io.Writer, sb *cpclient.Sandbox, frontendIP, portalLink string) {
	previewURL := e.ControlPlaneURL + "/preview/" + e.Org + "/" + sb.Name + "/frontend"
	for _, ep := range sb.Endpoints {
		if ep.Name == "frontend" {
			previewURL = ep.URL
		}
	}
	fmt.Fprintf(w, `
SandboxMesh is running. Sandbox %[1]q forks hotrod's route service with a new image (hotrod:v2);
its routing key is %[2]s.

  # baseline everywhere (no routing key):
  curl -s 'http://%[3]s:8080/dispatch?customer=392' | jq -c '.. | objects | select(has("service")) | {service, version, build, sandbox}'

  # the same request with the sandbox's routing key: route answers from the fork (build v2, sandbox %[1]s)
  curl -s -H 'baggage: sm-routing-key=%[2]s' 'http://%[3]s:8080/dispatch?customer=392' | jq -c '.. | objects | select(has("service")) | {service, version, build, sandbox}'

  # through the sandbox's preview URL, as the API returns it in endpoints[].url (the key is added for you):
  curl -s -H 'sandboxmesh-api-key: %[4]s' '%[8]s/dispatch?customer=392'

  # the asynchronous hop: frontend publishes a dispatch event on the broker (NATS), worker consumes it;
  # fork worker in a sandbox and only its key's events reach the fork (docs/message-queues.md):
  curl -s 'http://%[3]s:8080/dispatch?customer=392&event=e1' >/dev/null
  curl -s "http://$(kubectl -n hotrod get svc worker -o jsonpath='{.spec.clusterIP}'):8084/events?event=e1"  # KUBECONFIG below

  # the CLI (or 'sandboxmesh mcp' for AI agents):
  export SANDBOXMESH_API_URL=%[5]s SANDBOXMESH_API_KEY=%[4]s SANDBOXMESH_ORG=%[6]s
  go run ./cmd/sandboxmesh sandbox list
  go run ./cmd/sandboxmesh sandbox apply -f examples/specs/cli/sandbox-customer-env.yaml --wait
  go run ./cmd/sandboxmesh routegroup apply -f examples/specs/cli/routegroup-dispatch-v2.yaml

  export KUBECONFIG=%[7]s
  kubectl get sandboxes -A    # if you have kubectl
%[9]s
Press Ctrl-C to stop and tear everything down.
`, sb.Name, sb.RoutingKey, frontendIP, e.APIKey, e.ControlPlaneURL, e.Org, e.Kubeconfig, previewURL, portalText(portalLink, e.ControlPlaneURL))
}

// portalText is the demo's portal paragraph: the invitation link, or how to
// make one when there is none.
func portalText(link, base string) string {
	if link == "" {
		return fmt.Sprintf(`
  # the portal (web UI) is at %s/ ; invite yourself with the API key above:
  #   curl -s -H 'sandboxmesh-api-key: KEY' -X POST %s/api/v2/orgs/ORG/invitations -d '{"email":"you@example.com","role":"owner"}'
`, base, base)
	}
	return fmt.Sprintf(`
  # the portal (web UI): open this link once, choose a password, and you are the org's owner
  # (sandboxes with live status, create one from a workload, teams, usage, audit):
  %s
`, link)
}
