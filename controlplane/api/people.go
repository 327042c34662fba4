package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Thin handlers of people and access: sessions (login, logout, sign-up,
// invitations accepted), members, teams, invitations, service accounts and
// their keys, users' own API keys and the audit trail. controlplane/identity
// holds the rules; orgAccess authorises every org route with
// identity.Allowed and records the audit trail.

// orgPath is the gin path of an org.
const orgPath = "/api/v2/orgs/:org"

// routeAction is the action an org route needs (identity.Allowed decides
// which roles may do it). It panics for a route it does not know, so that
// a new route cannot be registered without a role check.
func routeAction(method, path string) identity.Action {
	rest := strings.TrimPrefix(strings.TrimPrefix(path, orgPath), "/")
	coll, _, _ := strings.Cut(rest, "/")
	read := method == http.MethodGet || method == http.MethodHead
	pick := func(r, w identity.Action) identity.Action {
		if read {
			return r
		}
		return w
	}
	switch coll {
	case "":
		return pick(identity.ActionOrgRead, identity.ActionOwnerManage)
	case "quota":
		return pick(identity.ActionOrgRead, identity.ActionOwnerManage) // and admin keys only (putQuota)
	case "sandboxes", "routegroups", "jobs", "tests", "artifacts":
		switch {
		case read || strings.HasSuffix(path, "/preview-link"): // a link to look at a preview is a read
			return identity.ActionSandboxRead
		case method == http.MethodDelete:
			return identity.ActionSandboxDelete
		}
		return identity.ActionSandboxWrite
	case "clusters", "runnergroups", "resource-plugins":
		return pick(identity.ActionClusterRead, identity.ActionClusterWrite)
	case "apikeys", "service-accounts":
		return identity.ActionAPIKeyManage
	case "api-keys":
		return identity.ActionAPIKeyOwn
	case "members", "teams":
		return pick(identity.ActionMemberRead, identity.ActionMemberManage)
	case "invitations":
		return identity.ActionMemberManage
	case "events":
		return identity.ActionAuditRead
	case "usage":
		return identity.ActionUsageRead
	}
	panic(fmt.Sprintf("api: org route %s %s has no action: add it to routeAction", method, path))
}

func (s *Server) registerPeople(o string) {
	user := s.authUser
	a := "/api/v2/auth"
	s.handle(http.MethodPost, a+"/login", s.sameSiteOnly, s.login)
	s.handle(http.MethodGet, a+"/oidc/login", s.oidcLogin)
	s.handle(http.MethodGet, a+"/oidc/callback", s.oidcCallback)
	s.handle(http.MethodPost, a+"/signup", s.sameSiteOnly, s.signUp)
	s.handle(http.MethodPost, a+"/invitations/accept", s.sameSiteOnly, s.acceptInvitation)
	s.handle(http.MethodPost, a+"/logout", user, s.logout)
	s.handle(http.MethodPost, a+"/logout-all", user, s.logoutAll)
	s.handle(http.MethodGet, a+"/me", user, s.me)
	s.handle(http.MethodPut, a+"/password", user, s.changePassword)

	s.handle(http.MethodGet, o+"/members", user, s.orgAccess, s.listMembers)
	s.handle(http.MethodPut, o+"/members/:user", user, s.orgAccess, s.setMemberRole)
	s.handle(http.MethodDelete, o+"/members/:user", user, s.orgAccess, s.removeMember)

	s.handle(http.MethodGet, o+"/teams", user, s.orgAccess, s.listTeams)
	s.handle(http.MethodPut, o+"/teams/:team", user, s.orgAccess, s.putTeam)
	s.handle(http.MethodGet, o+"/teams/:team", user, s.orgAccess, s.getTeam)
	s.handle(http.MethodDelete, o+"/teams/:team", user, s.orgAccess, s.deleteTeam)
	s.handle(http.MethodGet, o+"/teams/:team/members", user, s.orgAccess, s.listTeamMembers)
	s.handle(http.MethodPut, o+"/teams/:team/members/:user", user, s.orgAccess, s.addTeamMember)
	s.handle(http.MethodDelete, o+"/teams/:team/members/:user", user, s.orgAccess, s.removeTeamMember)

	s.handle(http.MethodGet, o+"/invitations", user, s.orgAccess, s.listInvitations)
	s.handle(http.MethodPost, o+"/invitations", user, s.orgAccess, s.createInvitation)
	s.handle(http.MethodDelete, o+"/invitations/:id", user, s.orgAccess, s.revokeInvitation)

	sa := o + "/service-accounts"
	s.handle(http.MethodGet, sa, user, s.orgAccess, s.listServiceAccounts)
	s.handle(http.MethodPost, sa, user, s.orgAccess, s.createServiceAccount)
	s.handle(http.MethodGet, sa+"/:name", user, s.orgAccess, s.getServiceAccount)
	s.handle(http.MethodDelete, sa+"/:name", user, s.orgAccess, s.deleteServiceAccount)
	s.handle(http.MethodGet, sa+"/:name/keys", user, s.orgAccess, s.listServiceAccountKeys)
	s.handle(http.MethodPost, sa+"/:name/keys", user, s.orgAccess, s.createServiceAccountKey)
	s.handle(http.MethodDelete, sa+"/:name/keys/:id", user, s.orgAccess, s.revokeServiceAccountKey)

	s.handle(http.MethodGet, o+"/api-keys", user, s.orgAccess, s.listOwnAPIKeys)
	s.handle(http.MethodPost, o+"/api-keys", user, s.orgAccess, s.createOwnAPIKey)
	s.handle(http.MethodDelete, o+"/api-keys/:id", user, s.orgAccess, s.revokeOwnAPIKey)

	s.handle(http.MethodGet, o+"/events", user, s.orgAccess, s.listEvents)
}

// failIdentity maps the identity service's errors to HTTP answers (the
// rest as failErr).
func (s *Server) failIdentity(c *gin.Context, what string, err error) {
	var ve *identity.ValidationError
	var rl *identity.RateLimitedError
	switch {
	case errors.As(err, &ve):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, ve.Error(), ve.Fields...)
	case errors.As(err, &rl):
		c.Header("Retry-After", strconv.Itoa(rl.RetrySeconds()))
		s.fail(c, http.StatusTooManyRequests, apitypes.ReasonRateLimited, rl.Error())
	case errors.Is(err, identity.ErrInvalidCredentials), errors.Is(err, identity.ErrNoSession):
		s.clearSessionCookie(c)
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, err.Error())
	case errors.Is(err, identity.ErrNoAccess):
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, what+" not found")
	case errors.Is(err, identity.ErrForbidden):
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, trimWrap(err)+": ask an owner or admin of the org")
	case errors.Is(err, identity.ErrSignupDisabled):
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, err.Error())
	case errors.Is(err, identity.ErrInvitation):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, err.Error()+"; ask for a new invitation", apitypes.FieldError{Path: "token", Message: err.Error()})
	case errors.Is(err, store.ErrLastOwner):
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, trimWrap(err)+": the org needs an owner; make another member owner first")
	default:
		s.failErr(c, what, err)
	}
}

