package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/preview"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

func isExists(err error) bool { return errors.Is(err, store.ErrAlreadyExists) }

func ts(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// decode reads a JSON body into v: bounded size, one value, nulls accepted,
// unknown fields refused with their full paths (apitypes.DecodeWire). It
// writes the error answer and returns false on failure.
func (s *Server) decode(c *gin.Context, v any) bool {
	_, ok := s.decodeWire(c, v, nil)
	return ok
}

// decodeWire is decode with the rules of a Signadot model; it returns the
// fields the rules extract.
func (s *Server) decodeWire(c *gin.Context, v any, rules apitypes.WireRules) ([]apitypes.Extracted, bool) {
	return s.decodeWireLimit(c, v, rules, s.cfg.MaxBodyBytes)
}

// decodeWireLimit is decodeWire with a body limit of its own (job
// submissions carry scripts of up to 1 MiB).
func (s *Server) decodeWireLimit(c *gin.Context, v any, rules apitypes.WireRules, limit int64) ([]apitypes.Extracted, bool) {
	body, ok := s.readBody(c, limit)
	if !ok {
		return nil, false
	}
	ext, err := apitypes.DecodeWire(body, v, rules)
	if err != nil {
		s.failWire(c, err)
		return nil, false
	}
	return ext, true
}

// readBody reads a request body of at most limit bytes; it answers 413 or
// 400 (also for an empty body) itself.
func (s *Server) readBody(c *gin.Context, limit int64) ([]byte, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, limit))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			s.fail(c, http.StatusRequestEntityTooLarge, apitypes.ReasonTooLarge, fmt.Sprintf("request body larger than %d bytes", limit))
			return nil, false
		}
		s.fail(c, http.StatusBadRequest, apitypes.ReasonMalformed, "reading request body: "+err.Error())
		return nil, false
	}
	if len(bytes.TrimSpace(body)) == 0 {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonMalformed, "request body is empty; send a JSON object")
		return nil, false
	}
	return body, true
}

// failWire answers a body apitypes.DecodeWire refused.
func (s *Server) failWire(c *gin.Context, err error) {
	var we *apitypes.WireError
	if !errors.As(err, &we) {
		s.failErr(c, "request body", err)
		return
	}
	if we.Malformed {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonMalformed, "malformed JSON: "+we.Error(), we.Fields...)
		return
	}
	s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "unsupported field: "+we.Error(), we.Fields...)
}

func (s *Server) validName(c *gin.Context, param, path string) (string, bool) {
	name := c.Param(param)
	if fe := apitypes.ValidateObjectName(path, name); fe != nil {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid name: "+fe.Error(), *fe)
		return "", false
	}
	return name, true
}

func (s *Server) validDNS(c *gin.Context, param, path string) (string, bool) {
	name := c.Param(param)
	if fe := apitypes.ValidateDNSName(path, name); fe != nil {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid name: "+fe.Error(), *fe)
		return "", false
	}
	return name, true
}

// ---- orgs and quotas ----

type putOrgRequest struct {
	Quota *apitypes.Quota `json:"quota,omitempty"`
}

func (s *Server) putOrg(c *gin.Context) {
	p := principal(c)
	org, ok := s.validDNS(c, "org", "org")
	if !ok {
		return
	}
	if !p.Admin {
		if _, err := s.ids.RoleIn(c.Request.Context(), p, org); err == nil {
			s.getOrg(c)
			return
		}
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, "only admin keys can create orgs (users create theirs by signing up)")
		return
	}
	var req putOrgRequest
	if c.Request.ContentLength != 0 {
		if !s.decode(c, &req) {
			return
		}
	}
	ctx := c.Request.Context()
	var max int64
	if req.Quota != nil {
		max = req.Quota.MaxSandboxes
	}
	if req.Quota != nil && max < 0 {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "quota.maxSandboxes must be >= 0", apitypes.FieldError{Path: "quota.maxSandboxes", Message: "must be >= 0 (0 = unlimited)"})
		return
	}
	// Without a quota the org gets store.DefaultMaxSandboxes; an explicit
	// quota (0 = unlimited) is set on new and existing orgs alike.
	if _, err := s.st.CreateOrg(ctx, org, max); err != nil && !isExists(err) {
		s.failErr(c, "org", err)
		return
	}
	if req.Quota != nil {
		if err := s.st.SetQuota(ctx, org, max); err != nil {
			s.failErr(c, "org", err)
			return
		}
	}
	s.getOrg(c)
}

