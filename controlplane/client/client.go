// Package client is the Go SDK of the SandboxMesh control plane: a typed client
// for the /api/v2 REST API (sandboxes, route groups, clusters and tokens, API
// keys, orgs and quotas, job runner groups, jobs with their log streams and
// artifacts, smart tests with their executions and traffic diffs; RunnerClient is the runner side of the job protocol) with context support, typed errors (*APIError, matched
// with errors.As or with the Err* sentinels via errors.Is) and WaitForReady.
// The CLI and the MCP server use it. Its wire types are those of
// controlplane/apitypes, which the server uses as well.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// Re-exported wire types, so SDK users need one import.
type (
	// Sandbox is a sandbox.
	Sandbox = apitypes.Sandbox
	// RouteGroup is a route group.
	RouteGroup = apitypes.RouteGroup
	// Cluster is a registered cluster.
	Cluster = apitypes.Cluster
	// ClusterToken is a cluster token.
	ClusterToken = apitypes.ClusterToken
	// APIKey is an API key.
	APIKey = apitypes.APIKey
	// Org is an org.
	Org = apitypes.Org
	// Quota is an org's quota.
	Quota = apitypes.Quota
	// FieldError is an invalid field.
	FieldError = apitypes.FieldError
	// PreviewLink is a browser login link.
	PreviewLink = apitypes.PreviewLink
	// Workload is a forkable workload of a cluster.
	Workload = apitypes.Workload
	// WorkloadList is a cluster's reported workloads.
	WorkloadList = apitypes.WorkloadList
	// AuthInfo says who the caller is (GetMe).
	AuthInfo = apitypes.AuthInfo
	// Member is a user's role in an org.
	Member = apitypes.Member
	// Team is a team of an org.
	Team = apitypes.Team
	// Usage is an org's sandbox usage in a month, per team.
	Usage = apitypes.Usage
	// TeamUsage is a team's usage in a month.
	TeamUsage = apitypes.TeamUsage
	// Invitation is an invitation into an org.
	Invitation = apitypes.Invitation
	// ServiceAccount owns API keys that belong to no person.
	ServiceAccount = apitypes.ServiceAccount
	// AuditEvent is an entry of an org's audit trail.
	AuditEvent = apitypes.AuditEvent
)

// Sentinel errors matched by *APIError's Is method.
var (
	// ErrNotFound matches 404 answers.
	ErrNotFound = errors.New("not found")
	// ErrUnauthorized matches 401 answers.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden matches 403 answers.
	ErrForbidden = errors.New("forbidden")
	// ErrConflict matches 409 answers.
	ErrConflict = errors.New("conflict")
	// ErrQuotaExceeded matches 429 answers with reason QuotaExceeded.
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrInvalid matches 400 answers.
	ErrInvalid = errors.New("invalid request")
	// ErrRateLimited matches 429 answers with reason RateLimited (too many
	// login attempts; APIError.RetryAfter says when to retry).
	ErrRateLimited = errors.New("rate limited")
)

// APIError is an error answer of the API.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Code is the code of the error body (the HTTP status for this server).
	Code int
	// Reason is machine-readable, e.g. ValidationFailed.
	Reason    string
	Message   string
	RequestID string
	Fields    []FieldError
	// Method and URL of the request.
	Method, URL string
}

// Error formats the error with its fields and request ID.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d", e.Method, e.URL, e.Status)
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.RequestID != "" {
		b.WriteString(" (request " + e.RequestID + ")")
	}
	return b.String()
}

// Is matches the sentinel errors by status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrQuotaExceeded:
		return (e.Status == http.StatusTooManyRequests && e.Reason != apitypes.ReasonRateLimited) || e.Reason == apitypes.ReasonQuotaExceeded
	case ErrRateLimited:
		return e.Reason == apitypes.ReasonRateLimited
	case ErrInvalid:
		return e.Status == http.StatusBadRequest
	}
	return false
}

