package client

import (
	"context"
	"net/http"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// PreviewPolicy limits which namespaces a cluster's preview endpoints may target.
type PreviewPolicy = apitypes.PreviewPolicy

// GetPreviewPolicy returns the preview policy of a cluster.
func (c *Client) GetPreviewPolicy(ctx context.Context, org, cluster string) (*PreviewPolicy, error) {
	var out PreviewPolicy
	if err := c.do(ctx, http.MethodGet, orgPath(org, "clusters", cluster, "preview-policy"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetPreviewPolicy replaces the preview policy of a cluster.
func (c *Client) SetPreviewPolicy(ctx context.Context, org, cluster string, p PreviewPolicy) (*PreviewPolicy, error) {
	var out PreviewPolicy
	if err := c.do(ctx, http.MethodPut, orgPath(org, "clusters", cluster, "preview-policy"), nil, p, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