func (s *Server) orgView(c *gin.Context) (apitypes.Org, bool) {
	ctx := c.Request.Context()
	o, err := s.st.GetOrg(ctx, c.Param("org"))
	if err != nil {
		s.failErr(c, "org", err)
		return apitypes.Org{}, false
	}
	n, err := s.st.CountSandboxes(ctx, o.Name)
	if err != nil {
		s.failErr(c, "org", err)
		return apitypes.Org{}, false
	}
	return apitypes.Org{Name: o.Name, CreatedAt: ts(o.CreatedAt), Quota: apitypes.Quota{MaxSandboxes: o.MaxSandboxes, Sandboxes: n}}, true
}

func (s *Server) getOrg(c *gin.Context) {
	if o, ok := s.orgView(c); ok {
		c.JSON(http.StatusOK, o)
	}
}

func (s *Server) getQuota(c *gin.Context) {
	if o, ok := s.orgView(c); ok {
		c.JSON(http.StatusOK, o.Quota)
	}
}

func (s *Server) putQuota(c *gin.Context) {
	if !principal(c).Admin {
		s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, "only admin keys can change quotas")
		return
	}
	var q apitypes.Quota
	if !s.decode(c, &q) {
		return
	}
	if q.MaxSandboxes < 0 {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "maxSandboxes must be >= 0", apitypes.FieldError{Path: "maxSandboxes", Message: "must be >= 0 (0 = unlimited)"})
		return
	}
	if err := s.st.SetQuota(c.Request.Context(), c.Param("org"), q.MaxSandboxes); err != nil {
		s.failErr(c, "org", err)
		return
	}
	s.getQuota(c)
}

// ---- sandboxes and route groups ----

// parseSelector parses labelSelector=k=v,k2=v2 (and repeated label=k:v) and
// team=NAME.
func parseSelector(q url.Values) (store.ObjectSelector, *apitypes.FieldError) {
	sel := store.ObjectSelector{Labels: map[string]string{}, Team: q.Get("team")}
	if sel.Team != "" {
		if fe := apitypes.ValidateDNSName("team", sel.Team); fe != nil {
			return store.ObjectSelector{}, fe
		}
	}
	for _, raw := range q["labelSelector"] {
		for _, part := range strings.Split(raw, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			k, v, ok := strings.Cut(part, "=")
			if !ok || k == "" {
				return store.ObjectSelector{}, &apitypes.FieldError{Path: "labelSelector", Message: fmt.Sprintf("%q: want key=value[,key=value]", part)}
			}
			sel.Labels[k] = v
		}
	}
	for _, raw := range q["label"] {
		k, v, ok := strings.Cut(raw, ":")
		if !ok || k == "" {
			return store.ObjectSelector{}, &apitypes.FieldError{Path: "label", Message: fmt.Sprintf("%q: want key:value", raw)}
		}
		sel.Labels[k] = v
	}
	return sel, nil
}

