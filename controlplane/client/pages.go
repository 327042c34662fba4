package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// PageSize is the page size the List* methods ask for while they read a
// whole list (the server's maximum page size).
const PageSize = 500

// PageOptions asks for one page of a list.
type PageOptions struct {
	// Limit is the maximum number of items (the server caps it at 500);
	// 0 means PageSize.
	Limit int
	// Continue is the Continue of the previous page; empty for the first page.
	Continue string
}

// Page is one page of a list.
type Page[T any] struct {
	Items []T
	// Continue fetches the next page; empty on the last page.
	Continue string
}

type continueKey struct{}

// listPage reads one page of the list at path (the server's answer is a
// JSON array, the next page's token is in the Sandboxmesh-Continue header).
func listPage[T any](ctx context.Context, c *Client, path string, query url.Values, p PageOptions) (*Page[T], error) {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	limit := p.Limit
	if limit <= 0 {
		limit = PageSize
	}
	q.Set(apitypes.QueryLimit, strconv.Itoa(limit))
	if p.Continue != "" {
		q.Set(apitypes.QueryContinue, p.Continue)
	}
	out := &Page[T]{Items: []T{}}
	next := func(r *http.Request) {
		*r = *r.WithContext(context.WithValue(r.Context(), continueKey{}, &out.Continue))
	}
	if err := c.do(ctx, http.MethodGet, path, q, nil, &out.Items, next); err != nil {
		return nil, err
	}
	return out, nil
}

// listAll reads every page of the list at path.
func listAll[T any](ctx context.Context, c *Client, path string, query url.Values) ([]T, error) {
	out := []T{}
	p := PageOptions{}
	for {
		pg, err := listPage[T](ctx, c, path, query, p)
		if err != nil {
			return nil, err
		}
		out = append(out, pg.Items...)
		if pg.Continue == "" {
			return out, nil
		}
		p.Continue = pg.Continue
	}
}

// ListSandboxes lists all sandboxes, optionally only those with all the
// given labels, reading page after page.
func (c *Client) ListSandboxes(ctx context.Context, org string, labels map[string]string) ([]Sandbox, error) {
	return c.ListTeamSandboxes(ctx, org, "", labels)
}

// ListSandboxesPage reads one page of sandboxes, by name.
func (c *Client) ListSandboxesPage(ctx context.Context, org string, labels map[string]string, p PageOptions) (*Page[Sandbox], error) {
	return c.ListTeamSandboxesPage(ctx, org, "", labels, p)
}

// ListTeamSandboxes lists the sandboxes of a team ("" for every team) that
// have all the labels, reading page after page.
func (c *Client) ListTeamSandboxes(ctx context.Context, org, team string, labels map[string]string) ([]Sandbox, error) {
	return listAll[Sandbox](ctx, c, orgPath(org, "sandboxes"), teamSelector(team, labels))
}

// ListTeamSandboxesPage reads one page of a team's sandboxes ("" for every
// team), by name.
func (c *Client) ListTeamSandboxesPage(ctx context.Context, org, team string, labels map[string]string, p PageOptions) (*Page[Sandbox], error) {
	return listPage[Sandbox](ctx, c, orgPath(org, "sandboxes"), teamSelector(team, labels), p)
}

// ListRouteGroups lists all route groups, reading page after page.
func (c *Client) ListRouteGroups(ctx context.Context, org string) ([]RouteGroup, error) {
	return listAll[RouteGroup](ctx, c, orgPath(org, "routegroups"), nil)
}

// ListRouteGroupsPage reads one page of route groups, by name.
func (c *Client) ListRouteGroupsPage(ctx context.Context, org string, p PageOptions) (*Page[RouteGroup], error) {
	return listPage[RouteGroup](ctx, c, orgPath(org, "routegroups"), nil, p)
}

// ListClusters lists all clusters, reading page after page.
func (c *Client) ListClusters(ctx context.Context, org string) ([]Cluster, error) {
	return listAll[Cluster](ctx, c, orgPath(org, "clusters"), nil)
}

// ListClustersPage reads one page of clusters, by name.
func (c *Client) ListClustersPage(ctx context.Context, org string, p PageOptions) (*Page[Cluster], error) {
	return listPage[Cluster](ctx, c, orgPath(org, "clusters"), nil, p)
}

// ListClusterTokens lists all of a cluster's tokens (masked), oldest first.
func (c *Client) ListClusterTokens(ctx context.Context, org, cluster string) ([]ClusterToken, error) {
	return listAll[ClusterToken](ctx, c, orgPath(org, "clusters", cluster, "tokens"), nil)
}

// ListClusterTokensPage reads one page of a cluster's tokens, oldest first.
func (c *Client) ListClusterTokensPage(ctx context.Context, org, cluster string, p PageOptions) (*Page[ClusterToken], error) {
	return listPage[ClusterToken](ctx, c, orgPath(org, "clusters", cluster, "tokens"), nil, p)
}

// ListAPIKeys lists all of an org's API keys (masked), oldest first.
func (c *Client) ListAPIKeys(ctx context.Context, org string) ([]APIKey, error) {
	return listAll[APIKey](ctx, c, orgPath(org, "apikeys"), nil)
}

// ListAPIKeysPage reads one page of an org's API keys, oldest first.
func (c *Client) ListAPIKeysPage(ctx context.Context, org string, p PageOptions) (*Page[APIKey], error) {
	return listPage[APIKey](ctx, c, orgPath(org, "apikeys"), nil, p)
}
