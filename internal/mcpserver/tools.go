package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/internal/cli/forkspec"
)

// ---- inputs ----

// NameInput names one object.
type NameInput struct {
	Name string `json:"name" jsonschema:"name of the sandbox or route group"`
}

// SandboxApplyInput creates or updates a sandbox from a full spec.
type SandboxApplyInput struct {
	Name string `json:"name,omitempty" jsonschema:"sandbox name: a DNS label starting with a letter, at most 30 characters (may come from yaml instead)"`
	// Spec is the sandbox spec.
	Spec               *v1alpha1.SandboxSpec `json:"spec,omitempty" jsonschema:"the sandbox spec: cluster (required), forks [{forkOf: {kind: Deployment, namespace, name}, customizations: {images: [{image, container}], env: [{name, value}]}}], defaultRouteGroup: {endpoints: [{name, target: http://<svc>.<ns>.svc:<port> or http://<workload>.<ns>.deploy:<port>}]}, labels, ttl: {duration: 2h}, resources: [{name, plugin, params}] (plugins: resourceplugin_list) with env valueFrom: {resource: {name, outputKey: <step>.<output>}}, local: [{name, from: {kind, namespace, name}, mappings: [{port, toLocal: host:port}]}] with localMachineID (the machine id that 'sandboxmesh local status' shows; filled in when this MCP server runs on a machine joined with 'sandboxmesh local connect') to send the workload's keyed requests to a process on that machine; routing: {forwards: [{name, port, toLocal}]} with middleware: [{name: override, args: [{name: overrideHost, valueFrom: {forward}}, {name: policy, value: JSON object with exceptStatusCodes [404]}], match: [{workload: <fork baseline name or virtual name>}]}] to try a local process first and fall through to the workload (local override). Give spec or yaml, not both"`
	YAML               string                `json:"yaml,omitempty" jsonschema:"alternatively the whole sandbox file as YAML or JSON: {name: ..., spec: {...}}"`
	Team               string                `json:"team,omitempty" jsonschema:"put the sandbox in this team of the org (its concurrent-sandbox quota counts it); default: the yaml's team, else an existing sandbox keeps its team"`
	Wait               bool                  `json:"wait,omitempty" jsonschema:"wait until the sandbox is ready before answering"`
	WaitTimeoutSeconds int                   `json:"wait_timeout_seconds,omitempty" jsonschema:"how long to wait when wait is true (default 180)"`
}

// SandboxForkInput creates or updates a sandbox that forks one workload with a new image.
type SandboxForkInput struct {
	Name           string            `json:"name" jsonschema:"sandbox name: a DNS label starting with a letter, at most 30 characters; an existing sandbox is updated (its fork of the workload replaced or a fork added)"`
	Workload       string            `json:"workload" jsonschema:"the baseline workload to fork: namespace/name of a Deployment, or Kind/namespace/name with Kind Deployment or Rollout (an Argo Rollout)"`
	Image          string            `json:"image,omitempty" jsonschema:"container image the fork runs (e.g. ghcr.io/acme/cart:pr-42)"`
	Container      string            `json:"container,omitempty" jsonschema:"container whose image is replaced (default: the main container)"`
	Env            map[string]string `json:"env,omitempty" jsonschema:"environment variables to set in the fork"`
	Cluster        string            `json:"cluster,omitempty" jsonschema:"registered cluster (see cluster_list); default: the existing sandbox's cluster, or the org's only cluster"`
	EndpointPort   int               `json:"endpoint_port,omitempty" jsonschema:"if set, adds an endpoint with a preview URL that targets the fork itself on this port (http://<workload>.<namespace>.deploy:<port>)"`
	EndpointTarget string            `json:"endpoint_target,omitempty" jsonschema:"if set, adds an endpoint for this in-cluster target, e.g. the entry service http://frontend.shop.svc:8080"`
	EndpointName   string            `json:"endpoint_name,omitempty" jsonschema:"name of the added endpoint (default: derived from the workload or target)"`
	Team           string            `json:"team,omitempty" jsonschema:"put the sandbox in this team of the org (its concurrent-sandbox quota counts it); default: an existing sandbox keeps its team"`
	Wait           bool              `json:"wait,omitempty" jsonschema:"wait until the sandbox is ready before answering"`
	WaitSeconds    int               `json:"wait_timeout_seconds,omitempty" jsonschema:"how long to wait when wait is true (default 180)"`
}