func (s *Server) listObjects(k store.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		sel, fe := parseSelector(c.Request.URL.Query())
		if fe != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid selector: "+fe.Error(), *fe)
			return
		}
		if sel.Team != "" && k != store.KindSandbox {
			fe := apitypes.FieldError{Path: "team", Message: "only sandboxes belong to teams"}
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid selector: "+fe.Error(), fe)
			return
		}
		ctx, org := c.Request.Context(), c.Param("org")
		fetch := func(p store.PageRequest) (store.Page[store.Object], error) {
			return s.st.ListObjects(ctx, k, org, sel, p)
		}
		if k == store.KindSandbox {
			pb := s.previewBase(c)
			writeList(s, c, "sandboxes", fetch, func(o store.Object) sandboxWire { return s.sandboxView(pb, o) })
			return
		}
		pb := s.previewBase(c)
		writeList(s, c, "route groups", fetch, func(o store.Object) apitypes.RouteGroup { return s.routeGroupView(pb, o) })
	}
}

// ifVersion reads If-Match ("<version>" or W/"<version>") and If-None-Match: *.
func ifVersion(c *gin.Context) (int64, bool) {
	if v := c.GetHeader("If-None-Match"); v == "*" {
		return -1, true
	}
	v := strings.TrimPrefix(strings.TrimSpace(c.GetHeader("If-Match")), "W/")
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

func (s *Server) applyObject(k store.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		name, ok := s.validName(c, "name", "name")
		if !ok {
			return
		}
		ifv, ok := ifVersion(c)
		if !ok {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, `If-Match must be a version in quotes, e.g. "3"`)
			return
		}
		var (
			bodyName string
			spec     any
			cluster  string
			team     string
			labels   map[string]string
			errs     apitypes.FieldErrors
			eps      []v1alpha1.Endpoint
			epsPath  string
			legacy   apitypes.LegacyEndpoints
			err      error
		)
		if k == store.KindSandbox {
			body, ok := s.readBody(c, s.cfg.MaxBodyBytes)
			if !ok {
				return
			}
			var req apitypes.Sandbox
			if req, legacy, errs, err = apitypes.DecodeSandbox(body); err != nil {
				s.failWire(c, err)
				return
			}
			bodyName, spec, cluster, labels, team = req.Name, req.Spec, req.Spec.Cluster, req.Spec.Labels, req.Team
			if req.Team != "" {
				if fe := apitypes.ValidateDNSName("team", req.Team); fe != nil {
					errs = append(errs, *fe)
				}
			}
			errs = append(errs, apitypes.ValidateSandboxSpec(&req.Spec)...)
			if len(errs) == 0 {
				// Resources name plugins of the org and their outputs; they are immutable.
				if errs, err = s.checkSandboxResources(c.Request.Context(), c.Param("org"), name, &req.Spec); err != nil {
					s.failErr(c, "sandbox "+name, err)
					return
				}
			}
			if drg := req.Spec.DefaultRouteGroup; drg != nil && len(errs) == 0 {
				eps, epsPath = drg.Endpoints, "spec.defaultRouteGroup.endpoints"
			}
		} else {
			var req apitypes.RouteGroup
			if _, ok := s.decodeWire(c, &req, apitypes.RouteGroupWireRules); !ok {
				return
			}
			bodyName, spec, cluster = req.Name, req.Spec, req.Spec.Cluster
			errs = apitypes.ValidateRouteGroupSpec(&req.Spec)
			if len(errs) == 0 {
				eps, epsPath = req.Spec.Endpoints, "spec.endpoints"
			}
		}
		if bodyName != "" && bodyName != name {
			errs = append(apitypes.FieldErrors{{Path: "name", Message: fmt.Sprintf("%q differs from the name in the path (%q)", bodyName, name)}}, errs...)
		}
		if len(errs) == 0 && len(eps) > 0 {
			// The cluster's preview policy (an unknown cluster is reported by Apply).
			p, err := s.previewPolicy(c.Request.Context(), c.Param("org"), cluster)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				s.failErr(c, "cluster "+cluster, err)
				return
			}
			errs = p.CheckEndpoints(epsPath, eps)
		}
		if len(errs) > 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid "+k.Noun()+": "+errs.Error(), errs...)
			return
		}
		raw, err := json.Marshal(spec)
		if err == nil {
			raw, err = legacy.Splice(raw) // the agent ignores them: defaultRouteGroup has them too
		}
		if err != nil {
			s.failErr(c, k.Noun(), err)
			return
		}
		obj, created, err := s.st.Apply(c.Request.Context(), store.ApplyRequest{
			Kind: k, Org: c.Param("org"), Name: name, Cluster: cluster, Spec: raw, Labels: labels, IfVersion: ifv, Team: team,
			NewRoutingKey: func() (string, error) { return s.cfg.NewRoutingKey(), nil },
		})
		if err != nil {
			s.failErr(c, k.Noun()+" "+name, err)
			return
		}
		// 200 for creates too: clients generated from Signadot's swagger accept only 200.
		if created {
			c.Header(apitypes.HeaderCreated, "true")
		}
		s.writeObject(c, http.StatusOK, obj)
	}
}