// ---- sessions ----

// setSessionCookie sends the session cookie: HttpOnly, SameSite=Lax, host
// only (so preview subdomains never see it), Secure over TLS or with
// Config.SecureCookies.
func (s *Server) setSessionCookie(c *gin.Context, ns identity.NewSession) {
	http.SetCookie(c.Writer, &http.Cookie{Name: apitypes.SessionCookie, Value: ns.Token, Path: "/", Expires: ns.ExpiresAt,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Request.TLS != nil || s.cfg.SecureCookies})
}

func (s *Server) clearSessionCookie(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: apitypes.SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Request.TLS != nil || s.cfg.SecureCookies})
}

// authInfo is the answer of login and GET /auth/me.
func (s *Server) authInfo(c *gin.Context, p Principal, expires time.Time) (apitypes.AuthInfo, bool) {
	ctx := c.Request.Context()
	out := apitypes.AuthInfo{Orgs: []apitypes.OrgRole{}, ServiceAccount: p.ServiceAccount, ExpiresAt: ts(expires)}
	switch {
	case p.UserID != "":
		u, err := s.st.GetUser(ctx, p.UserID)
		if err != nil {
			s.failErr(c, "user", err)
			return out, false
		}
		out.User = &apitypes.User{ID: u.ID, Email: u.Email, DisplayName: u.DisplayName, CreatedAt: ts(u.CreatedAt)}
		ms, err := s.st.ListMemberships(ctx, p.UserID)
		if err != nil {
			s.failErr(c, "memberships", err)
			return out, false
		}
		for _, m := range ms {
			if p.KeyID == "" || m.Org == p.Org {
				out.Orgs = append(out.Orgs, apitypes.OrgRole{Org: m.Org, Role: m.Role})
			}
		}
	case p.Org != "":
		if r, err := s.ids.RoleIn(ctx, p, p.Org); err == nil {
			out.Orgs = append(out.Orgs, apitypes.OrgRole{Org: p.Org, Role: string(r)})
		}
	}
	if p.Session() {
		tok, err := s.ids.CSRFToken(ctx, p.SessionHash)
		if err != nil {
			s.failErr(c, "csrf token", err)
			return out, false
		}
		out.CSRFToken = tok
	}
	return out, true
}

