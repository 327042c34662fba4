package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// Admin keys (valid for every org) are managed under /api/v2/admin/apikeys by
// admin keys only: list, create, revoke, rotate (a new key replaces the old
// one in one transaction). The last unrevoked admin key cannot be revoked.

const adminKeysPath = "/api/v2/admin/apikeys"

// adminOnly lets admin keys through and answers 403 to org keys.
func (s *Server) adminOnly(c *gin.Context) {
	if !principal(c).Admin {
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, "only admin keys can manage admin keys")
		return
	}
	c.Next()
}

func (s *Server) listAdminKeys(c *gin.Context) {
	ks, err := s.st.ListAdminKeys(c.Request.Context())
	if err != nil {
		s.failErr(c, "admin keys", err)
		return
	}
	out := make([]apitypes.APIKey, 0, len(ks))
	for _, k := range ks {
		out = append(out, keyView(k))
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) createAdminKey(c *gin.Context) {
	s.createKey(c, store.APIKey{Admin: true}, "admin key")
}

func (s *Server) revokeAdminKey(c *gin.Context) {
	id := c.Param("id")
	err := s.st.RevokeAdminKey(c.Request.Context(), id)
	if errors.Is(err, store.ErrLastAdminKey) {
		s.fail(c, http.StatusConflict, apitypes.ReasonConflict, fmt.Sprintf("admin key %q is the last admin key: create another one first (POST %s), or rotate it (POST %s/%s/rotate)", id, adminKeysPath, adminKeysPath, id))
		return
	}
	if err != nil {
		s.failErr(c, fmt.Sprintf("admin key %q", id), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// rotateAdminKey creates a new admin key with the old one's name and revokes
// the old one: POST /api/v2/admin/apikeys/{id}/rotate → 201 with the new key.
func (s *Server) rotateAdminKey(c *gin.Context) {
	id := c.Param("id")
	ctx := c.Request.Context()
	name := "rotated"
	if ks, err := s.st.ListAdminKeys(ctx); err == nil {
		for _, k := range ks {
			if k.ID == id {
				name = k.Name
			}
		}
	}
	secret := NewSecret(APIKeyPrefix)
	k, err := s.st.RotateAdminKey(ctx, id, store.APIKey{ID: store.NewID(6), Name: name, Hash: HashSecret(secret), Masked: Mask(secret)})
	if err != nil {
		s.failErr(c, fmt.Sprintf("admin key %q", id), err)
		return
	}
	out := keyView(k)
	out.Key = secret
	c.JSON(http.StatusCreated, out)
}