// WaitInput waits for a sandbox.
type WaitInput struct {
	Name           string `json:"name" jsonschema:"sandbox name"`
	TimeoutSeconds int    `json:"timeout_seconds,omitempty" jsonschema:"how long to wait (default 180)"`
}

// ListInput filters sandboxes and asks for one page of them.
type ListInput struct {
	Labels map[string]string `json:"labels,omitempty" jsonschema:"only sandboxes with all these labels"`
	Team   string            `json:"team,omitempty" jsonschema:"only the sandboxes of this team"`
	PageInput
}

// PageInput asks a list tool for one page.
type PageInput struct {
	Limit  int    `json:"limit,omitempty" jsonschema:"at most this many items (default 100, at most 500)"`
	Cursor string `json:"cursor,omitempty" jsonschema:"next_cursor of the previous answer, to continue the listing"`
}

// DefaultPageSize is the page size of list tools called without limit.
const DefaultPageSize = 100

func (p PageInput) options() client.PageOptions {
	limit := p.Limit
	if limit <= 0 {
		limit = DefaultPageSize
	}
	return client.PageOptions{Limit: limit, Continue: p.Cursor}
}

// RouteGroupApplyInput creates or updates a route group.
type RouteGroupApplyInput struct {
	Name string                   `json:"name" jsonschema:"route group name: a DNS label starting with a letter, at most 30 characters"`
	Spec *v1alpha1.RouteGroupSpec `json:"spec" jsonschema:"the route group spec: cluster, match: {label: {key, value}} (or any/all lists of {label}), endpoints [{name, target}]"`
}

// ClusterInput optionally names a cluster.
type ClusterInput struct {
	Cluster string `json:"cluster,omitempty" jsonschema:"registered cluster (default: all)"`
}

// PreviewInput asks for preview URLs.
type PreviewInput struct {
	Sandbox   string `json:"sandbox" jsonschema:"sandbox name"`
	Endpoint  string `json:"endpoint,omitempty" jsonschema:"endpoint name (default: all endpoints)"`
	LoginLink bool   `json:"login_link,omitempty" jsonschema:"also create a single-use browser login link (valid 5 minutes; sets the preview cookie) for the endpoint"`
}

// HTTPRequestInput sends a request through a sandbox.
type HTTPRequestInput struct {
	Sandbox        string            `json:"sandbox" jsonschema:"sandbox whose routing key the request carries"`
	Endpoint       string            `json:"endpoint,omitempty" jsonschema:"endpoint name, or its in-cluster target URL (e.g. http://frontend.shop.svc:8080); default: the sandbox's first endpoint"`
	Method         string            `json:"method,omitempty" jsonschema:"HTTP method (default GET)"`
	Path           string            `json:"path,omitempty" jsonschema:"path and query, e.g. /api/cart?id=1 (default /)"`
	Headers        map[string]string `json:"headers,omitempty" jsonschema:"request headers"`
	Body           string            `json:"body,omitempty" jsonschema:"request body"`
	TimeoutSeconds int               `json:"timeout_seconds,omitempty" jsonschema:"request timeout (default 30)"`
}

// ---- outputs ----

// ForkView is the state of one fork.
type ForkView struct {
	Name     string `json:"name"`
	Baseline string `json:"baseline"`
	Ready    bool   `json:"ready"`
	Message  string `json:"message,omitempty"`
}

// EndpointView is an endpoint with its URLs.
type EndpointView struct {
	Name   string `json:"name"`
	Target string `json:"target,omitempty"`
	// PreviewURL is the host form; send the API key header or use a login link.
	PreviewURL string `json:"preview_url,omitempty"`
	// PathURL is the path form on the control plane (API key header required).
	PathURL   string `json:"path_url,omitempty"`
	LoginLink string `json:"login_link,omitempty"`
}

// SandboxView is what the sandbox tools answer.
type SandboxView struct {
	Name       string     `json:"name"`
	Cluster    string     `json:"cluster"`
	Team       string     `json:"team,omitempty"`
	Ready      bool       `json:"ready"`
	Reason     string     `json:"reason,omitempty"`
	Message    string     `json:"message,omitempty"`
	Blocking   string     `json:"blocking,omitempty"`
	RoutingKey string     `json:"routing_key,omitempty"`
	Version    int64      `json:"version"`
	Forks      []ForkView `json:"forks,omitempty"`
	// Resources report spec.resources as the operator last did (phase, step,
	// message, the names of their output keys).
	Resources []v1alpha1.ResourceStatus `json:"resources,omitempty"`
	// Local reports spec.local: whether the machine's tunnel is connected.
	Local     []v1alpha1.LocalStatus `json:"local,omitempty"`
	Endpoints []EndpointView         `json:"endpoints,omitempty"`
	Spec      *v1alpha1.SandboxSpec  `json:"spec,omitempty"`
	NextStep  string                 `json:"next_step,omitempty"`
}