func (s *Server) writeObject(c *gin.Context, code int, o store.Object) {
	c.Header("ETag", fmt.Sprintf(`"%d"`, o.Version))
	if o.Kind == store.KindSandbox {
		c.JSON(code, s.sandboxView(s.previewBase(c), o))
		return
	}
	c.JSON(code, s.routeGroupView(s.previewBase(c), o))
}

func (s *Server) getObject(k store.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		name, ok := s.validName(c, "name", "name")
		if !ok {
			return
		}
		o, err := s.st.Get(c.Request.Context(), k, c.Param("org"), name)
		if err != nil {
			s.failErr(c, fmt.Sprintf("%s %q", k.Noun(), name), err)
			return
		}
		st, _ := observed(o)
		if k != store.KindSandbox {
			// Only a GET of one object shows the CR's conditions and events
			// (extensions; lists stay small).
			v := s.routeGroupView(s.previewBase(c), o)
			v.Status.Conditions, v.Status.Events = st.Conditions, st.Events
			c.Header("ETag", fmt.Sprintf(`"%d"`, o.Version))
			c.JSON(http.StatusOK, v)
			return
		}
		v := s.sandboxView(s.previewBase(c), o)
		v.Status.Conditions, v.Status.Events = st.Conditions, st.Events
		sum, err := s.tests.SandboxSummary(c.Request.Context(), o.Org, o.Name)
		if err != nil {
			s.log.ErrorContext(c.Request.Context(), "smart test summary of a sandbox", "org", o.Org, "sandbox", o.Name, "err", err)
		}
		v.Status.TestExecutions = sum
		c.Header("ETag", fmt.Sprintf(`"%d"`, o.Version))
		c.JSON(http.StatusOK, v)
	}
}

func (s *Server) deleteObject(k store.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		name, ok := s.validName(c, "name", "name")
		if !ok {
			return
		}
		if err := s.st.Delete(c.Request.Context(), k, c.Param("org"), name); err != nil {
			s.failErr(c, fmt.Sprintf("%s %q", k.Noun(), name), err)
			return
		}
		c.JSON(http.StatusOK, apitypes.EmptyResponse{})
	}
}

func observed(o store.Object) (apitypes.ObservedStatus, bool) {
	var st apitypes.ObservedStatus
	if len(o.Status) == 0 || json.Unmarshal(o.Status, &st) != nil {
		return st, false
	}
	return st, true
}

func pending(o store.Object) (string, string) {
	return "Pending", fmt.Sprintf("waiting for the agent of cluster %q to apply version %d", o.Cluster, o.Version)
}

