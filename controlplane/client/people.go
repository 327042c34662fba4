package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
)

// People and access: who the caller is, members, teams, invitations,
// service accounts, the caller's own keys and the audit trail
// (docs/controlplane.md#people-and-access). Logout and LogoutAll end
// browser sessions: they need a client made with the session's cookie and
// CSRF token (WithHeader("Cookie", …), WithHeader(apitypes.HeaderCSRFToken, …)).

// GetMe says who the caller is: the user (if any), its orgs and roles.
func (c *Client) GetMe(ctx context.Context) (*AuthInfo, error) {
	var out AuthInfo
	if err := c.do(ctx, http.MethodGet, "/api/v2/auth/me", nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Logout ends the browser session the client carries.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/api/v2/auth/logout", nil, nil, nil)
}

// LogoutAll ends every session of the session's user and returns how many.
func (c *Client) LogoutAll(ctx context.Context) (int64, error) {
	var out apitypes.LogoutAllResponse
	if err := c.do(ctx, http.MethodPost, "/api/v2/auth/logout-all", nil, nil, &out); err != nil {
		return 0, err
	}
	return out.Revoked, nil
}

// ChangePassword changes the password of the caller (a user's session or
// key); the user's other sessions are revoked.
func (c *Client) ChangePassword(ctx context.Context, current, next string) error {
	return c.do(ctx, http.MethodPut, "/api/v2/auth/password", nil, apitypes.ChangePasswordRequest{CurrentPassword: current, NewPassword: next}, nil)
}

// ListMembers lists an org's members with their roles.
func (c *Client) ListMembers(ctx context.Context, org string) ([]Member, error) {
	return listAll[Member](ctx, c, orgPath(org, "members"), nil)
}

// SetMemberRole changes a member's role (owner, admin, member, viewer).
func (c *Client) SetMemberRole(ctx context.Context, org, userID, role string) (*Member, error) {
	var out Member
	if err := c.do(ctx, http.MethodPut, orgPath(org, "members", userID), nil, apitypes.SetRoleRequest{Role: role}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveMember removes a member from an org (their keys in it are revoked).
func (c *Client) RemoveMember(ctx context.Context, org, userID string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "members", userID), nil, nil, nil)
}

// ListTeams lists an org's teams.
func (c *Client) ListTeams(ctx context.Context, org string) ([]Team, error) {
	return listAll[Team](ctx, c, orgPath(org, "teams"), nil)
}

// ApplyTeam creates a team or sets its concurrent-sandbox quota (0: only the org's).
func (c *Client) ApplyTeam(ctx context.Context, org, team string, maxSandboxes int64) (*Team, error) {
	var out Team
	if err := c.do(ctx, http.MethodPut, orgPath(org, "teams", team), nil, apitypes.PutTeamRequest{MaxSandboxes: maxSandboxes}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetTeam returns a team.
func (c *Client) GetTeam(ctx context.Context, org, team string) (*Team, error) {
	var out Team
	if err := c.do(ctx, http.MethodGet, orgPath(org, "teams", team), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteTeam deletes a team.
func (c *Client) DeleteTeam(ctx context.Context, org, team string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "teams", team), nil, nil, nil)
}

// GetUsage returns an org's sandbox usage per team in month (YYYY-MM, UTC;
// "" for the current month).
func (c *Client) GetUsage(ctx context.Context, org, month string) (*Usage, error) {
	var q url.Values
	if month != "" {
		q = url.Values{"month": {month}}
	}
	var out Usage
	if err := c.do(ctx, http.MethodGet, orgPath(org, "usage"), q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListTeamMembers lists a team's members.
func (c *Client) ListTeamMembers(ctx context.Context, org, team string) ([]Member, error) {
	return listAll[Member](ctx, c, orgPath(org, "teams", team, "members"), nil)
}

// AddTeamMember adds an org member to a team.
func (c *Client) AddTeamMember(ctx context.Context, org, team, userID string) (*Member, error) {
	var out Member
	if err := c.do(ctx, http.MethodPut, orgPath(org, "teams", team, "members", userID), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RemoveTeamMember removes a member from a team.
func (c *Client) RemoveTeamMember(ctx context.Context, org, team, userID string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "teams", team, "members", userID), nil, nil, nil)
}

// ListInvitations lists an org's invitations, oldest first.
func (c *Client) ListInvitations(ctx context.Context, org string) ([]Invitation, error) {
	return listAll[Invitation](ctx, c, orgPath(org, "invitations"), nil)
}

// CreateInvitation invites email with role; the answer's Token is shown only here.
func (c *Client) CreateInvitation(ctx context.Context, org, email, role string) (*Invitation, error) {
	var out Invitation
	if err := c.do(ctx, http.MethodPost, orgPath(org, "invitations"), nil, apitypes.CreateInvitationRequest{Email: email, Role: role}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeInvitation revokes an open invitation.
func (c *Client) RevokeInvitation(ctx context.Context, org, id string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "invitations", id), nil, nil, nil)
}

// ListServiceAccounts lists an org's service accounts.
func (c *Client) ListServiceAccounts(ctx context.Context, org string) ([]ServiceAccount, error) {
	return listAll[ServiceAccount](ctx, c, orgPath(org, "service-accounts"), nil)
}

// CreateServiceAccount creates a service account (role admin, member or viewer; empty: member).
func (c *Client) CreateServiceAccount(ctx context.Context, org, name, description, role string) (*ServiceAccount, error) {
	var out ServiceAccount
	req := apitypes.CreateServiceAccountRequest{Name: name, Description: description, Role: role}
	if err := c.do(ctx, http.MethodPost, orgPath(org, "service-accounts"), nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetServiceAccount returns a service account.
func (c *Client) GetServiceAccount(ctx context.Context, org, name string) (*ServiceAccount, error) {
	var out ServiceAccount
	if err := c.do(ctx, http.MethodGet, orgPath(org, "service-accounts", name), nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteServiceAccount deletes a service account and revokes its keys.
func (c *Client) DeleteServiceAccount(ctx context.Context, org, name string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "service-accounts", name), nil, nil, nil)
}

// ListServiceAccountKeys lists a service account's API keys.
func (c *Client) ListServiceAccountKeys(ctx context.Context, org, name string) ([]APIKey, error) {
	return listAll[APIKey](ctx, c, orgPath(org, "service-accounts", name, "keys"), nil)
}

// CreateServiceAccountKey creates an API key of a service account (Key is shown only here).
func (c *Client) CreateServiceAccountKey(ctx context.Context, org, account, name string) (*APIKey, error) {
	var out APIKey
	if err := c.do(ctx, http.MethodPost, orgPath(org, "service-accounts", account, "keys"), nil, apitypes.CreateAPIKeyRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeServiceAccountKey revokes an API key of a service account.
func (c *Client) RevokeServiceAccountKey(ctx context.Context, org, account, id string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "service-accounts", account, "keys", id), nil, nil, nil)
}

// ListOwnAPIKeys lists the caller's own API keys in an org (the caller must be a user).
func (c *Client) ListOwnAPIKeys(ctx context.Context, org string) ([]APIKey, error) {
	return listAll[APIKey](ctx, c, orgPath(org, "api-keys"), nil)
}

// CreateOwnAPIKey creates an API key of the caller, acting with the caller's role (Key is shown only here).
func (c *Client) CreateOwnAPIKey(ctx context.Context, org, name string) (*APIKey, error) {
	var out APIKey
	if err := c.do(ctx, http.MethodPost, orgPath(org, "api-keys"), nil, apitypes.CreateAPIKeyRequest{Name: name}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RevokeOwnAPIKey revokes one of the caller's own API keys.
func (c *Client) RevokeOwnAPIKey(ctx context.Context, org, id string) error {
	return c.do(ctx, http.MethodDelete, orgPath(org, "api-keys", id), nil, nil, nil)
}

// ListEvents reads an org's whole audit trail, oldest first.
func (c *Client) ListEvents(ctx context.Context, org string) ([]AuditEvent, error) {
	return listAll[AuditEvent](ctx, c, orgPath(org, "events"), nil)
}

// ListEventsPage reads one page of an org's audit trail.
func (c *Client) ListEventsPage(ctx context.Context, org string, p PageOptions) (*Page[AuditEvent], error) {
	return listPage[AuditEvent](ctx, c, orgPath(org, "events"), nil, p)
}