func (s *server) view(sb *client.Sandbox, withSpec bool) *SandboxView {
	v := &SandboxView{Name: sb.Name, Cluster: sb.Spec.Cluster, Team: sb.Team, Ready: sb.Status.Ready, Reason: sb.Status.Reason, Message: sb.Status.Message,
		RoutingKey: sb.RoutingKey, Version: sb.Version}
	for _, f := range sb.Status.Forks {
		v.Forks = append(v.Forks, ForkView{Name: f.Name, Baseline: f.Baseline, Ready: f.Ready, Message: f.Message})
	}
	v.Resources = sb.Status.Resources
	v.Local = sb.Status.Local
	for _, e := range client.PreviewEndpoints(sb) {
		ev := EndpointView{Name: e.Name, Target: e.Target, PreviewURL: e.URL}
		if u, err := client.PreviewURL(s.o.PreviewBase, s.o.Org, sb.Name, e.Name, "/"); err == nil {
			ev.PathURL = u.String()
		}
		v.Endpoints = append(v.Endpoints, ev)
	}
	if withSpec {
		spec := sb.Spec
		v.Spec = &spec
	}
	if !sb.Status.Ready {
		v.Blocking = blocking(sb)
		v.NextStep = "call sandbox_wait to wait until it is ready"
	} else if len(v.Endpoints) > 0 {
		v.NextStep = "call http_request to send a request through the sandbox, or preview_url for its URLs"
	} else {
		v.NextStep = "the sandbox has no endpoints: add spec.defaultRouteGroup.endpoints (or endpoint_target with sandbox_fork) to get preview URLs and use http_request"
	}
	return v
}

func blocking(sb *client.Sandbox) string {
	var parts []string
	if sb.Status.Reason != "" || sb.Status.Message != "" {
		parts = append(parts, strings.TrimPrefix(sb.Status.Reason+": "+sb.Status.Message, ": "))
	}
	for _, f := range sb.Status.Forks {
		if !f.Ready {
			m := f.Message
			if m == "" {
				m = "not ready"
			}
			parts = append(parts, fmt.Sprintf("fork %s: %s", f.Name, m))
		}
	}
	return strings.Join(parts, "; ")
}

// ---- registration ----