// sandboxWire is apitypes.Sandbox as the server writes it: the stored spec
// JSON (which the server made by encoding a validated v1alpha1.SandboxSpec)
// is spliced in as it is, so answers and list pages do not decode and
// re-encode every spec. TestSandboxWireMatchesAPIType keeps the fields in step.
type sandboxWire struct {
	Name       string                     `json:"name"`
	Spec       json.RawMessage            `json:"spec"`
	RoutingKey string                     `json:"routingKey,omitempty"`
	Endpoints  []apitypes.SandboxEndpoint `json:"endpoints"`
	Status     apitypes.Readiness         `json:"status"`
	CreatedAt  string                     `json:"createdAt,omitempty"`
	UpdatedAt  string                     `json:"updatedAt,omitempty"`
	Version    int64                      `json:"version,omitempty"`
	Team       string                     `json:"team,omitempty"`
}

func (s *Server) sandboxView(pb preview.Base, o store.Object) sandboxWire {
	out := sandboxWire{Name: o.Name, Spec: o.Spec, RoutingKey: o.RoutingKey, CreatedAt: ts(o.CreatedAt), UpdatedAt: ts(o.UpdatedAt), Version: o.Version, Team: o.Team, Endpoints: []apitypes.SandboxEndpoint{}}
	if len(out.Spec) == 0 {
		out.Spec = json.RawMessage(`{}`)
	}
	var spec struct { // the parts of the spec the view needs
		DefaultRouteGroup *v1alpha1.DefaultRouteGroup `json:"defaultRouteGroup"`
		TTL               *v1alpha1.TTL               `json:"ttl"`
	}
	_ = json.Unmarshal(o.Spec, &spec)
	st, ok := observed(o)
	if ok {
		out.Status = apitypes.Readiness{Ready: st.Ready, Reason: st.Reason, Message: st.Message, ScheduledDeleteTime: st.ScheduledDeleteTime, Forks: st.Forks, Resources: st.Resources, Local: st.Local}
	} else {
		out.Status.Reason, out.Status.Message = pending(o)
	}
	if out.Status.ScheduledDeleteTime == "" { // known from the TTL before the agent reports
		if at := spec.TTL.Deadline(o.CreatedAt, o.UpdatedAt, v1alpha1.TTLFromCreatedAt); at != nil {
			out.Status.ScheduledDeleteTime = ts(*at)
		}
	}
	resolved := map[string]v1alpha1.EndpointStatus{}
	for _, e := range st.Endpoints {
		resolved[e.Name] = e
	}
	if drg := spec.DefaultRouteGroup; drg != nil {
		for _, e := range drg.Endpoints {
			ep := apitypes.SandboxEndpoint{Name: e.Name, Target: e.Target, RouteType: "host", URL: pb.EndpointURL(o.Org, e.Name, o.Name), Cluster: o.Cluster}
			ep.Protocol, ep.Host, ep.Port = splitTarget(e.Target)
			if strings.HasSuffix(ep.Host, ".svc") {
				ep.BaselineURL = fmt.Sprintf("%s://%s:%d", ep.Protocol, ep.Host, ep.Port)
			}
			if r, ok := resolved[e.Name]; ok {
				if r.Host != "" {
					ep.Host = r.Host
				}
				if r.Port != 0 {
					ep.Port = r.Port
				}
				if r.Protocol != "" {
					ep.Protocol = r.Protocol
				}
			}
			out.Endpoints = append(out.Endpoints, ep)
		}
	}
	return out
}

func (s *Server) routeGroupView(pb preview.Base, o store.Object) apitypes.RouteGroup {
	out := apitypes.RouteGroup{Name: o.Name, RoutingKey: o.RoutingKey, CreatedAt: ts(o.CreatedAt), UpdatedAt: ts(o.UpdatedAt), Version: o.Version}
	_ = json.Unmarshal(o.Spec, &out.Spec)
	if st, ok := observed(o); ok {
		out.Status = apitypes.RouteGroupStatus{Ready: st.Ready, Reason: st.Reason, Message: st.Message, MatchedSandboxes: st.MatchedSandboxes, ScheduledDeleteTime: st.ScheduledDeleteTime}
	} else {
		out.Status.Reason, out.Status.Message = pending(o)
	}
	if out.Status.MatchedSandboxes == nil {
		out.Status.MatchedSandboxes = []string{}
	}
	if out.Status.ScheduledDeleteTime == "" {
		if at := out.Spec.TTL.Deadline(o.CreatedAt, o.UpdatedAt, v1alpha1.TTLFromNoMatchedSandboxes); at != nil {
			out.Status.ScheduledDeleteTime = ts(*at)
		}
	}
	for _, e := range out.Spec.Endpoints {
		out.Endpoints = append(out.Endpoints, apitypes.RouteGroupEndpoint{Name: e.Name, Target: e.Target, URL: pb.EndpointURL(o.Org, e.Name, o.Name)})
	}
	return out
}

