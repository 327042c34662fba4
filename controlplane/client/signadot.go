package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

type (
	// OrgList lists the orgs an API key may use.
	OrgList = apitypes.OrgList
	// SandboxExplanation says why a sandbox is (not) ready.
	SandboxExplanation = apitypes.SandboxExplanation
	// DevMeshAnalysis says which workloads of a cluster run the devmesh sidecar.
	DevMeshAnalysis = apitypes.DevMeshAnalysis
)

// ListOrgs returns the orgs the client's API key may use: its own org, or
// every org for an admin key.
func (c *Client) ListOrgs(ctx context.Context) (*OrgList, error) {
	var out OrgList
	if err := c.do(ctx, http.MethodGet, "/api/v2/orgs", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ExplainSandbox says, in words, why a sandbox is or is not ready.
func (c *Client) ExplainSandbox(ctx context.Context, org, name string) (*SandboxExplanation, error) {
	var out SandboxExplanation
	if err := c.do(ctx, http.MethodGet, orgPath(org, "sandboxes", name, "status", "explain"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// AnalyzeDevmesh reports which workloads of a cluster run the devmesh
// sidecar (status "ok" or "missing"; empty: both) in namespace (empty: all),
// from the agent's last workload report.
func (c *Client) AnalyzeDevmesh(ctx context.Context, org, cluster, namespace, status string) (*DevMeshAnalysis, error) {
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if status != "" {
		q.Set("status", status)
	}
	var out DevMeshAnalysis
	if err := c.do(ctx, http.MethodGet, orgPath(org, "clusters", cluster, "devmesh", "analyze"), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
