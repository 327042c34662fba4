package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/resourceplugins"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Thin handlers of resource plugins; controlplane/resourceplugins does the
// work (docs/design/resource-plugins.md).

func (s *Server) registerResourcePlugins(o string) {
	user := s.authUser
	s.handle(http.MethodGet, o+"/resource-plugins", user, s.orgAccess, s.listResourcePlugins)
	s.handle(http.MethodPut, o+"/resource-plugins/:name", user, s.orgAccess, s.applyResourcePlugin)
	s.handle(http.MethodGet, o+"/resource-plugins/:name", user, s.orgAccess, s.getResourcePlugin)
	s.handle(http.MethodDelete, o+"/resource-plugins/:name", user, s.orgAccess, s.deleteResourcePlugin)
}

// failPlugins maps the plugin service's errors to HTTP answers (the rest as failErr).
func (s *Server) failPlugins(c *gin.Context, what string, err error) {
	var ve *resourceplugins.ValidationError
	var iu *resourceplugins.InUseError
	switch {
	case errors.As(err, &ve):
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, ve.Error(), ve.Fields...)
	case errors.Is(err, resourceplugins.ErrChanged):
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, resourceplugins.ErrChanged.Error())
	case errors.As(err, &iu):
		s.fail(c, http.StatusConflict, apitypes.ReasonInUse, iu.Error())
	default:
		s.failErr(c, what, err)
	}
}

func (s *Server) validPluginName(c *gin.Context) (string, bool) {
	name := c.Param("name")
	if fe := apitypes.ValidatePluginName("name", name); fe != nil {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid name: "+fe.Error(), *fe)
		return "", false
	}
	return name, true
}

func (s *Server) resourcePluginView(ctx context.Context, o store.Object) apitypes.ResourcePlugin {
	v, err := s.plugins.View(ctx, o)
	if err != nil {
		s.log.ErrorContext(ctx, "resource plugin view", "org", o.Org, "name", o.Name, "err", err)
	}
	return v
}

func (s *Server) listResourcePlugins(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "resource plugins", func(p store.PageRequest) (store.Page[store.Object], error) {
		return s.st.ListObjects(ctx, store.KindResourcePlugin, org, store.ObjectSelector{}, p)
	}, func(o store.Object) apitypes.ResourcePlugin { return s.resourcePluginView(ctx, o) })
}

func (s *Server) applyResourcePlugin(c *gin.Context) {
	name, ok := s.validPluginName(c)
	if !ok {
		return
	}
	ifv, ok := ifVersion(c)
	if !ok {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, `If-Match must be a version in quotes, e.g. "3"`)
		return
	}
	var req apitypes.ResourcePlugin
	if _, ok := s.decodeWire(c, &req, apitypes.ResourcePluginWireRules); !ok {
		return
	}
	o, created, err := s.plugins.Apply(c.Request.Context(), c.Param("org"), name, req, ifv)
	if err != nil {
		s.failPlugins(c, "resource plugin "+name, err)
		return
	}
	if created {
		c.Header(apitypes.HeaderCreated, "true")
	}
	c.Header("ETag", fmt.Sprintf(`"%d"`, o.Version))
	c.JSON(http.StatusOK, s.resourcePluginView(c.Request.Context(), o))
}

func (s *Server) getResourcePlugin(c *gin.Context) {
	name, ok := s.validPluginName(c)
	if !ok {
		return
	}
	o, err := s.st.Get(c.Request.Context(), store.KindResourcePlugin, c.Param("org"), name)
	if err != nil {
		s.failErr(c, fmt.Sprintf("resource plugin %q", name), err)
		return
	}
	c.Header("ETag", fmt.Sprintf(`"%d"`, o.Version))
	c.JSON(http.StatusOK, s.resourcePluginView(c.Request.Context(), o))
}

func (s *Server) deleteResourcePlugin(c *gin.Context) {
	name, ok := s.validPluginName(c)
	if !ok {
		return
	}
	if err := s.plugins.Delete(c.Request.Context(), c.Param("org"), name); err != nil {
		s.failPlugins(c, fmt.Sprintf("resource plugin %q", name), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}