// splitTarget splits scheme://host:port.
func splitTarget(t string) (proto, host string, port int32) {
	u, err := url.Parse(t)
	if err != nil {
		return "", "", 0
	}
	p, _ := strconv.Atoi(u.Port())
	return u.Scheme, u.Hostname(), int32(p)
}

// ---- clusters and tokens ----

func clusterView(cl store.Cluster) apitypes.Cluster {
	var p apitypes.PreviewPolicy
	_ = json.Unmarshal(cl.PreviewPolicy, &p) // stored validated; empty: the default policy
	if p.AllowedNamespaces == nil {
		p.AllowedNamespaces = []string{}
	}
	out := apitypes.Cluster{Name: cl.Name, CreatedAt: ts(cl.CreatedAt), LastSeenAt: ts(cl.LastSeenAt),
		ClusterConfig: &apitypes.ClusterConfig{AllowedNamespaces: p.AllowedNamespaces}}
	if cl.OperatorVersion != "" {
		out.Operator = &apitypes.ClusterOperator{Version: cl.OperatorVersion}
	}
	return out
}

func (s *Server) listClusters(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "clusters", func(p store.PageRequest) (store.Page[store.Cluster], error) { return s.st.ListClusters(ctx, org, p) }, clusterView)
}

func (s *Server) putCluster(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	cl, err := s.st.CreateCluster(c.Request.Context(), c.Param("org"), name)
	if err != nil {
		s.failErr(c, "cluster "+name, err)
		return
	}
	c.JSON(http.StatusOK, clusterView(cl))
}

func (s *Server) getCluster(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	cl, err := s.st.GetCluster(c.Request.Context(), c.Param("org"), name)
	if err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", name), err)
		return
	}
	c.JSON(http.StatusOK, clusterView(cl))
}

func (s *Server) deleteCluster(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	org := c.Param("org")
	if err := s.st.DeleteCluster(c.Request.Context(), org, name); err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", name), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

func tokenView(t store.ClusterToken) apitypes.ClusterToken {
	return apitypes.ClusterToken{ID: t.ID, CreatedAt: ts(t.CreatedAt), MaskedValue: t.Masked,
		Status: apitypes.ClusterTokenStatus{LastConnectedAt: ts(t.LastConnectedAt), LastConnectedIP: t.LastConnectedIP}}
}

func (s *Server) createToken(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	secret := NewSecret(ClusterTokenPrefix)
	t, err := s.st.CreateClusterToken(c.Request.Context(), store.ClusterToken{ID: store.NewID(6), Org: c.Param("org"), Cluster: name, Hash: HashSecret(secret), Masked: Mask(secret)})
	if err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", name), err)
		return
	}
	out := tokenView(t)
	out.Token = secret
	c.JSON(http.StatusOK, out)
}

func (s *Server) listTokens(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	ctx := c.Request.Context()
	if _, err := s.st.GetCluster(ctx, c.Param("org"), name); err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", name), err)
		return
	}
	writeList(s, c, "tokens", func(p store.PageRequest) (store.Page[store.ClusterToken], error) {
		return s.st.ListClusterTokens(ctx, c.Param("org"), name, p)
	}, tokenView)
}