// Client talks to one control plane with one API key.
type Client struct {
	base   *url.URL
	key    string
	http   *http.Client
	header http.Header
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client with a 60s timeout).
func WithHTTPClient(h *http.Client) Option { return func(c *Client) { c.http = h } }

// WithHeader adds a header to every request.
func WithHeader(k, v string) Option { return func(c *Client) { c.header.Add(k, v) } }

// New returns a client for baseURL (e.g. "http://localhost:8080") authenticating with apiKey.
func New(baseURL, apiKey string, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port]", baseURL)
	}
	c := &Client{base: u, key: apiKey, http: &http.Client{Timeout: 60 * time.Second}, header: http.Header{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// BaseURL returns the control plane's base URL.
func (c *Client) BaseURL() string { return c.base.String() }

// RequestOption changes one request.
type RequestOption func(*http.Request)

// IfMatch makes an apply conditional on the object's current version.
func IfMatch(version int64) RequestOption {
	return func(r *http.Request) { r.Header.Set("If-Match", strconv.Quote(strconv.FormatInt(version, 10))) }
}

// IfNoneMatch makes an apply fail with ErrConflict if the object exists.
func IfNoneMatch() RequestOption {
	return func(r *http.Request) { r.Header.Set("If-None-Match", "*") }
}

type createdKey struct{}

// Created makes an apply (ApplySandbox, ApplyRouteGroup) report in *created
// whether it created the object rather than updating it.
func Created(created *bool) RequestOption {
	return func(r *http.Request) { *r = *r.WithContext(context.WithValue(r.Context(), createdKey{}, created)) }
}

func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any, opts ...RequestOption) error {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, vs := range c.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set(apitypes.HeaderAPIKey, c.key)
	for _, o := range opts {
		o(req)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	defer resp.Body.Close()
	if p, ok := req.Context().Value(createdKey{}).(*bool); ok {
		*p = resp.StatusCode < 300 && resp.Header.Get(apitypes.HeaderCreated) == "true"
	}
	if p, ok := req.Context().Value(continueKey{}).(*string); ok {
		*p = resp.Header.Get(apitypes.HeaderContinue)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return apiError(resp, data, method, u.Redacted())
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

// apiError makes the *APIError of an error answer with body data.
func apiError(resp *http.Response, data []byte, method, url string) *APIError {
	ae := &APIError{Status: resp.StatusCode, Method: method, URL: url, RequestID: resp.Header.Get(apitypes.HeaderRequestID)}
	var er apitypes.ErrorResponse
	if json.Unmarshal(data, &er) == nil && er.Error != "" {
		ae.Code, ae.Reason, ae.Message, ae.Fields = er.Code, er.Reason, er.Error, er.Fields
		if er.RequestID != "" {
			ae.RequestID = er.RequestID
		}
	} else {
		ae.Code, ae.Message = resp.StatusCode, strings.TrimSpace(string(data))
	}
	return ae
}

func orgPath(org string, parts ...string) string {
	p := "/api/v2/orgs/" + url.PathEscape(org)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// ---- sandboxes ----

// ApplySandbox creates or updates a sandbox (the name comes from sb.Name).
func (c *Client) ApplySandbox(ctx context.Context, org string, sb *Sandbox, opts ...RequestOption) (*Sandbox, error) {
	var out Sandbox
	if err := c.do(ctx, http.MethodPut, orgPath(org, "sandboxes", sb.Name), nil, sb, &out, opts...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetSandbox returns a sandbox.
func (c *Client) GetSandbox(ctx context.Context, org, name string) (*Sandbox, error) {
	var out Sandbox
	if err := c.do(ctx, http.MethodGet, orgPath(org, "sandboxes", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// teamSelector is the query of a list of sandboxes: labelSelector=k=v,... and
// team=NAME, each when set.
func teamSelector(team string, labels map[string]string) url.Values {
	q := url.Values{}
	if len(labels) > 0 {
		parts := make([]string, 0, len(labels))
		for k, v := range labels {
			parts = append(parts, k+"="+v)
		}
		sort.Strings(parts)
		q.Set("labelSelector", strings.Join(parts, ","))
	}
	if team != "" {
		q.Set("team", team)
	}
	return q
}

// DeleteSandbox deletes a sandbox.
func (c *Client) DeleteSandbox(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "sandboxes", name), nil, nil, nil)
}

// PreviewLink creates a browser login link for an endpoint ("" = the first).
func (c *Client) PreviewLink(ctx context.Context, org, sandbox, endpoint string) (*PreviewLink, error) {
	return c.previewLink(ctx, org, "sandboxes", sandbox, endpoint)
}

// RouteGroupPreviewLink creates a browser login link for an endpoint of a
// route group ("" = the first).
func (c *Client) RouteGroupPreviewLink(ctx context.Context, org, routeGroup, endpoint string) (*PreviewLink, error) {
	return c.previewLink(ctx, org, "routegroups", routeGroup, endpoint)
}

// previewLink is POST …/{coll}/{name}/preview-link.
func (c *Client) previewLink(ctx context.Context, org, coll, name, endpoint string) (*PreviewLink, error) {
	var q url.Values
	if endpoint != "" {
		q = url.Values{"endpoint": {endpoint}}
	}
	var out PreviewLink
	if err := c.do(ctx, http.MethodPost, orgPath(org, coll, name, "preview-link"), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ---- route groups ----

// ApplyRouteGroup creates or updates a route group.
func (c *Client) ApplyRouteGroup(ctx context.Context, org string, rg *RouteGroup, opts ...RequestOption) (*RouteGroup, error) {
	var out RouteGroup
	if err := c.do(ctx, http.MethodPut, orgPath(org, "routegroups", rg.Name), nil, rg, &out, opts...); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetRouteGroup returns a route group.
func (c *Client) GetRouteGroup(ctx context.Context, org, name string) (*RouteGroup, error) {
	var out RouteGroup
	if err := c.do(ctx, http.MethodGet, orgPath(org, "routegroups", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteRouteGroup deletes a route group.
func (c *Client) DeleteRouteGroup(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "routegroups", name), nil, nil, nil)
}

// ---- clusters ----

// RegisterCluster registers a cluster (idempotent).
func (c *Client) RegisterCluster(ctx context.Context, org, name string) (*Cluster, error) {
	var out Cluster
	if err := c.do(ctx, http.MethodPut, orgPath(org, "clusters", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetCluster returns a cluster.
func (c *Client) GetCluster(ctx context.Context, org, name string) (*Cluster, error) {
	var out Cluster
	if err := c.do(ctx, http.MethodGet, orgPath(org, "clusters", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListWorkloads lists the workloads of a cluster that sandboxes can fork, as
// its agent last reported them (WorkloadList.ReportedAt says how fresh);
// namespace "" means all. ErrNotFound when the cluster is unknown or its agent
// has not reported yet (the error message says which).
func (c *Client) ListWorkloads(ctx context.Context, org, cluster, namespace string) (*WorkloadList, error) {
	var q url.Values
	if namespace != "" {
		q = url.Values{"namespace": {namespace}}
	}
	var out WorkloadList
	if err := c.do(ctx, http.MethodGet, orgPath(org, "clusters", cluster, "workloads"), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteCluster removes a cluster.
func (c *Client) DeleteCluster(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "clusters", name), nil, nil, nil)
}

// CreateClusterToken creates a cluster token; its Token is shown only here.
func (c *Client) CreateClusterToken(ctx context.Context, org, cluster string) (*ClusterToken, error) {
	var out ClusterToken
	if err := c.do(ctx, http.MethodPost, orgPath(org, "clusters", cluster, "tokens"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetClusterToken returns one cluster token (masked).
func (c *Client) GetClusterToken(ctx context.Context, org, cluster, id string) (*ClusterToken, error) {
	var out ClusterToken
	if err := c.do(ctx, http.MethodGet, orgPath(org, "clusters", cluster, "tokens", id), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteClusterToken deletes a cluster token.
func (c *Client) DeleteClusterToken(ctx context.Context, org, cluster, id string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "clusters", cluster, "tokens", id), nil, nil, nil)
}

// ---- API keys, orgs, quotas ----

// CreateAPIKey creates an API key of org; its Key is shown only here.
func (c *Client) CreateAPIKey(ctx context.Context, org, name string) (*APIKey, error) {
	var out APIKey
	if err := c.do(ctx, http.MethodPost, orgPath(org, "apikeys"), nil, apitypes.CreateAPIKeyRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeAPIKey revokes an API key.
func (c *Client) RevokeAPIKey(ctx context.Context, org, id string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "apikeys", id), nil, nil, nil)
}

// CreateOrg creates an org (admin keys only) with a quota of maxSandboxes;
// 0 leaves the server's default quota (100). SetQuota with 0 lifts the limit.
func (c *Client) CreateOrg(ctx context.Context, org string, maxSandboxes int64) (*Org, error) {
	var out Org
	body := map[string]any{}
	if maxSandboxes > 0 {
		body["quota"] = Quota{MaxSandboxes: maxSandboxes}
	}
	if err := c.do(ctx, http.MethodPut, orgPath(org), nil, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetOrg returns an org with its quota.
func (c *Client) GetOrg(ctx context.Context, org string) (*Org, error) {
	var out Org
	if err := c.do(ctx, http.MethodGet, orgPath(org), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetQuota returns an org's quota and current usage.
func (c *Client) GetQuota(ctx context.Context, org string) (*Quota, error) {
	var out Quota
	if err := c.do(ctx, http.MethodGet, orgPath(org, "quota"), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetQuota sets an org's maximum number of sandboxes (admin keys only).
func (c *Client) SetQuota(ctx context.Context, org string, maxSandboxes int64) (*Quota, error) {
	var out Quota
	if err := c.do(ctx, http.MethodPut, orgPath(org, "quota"), nil, Quota{MaxSandboxes: maxSandboxes}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ---- waiting ----

// ErrWaitTimeout is returned (wrapped with the last status) when the context
// ends before the sandbox is ready.
var ErrWaitTimeout = errors.New("sandbox not ready before the deadline")

// WaitOptions tune WaitForReady.
type WaitOptions struct {
	// Interval between polls (default 1s).
	Interval time.Duration
	// Progress is called with every sandbox state that differs from the previous one.
	Progress func(*Sandbox)
}

// WaitForReady polls a sandbox until status.ready is true and returns it. It
// stops with the context (returning ErrWaitTimeout wrapped with the last reason
// and message), or with the first API error (e.g. ErrNotFound when the sandbox
// is deleted meanwhile).
func (c *Client) WaitForReady(ctx context.Context, org, name string, opt *WaitOptions) (*Sandbox, error) {
	var o WaitOptions
	if opt != nil {
		o = *opt
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	var last *Sandbox
	lastSig := ""
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	for {
		sb, err := c.GetSandbox(ctx, org, name)
		if err != nil {
			if ctx.Err() != nil && last != nil {
				return last, fmt.Errorf("wait for sandbox %s/%s: %s: %s: %w", org, name, last.Status.Reason, last.Status.Message, ErrWaitTimeout)
			}
			return last, fmt.Errorf("wait for sandbox %s/%s: %w", org, name, err)
		}
		last = sb
		if o.Progress != nil {
			sig, _ := json.Marshal([]any{sb.Version, sb.Status})
			if string(sig) != lastSig {
				lastSig = string(sig)
				o.Progress(sb)
			}
		}
		if sb.Status.Ready {
			return sb, nil
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("wait for sandbox %s/%s: %s: %s: %w", org, name, last.Status.Reason, last.Status.Message, ErrWaitTimeout)
		case <-t.C:
		}
	}
}
