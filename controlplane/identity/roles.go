package identity

import (
	"fmt"
	"slices"
)

// Role is a principal's role in an org.
type Role string

// Roles, from the most to the least powerful.
const (
	RoleOwner  Role = "owner"
	RoleAdmin  Role = "admin"
	RoleMember Role = "member"
	RoleViewer Role = "viewer"
)

// Roles lists the roles, most powerful first.
var Roles = []Role{RoleOwner, RoleAdmin, RoleMember, RoleViewer}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	if slices.Contains(Roles, Role(s)) {
		return Role(s), nil
	}
	return "", fmt.Errorf("unknown role %q (want owner, admin, member or viewer)", s)
}

// Action is something a principal does in an org; Allowed decides who may.
type Action string

// Actions. "sandbox" covers the org's workloads on its clusters: sandboxes,
// route groups, jobs and smart tests; "cluster" what configures the
// clusters: clusters, their tokens and preview policies, runner groups and
// resource plugins.
const (
	ActionOrgRead       Action = "org.read"
	ActionSandboxRead   Action = "sandbox.read"
	ActionSandboxWrite  Action = "sandbox.write"
	ActionSandboxDelete Action = "sandbox.delete"
	ActionClusterRead   Action = "cluster.read"
	ActionClusterWrite  Action = "cluster.write"
	ActionMemberRead    Action = "member.read"
	// ActionMemberManage: members' roles (except owner), teams, invitations.
	ActionMemberManage Action = "member.manage"
	// ActionOwnerManage: grant or take away the owner role.
	ActionOwnerManage Action = "owner.manage"
	// ActionAPIKeyOwn: manage one's own API keys (which act with one's role).
	ActionAPIKeyOwn Action = "apikey.own"
	// ActionAPIKeyManage: the org's keys of anyone, and service accounts.
	ActionAPIKeyManage Action = "apikey.manage"
	ActionAuditRead    Action = "audit.read"
	// ActionUsageRead: the org's sandbox usage per team and month (sandbox-hours, CSV).
	ActionUsageRead Action = "usage.read"
)

// permissions is the table Allowed reads: what each role may do. A role
// may do everything the roles below it may.
var permissions = map[Role][]Action{
	RoleViewer: {ActionOrgRead, ActionSandboxRead, ActionClusterRead, ActionMemberRead, ActionAPIKeyOwn},
	RoleMember: {ActionSandboxWrite, ActionSandboxDelete, ActionUsageRead},
	RoleAdmin:  {ActionClusterWrite, ActionMemberManage, ActionAPIKeyManage, ActionAuditRead},
	RoleOwner:  {ActionOwnerManage},
}

// Actions lists every action, in the table's order.
func Actions() []Action {
	var out []Action
	for i := len(Roles) - 1; i >= 0; i-- {
		out = append(out, permissions[Roles[i]]...)
	}
	return out
}

// Allowed reports whether role may do action. It is the one role check:
// the REST API and the portal's pages both ask it.
func Allowed(role Role, action Action) bool {
	i := slices.Index(Roles, role)
	if i < 0 {
		return false
	}
	for _, r := range Roles[i:] {
		if slices.Contains(permissions[r], action) {
			return true
		}
	}
	return false
}