// startedSession answers a request that started a session.
func (s *Server) startedSession(c *gin.Context, code int, userID string, ns identity.NewSession) {
	s.setSessionCookie(c, ns)
	if info, ok := s.authInfo(c, Principal{UserID: userID, SessionHash: ns.Hash}, ns.ExpiresAt); ok {
		c.JSON(code, info)
	}
}

func (s *Server) login(c *gin.Context) {
	var req apitypes.LoginRequest
	if !s.decode(c, &req) {
		return
	}
	u, ns, err := s.ids.Login(c.Request.Context(), req.Email, req.Password, c.ClientIP())
	if err != nil {
		s.failIdentity(c, "login", err)
		return
	}
	s.startedSession(c, http.StatusOK, u.ID, ns)
}

func (s *Server) signUp(c *gin.Context) {
	var req apitypes.SignUpRequest
	if !s.decode(c, &req) {
		return
	}
	u, ns, err := s.ids.SignUp(c.Request.Context(), identity.SignUpRequest(req), c.ClientIP())
	if errors.Is(err, store.ErrAlreadyExists) {
		// Which one is taken: the org is public knowledge to whoever tries its
		// name, and an email being registered is what sign-up forms tell too.
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, "the org name or the email is taken: choose another org name, or log in")
		return
	}
	if err != nil {
		s.failIdentity(c, "sign-up", err)
		return
	}
	s.startedSession(c, http.StatusCreated, u.ID, ns)
}

func (s *Server) acceptInvitation(c *gin.Context) {
	var req apitypes.AcceptInvitationRequest
	if !s.decode(c, &req) {
		return
	}
	u, _, ns, err := s.ids.AcceptInvitation(c.Request.Context(), identity.AcceptRequest(req), c.ClientIP())
	if errors.Is(err, store.ErrAlreadyExists) {
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, "you are a member of this org already")
		return
	}
	if err != nil {
		s.failIdentity(c, "invitation", err)
		return
	}
	s.startedSession(c, http.StatusOK, u.ID, ns)
}

// sessionOnly answers 400 to API keys on the routes of browser sessions.
func (s *Server) sessionOnly(c *gin.Context) (Principal, bool) {
	p := principal(c)
	if !p.Session() {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "this route ends browser sessions; an API key is revoked with DELETE /api/v2/orgs/{org}/api-keys/{id}")
		return p, false
	}
	return p, true
}

