package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/preview"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
)

// A cluster's preview policy (apitypes.PreviewPolicy) is checked three
// times: when a sandbox or route group is applied (its endpoint targets,
// 400 with field paths), when a preview request resolves an endpoint (the
// in-cluster address actually dialed; the policy may have changed since,
// 403), and the endpoints an agent reports must be cluster-internal Service
// names (agentStatus).

// previewPolicy returns the policy of a cluster (the default one when it has none).
func (s *Server) previewPolicy(ctx context.Context, org, cluster string) (apitypes.PreviewPolicy, error) {
	var p apitypes.PreviewPolicy
	raw, err := s.st.GetPreviewPolicy(ctx, org, cluster)
	if err != nil || raw == nil {
		return p, err
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return p, fmt.Errorf("preview policy of cluster %s/%s: %w", org, cluster, err)
	}
	return p, nil
}

func (s *Server) getPreviewPolicy(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	p, err := s.previewPolicy(c.Request.Context(), c.Param("org"), name)
	if err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", name), err)
		return
	}
	if p.AllowedNamespaces == nil {
		p.AllowedNamespaces = []string{}
	}
	c.JSON(http.StatusOK, p)
}

func (s *Server) putPreviewPolicy(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	var p apitypes.PreviewPolicy
	if !s.decode(c, &p) {
		return
	}
	if errs := apitypes.ValidatePreviewPolicy(&p); len(errs) > 0 {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid preview policy: "+errs.Error(), errs...)
		return
	}
	if p.AllowedNamespaces == nil {
		p.AllowedNamespaces = []string{}
	}
	raw, _ := json.Marshal(p)
	if err := s.st.SetPreviewPolicy(c.Request.Context(), c.Param("org"), name, raw); err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", name), err)
		return
	}
	s.targetCache.clear()
	c.JSON(http.StatusOK, p)
}

// checkAddressPolicy checks the in-cluster address a preview dials against
// its cluster's policy.
func (s *Server) checkAddressPolicy(ctx context.Context, t preview.Target) error {
	p, err := s.previewPolicy(ctx, t.Org, t.Cluster)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	host, _, err := net.SplitHostPort(t.Address)
	if err != nil {
		host = t.Address
	}
	if err := p.Check(host); err != nil {
		return fmt.Errorf("endpoint of %s/%s: %w: %w", t.Org, t.Name, preview.ErrForbidden, err)
	}
	return nil
}
