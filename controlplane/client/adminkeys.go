package client

import (
	"context"
	"net/http"
	"net/url"
)

const adminKeysPath = "/api/v2/admin/apikeys"

// ListAdminKeys lists the admin keys (masked, revoked ones included; admin keys only).
func (c *Client) ListAdminKeys(ctx context.Context) ([]APIKey, error) {
	var out []APIKey
	if err := c.do(ctx, http.MethodGet, adminKeysPath, nil, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateAdminKey creates an admin key (valid for every org); its Key is shown only here.
func (c *Client) CreateAdminKey(ctx context.Context, name string) (*APIKey, error) {
	var out APIKey
	if err := c.do(ctx, http.MethodPost, adminKeysPath, nil, map[string]string{"name": name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeAdminKey revokes an admin key; revoking the last one fails with ErrConflict.
func (c *Client) RevokeAdminKey(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, adminKeysPath+"/"+url.PathEscape(id), nil, nil, nil)
}

// RotateAdminKey replaces an admin key by a new one with the same name and
// revokes it, in one step; the new Key is shown only here.
func (c *Client) RotateAdminKey(ctx context.Context, id string) (*APIKey, error) {
	var out APIKey
	if err := c.do(ctx, http.MethodPost, adminKeysPath+"/"+url.PathEscape(id)+"/rotate", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