func (s *server) register(srv *mcp.Server) {
	ro := &mcp.ToolAnnotations{ReadOnlyHint: true}
	mcp.AddTool(srv, &mcp.Tool{Name: "sandbox_apply", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true},
		Description: "Create or update a sandbox from a full spec (or a YAML sandbox file). A sandbox forks workloads and receives only requests carrying its routing key. " +
			"Answers the sandbox's status, routing key and endpoints with preview URLs; with wait=true it answers once the sandbox is ready (or says what blocks it). " +
			"spec.resources [{name, plugin, params}] gives the sandbox resources made by the org's resource plugins (resourceplugin_list), e.g. a database; " +
			"a fork's env reads their outputs with valueFrom.resource {name, outputKey: <step>.<output>} (resourceplugin_get lists the output keys). Resources cannot change once the sandbox exists."}, s.sandboxApply)
	mcp.AddTool(srv, &mcp.Tool{Name: "sandbox_fork", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true},
		Description: "Create or update a sandbox that forks workload namespace/name with a new image (and optional env), the common case when testing a change. " +
			"An existing sandbox keeps its other forks. Add endpoint_target (e.g. the entry service http://frontend.shop.svc:8080) or endpoint_port to get a preview URL for http_request."}, s.sandboxFork)
	mcp.AddTool(srv, &mcp.Tool{Name: "sandbox_wait", Annotations: ro,
		Description: "Wait until a sandbox is ready; answers its status, or on timeout an error that says which forks are not ready and why."}, s.sandboxWait)
	mcp.AddTool(srv, &mcp.Tool{Name: "sandbox_get", Annotations: ro,
		Description: "Get a sandbox: spec, readiness, forks, routing key and endpoints with preview URLs."}, s.sandboxGet)
	mcp.AddTool(srv, &mcp.Tool{Name: "sandbox_list", Annotations: ro,
		Description: "List the org's sandboxes with their readiness and routing keys."}, s.sandboxList)
	mcp.AddTool(srv, &mcp.Tool{Name: "sandbox_delete", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true},
		Description: "Delete a sandbox (its forks and routes are removed from the cluster)."}, s.sandboxDelete)
	mcp.AddTool(srv, &mcp.Tool{Name: "routegroup_apply", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(false), IdempotentHint: true},
		Description: "Create or update a route group: one routing key that routes to the forks of every sandbox matching its label selector."}, s.routeGroupApply)
	mcp.AddTool(srv, &mcp.Tool{Name: "routegroup_get", Annotations: ro, Description: "Get a route group: spec, status, matched sandboxes, endpoints."}, s.routeGroupGet)
	mcp.AddTool(srv, &mcp.Tool{Name: "routegroup_list", Annotations: ro, Description: "List the org's route groups with their routing keys and the sandboxes they match."}, s.routeGroupList)
	mcp.AddTool(srv, &mcp.Tool{Name: "routegroup_delete", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), IdempotentHint: true},
		Description: "Delete a route group (its routes are removed; the matched sandboxes stay)."}, s.routeGroupDelete)
	mcp.AddTool(srv, &mcp.Tool{Name: "cluster_list", Annotations: ro,
		Description: "List the org's registered clusters (the values spec.cluster accepts) and when their agents were last seen."}, s.clusterList)
	mcp.AddTool(srv, &mcp.Tool{Name: "workload_list", Annotations: ro,
		Description: "List the workloads (Deployments) of a cluster that a sandbox can fork, as the cluster's agent last reported them: namespace/name for sandbox_fork's workload, container images, readiness, whether the devmesh sidecar is injected, and the Service URLs usable as endpoint_target."}, s.workloadList)
	mcp.AddTool(srv, &mcp.Tool{Name: "preview_url", Annotations: ro,
		Description: "Get the preview URLs of a sandbox's endpoints (host form and path form; both need the sandboxmesh-api-key header), and optionally a browser login link."}, s.previewURL)
	mcp.AddTool(srv, &mcp.Tool{Name: "http_request", Annotations: &mcp.ToolAnnotations{DestructiveHint: ptr(true), OpenWorldHint: ptr(true)},
		Description: "Send an HTTP request to one of a sandbox's endpoints through the control plane's preview proxy with the sandbox's routing key injected, and return status, headers and body — to validate a change end to end."}, s.httpRequest)
	s.registerResourcePlugins(srv, ro)
	s.registerJobs(srv)
	s.registerSmartTests(srv, ro)
}

// ---- sandboxes ----