func (s *Server) logout(c *gin.Context) {
	p, ok := s.sessionOnly(c)
	if !ok {
		return
	}
	if err := s.ids.Logout(c.Request.Context(), p.SessionHash); err != nil {
		s.failErr(c, "session", err)
		return
	}
	s.clearSessionCookie(c)
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

func (s *Server) logoutAll(c *gin.Context) {
	p, ok := s.sessionOnly(c)
	if !ok {
		return
	}
	n, err := s.ids.LogoutAll(c.Request.Context(), p.UserID)
	if err != nil {
		s.failErr(c, "sessions", err)
		return
	}
	s.clearSessionCookie(c)
	c.JSON(http.StatusOK, apitypes.LogoutAllResponse{Revoked: n})
}

func (s *Server) changePassword(c *gin.Context) {
	var req apitypes.ChangePasswordRequest
	if !s.decode(c, &req) {
		return
	}
	err := s.ids.ChangePassword(c.Request.Context(), principal(c), req.CurrentPassword, req.NewPassword, c.ClientIP())
	if errors.Is(err, identity.ErrInvalidCredentials) { // not a failed session: stay logged in
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "the current password is wrong", apitypes.FieldError{Path: "currentPassword", Message: "wrong password"})
		return
	}
	if err != nil {
		s.failIdentity(c, "password", err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

func (s *Server) me(c *gin.Context) {
	if info, ok := s.authInfo(c, principal(c), time.Time{}); ok {
		c.JSON(http.StatusOK, info)
	}
}

// ---- members ----

func memberView(m store.Member) apitypes.Member {
	return apitypes.Member{UserID: m.UserID, Email: m.Email, DisplayName: m.DisplayName, Role: m.Role, CreatedAt: ts(m.CreatedAt)}
}

func (s *Server) listMembers(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "members", func(p store.PageRequest) (store.Page[store.Member], error) { return s.st.ListMembers(ctx, org, p) }, memberView)
}

func (s *Server) setMemberRole(c *gin.Context) {
	var req apitypes.SetRoleRequest
	if !s.decode(c, &req) {
		return
	}
	ctx, org, uid := c.Request.Context(), c.Param("org"), c.Param("user")
	if err := s.ids.SetRole(ctx, principal(c), org, uid, identity.Role(req.Role)); err != nil {
		s.failIdentity(c, fmt.Sprintf("member %q", uid), err)
		return
	}
	m, err := s.st.GetMember(ctx, org, uid)
	if err != nil {
		s.failErr(c, fmt.Sprintf("member %q", uid), err)
		return
	}
	c.JSON(http.StatusOK, memberView(m))
}

func (s *Server) removeMember(c *gin.Context) {
	uid := c.Param("user")
	if err := s.ids.RemoveMember(c.Request.Context(), principal(c), c.Param("org"), uid); err != nil {
		s.failIdentity(c, fmt.Sprintf("member %q", uid), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// ---- teams ----

func teamView(t store.Team) apitypes.Team {
	return apitypes.Team{Name: t.Name, MaxSandboxes: t.MaxSandboxes, CreatedAt: ts(t.CreatedAt)}
}

func (s *Server) listTeams(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "teams", func(p store.PageRequest) (store.Page[store.Team], error) { return s.st.ListTeams(ctx, org, p) }, teamView)
}

func (s *Server) putTeam(c *gin.Context) {
	name, ok := s.validDNS(c, "team", "team")
	if !ok {
		return
	}
	var req apitypes.PutTeamRequest
	if !s.decode(c, &req) {
		return
	}
	t, created, err := s.ids.PutTeam(c.Request.Context(), c.Param("org"), name, req.MaxSandboxes)
	if err != nil {
		s.failIdentity(c, fmt.Sprintf("team %q", name), err)
		return
	}
	if created {
		c.Header(apitypes.HeaderCreated, "true")
	}
	c.JSON(http.StatusOK, teamView(t))
}

func (s *Server) getTeam(c *gin.Context) {
	t, err := s.st.GetTeam(c.Request.Context(), c.Param("org"), c.Param("team"))
	if err != nil {
		s.failErr(c, fmt.Sprintf("team %q", c.Param("team")), err)
		return
	}
	c.JSON(http.StatusOK, teamView(t))
}

func (s *Server) deleteTeam(c *gin.Context) {
	if err := s.st.DeleteTeam(c.Request.Context(), c.Param("org"), c.Param("team")); err != nil {
		s.failErr(c, fmt.Sprintf("team %q", c.Param("team")), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

func (s *Server) listTeamMembers(c *gin.Context) {
	ctx, org, team := c.Request.Context(), c.Param("org"), c.Param("team")
	if _, err := s.st.GetTeam(ctx, org, team); err != nil {
		s.failErr(c, fmt.Sprintf("team %q", team), err)
		return
	}
	writeList(s, c, "team members", func(p store.PageRequest) (store.Page[store.Member], error) {
		return s.st.ListTeamMembers(ctx, org, team, p)
	}, memberView)
}

func (s *Server) addTeamMember(c *gin.Context) {
	ctx, org, team, uid := c.Request.Context(), c.Param("org"), c.Param("team"), c.Param("user")
	if err := s.st.AddTeamMember(ctx, org, team, uid); err != nil {
		s.failErr(c, fmt.Sprintf("team %q or org member %q", team, uid), err)
		return
	}
	m, err := s.st.GetMember(ctx, org, uid)
	if err != nil {
		s.failErr(c, fmt.Sprintf("member %q", uid), err)
		return
	}
	c.JSON(http.StatusOK, memberView(m))
}

func (s *Server) removeTeamMember(c *gin.Context) {
	if err := s.st.RemoveTeamMember(c.Request.Context(), c.Param("org"), c.Param("team"), c.Param("user")); err != nil {
		s.failErr(c, fmt.Sprintf("member %q of team %q", c.Param("user"), c.Param("team")), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// ---- invitations ----

func invitationView(i store.Invitation) apitypes.Invitation {
	return apitypes.Invitation{ID: i.ID, Email: i.Email, Role: i.Role, InvitedBy: i.InvitedBy, CreatedAt: ts(i.CreatedAt), ExpiresAt: ts(i.ExpiresAt),
		AcceptedAt: ts(i.AcceptedAt), AcceptedBy: i.AcceptedBy, RevokedAt: ts(i.RevokedAt)}
}

func (s *Server) listInvitations(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "invitations", func(p store.PageRequest) (store.Page[store.Invitation], error) {
		return s.st.ListInvitations(ctx, org, p)
	}, invitationView)
}

func (s *Server) createInvitation(c *gin.Context) {
	var req apitypes.CreateInvitationRequest
	if !s.decode(c, &req) {
		return
	}
	if req.Role == "" {
		req.Role = string(identity.RoleMember)
	}
	inv, tok, err := s.ids.Invite(c.Request.Context(), principal(c), c.Param("org"), req.Email, identity.Role(req.Role))
	if errors.Is(err, store.ErrAlreadyExists) {
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, trimWrap(err)+"; change the member's role instead (PUT /api/v2/orgs/{org}/members/{userId})")
		return
	}
	if err != nil {
		s.failIdentity(c, "invitation", err)
		return
	}
	out := invitationView(inv)
	out.Token = tok
	c.JSON(http.StatusCreated, out)
}

func (s *Server) revokeInvitation(c *gin.Context) {
	if err := s.st.RevokeInvitation(c.Request.Context(), c.Param("org"), c.Param("id")); err != nil {
		s.failErr(c, fmt.Sprintf("open invitation %q", c.Param("id")), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// ---- service accounts ----

func serviceAccountView(a store.ServiceAccount) apitypes.ServiceAccount {
	return apitypes.ServiceAccount{Name: a.Name, Description: a.Description, Role: a.Role, CreatedAt: ts(a.CreatedAt)}
}

func (s *Server) listServiceAccounts(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "service accounts", func(p store.PageRequest) (store.Page[store.ServiceAccount], error) {
		return s.st.ListServiceAccounts(ctx, org, p)
	}, serviceAccountView)
}

func (s *Server) createServiceAccount(c *gin.Context) {
	var req apitypes.CreateServiceAccountRequest
	if !s.decode(c, &req) {
		return
	}
	if fe := apitypes.ValidateDNSName("name", req.Name); fe != nil {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid name: "+fe.Error(), *fe)
		return
	}
	a, err := s.ids.CreateServiceAccount(c.Request.Context(), principal(c), store.ServiceAccount{Org: c.Param("org"), Name: req.Name, Description: req.Description, Role: req.Role})
	if err != nil {
		s.failIdentity(c, fmt.Sprintf("service account %q", req.Name), err)
		return
	}
	c.JSON(http.StatusCreated, serviceAccountView(a))
}

func (s *Server) getServiceAccount(c *gin.Context) {
	a, err := s.st.GetServiceAccount(c.Request.Context(), c.Param("org"), c.Param("name"))
	if err != nil {
		s.failErr(c, fmt.Sprintf("service account %q", c.Param("name")), err)
		return
	}
	c.JSON(http.StatusOK, serviceAccountView(a))
}

func (s *Server) deleteServiceAccount(c *gin.Context) {
	if err := s.st.DeleteServiceAccount(c.Request.Context(), c.Param("org"), c.Param("name")); err != nil {
		s.failErr(c, fmt.Sprintf("service account %q", c.Param("name")), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

func (s *Server) listServiceAccountKeys(c *gin.Context) {
	ctx, org, name := c.Request.Context(), c.Param("org"), c.Param("name")
	if _, err := s.st.GetServiceAccount(ctx, org, name); err != nil {
		s.failErr(c, fmt.Sprintf("service account %q", name), err)
		return
	}
	writeList(s, c, "api keys", s.st.ListAPIKeysOf(ctx, org, store.APIKeyOwner{ServiceAccount: name}), keyView)
}

func (s *Server) createServiceAccountKey(c *gin.Context) {
	s.createKey(c, store.APIKey{Org: c.Param("org"), ServiceAccount: c.Param("name")}, fmt.Sprintf("service account %q", c.Param("name")))
}

func (s *Server) revokeServiceAccountKey(c *gin.Context) {
	s.revokeOwnedKey(c, func(k store.APIKey) bool { return k.ServiceAccount == c.Param("name") })
}

// revokeOwnedKey revokes the key :id of the org when owns says it belongs
// to the route's owner (404 otherwise, as for an unknown key).
func (s *Server) revokeOwnedKey(c *gin.Context, owns func(store.APIKey) bool) {
	ctx, org, id := c.Request.Context(), c.Param("org"), c.Param("id")
	k, err := s.st.GetAPIKey(ctx, org, id)
	if err == nil && !owns(k) {
		err = store.ErrNotFound
	}
	if err == nil {
		err = s.st.RevokeAPIKey(ctx, org, id)
	}
	if err != nil {
		s.failErr(c, fmt.Sprintf("api key %q", id), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// ---- a user's own API keys ----

// keyOwner is the user whose own keys the caller manages; it answers 400
// for keys that belong to no user.
func (s *Server) keyOwner(c *gin.Context) (string, bool) {
	p := principal(c)
	if p.UserID == "" {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "api-keys are a user's own keys and this credential belongs to no user: use /api/v2/orgs/{org}/apikeys or a service account's keys")
		return "", false
	}
	return p.UserID, true
}

func (s *Server) listOwnAPIKeys(c *gin.Context) {
	uid, ok := s.keyOwner(c)
	if !ok {
		return
	}
	writeList(s, c, "api keys", s.st.ListAPIKeysOf(c.Request.Context(), c.Param("org"), store.APIKeyOwner{User: uid}), keyView)
}

func (s *Server) createOwnAPIKey(c *gin.Context) {
	if uid, ok := s.keyOwner(c); ok {
		s.createKey(c, store.APIKey{Org: c.Param("org"), OwnerUser: uid}, "api key")
	}
}

func (s *Server) revokeOwnAPIKey(c *gin.Context) {
	if uid, ok := s.keyOwner(c); ok {
		s.revokeOwnedKey(c, func(k store.APIKey) bool { return k.OwnerUser == uid })
	}
}

// ---- audit ----

func auditView(e store.AuditEvent) apitypes.AuditEvent {
	return apitypes.AuditEvent{ID: e.ID, Actor: e.Actor, Action: e.Action, ObjectKind: e.ObjectKind, ObjectName: e.ObjectName, Details: e.Details, CreatedAt: ts(e.CreatedAt)}
}

// listEvents lists the audit trail; the query parameters action and actor
// keep the events with exactly that action or actor, and order=newest
// lists the newest first.
func (s *Server) listEvents(c *gin.Context) {
	ctx, org, q := c.Request.Context(), c.Param("org"), c.Request.URL.Query()
	f := store.AuditFilter{Action: q.Get("action"), Actor: q.Get("actor")}
	switch q.Get("order") {
	case "", "oldest":
	case "newest":
		f.NewestFirst = true
	default:
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "order is oldest (the default) or newest",
			apitypes.FieldError{Path: "order", Message: "want oldest or newest"})
		return
	}
	writeList(s, c, "events", func(p store.PageRequest) (store.Page[store.AuditEvent], error) {
		return s.st.FindAuditEvents(ctx, org, f, p)
	}, auditView)
}
