package client

import (
	"context"
	"net/http"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// ResourcePlugin is an org-wide resource plugin.
type ResourcePlugin = apitypes.ResourcePlugin

// ApplyResourcePlugin creates a resource plugin (the name comes from
// rp.Name). Applying the spec of an existing plugin again changes nothing;
// another spec is refused with 409 (a plugin cannot be changed).
func (c *Client) ApplyResourcePlugin(ctx context.Context, org string, rp *ResourcePlugin, opts ...RequestOption) (*ResourcePlugin, error) {
	var out ResourcePlugin
	if err := c.do(ctx, http.MethodPut, orgPath(org, "resource-plugins", rp.Name), nil, rp, &out, opts...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetResourcePlugin returns a resource plugin with the sandboxes using it.
func (c *Client) GetResourcePlugin(ctx context.Context, org, name string) (*ResourcePlugin, error) {
	var out ResourcePlugin
	if err := c.do(ctx, http.MethodGet, orgPath(org, "resource-plugins", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListResourcePlugins returns every resource plugin of an org.
func (c *Client) ListResourcePlugins(ctx context.Context, org string) ([]ResourcePlugin, error) {
	return listAll[ResourcePlugin](ctx, c, orgPath(org, "resource-plugins"), nil)
}

// DeleteResourcePlugin deletes a resource plugin; while sandboxes use it the
// answer is 409 with reason InUse, naming them.
func (c *Client) DeleteResourcePlugin(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "resource-plugins", name), nil, nil, nil)
}

// ListResourcePluginsPage reads one page of resource plugins, by name.
func (c *Client) ListResourcePluginsPage(ctx context.Context, org string, p PageOptions) (*Page[ResourcePlugin], error) {
	return listPage[ResourcePlugin](ctx, c, orgPath(org, "resource-plugins"), nil, p)
}