func (s *server) apply(ctx context.Context, req *mcp.CallToolRequest, sb *client.Sandbox, wait bool, timeoutSec int) (*mcp.CallToolResult, any, error) {
	var after func(context.Context) error
	if s.o.LocalMachine != nil {
		a, err := s.o.LocalMachine(ctx, sb)
		if err != nil {
			return nil, nil, err
		}
		after = a
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateObjectName("name", sb.Name); fe != nil {
		errs = append(errs, *fe)
	}
	errs = append(errs, apitypes.ValidateSandboxSpec(&sb.Spec)...)
	if len(errs) > 0 {
		return nil, nil, invalid(errs)
	}
	out, err := s.o.Client.ApplySandbox(ctx, s.o.Org, sb)
	if err != nil {
		return nil, nil, s.agentError(err, "apply sandbox "+sb.Name)
	}
	if after != nil {
		if err := after(ctx); err != nil {
			return nil, nil, err
		}
	}
	if !wait {
		return nil, s.view(out, false), nil
	}
	return s.wait(ctx, req, sb.Name, timeoutSec)
}

func invalid(errs apitypes.FieldErrors) error {
	var b strings.Builder
	b.WriteString("invalid sandbox; fix these fields and call the tool again:")
	for _, f := range errs {
		fmt.Fprintf(&b, "\n- %s: %s", f.Path, f.Message)
	}
	return errors.New(b.String())
}

func (s *server) sandboxApply(ctx context.Context, req *mcp.CallToolRequest, in SandboxApplyInput) (*mcp.CallToolResult, any, error) {
	sb := &client.Sandbox{Name: in.Name}
	switch {
	case in.Spec != nil && in.YAML != "":
		return nil, nil, errors.New("give spec or yaml, not both")
	case in.Spec != nil:
		sb.Spec = *in.Spec
	case in.YAML != "":
		j, err := yaml.YAMLToJSONStrict([]byte(in.YAML))
		if err != nil {
			return nil, nil, fmt.Errorf("yaml: %v; want {name: ..., spec: {cluster: ..., forks: [...]}}", err)
		}
		// As the API and the CLI decode it: unknown fields named by path,
		// Signadot's fields and endpoint shapes understood.
		f, _, moved, err := apitypes.DecodeSandbox(j)
		if err != nil {
			return nil, nil, fmt.Errorf("yaml: %v; want {name: ..., spec: {cluster: ..., forks: [...]}}", err)
		}
		if len(moved) > 0 {
			return nil, nil, fmt.Errorf("yaml: %v", moved)
		}
		if in.Name != "" && f.Name != "" && in.Name != f.Name {
			return nil, nil, fmt.Errorf("name %q differs from the yaml's name %q", in.Name, f.Name)
		}
		if sb.Name == "" {
			sb.Name = f.Name
		}
		sb.Spec, sb.Team = f.Spec, f.Team
	default:
		return nil, nil, errors.New("give spec (an object) or yaml (the sandbox file); to fork one workload with a new image, use sandbox_fork")
	}
	if in.Team != "" {
		sb.Team = in.Team
	}
	return s.apply(ctx, req, sb, in.Wait, in.WaitTimeoutSeconds)
}

func (s *server) sandboxFork(ctx context.Context, req *mcp.CallToolRequest, in SandboxForkInput) (*mcp.CallToolResult, any, error) {
	if _, err := forkspec.ParseWorkload(in.Workload); err != nil {
		return nil, nil, err
	}
	if in.Image == "" && len(in.Env) == 0 {
		return nil, nil, errors.New("give an image (and/or env): what should the fork run differently from the baseline?")
	}
	spec, exists, err := forkspec.Base(ctx, s.o.Client, s.o.Org, in.Name, in.Cluster)
	switch {
	case errors.Is(err, forkspec.ErrNoCluster):
		return nil, nil, errors.New("the org has no registered cluster; ask the user to register one (sandboxmesh cluster add <name>) and install its agent")
	case errors.Is(err, forkspec.ErrAmbiguousCluster):
		return nil, nil, fmt.Errorf("%v: pass cluster", err)
	case err != nil:
		return nil, nil, s.agentError(err, "sandbox "+in.Name)
	}
	if !exists {
		spec.Description = "forked " + in.Workload + " by an AI agent"
	}
	if err := forkspec.Apply(&spec, forkspec.Request{Workload: in.Workload, Image: in.Image, Container: in.Container, Env: in.Env,
		EndpointTarget: in.EndpointTarget, EndpointPort: in.EndpointPort, EndpointName: in.EndpointName}); err != nil {
		return nil, nil, err
	}
	return s.apply(ctx, req, &client.Sandbox{Name: in.Name, Team: in.Team, Spec: spec}, in.Wait, in.WaitSeconds)
}

func (s *server) wait(ctx context.Context, req *mcp.CallToolRequest, name string, timeoutSec int) (*mcp.CallToolResult, any, error) {
	if timeoutSec <= 0 {
		timeoutSec = 180
	}
	timeout := time.Duration(timeoutSec) * time.Second
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	n := 0
	sb, err := s.o.Client.WaitForReady(wctx, s.o.Org, name, &client.WaitOptions{Interval: s.o.WaitInterval, Progress: func(sb *client.Sandbox) {
		n++
		msg := "ready"
		if !sb.Status.Ready {
			msg = "not ready: " + blocking(sb)
		}
		notify(ctx, req, n, name+": "+msg)
	}})
	if errors.Is(err, client.ErrWaitTimeout) && sb != nil {
		return nil, nil, fmt.Errorf("sandbox %s is not ready after %s; blocking: %s. Call sandbox_wait again to keep waiting, or sandbox_get for details; fix the spec with sandbox_apply/sandbox_fork if a fork fails (e.g. a wrong image)",
			name, timeout, blocking(sb))
	}
	if err != nil {
		return nil, nil, s.agentError(err, "wait for sandbox "+name)
	}
	return nil, s.view(sb, false), nil
}

func (s *server) sandboxWait(ctx context.Context, req *mcp.CallToolRequest, in WaitInput) (*mcp.CallToolResult, any, error) {
	return s.wait(ctx, req, in.Name, in.TimeoutSeconds)
}

func (s *server) sandboxGet(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
	sb, err := s.o.Client.GetSandbox(ctx, s.o.Org, in.Name)
	if err != nil {
		return nil, nil, s.agentError(err, "get sandbox "+in.Name)
	}
	return nil, s.view(sb, true), nil
}

// SandboxList is the answer of sandbox_list.
type SandboxList struct {
	Sandboxes []SandboxView `json:"sandboxes"`
	// NextCursor continues the listing (pass it as cursor); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

func (s *server) sandboxList(ctx context.Context, _ *mcp.CallToolRequest, in ListInput) (*mcp.CallToolResult, any, error) {
	pg, err := s.o.Client.ListTeamSandboxesPage(ctx, s.o.Org, in.Team, in.Labels, in.PageInput.options())
	if err != nil {
		return nil, nil, s.agentError(err, "list sandboxes")
	}
	sbs := pg.Items
	out := SandboxList{Sandboxes: []SandboxView{}, NextCursor: pg.Continue}
	for i := range sbs {
		v := s.view(&sbs[i], false)
		v.NextStep = ""
		out.Sandboxes = append(out.Sandboxes, *v)
	}
	return nil, out, nil
}

// Deleted is the answer of the delete tools.
type Deleted struct {
	Deleted string `json:"deleted"`
}

func (s *server) sandboxDelete(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
	if err := s.o.Client.DeleteSandbox(ctx, s.o.Org, in.Name); err != nil {
		return nil, nil, s.agentError(err, "delete sandbox "+in.Name)
	}
	return nil, Deleted{Deleted: "sandbox " + in.Name}, nil
}

// ---- route groups and clusters ----

func (s *server) routeGroupApply(ctx context.Context, _ *mcp.CallToolRequest, in RouteGroupApplyInput) (*mcp.CallToolResult, any, error) {
	if in.Spec == nil {
		return nil, nil, errors.New("spec is required")
	}
	var errs apitypes.FieldErrors
	if fe := apitypes.ValidateObjectName("name", in.Name); fe != nil {
		errs = append(errs, *fe)
	}
	errs = append(errs, apitypes.ValidateRouteGroupSpec(in.Spec)...)
	if len(errs) > 0 {
		return nil, nil, invalid(errs)
	}
	rg, err := s.o.Client.ApplyRouteGroup(ctx, s.o.Org, &client.RouteGroup{Name: in.Name, Spec: *in.Spec})
	if err != nil {
		return nil, nil, s.agentError(err, "apply route group "+in.Name)
	}
	return nil, rg, nil
}

func (s *server) routeGroupGet(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
	rg, err := s.o.Client.GetRouteGroup(ctx, s.o.Org, in.Name)
	if err != nil {
		return nil, nil, s.agentError(err, "get route group "+in.Name)
	}
	return nil, rg, nil
}

// RouteGroupList is the answer of routegroup_list.
type RouteGroupList struct {
	RouteGroups []client.RouteGroup `json:"route_groups"`
	// NextCursor continues the listing (pass it as cursor); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

func (s *server) routeGroupList(ctx context.Context, _ *mcp.CallToolRequest, in PageInput) (*mcp.CallToolResult, any, error) {
	pg, err := s.o.Client.ListRouteGroupsPage(ctx, s.o.Org, in.options())
	if err != nil {
		return nil, nil, s.agentError(err, "list route groups")
	}
	return nil, RouteGroupList{RouteGroups: pg.Items, NextCursor: pg.Continue}, nil
}

func (s *server) routeGroupDelete(ctx context.Context, _ *mcp.CallToolRequest, in NameInput) (*mcp.CallToolResult, any, error) {
	if err := s.o.Client.DeleteRouteGroup(ctx, s.o.Org, in.Name); err != nil {
		return nil, nil, s.agentError(err, "delete route group "+in.Name)
	}
	return nil, Deleted{Deleted: "route group " + in.Name}, nil
}

// ClusterList is the answer of cluster_list.
type ClusterList struct {
	Clusters []client.Cluster `json:"clusters"`
	// NextCursor continues the listing (pass it as cursor); empty on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

func (s *server) clusterList(ctx context.Context, _ *mcp.CallToolRequest, in PageInput) (*mcp.CallToolResult, any, error) {
	pg, err := s.o.Client.ListClustersPage(ctx, s.o.Org, in.options())
	if err != nil {
		return nil, nil, s.agentError(err, "list clusters")
	}
	return nil, ClusterList{Clusters: pg.Items, NextCursor: pg.Continue}, nil
}

// WorkloadListInput asks for a cluster's forkable workloads.
type WorkloadListInput struct {
	Cluster   string `json:"cluster,omitempty" jsonschema:"registered cluster (default: the org's only cluster)"`
	Namespace string `json:"namespace,omitempty" jsonschema:"only workloads of this namespace"`
}

// WorkloadView is one forkable workload.
type WorkloadView struct {
	// Workload is namespace/name, the value sandbox_fork's workload takes.
	Workload        string   `json:"workload"`
	Kind            string   `json:"kind"`
	Containers      []string `json:"containers" jsonschema:"container=image"`
	Ready           string   `json:"ready"`
	DevmeshInjected bool     `json:"devmesh_injected"`
	// EndpointTargets are http://<service>.<namespace>.svc:<port> targets for sandbox_fork's endpoint_target.
	EndpointTargets []string `json:"endpoint_targets,omitempty"`
}

// WorkloadList is the answer of workload_list.
type WorkloadList struct {
	Cluster    string         `json:"cluster"`
	ReportedAt string         `json:"reported_at"`
	Truncated  bool           `json:"truncated,omitempty"`
	Hint       string         `json:"hint"`
	Workloads  []WorkloadView `json:"workloads"`
}

func (s *server) workloadList(ctx context.Context, _ *mcp.CallToolRequest, in WorkloadListInput) (*mcp.CallToolResult, any, error) {
	cluster := in.Cluster
	if cluster == "" {
		cls, err := s.o.Client.ListClusters(ctx, s.o.Org)
		if err != nil {
			return nil, nil, s.agentError(err, "list clusters")
		}
		switch len(cls) {
		case 0:
			return nil, nil, errors.New("the org has no registered cluster; ask the user to register one (sandboxmesh cluster add <name>) and install its agent")
		case 1:
			cluster = cls[0].Name
		default:
			names := make([]string, 0, len(cls))
			for _, c := range cls {
				names = append(names, c.Name)
			}
			return nil, nil, fmt.Errorf("the org has %d clusters (%s): pass cluster", len(cls), strings.Join(names, ", "))
		}
	}
	wl, err := s.o.Client.ListWorkloads(ctx, s.o.Org, cluster, in.Namespace)
	if err != nil {
		return nil, nil, s.agentError(err, "workloads of cluster "+cluster)
	}
	out := WorkloadList{Cluster: wl.Cluster, ReportedAt: wl.ReportedAt, Truncated: wl.Truncated, Workloads: []WorkloadView{},
		Hint: "Fork one with sandbox_fork (workload=<namespace>/<name>, image=..., endpoint_target=one of its endpoint_targets or of the service that calls it). " +
			"Requests are routed to the fork only where the workload is devmesh_injected or a mesh backend (Istio, Linkerd, Gateway API) is enabled."}
	for _, w := range wl.Workloads {
		v := WorkloadView{Workload: w.Namespace + "/" + w.Name, Kind: w.Kind, Ready: fmt.Sprintf("%d/%d", w.ReadyReplicas, w.Replicas), DevmeshInjected: w.DevmeshInjected}
		for _, c := range w.Containers {
			v.Containers = append(v.Containers, c.Name+"="+c.Image)
		}
		for _, svc := range w.Services {
			for _, p := range svc.Ports {
				v.EndpointTargets = append(v.EndpointTargets, fmt.Sprintf("http://%s.%s.svc:%d", svc.Name, w.Namespace, p))
			}
		}
		out.Workloads = append(out.Workloads, v)
	}
	return nil, out, nil
}

// ---- preview ----

// PreviewAnswer is the answer of preview_url.
type PreviewAnswer struct {
	Sandbox    string         `json:"sandbox"`
	Ready      bool           `json:"ready"`
	RoutingKey string         `json:"routing_key"`
	Endpoints  []EndpointView `json:"endpoints"`
	Usage      string         `json:"usage"`
}

func (s *server) previewURL(ctx context.Context, _ *mcp.CallToolRequest, in PreviewInput) (*mcp.CallToolResult, any, error) {
	sb, err := s.o.Client.GetSandbox(ctx, s.o.Org, in.Sandbox)
	if err != nil {
		return nil, nil, s.agentError(err, "get sandbox "+in.Sandbox)
	}
	v := s.view(sb, false)
	out := PreviewAnswer{Sandbox: sb.Name, Ready: sb.Status.Ready, RoutingKey: sb.RoutingKey, Endpoints: []EndpointView{},
		Usage: "Send the header " + apitypes.HeaderAPIKey + ": <API key> with requests to preview_url or path_url (the control plane injects the routing key), or open login_link in a browser. http_request does this for you."}
	for _, e := range v.Endpoints {
		if in.Endpoint != "" && e.Name != in.Endpoint {
			continue
		}
		if in.LoginLink {
			l, err := s.o.Client.PreviewLink(ctx, s.o.Org, sb.Name, e.Name)
			if err != nil {
				return nil, nil, s.agentError(err, "preview link for "+sb.Name+"/"+e.Name)
			}
			e.LoginLink = l.URL
		}
		out.Endpoints = append(out.Endpoints, e)
	}
	if len(out.Endpoints) == 0 {
		if in.Endpoint != "" {
			_, err := client.FindEndpoint(sb, in.Endpoint)
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("sandbox %s has no endpoints: add spec.defaultRouteGroup.endpoints [{name, target}] (sandbox_apply), or endpoint_target with sandbox_fork", sb.Name)
	}
	return nil, out, nil
}

// HTTPAnswer is the answer of http_request.
type HTTPAnswer struct {
	Status        int               `json:"status"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body"`
	BodyTruncated bool              `json:"body_truncated,omitempty"`
	URL           string            `json:"url"`
	Endpoint      string            `json:"endpoint"`
	RoutingKey    string            `json:"routing_key"`
	Note          string            `json:"note,omitempty"`
}

// maxBody caps the body returned to the agent.
const maxBody = 64 << 10

func (s *server) httpRequest(ctx context.Context, _ *mcp.CallToolRequest, in HTTPRequestInput) (*mcp.CallToolResult, any, error) {
	sb, err := s.o.Client.GetSandbox(ctx, s.o.Org, in.Sandbox)
	if err != nil {
		return nil, nil, s.agentError(err, "get sandbox "+in.Sandbox)
	}
	eps := client.PreviewEndpoints(sb)
	if len(eps) == 0 {
		return nil, nil, fmt.Errorf("sandbox %s has no endpoints, so no request can reach it through the preview proxy: add spec.defaultRouteGroup.endpoints [{name, target: http://<service>.<namespace>.svc:<port>}] with sandbox_apply, or endpoint_target with sandbox_fork", sb.Name)
	}
	ep := eps[0]
	if in.Endpoint != "" {
		if ep, err = client.FindEndpoint(sb, in.Endpoint); err != nil {
			return nil, nil, err
		}
	}
	method := strings.ToUpper(in.Method)
	if method == "" {
		method = http.MethodGet
	}
	path := in.Path
	if path == "" {
		path = "/"
	}
	u, err := client.PreviewURL(s.o.PreviewBase, s.o.Org, sb.Name, ep.Name, path)
	if err != nil {
		return nil, nil, err
	}
	timeout := 30 * time.Second
	if in.TimeoutSeconds > 0 {
		timeout = time.Duration(in.TimeoutSeconds) * time.Second
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if in.Body != "" {
		body = strings.NewReader(in.Body)
	}
	r, err := http.NewRequestWithContext(rctx, method, u.String(), body)
	if err != nil {
		return nil, nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range in.Headers {
		r.Header.Set(k, v)
	}
	client.AuthorizePreview(r.Header, s.o.APIKey, sb.RoutingKey)
	resp, err := s.o.HTTPClient.Do(r)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %v; the control plane at %s did not answer (check it runs, or raise timeout_seconds)", method, u.Redacted(), err, s.o.PreviewBase)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: read body: %w", method, u.Redacted(), err)
	}
	out := HTTPAnswer{Status: resp.StatusCode, Headers: map[string]string{}, URL: u.String(), Endpoint: ep.Name, RoutingKey: sb.RoutingKey}
	if len(data) > maxBody {
		data, out.BodyTruncated = data[:maxBody], true
	}
	out.Body = string(data)
	for k, vs := range resp.Header {
		out.Headers[k] = strings.Join(vs, ", ")
	}
	if resp.StatusCode >= 400 && resp.Header.Get(apitypes.HeaderPreviewError) == "true" {
		var er apitypes.ErrorResponse
		if json.Unmarshal(data, &er) == nil && er.Error != "" && er.Reason != "" {
			out.Note = "this error came from the control plane's preview proxy, not from the service: " + er.Error
			if !sb.Status.Ready {
				out.Note += " (the sandbox is not ready: " + blocking(sb) + "; call sandbox_wait)"
			}
		}
	}
	return nil, out, nil
}
