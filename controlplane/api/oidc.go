package api

import (
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

// oidcFlowCookie carries a single sign-on in progress (identity.OIDCFlow, signed) from the login
// redirect to the callback; only those two paths see it.
const oidcFlowCookie = "sandboxmesh_oidc"

const oidcPath = "/api/v2/auth/oidc"

// oidcLogin answers GET /api/v2/auth/oidc/login?next=/path: a redirect to the provider, with the flow in a
// cookie (SameSite=Lax: the browser sends it back on the provider's top-level redirect).
func (s *Server) oidcLogin(c *gin.Context) {
	if s.oidc == nil {
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, identity.ErrOIDCDisabled.Error()+": start the control plane with --oidc-issuer (docs/controlplane.md)")
		return
	}
	u, f, err := s.oidc.Start(c.Request.Context(), c.Query("next"))
	if err != nil {
		s.log.WarnContext(c.Request.Context(), "single sign-on: provider unavailable", "err", err)
		s.fail(c, http.StatusBadGateway, apitypes.ReasonUnavailable, "the single sign-on provider cannot be reached; try again")
		return
	}
	v, err := s.oidc.EncodeFlow(c.Request.Context(), f)
	if err != nil {
		s.failErr(c, "single sign-on", err)
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: oidcFlowCookie, Value: v, Path: oidcPath, MaxAge: int(identity.OIDCFlowTTL.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Request.TLS != nil || s.cfg.SecureCookies})
	c.Redirect(http.StatusFound, u)
}

// oidcCallback answers GET /api/v2/auth/oidc/callback?state=&code=: the provider's redirect back. A
// verified sign-in gets the session cookie and a redirect to the page it started from.
func (s *Server) oidcCallback(c *gin.Context) {
	if s.oidc == nil {
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, identity.ErrOIDCDisabled.Error())
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: oidcFlowCookie, Value: "", Path: oidcPath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: c.Request.TLS != nil || s.cfg.SecureCookies})
	if e := c.Query("error"); e != "" {
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "the single sign-on provider refused: "+e+" "+c.Query("error_description"))
		return
	}
	ck, err := c.Request.Cookie(oidcFlowCookie)
	if err != nil {
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, "no sign-in in progress in this browser: start at "+oidcPath+"/login")
		return
	}
	ctx := c.Request.Context()
	f, err := s.oidc.DecodeFlow(ctx, ck.Value)
	if err != nil {
		s.failOIDC(c, err)
		return
	}
	_, ns, err := s.oidc.Callback(ctx, f, c.Query("state"), c.Query("code"), c.ClientIP())
	if err != nil {
		s.failOIDC(c, err)
		return
	}
	s.setSessionCookie(c, ns)
	c.Redirect(http.StatusFound, f.Next)
}

func (s *Server) failOIDC(c *gin.Context, err error) {
	if errors.Is(err, identity.ErrOIDC) {
		s.log.InfoContext(c.Request.Context(), "single sign-on refused", "err", err)
		s.fail(c, http.StatusUnauthorized, apitypes.ReasonUnauthorized, err.Error())
		return
	}
	s.failIdentity(c, "single sign-on", err)
}
