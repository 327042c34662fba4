package apitypes

// People and access: users, sessions, org members, teams, invitations,
// service accounts and audit events (docs/controlplane.md#people-and-access).

// HeaderCSRFToken carries the anti-CSRF token of a browser session on
// unsafe requests authenticated by the session cookie.
const HeaderCSRFToken = "X-CSRF-Token"

// SessionCookie is the name of the browser session cookie.
const SessionCookie = "sandboxmesh_session"

// User is a person.
type User struct {
	ID          string `json:"id"`
	Email       string `json:"email"`
	DisplayName string `json:"displayName,omitempty"`
	CreatedAt   string `json:"createdAt,omitempty"`
}

// OrgRole is an org and the caller's role in it.
type OrgRole struct {
	Org  string `json:"org"`
	Role string `json:"role"`
}

// AuthInfo is the answer of login, sign-up, accepting an invitation and GET
// /auth/me: who the caller is, their orgs, and (for sessions) the CSRF
// token to send in X-CSRF-Token with unsafe requests.
type AuthInfo struct {
	// User is empty for API keys that belong to no user.
	User *User `json:"user,omitempty"`
	// Orgs lists the orgs the caller has a role in.
	Orgs []OrgRole `json:"orgs"`
	// CSRFToken is set for browser sessions.
	CSRFToken string `json:"csrfToken,omitempty"`
	// ExpiresAt is when the session ends at the latest.
	ExpiresAt string `json:"expiresAt,omitempty"`
	// ServiceAccount names the service account of a service account's key.
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

// LoginRequest logs in with an email and password.
type LoginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// SignUpRequest creates a user and an org the user owns.
type SignUpRequest struct {
	Email       string `json:"email"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName,omitempty"`
	Org         string `json:"org"`
}

// AcceptInvitationRequest accepts an invitation: a new user chooses a
// password (and display name); an existing user gives its password.
type AcceptInvitationRequest struct {
	Token       string `json:"token"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName,omitempty"`
}

// ChangePasswordRequest sets a new password; the current one proves the
// account.
type ChangePasswordRequest struct {
	CurrentPassword string `json:"currentPassword"`
	NewPassword     string `json:"newPassword"`
}

// LogoutAllResponse says how many sessions "sign out everywhere" ended.
type LogoutAllResponse struct {
	Revoked int64 `json:"revoked"`
}

// Member is a user's role in an org.
type Member struct {
	UserID      string `json:"userId"`
	Email       string `json:"email"`
	DisplayName string `json:"displayName,omitempty"`
	Role        string `json:"role"`
	CreatedAt   string `json:"createdAt,omitempty"`
}

// SetRoleRequest changes a member's role.
type SetRoleRequest struct {
	// Role is owner, admin, member or viewer.
	Role string `json:"role"`
}

// Team is a group of an org's members with its own concurrent-sandbox quota.
type Team struct {
	Name string `json:"name"`
	// MaxSandboxes is the team's quota (0: only the org's applies).
	MaxSandboxes int64  `json:"maxSandboxes"`
	CreatedAt    string `json:"createdAt,omitempty"`
}

// PutTeamRequest creates a team or sets its quota.
type PutTeamRequest struct {
	MaxSandboxes int64 `json:"maxSandboxes"`
}

// Invitation invites an email address into an org; Token is only set in
// the creation response.
type Invitation struct {
	ID         string `json:"id"`
	Email      string `json:"email"`
	Role       string `json:"role"`
	InvitedBy  string `json:"invitedBy,omitempty"`
	CreatedAt  string `json:"createdAt,omitempty"`
	ExpiresAt  string `json:"expiresAt,omitempty"`
	AcceptedAt string `json:"acceptedAt,omitempty"`
	AcceptedBy string `json:"acceptedBy,omitempty"`
	RevokedAt  string `json:"revokedAt,omitempty"`
	Token      string `json:"token,omitempty"`
}

// CreateInvitationRequest invites an email address with a role.
type CreateInvitationRequest struct {
	Email string `json:"email"`
	// Role is owner, admin, member or viewer (default member).
	Role string `json:"role,omitempty"`
}

// ServiceAccount owns API keys that belong to no person.
type ServiceAccount struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Role is admin, member or viewer.
	Role      string `json:"role"`
	CreatedAt string `json:"createdAt,omitempty"`
}

// CreateServiceAccountRequest creates a service account.
type CreateServiceAccountRequest struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Role is admin, member or viewer (default member).
	Role string `json:"role,omitempty"`
}

// AuditEvent is one entry of an org's audit trail.
type AuditEvent struct {
	ID string `json:"id"`
	// Actor is user:<id>, apikey:<id>, adminkey:<id> or serviceaccount:<name> (key <id>).
	Actor string `json:"actor"`
	// Action is the API operation (its OpenAPI operation ID, e.g. delete-sandbox).
	Action     string `json:"action"`
	ObjectKind string `json:"objectKind,omitempty"`
	ObjectName string `json:"objectName,omitempty"`
	Details    string `json:"details,omitempty"`
	CreatedAt  string `json:"createdAt"`
}
