package api

import (
	"encoding/json"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/smarttests"
	"github.com/sandboxmesh/sandboxmesh/smarttest/diff"
)

// Operation documents one route in the OpenAPI document.
type Operation struct {
	Method, Path string
	ID           string
	Summary      string
	Tag          string
	// Request is the body type (nil: none).
	Request any
	// Response is the 200/201 body type.
	Response any
	Status   int
	// Query parameters (name: description).
	Query map[string]string
	// Agent marks routes authenticated with a cluster token.
	Agent bool
	// Public marks routes without authentication.
	Public bool
	// Runner marks routes authenticated with a runner token.
	Runner bool
	// Alias marks a second path of an operation served for Signadot's
	// clients; the Go SDK calls the first.
	Alias bool
}

const o = "/api/v2/orgs/:org"

// Operations lists every documented route; a test keeps it in sync with the router.
var Operations = []Operation{
	{Method: "GET", Path: "/api/v2/openapi.json", ID: "get-openapi", Summary: "This OpenAPI document", Tag: "Meta", Response: map[string]any{}, Public: true},
	{Method: "GET", Path: "/api/v2/meta/openapi.json", ID: "get-openapi-meta", Summary: "This OpenAPI document (Signadot's path for its document)", Tag: "Meta", Response: map[string]any{}, Public: true},
	{Method: "GET", Path: "/api/v2/orgs", ID: "get-org-name", Summary: "The orgs the API key may use: its own org, or every org for an admin key", Tag: "Orgs", Response: apitypes.OrgList{}},
	{Method: "PUT", Path: o, ID: "apply-org", Summary: "Create an org (admin keys only)", Tag: "Orgs", Request: putOrgRequest{}, Response: apitypes.Org{}},
	{Method: "GET", Path: o, ID: "get-org", Summary: "Get an org with its quota and usage", Tag: "Orgs", Response: apitypes.Org{}},
	{Method: "GET", Path: o + "/quota", ID: "get-quota", Summary: "Get the org's quota and usage", Tag: "Orgs", Response: apitypes.Quota{}},
	{Method: "PUT", Path: o + "/quota", ID: "set-quota", Summary: "Set the org's quota (admin keys only)", Tag: "Orgs", Request: apitypes.Quota{}, Response: apitypes.Quota{}},

	{Method: "GET", Path: o + "/sandboxes", ID: "list-sandboxes", Summary: "List sandboxes", Tag: "Sandboxes", Response: []apitypes.Sandbox{},
		Query: map[string]string{"labelSelector": "key=value[,key=value]: only sandboxes with all these labels", "team": "only the sandboxes of this team (an extension)", "limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/sandboxes/:name", ID: "apply-sandbox", Summary: "Create or update a sandbox (If-Match: \"<version>\" for a conditional update)", Tag: "Sandboxes", Request: apitypes.Sandbox{}, Response: apitypes.Sandbox{}},
	{Method: "GET", Path: o + "/sandboxes/:name", ID: "get-sandbox", Summary: "Get a sandbox", Tag: "Sandboxes", Response: apitypes.Sandbox{}},
	{Method: "DELETE", Path: o + "/sandboxes/:name", ID: "delete-sandbox", Summary: "Delete a sandbox", Tag: "Sandboxes", Response: apitypes.EmptyResponse{}},
	{Method: "GET", Path: o + "/sandboxes/:name/status/explain", ID: "get-sandbox-status-explain", Summary: "Why a sandbox is or is not ready, in words: its status, the states of its forks, its cluster's agent and the workloads the agent reports", Tag: "Sandboxes", Response: apitypes.SandboxExplanation{},
		Query: map[string]string{"mode": "accepted for Signadot clients (explain or context); both explanation and context are always returned"}},
	{Method: "POST", Path: o + "/sandboxes/:name/preview-link", ID: "create-preview-link", Summary: "Create a browser login link for a sandbox's preview endpoint", Tag: "Sandboxes", Response: apitypes.PreviewLink{},
		Query: map[string]string{"endpoint": "endpoint name (default: the first)"}},

	{Method: "GET", Path: o + "/routegroups", ID: "list-routegroups", Summary: "List route groups", Tag: "RouteGroups", Response: []apitypes.RouteGroup{},
		Query: map[string]string{"labelSelector": "unused for route groups; accepted", "limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/routegroups/:name", ID: "apply-routegroup", Summary: "Create or update a route group", Tag: "RouteGroups", Request: apitypes.RouteGroup{}, Response: apitypes.RouteGroup{}},
	{Method: "GET", Path: o + "/routegroups/:name", ID: "get-routegroup", Summary: "Get a route group", Tag: "RouteGroups", Response: apitypes.RouteGroup{}},
	{Method: "DELETE", Path: o + "/routegroups/:name", ID: "delete-routegroup", Summary: "Delete a route group", Tag: "RouteGroups", Response: apitypes.EmptyResponse{}},
	{Method: "POST", Path: o + "/routegroups/:name/preview-link", ID: "create-routegroup-preview-link", Summary: "Create a browser login link for a route group's preview endpoint", Tag: "RouteGroups", Response: apitypes.PreviewLink{},
		Query: map[string]string{"endpoint": "endpoint name (default: the first)"}},

	{Method: "GET", Path: o + "/clusters", ID: "list-clusters", Summary: "List clusters", Tag: "Cluster", Response: []apitypes.Cluster{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/clusters/:cluster", ID: "add-cluster", Summary: "Register a cluster", Tag: "Cluster", Response: apitypes.Cluster{}},
	{Method: "GET", Path: o + "/clusters/:cluster", ID: "get-cluster", Summary: "Get a cluster", Tag: "Cluster", Response: apitypes.Cluster{}},
	{Method: "DELETE", Path: o + "/clusters/:cluster", ID: "remove-cluster", Summary: "Remove a cluster (refused while sandboxes use it)", Tag: "Cluster", Response: apitypes.EmptyResponse{}},
	{Method: "POST", Path: o + "/clusters/:cluster/tokens", ID: "create-cluster-token", Summary: "Create a cluster token (its value is shown only here)", Tag: "Cluster", Response: apitypes.ClusterToken{}},
	{Method: "GET", Path: o + "/clusters/:cluster/tokens", ID: "list-cluster-tokens", Summary: "List a cluster's tokens", Tag: "Cluster", Response: []apitypes.ClusterToken{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "GET", Path: o + "/clusters/:cluster/tokens/:id", ID: "get-cluster-token", Summary: "Get a cluster token", Tag: "Cluster", Response: apitypes.ClusterToken{}},
	{Method: "DELETE", Path: o + "/clusters/:cluster/tokens/:id", ID: "delete-cluster-token", Summary: "Delete a cluster token", Tag: "Cluster", Response: apitypes.EmptyResponse{}},
	{Method: "GET", Path: o + "/clusters/:cluster/workloads", ID: "list-cluster-workloads", Summary: "List the workloads of a cluster that sandboxes can fork, as its agent last reported them (extension)", Tag: "Cluster", Response: apitypes.WorkloadList{},
		Query: map[string]string{"namespace": "only workloads of this namespace"}},
	{Method: "GET", Path: o + "/clusters/:cluster/devmesh/analyze", ID: "analyze-devmesh", Summary: "Which workloads run the devmesh sidecar (ok) or not (missing), and which Services a fork of each would copy, from the agent's last workload report", Tag: "Cluster", Response: apitypes.DevMeshAnalysis{},
		Query: map[string]string{"namespace": "only workloads of this namespace", "status": "only workloads with this sidecar status: ok or missing"}},
	{Method: "GET", Path: o + "/clusters/:cluster/preview-policy", ID: "get-cluster-preview-policy", Summary: "Get the cluster's preview policy: the namespaces preview endpoints may target (extension)", Tag: "Cluster", Response: apitypes.PreviewPolicy{}},
	{Method: "PUT", Path: o + "/clusters/:cluster/preview-policy", ID: "set-cluster-preview-policy", Summary: "Set the cluster's preview policy; the API server and (unless listed) kube-system, kube-public and kube-node-lease are always refused (extension)", Tag: "Cluster", Request: apitypes.PreviewPolicy{}, Response: apitypes.PreviewPolicy{}},

	{Method: "POST", Path: o + "/apikeys", ID: "create-api-key", Summary: "Create an API key of the org (its value is shown only here)", Tag: "APIKeys", Request: apitypes.CreateAPIKeyRequest{}, Response: apitypes.APIKey{}, Status: 201},
	{Method: "GET", Path: o + "/apikeys", ID: "list-api-keys", Summary: "List the org's API keys", Tag: "APIKeys", Response: []apitypes.APIKey{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "DELETE", Path: o + "/apikeys/:id", ID: "revoke-api-key", Summary: "Revoke an API key", Tag: "APIKeys", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: "/api/v2/auth/oidc/login", ID: "oidc-login", Summary: "Single sign-on: redirects the browser to the OpenID Connect provider (?next=/path to return to); 404 when no provider is configured", Tag: "Auth", Response: apitypes.EmptyResponse{}, Public: true},
	{Method: "GET", Path: "/api/v2/auth/oidc/callback", ID: "oidc-callback", Summary: "Single sign-on: the provider's redirect back; a verified sign-in gets the session cookie and a redirect to next, anything else 401", Tag: "Auth", Response: apitypes.EmptyResponse{}, Public: true},
	{Method: "POST", Path: "/api/v2/auth/login", ID: "login", Summary: "Log in with email and password: sets the HttpOnly session cookie and answers the CSRF token for unsafe requests (429 with Retry-After after too many failures per account or attempts per client)", Tag: "Auth", Request: apitypes.LoginRequest{}, Response: apitypes.AuthInfo{}, Public: true},
	{Method: "POST", Path: "/api/v2/auth/signup", ID: "signup", Summary: "Sign up: create a user and an org the user owns, and log in (403 unless the control plane allows sign-up)", Tag: "Auth", Request: apitypes.SignUpRequest{}, Response: apitypes.AuthInfo{}, Status: 201, Public: true},
	{Method: "POST", Path: "/api/v2/auth/invitations/accept", ID: "accept-invitation", Summary: "Accept an invitation with its token: a new user chooses a password, an existing user gives theirs; logs in", Tag: "Auth", Request: apitypes.AcceptInvitationRequest{}, Response: apitypes.AuthInfo{}, Public: true},
	{Method: "POST", Path: "/api/v2/auth/logout", ID: "logout", Summary: "End this browser session (revoked in the database, not only the cookie)", Tag: "Auth", Response: apitypes.EmptyResponse{}},
	{Method: "POST", Path: "/api/v2/auth/logout-all", ID: "logout-all", Summary: "Sign out everywhere: revoke every session of the user", Tag: "Auth", Response: apitypes.LogoutAllResponse{}},
	{Method: "PUT", Path: "/api/v2/auth/password", ID: "change-password", Summary: "Change the caller's password (the current one proves the account; rate-limited as a login); the user's other sessions are revoked", Tag: "Auth", Request: apitypes.ChangePasswordRequest{}, Response: apitypes.EmptyResponse{}},
	{Method: "GET", Path: "/api/v2/auth/me", ID: "get-me", Summary: "Who the caller is: the user, the orgs with the caller's role, and the session's CSRF token", Tag: "Auth", Response: apitypes.AuthInfo{}},

	{Method: "GET", Path: o + "/members", ID: "list-members", Summary: "List the org's members with their roles, by user ID", Tag: "Members", Response: []apitypes.Member{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/members/:user", ID: "set-member-role", Summary: "Change a member's role (owner, admin, member, viewer); granting or taking away owner needs an owner; the last owner cannot be demoted (409)", Tag: "Members", Request: apitypes.SetRoleRequest{}, Response: apitypes.Member{}},
	{Method: "DELETE", Path: o + "/members/:user", ID: "remove-member", Summary: "Remove a member (their API keys in the org are revoked); the last owner cannot be removed (409)", Tag: "Members", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: o + "/teams", ID: "list-teams", Summary: "List the org's teams", Tag: "Teams", Response: []apitypes.Team{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/teams/:team", ID: "apply-team", Summary: "Create a team or set its concurrent-sandbox quota (0: only the org's applies; at most the org's)", Tag: "Teams", Request: apitypes.PutTeamRequest{}, Response: apitypes.Team{}},
	{Method: "GET", Path: o + "/teams/:team", ID: "get-team", Summary: "Get a team", Tag: "Teams", Response: apitypes.Team{}},
	{Method: "DELETE", Path: o + "/teams/:team", ID: "delete-team", Summary: "Delete a team", Tag: "Teams", Response: apitypes.EmptyResponse{}},
	{Method: "GET", Path: o + "/teams/:team/members", ID: "list-team-members", Summary: "List a team's members", Tag: "Teams", Response: []apitypes.Member{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/teams/:team/members/:user", ID: "add-team-member", Summary: "Add an org member to a team", Tag: "Teams", Response: apitypes.Member{}},
	{Method: "DELETE", Path: o + "/teams/:team/members/:user", ID: "remove-team-member", Summary: "Remove a member from a team", Tag: "Teams", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: o + "/invitations", ID: "list-invitations", Summary: "List the org's invitations (open, accepted, revoked), oldest first", Tag: "Invitations", Response: []apitypes.Invitation{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "POST", Path: o + "/invitations", ID: "create-invitation", Summary: "Invite an email address with a role (its token is shown only here; it expires after 7 days)", Tag: "Invitations", Request: apitypes.CreateInvitationRequest{}, Response: apitypes.Invitation{}, Status: 201},
	{Method: "DELETE", Path: o + "/invitations/:id", ID: "revoke-invitation", Summary: "Revoke an open invitation", Tag: "Invitations", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: o + "/service-accounts", ID: "list-service-accounts", Summary: "List the org's service accounts", Tag: "ServiceAccounts", Response: []apitypes.ServiceAccount{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "POST", Path: o + "/service-accounts", ID: "create-service-account", Summary: "Create a service account with a role (admin, member or viewer)", Tag: "ServiceAccounts", Request: apitypes.CreateServiceAccountRequest{}, Response: apitypes.ServiceAccount{}, Status: 201},
	{Method: "GET", Path: o + "/service-accounts/:name", ID: "get-service-account", Summary: "Get a service account", Tag: "ServiceAccounts", Response: apitypes.ServiceAccount{}},
	{Method: "DELETE", Path: o + "/service-accounts/:name", ID: "delete-service-account", Summary: "Delete a service account and revoke its keys", Tag: "ServiceAccounts", Response: apitypes.EmptyResponse{}},
	{Method: "GET", Path: o + "/service-accounts/:name/keys", ID: "list-service-account-keys", Summary: "List a service account's API keys", Tag: "ServiceAccounts", Response: []apitypes.APIKey{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "POST", Path: o + "/service-accounts/:name/keys", ID: "create-service-account-key", Summary: "Create an API key of a service account (its value is shown only here)", Tag: "ServiceAccounts", Request: apitypes.CreateAPIKeyRequest{}, Response: apitypes.APIKey{}, Status: 201},
	{Method: "DELETE", Path: o + "/service-accounts/:name/keys/:id", ID: "revoke-service-account-key", Summary: "Revoke an API key of a service account", Tag: "ServiceAccounts", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: o + "/api-keys", ID: "list-own-api-keys", Summary: "List the caller's own API keys in the org (they act with the caller's role)", Tag: "APIKeys", Response: []apitypes.APIKey{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "POST", Path: o + "/api-keys", ID: "create-own-api-key", Summary: "Create an API key of the caller (its value is shown only here)", Tag: "APIKeys", Request: apitypes.CreateAPIKeyRequest{}, Response: apitypes.APIKey{}, Status: 201},
	{Method: "DELETE", Path: o + "/api-keys/:id", ID: "revoke-own-api-key", Summary: "Revoke one of the caller's own API keys", Tag: "APIKeys", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: o + "/events", ID: "list-events", Summary: "The org's audit trail: who did what to which object, oldest first (order=newest: newest first)", Tag: "Audit", Response: []apitypes.AuditEvent{}, Query: map[string]string{"action": "only events of this action (an operation ID, e.g. delete-sandbox)", "actor": "only events of this actor (e.g. user:<id>, serviceaccount:<name>)", "order": "oldest (default) or newest first", "limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "GET", Path: o + "/usage", ID: "get-usage", Summary: "The org's sandbox usage in a UTC calendar month per team: sandbox-hours, distinct and peak sandboxes, live sandboxes and quotas. As CSV (team,month,sandbox_hours,sandboxes,quota; a download usage-{org}-{month}.csv) with format=csv or Accept: text/csv", Tag: "Usage", Response: apitypes.Usage{},
		Query: map[string]string{"month": "YYYY-MM (UTC; default: the current month)", "format": "json (default) or csv"}},

	{Method: "GET", Path: adminKeysPath, ID: "list-admin-keys", Summary: "List the admin keys (valid for every org; admin keys only)", Tag: "AdminKeys", Response: []apitypes.APIKey{}},
	{Method: "POST", Path: adminKeysPath, ID: "create-admin-key", Summary: "Create an admin key (its value is shown only here; admin keys only)", Tag: "AdminKeys", Request: apitypes.CreateAPIKeyRequest{}, Response: apitypes.APIKey{}, Status: 201},
	{Method: "DELETE", Path: adminKeysPath + "/:id", ID: "revoke-admin-key", Summary: "Revoke an admin key (409 for the last one; admin keys only)", Tag: "AdminKeys", Response: apitypes.EmptyResponse{}},
	{Method: "POST", Path: adminKeysPath + "/:id/rotate", ID: "rotate-admin-key", Summary: "Replace an admin key by a new one with its name and revoke it, in one step (the new value is shown only here; admin keys only)", Tag: "AdminKeys", Response: apitypes.APIKey{}, Status: 201},

	{Method: "GET", Path: o + "/runnergroups", ID: "list-runnergroup", Summary: "List job runner groups", Tag: "JobRunnerGroups", Response: []apitypes.RunnerGroup{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/runnergroups/:name", ID: "apply-runnergroup", Summary: "Create or update a job runner group (If-Match: \"<version>\" for a conditional update); the cluster's agent makes its runner pods", Tag: "JobRunnerGroups", Request: apitypes.RunnerGroup{}, Response: apitypes.RunnerGroup{}},
	{Method: "GET", Path: o + "/runnergroups/:name", ID: "get-runnergroup", Summary: "Get a job runner group with its status (pods, executions)", Tag: "JobRunnerGroups", Response: apitypes.RunnerGroup{}},
	{Method: "DELETE", Path: o + "/runnergroups/:name", ID: "delete-runnergroup", Summary: "Delete a job runner group (its runner pods go; its runner token stops working)", Tag: "JobRunnerGroups", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: o + "/resource-plugins", ID: "list-resource-plugins", Summary: "List resource plugins (org-wide; every cluster of the org gets them)", Tag: "ResourcePlugins", Response: []apitypes.ResourcePlugin{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/resource-plugins/:name", ID: "apply-resource-plugin", Summary: "Create a resource plugin; the same spec again changes nothing, another spec is refused with 409 (a plugin cannot be changed; apply it under a new name)", Tag: "ResourcePlugins", Request: apitypes.ResourcePlugin{}, Response: apitypes.ResourcePlugin{}},
	{Method: "GET", Path: o + "/resource-plugins/:name", ID: "get-resource-plugin", Summary: "Get a resource plugin with the sandboxes using it", Tag: "ResourcePlugins", Response: apitypes.ResourcePlugin{}},
	{Method: "DELETE", Path: o + "/resource-plugins/:name", ID: "delete-resource-plugin", Summary: "Delete a resource plugin (409 with reason InUse while sandboxes use it)", Tag: "ResourcePlugins", Response: apitypes.EmptyResponse{}},

	{Method: "GET", Path: o + "/tests", ID: "list-tests", Summary: "List smart tests by name", Tag: "SmartTests", Response: []apitypes.SmartTest{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "PUT", Path: o + "/tests/:name", ID: "apply-test", Summary: "Create or update a smart test (If-Match: \"<version>\" for a conditional update); the script is checked (syntax, names) with errors at spec.script giving its line and column", Tag: "SmartTests", Request: apitypes.SmartTest{}, Response: apitypes.SmartTest{}},
	{Method: "GET", Path: o + "/tests/:name", ID: "get-test", Summary: "Get a smart test", Tag: "SmartTests", Response: apitypes.SmartTest{}},
	{Method: "DELETE", Path: o + "/tests/:name", ID: "delete-test", Summary: "Delete a smart test (its executions are kept: GET /tests/executions?test=name)", Tag: "SmartTests", Response: apitypes.EmptyResponse{}},
	{Method: "POST", Path: o + "/tests/:name/executions", ID: "create-test-execution", Summary: "Run a smart test: a job of the test's runner group runs the script against the sandbox (or route group) and twice against the baseline", Tag: "SmartTests", Request: apitypes.TestExecutionSpec{}, Response: apitypes.TestExecution{}},
	{Method: "GET", Path: o + "/tests/:name/executions", ID: "list-test-executions", Summary: "List a smart test's executions, oldest first", Tag: "SmartTests", Response: []apitypes.TestExecution{}, Query: map[string]string{"limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "GET", Path: o + "/tests/:name/executions/:id", ID: "get-test-execution-of-test", Summary: "Get a test execution (Signadot's path; 404 unless it is an execution of this test)", Tag: "SmartTests", Response: apitypes.TestExecution{}, Alias: true},
	{Method: "POST", Path: o + "/tests/:name/executions/:id/cancel", ID: "cancel-test-execution-of-test", Summary: "Cancel a test execution (Signadot's path and method)", Tag: "SmartTests", Response: apitypes.TestExecution{}, Alias: true},
	{Method: "GET", Path: o + "/tests/:name/executions/:id/traffic-diff", ID: "get-test-execution-of-test-traffic-diff", Summary: "The whole traffic diff of a finished execution (Signadot's path)", Tag: "SmartTests", Response: diff.Result{}, Alias: true},
	{Method: "GET", Path: o + "/tests/executions", ID: "list-all-test-executions", Summary: "List the executions of every smart test of the org (also of deleted tests), oldest first", Tag: "SmartTests", Response: []apitypes.TestExecution{},
		Query: map[string]string{"test": "only executions of this test", "sandbox": "only executions against this sandbox", "limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "GET", Path: o + "/tests/executions/:id", ID: "get-test-execution", Summary: "Get a test execution: phase (pending, in_progress, succeeded, failed, canceled), finalState, results (checks of the sandbox and baseline runs, traffic diff summary)", Tag: "SmartTests", Response: apitypes.TestExecution{}},
	{Method: "PUT", Path: o + "/tests/executions/:id/cancel", ID: "cancel-test-execution", Summary: "Cancel a test execution (cancels its job)", Tag: "SmartTests", Response: apitypes.TestExecution{}},
	{Method: "GET", Path: o + "/tests/executions/:id/traffic-diff", ID: "get-test-execution-traffic-diff", Summary: "The whole traffic diff of a finished execution: summary, per capture point the paired captures with their diff ops, unpaired captures, findings (409 before it finishes, 404 when it has none)", Tag: "SmartTests", Response: diff.Result{}},
	{Method: "GET", Path: o + "/tests/executions/:id/traffic-diff-findings", ID: "get-test-execution-traffic-diff-findings", Summary: "The findings (red and yellow differences that the baseline runs do not show as noise) of a finished execution, most relevant first", Tag: "SmartTests", Response: apitypes.TrafficDiffFindings{},
		Query: map[string]string{"category": "red or yellow (default both)", "maxFindings": "at most this many (default all)", "diffContext": "accepted for Signadot clients; ignored"}},

	{Method: "POST", Path: o + "/jobs", ID: "create-job", Summary: "Submit a job (the server names it <namePrefix>-<5 characters>); it waits queued for a runner pod", Tag: "Jobs", Request: apitypes.Job{}, Response: apitypes.Job{}},
	{Method: "GET", Path: o + "/jobs", ID: "list-jobs", Summary: "List jobs, oldest first", Tag: "Jobs", Response: []apitypes.Job{},
		Query: map[string]string{"runnerGroup": "only jobs of this runner group", "targetSandbox": "only jobs whose routing context is this sandbox", "phase": "only jobs in this phase (queued, running, succeeded, failed, canceled)", "limit": "page size (1-500; larger is clamped); the next page's token is in the Sandboxmesh-Continue and Link headers. Without limit and continue: the whole list", "continue": "token of the next page (from Sandboxmesh-Continue)"}},
	{Method: "GET", Path: o + "/jobs/:name", ID: "get-job", Summary: "Get a job with its attempts", Tag: "Jobs", Response: apitypes.Job{}},
	{Method: "DELETE", Path: o + "/jobs/:name", ID: "delete-job", Summary: "Delete a job with its logs and artifacts (a running attempt is stopped)", Tag: "Jobs", Response: apitypes.EmptyResponse{}},
	{Method: "PUT", Path: o + "/jobs/:name/cancel", ID: "cancel-job", Summary: "Cancel a job: a queued one at once, a running one through its runner", Tag: "Jobs", Response: apitypes.Job{}},
	{Method: "GET", Path: o + "/jobs/:name/attempts/:attempt/logs/stream", ID: "stream-job-attempt-logs", Summary: "Stream an attempt's output as Server-Sent Events (text/event-stream): event message with data {message, cursor}, signal with data EOF at the end, error with data {error}", Tag: "Jobs", Response: apitypes.JobLogMessage{},
		Query: map[string]string{"type": "stdout (default) or stderr", "cursor": "resume after the message with this cursor", "tailLines": "start with the last n lines (without cursor)"}},

	{Method: "GET", Path: o + "/artifacts/jobs/:name/attempts/:attempt", ID: "list-job-attempt-artifacts", Summary: "List an attempt's artifacts", Tag: "Artifacts", Response: []apitypes.Artifact{},
		Query: map[string]string{"space": "user (default: the files of spec.uploadArtifact) or system (stdout, stderr)"}},
	{Method: "GET", Path: o + "/artifacts/jobs/:name/attempts/:attempt/objects", ID: "info-job-attempt-artifact", Summary: "Describe an artifact: contentLength, contentType, checksumSHA256, metadata", Tag: "Artifacts", Response: apitypes.Artifact{},
		Query: map[string]string{"path": "the artifact's path", "space": "user (default) or system"}},
	{Method: "GET", Path: o + "/artifacts/jobs/:name/attempts/:attempt/objects/download", ID: "download-job-attempt-artifact", Summary: "Download an artifact's bytes (its Content-Type; Sandboxmesh-Checksum-Sha256 carries the checksum)", Tag: "Artifacts", Response: "",
		Query: map[string]string{"path": "the artifact's path", "space": "user (default) or system"}},

	{Method: "POST", Path: "/api/v2/runner/claim", ID: "runner-claim", Summary: "Runner long poll: claim the oldest queued job of the token's runner group (204: none before wait)", Tag: "Runner", Request: apitypes.RunnerClaim{}, Response: apitypes.RunnerClaimAnswer{}, Runner: true,
		Query: map[string]string{"wait": "how long to wait for a job, e.g. 25s (at most 30s)"}},
	{Method: "POST", Path: "/api/v2/runner/jobs/:name/attempts/:attempt/events", ID: "runner-events", Summary: "Runner heartbeat with output; answers whether to cancel (409: stop, the attempt is not running on this pod)", Tag: "Runner", Request: apitypes.RunnerEvents{}, Response: apitypes.RunnerEventsAnswer{}, Runner: true},
	{Method: "PUT", Path: "/api/v2/runner/jobs/:name/attempts/:attempt/artifacts", ID: "runner-upload-artifact", Summary: "Runner upload of an artifact named in spec.uploadArtifact (raw body, Content-Type kept)", Tag: "Runner", Response: apitypes.Artifact{}, Runner: true,
		Query: map[string]string{"path": "the artifact's path as in spec.uploadArtifact"}},
	{Method: "POST", Path: "/api/v2/runner/jobs/:name/attempts/:attempt/finish", ID: "runner-finish", Summary: "Runner report of the attempt's end (exit code)", Tag: "Runner", Request: apitypes.RunnerFinish{}, Response: apitypes.Job{}, Runner: true},

	{Method: "GET", Path: "/api/v2/agent/state", ID: "agent-state", Summary: "Agent long poll: desired state of the token's cluster (full, then changes after since)", Tag: "Agent", Response: apitypes.AgentState{}, Agent: true,
		Query: map[string]string{"since": "revision of the last answer (0: full state)", "wait": "how long to wait for a change, e.g. 30s"}},
	{Method: "POST", Path: "/api/v2/agent/status", ID: "agent-status", Summary: "Agent status report", Tag: "Agent", Request: apitypes.AgentStatusReport{}, Response: statusAnswer{}, Agent: true},
	{Method: "PUT", Path: "/api/v2/agent/workloads", ID: "agent-workloads", Summary: "Agent report of the cluster's forkable workloads (replaces the previous one)", Tag: "Agent", Request: apitypes.WorkloadReport{}, Response: apitypes.EmptyResponse{}, Agent: true},
	{Method: "POST", Path: "/api/v2/agent/captures", ID: "agent-captures", Summary: "Agent relay of smart-test captures the cluster's devmesh sidecars recorded (kept with their running executions, others dropped)", Tag: "Agent", Request: []diff.Capture{}, Response: smarttests.CaptureIngest{}, Agent: true},
	{Method: "GET", Path: "/api/v2/agent/tunnel", ID: "agent-tunnel", Summary: "Agent preview tunnel: WebSocket carrying a yamux session", Tag: "Agent", Response: apitypes.EmptyResponse{}, Agent: true, Status: 101},
}

var (
	docOnce sync.Once
	docJSON []byte
)

func (s *Server) openAPI(c *gin.Context) {
	docOnce.Do(func() { docJSON, _ = json.MarshalIndent(OpenAPI(), "", "  ") })
	c.Data(http.StatusOK, "application/json", docJSON)
}

// OpenAPIPath converts a gin path to an OpenAPI path.
func OpenAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// OpenAPI builds the OpenAPI 3.1 document of the API.
func OpenAPI() map[string]any {
	g := &schemaGen{defs: map[string]any{}}
	errRef := g.schema(reflect.TypeOf(apitypes.ErrorResponse{}))
	paths := map[string]map[string]any{}
	for _, op := range Operations {
		p := OpenAPIPath(op.Path)
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		var params []any
		for _, seg := range strings.Split(op.Path, "/") {
			if strings.HasPrefix(seg, ":") {
				params = append(params, map[string]any{"name": seg[1:], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
			}
		}
		qs := make([]string, 0, len(op.Query))
		for q := range op.Query {
			qs = append(qs, q)
		}
		sort.Strings(qs)
		for _, q := range qs {
			params = append(params, map[string]any{"name": q, "in": "query", "description": op.Query[q], "schema": map[string]any{"type": "string"}})
		}
		status := op.Status
		if status == 0 {
			status = 200
		}
		errResp := func(d string) map[string]any {
			return map[string]any{"description": d, "content": map[string]any{"application/json": map[string]any{"schema": errRef}}}
		}
		resps := map[string]any{
			itoa(status): map[string]any{"description": "OK", "content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(op.Response))}}},
			"400":        errResp("Bad Request: malformed JSON or invalid fields (see fields[])"),
			"401":        errResp("Unauthorized"),
			"404":        errResp("Not Found"),
			"500":        errResp("Internal Server Error"),
		}
		if !op.Public && !op.Agent && !op.Runner {
			resps["403"] = errResp("Forbidden: the caller's role does not allow the action (x-sandboxmesh-action), or a session's CSRF token is missing")
		}
		if strings.HasPrefix(op.Path, "/api/v2/auth/") && op.Public {
			resps["429"] = errResp("Too many attempts: retry after the Retry-After header's seconds")
		}
		if op.Method == "PUT" {
			resps["409"] = errResp("Conflict: version mismatch (If-Match) or object in use")
			resps["413"] = errResp("Request body too large")
			resps["429"] = errResp("Quota exceeded")
		}
		entry := map[string]any{"operationId": op.ID, "summary": op.Summary, "tags": []string{op.Tag}, "responses": resps}
		if op.Path == orgPath || strings.HasPrefix(op.Path, orgPath+"/") {
			entry["x-sandboxmesh-action"] = string(routeAction(op.Method, op.Path)) // the role check: see identity.Allowed
		}
		if len(params) > 0 {
			entry["parameters"] = params
		}
		if op.Request != nil {
			entry["requestBody"] = map[string]any{"required": true, "content": map[string]any{"application/json": map[string]any{"schema": g.schema(reflect.TypeOf(op.Request))}}}
		}
		switch {
		case op.Public:
			entry["security"] = []any{}
		case op.Agent:
			entry["security"] = []any{map[string]any{"ClusterToken": []string{}}}
		case op.Runner:
			entry["security"] = []any{map[string]any{"RunnerToken": []string{}}}
		}
		paths[p][strings.ToLower(op.Method)] = entry
	}
	// Signadot's deprecated endpoint shapes: accepted (apitypes.SandboxWireRules),
	// added to spec.defaultRouteGroup.endpoints and served as sent.
	for def, item := range map[string]reflect.Type{"v1alpha1.SandboxSpec": reflect.TypeOf(apitypes.HostEndpoint{}), "v1alpha1.Fork": reflect.TypeOf(apitypes.ForkEndpoint{})} {
		if d, ok := g.defs[def].(map[string]any); ok {
			d["properties"].(map[string]any)["endpoints"] = map[string]any{"type": "array", "items": g.schema(item), "deprecated": true,
				"description": "Signadot's deprecated shape; added to spec.defaultRouteGroup.endpoints (see docs/signadot-compat.md)"}
		}
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "SandboxMesh control plane API", "version": "2.0"},
		"paths":   paths,
		"security": []any{
			map[string]any{"ApiKeyAuth": []string{}},
			map[string]any{"SignadotApiKeyAuth": []string{}},
			map[string]any{"SessionCookie": []string{}},
		},
		"components": map[string]any{
			"schemas": g.defs,
			"securitySchemes": map[string]any{
				"ApiKeyAuth":         map[string]any{"type": "apiKey", "in": "header", "name": apitypes.HeaderAPIKey},
				"SignadotApiKeyAuth": map[string]any{"type": "apiKey", "in": "header", "name": apitypes.HeaderSignadotAPIKey},
				"SessionCookie": map[string]any{"type": "apiKey", "in": "cookie", "name": apitypes.SessionCookie,
					"description": "browser session from POST /api/v2/auth/login; unsafe requests also need the session's CSRF token in " + apitypes.HeaderCSRFToken},
				"ClusterToken": map[string]any{"type": "apiKey", "in": "header", "name": apitypes.HeaderClusterToken},
				"RunnerToken": map[string]any{"type": "http", "scheme": "bearer",
					"description": "smr_… runner token of the runner group named by the " + apitypes.HeaderRunnerOrg + " and " + apitypes.HeaderRunnerGroup + " headers; the pod names itself in " + apitypes.HeaderRunnerPod},
			},
		},
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

type schemaGen struct{ defs map[string]any }

var rawMessage = reflect.TypeOf(json.RawMessage{})

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	if t == rawMessage {
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		name := defName(t)
		ref := map[string]any{"$ref": "#/components/schemas/" + name}
		if _, ok := g.defs[name]; ok {
			return ref
		}
		g.defs[name] = map[string]any{} // break cycles
		props := map[string]any{}
		var required []string
		g.fields(t, props, &required)
		def := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			sort.Strings(required)
			def["required"] = required
		}
		g.defs[name] = def
		return ref
	}
	return map[string]any{}
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			g.fields(ft, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}

func defName(t reflect.Type) string {
	pkg := t.PkgPath()
	if i := strings.LastIndex(pkg, "/"); i >= 0 {
		pkg = pkg[i+1:]
	}
	return pkg + "." + t.Name()
}