func (s *Server) getToken(c *gin.Context) {
	t, err := s.st.GetClusterToken(c.Request.Context(), c.Param("org"), c.Param("cluster"), c.Param("id"))
	if err != nil {
		s.failErr(c, fmt.Sprintf("token %q", c.Param("id")), err)
		return
	}
	c.JSON(http.StatusOK, tokenView(t))
}

func (s *Server) deleteToken(c *gin.Context) {
	org, cluster := c.Param("org"), c.Param("cluster")
	if err := s.st.DeleteClusterToken(c.Request.Context(), org, cluster, c.Param("id")); err != nil {
		s.failErr(c, fmt.Sprintf("token %q", c.Param("id")), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// ---- API keys ----

func keyView(k store.APIKey) apitypes.APIKey {
	return apitypes.APIKey{ID: k.ID, Name: k.Name, CreatedAt: ts(k.CreatedAt), MaskedValue: k.Masked, RevokedAt: ts(k.RevokedAt),
		LastUsedAt: ts(k.LastUsedAt), OwnerUser: k.OwnerUser, ServiceAccount: k.ServiceAccount}
}

func (s *Server) createAPIKey(c *gin.Context) {
	s.createKey(c, store.APIKey{Org: c.Param("org")}, "api key")
}

// createKey is POST of an org's API key (tmpl.Org set) or of an admin key
// (tmpl.Admin): it validates the name, stores the hashed secret and answers
// 201 with the secret, shown only this once.
func (s *Server) createKey(c *gin.Context, tmpl store.APIKey, what string) {
	var req apitypes.CreateAPIKeyRequest
	if !s.decode(c, &req) {
		return
	}
	if fe := apitypes.ValidateText("name", req.Name, 128, true); fe != nil {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid API key name: "+fe.Error(), *fe)
		return
	}
	secret := NewSecret(APIKeyPrefix)
	tmpl.ID, tmpl.Name, tmpl.Hash, tmpl.Masked = store.NewID(6), req.Name, HashSecret(secret), Mask(secret)
	k, err := s.st.CreateAPIKey(c.Request.Context(), tmpl)
	if err != nil {
		s.failErr(c, what, err)
		return
	}
	out := keyView(k)
	out.Key = secret
	c.JSON(http.StatusCreated, out)
}

func (s *Server) listAPIKeys(c *gin.Context) {
	ctx, org := c.Request.Context(), c.Param("org")
	writeList(s, c, "api keys", func(p store.PageRequest) (store.Page[store.APIKey], error) { return s.st.ListAPIKeys(ctx, org, p) }, keyView)
}

func (s *Server) revokeAPIKey(c *gin.Context) {
	if err := s.st.RevokeAPIKey(c.Request.Context(), c.Param("org"), c.Param("id")); err != nil {
		s.failErr(c, fmt.Sprintf("api key %q", c.Param("id")), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// checkSandboxResources checks a sandbox's spec.resources against the org's
// resource plugins, and that they do not change on an existing sandbox.
func (s *Server) checkSandboxResources(ctx context.Context, org, name string, spec *v1alpha1.SandboxSpec) (apitypes.FieldErrors, error) {
	cur, err := s.st.Get(ctx, store.KindSandbox, org, name)
	switch {
	case err == nil:
		var old struct {
			Resources []v1alpha1.Resource `json:"resources"`
		}
		if err := json.Unmarshal(cur.Spec, &old); err != nil {
			return nil, fmt.Errorf("sandbox %s/%s: spec: %w", org, name, err)
		}
		if !equality.Semantic.DeepEqual(old.Resources, spec.Resources) && (len(old.Resources) > 0 || len(spec.Resources) > 0) {
			return apitypes.FieldErrors{{Path: "spec.resources", Message: "immutable: resources cannot change (delete the sandbox and create it again)"}}, nil
		}
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	if len(spec.Resources) == 0 {
		return nil, nil
	}
	return s.plugins.CheckSandbox(ctx, org, spec)
}
