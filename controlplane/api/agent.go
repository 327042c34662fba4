package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coder/websocket"
	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/preview"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// agentState answers an agent's long poll: GET /api/v2/agent/state?since=R&wait=30s.
func (s *Server) agentState(c *gin.Context) {
	a := agentIdentity(c)
	q := c.Request.URL.Query()
	var since int64
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "since must be a revision (integer >= 0)", apitypes.FieldError{Path: "since", Message: "want an integer >= 0"})
			return
		}
		since = n
	}
	wait := s.cfg.LongPollTimeout
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "wait must be a duration, e.g. 30s", apitypes.FieldError{Path: "wait", Message: "want a duration such as 30s"})
			return
		}
		wait = min(d, s.cfg.LongPollTimeout)
	}
	setWriteDeadline(c.Writer, time.Now().Add(wait+longPollSlack)) // the poll outlives Config.WriteTimeout
	ctx := c.Request.Context()
	_ = s.st.TouchClusterToken(ctx, a.TokenID, c.ClientIP(), c.GetHeader("sandboxmesh-operator-version"))
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		changed := s.notify.wait() // subscribe before reading, so no change slips through
		st, err := s.st.ClusterState(ctx, a.Org, a.Cluster, since)
		if err != nil {
			s.failErr(c, "cluster state", err)
			return
		}
		if st.Full || len(st.Objects) > 0 || wait == 0 {
			v, err := s.agentStateView(ctx, st)
			if err != nil {
				s.failErr(c, "cluster state", err)
				return
			}
			v.Org, v.Cluster = a.Org, a.Cluster
			c.JSON(http.StatusOK, v)
			return
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-deadline.C:
			wait = 0
		case <-ctx.Done():
			return
		}
	}
}

// agentStateView is the agent's view of a cluster state: live runner
// groups carry their runner token (only agents ever see it).
func (s *Server) agentStateView(ctx context.Context, st store.ClusterState) (apitypes.AgentState, error) {
	out := apitypes.AgentState{Revision: st.Revision, Full: st.Full, Objects: make([]apitypes.AgentObject, 0, len(st.Objects))}
	for _, o := range st.Objects {
		ao := apitypes.AgentObject{Kind: string(o.Kind), Org: o.Org, Name: o.Name, Version: o.Version, RoutingKey: o.RoutingKey, Deleted: o.Deleted}
		if !o.Deleted {
			ao.Spec = o.Spec
			switch o.Kind {
			case store.KindSandbox:
				ao.Spec = apitypes.AgentSpec(o.Spec) // without Signadot's legacy endpoint fields
			case store.KindRunnerGroup:
				tok, err := s.jobs.RunnerToken(ctx, o)
				if err != nil {
					return apitypes.AgentState{}, err
				}
				ao.RunnerToken = tok
			}
		}
		out.Objects = append(out.Objects, ao)
	}
	return out, nil
}

// maxObservedConditions bounds the conditions of one reported status (the
// CRs have four types).
const maxObservedConditions = 16

type statusAnswer struct {
	Accepted int `json:"accepted"`
	Stale    int `json:"stale"`
}

// agentStatus takes an agent's status report. Items of other orgs or clusters
// are refused; items for outdated versions are counted as stale and dropped.
func (s *Server) agentStatus(c *gin.Context) {
	a := agentIdentity(c)
	var rep apitypes.AgentStatusReport
	if !s.decode(c, &rep) {
		return
	}
	ctx := c.Request.Context()
	if rep.OperatorVersion != "" {
		_ = s.st.TouchClusterToken(ctx, a.TokenID, c.ClientIP(), rep.OperatorVersion)
	}
	var ans statusAnswer
	for i, it := range rep.Items {
		if it.Org != a.Org {
			s.fail(c, http.StatusForbidden, apitypes.ReasonForbidden, fmt.Sprintf("items[%d]: a cluster token only reports for its own org and cluster", i))
			return
		}
		k := store.Kind(it.Kind)
		if k != store.KindSandbox && k != store.KindRouteGroup && k != store.KindRunnerGroup {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, fmt.Sprintf("items[%d].kind: want sandbox, routegroup or runnergroup", i),
				apitypes.FieldError{Path: fmt.Sprintf("items[%d].kind", i), Message: "want sandbox, routegroup or runnergroup"})
			return
		}
		if p := it.Status.Pods; p != nil && (p.Ready < 0 || p.NotReady < 0 || p.Idle < 0) {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, fmt.Sprintf("items[%d].status.pods: counts must be >= 0", i),
				apitypes.FieldError{Path: fmt.Sprintf("items[%d].status.pods", i), Message: "counts must be >= 0"})
			return
		}
		if len(it.Status.Events) > apitypes.MaxObservedEvents || len(it.Status.Conditions) > maxObservedConditions {
			path := fmt.Sprintf("items[%d].status.events", i)
			msg := fmt.Sprintf("at most %d events", apitypes.MaxObservedEvents)
			if len(it.Status.Conditions) > maxObservedConditions {
				path, msg = fmt.Sprintf("items[%d].status.conditions", i), fmt.Sprintf("at most %d conditions", maxObservedConditions)
			}
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, path+": "+msg, apitypes.FieldError{Path: path, Message: msg})
			return
		}
		if errs := apitypes.ValidateObservedEndpoints(fmt.Sprintf("items[%d].status.endpoints", i), it.Status.Endpoints); len(errs) > 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid status report: "+errs.Error(), errs...)
			return
		}
		raw, _ := json.Marshal(it.Status)
		err := s.st.SetStatus(ctx, k, a.Org, a.Cluster, it.Name, it.Version, raw)
		switch {
		case err == nil:
			ans.Accepted++
		case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
			ans.Stale++
		default:
			s.failErr(c, "status", err)
			return
		}
	}
	c.JSON(http.StatusOK, ans)
}

// agentWorkloads stores the agent's report of forkable workloads: PUT /api/v2/agent/workloads.
func (s *Server) agentWorkloads(c *gin.Context) {
	a := agentIdentity(c)
	var rep apitypes.WorkloadReport
	if !s.decode(c, &rep) {
		return
	}
	if errs := apitypes.ValidateWorkloadReport(&rep); len(errs) > 0 {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid workload report: "+errs.Error(), errs...)
		return
	}
	if rep.Workloads == nil {
		rep.Workloads = []apitypes.Workload{}
	}
	data, _ := json.Marshal(rep)
	sum := sha256.Sum256(data)
	if err := s.st.SetWorkloads(c.Request.Context(), a.Org, a.Cluster, hex.EncodeToString(sum[:]), data); err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", a.Cluster), err)
		return
	}
	c.JSON(http.StatusOK, apitypes.EmptyResponse{})
}

// listWorkloads answers GET .../clusters/{cluster}/workloads[?namespace=ns].
func (s *Server) listWorkloads(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	ns := c.Query("namespace")
	if ns != "" {
		if fe := apitypes.ValidateDNSName("namespace", ns); fe != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid namespace: "+fe.Error(), *fe)
			return
		}
	}
	w, rep, ok := s.reportedWorkloads(c, c.Param("org"), name)
	if !ok {
		return
	}
	out := apitypes.WorkloadList{Cluster: name, ReportedAt: w.ReportedAt.UTC().Format(time.RFC3339), Truncated: rep.Truncated, Workloads: []apitypes.Workload{}}
	for _, wl := range rep.Workloads {
		if ns == "" || wl.Namespace == ns {
			out.Workloads = append(out.Workloads, wl)
		}
	}
	c.JSON(http.StatusOK, out)
}

// agentTunnel upgrades to a WebSocket that carries the yamux session of the preview tunnel.
func (s *Server) agentTunnel(c *gin.Context) {
	a := agentIdentity(c)
	ws, err := websocket.Accept(c.Writer, c.Request, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return // Accept wrote the error
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(c.Request.Context()))
	defer cancel()
	conn := websocket.NetConn(ctx, ws, websocket.MessageBinary)
	s.metrics.agents.Inc()
	defer s.metrics.agents.Dec()
	_ = s.st.TouchClusterToken(ctx, a.TokenID, c.ClientIP(), "")
	// Claimed before the session is served: once the hub has it, every replica can reach it.
	s.claimTunnel(ctx, a.Org, a.Cluster)
	hctx, stopHold := context.WithCancel(ctx)
	held := make(chan struct{})
	go func() { defer close(held); s.holdTunnel(hctx, a.Org, a.Cluster) }()
	_ = s.hub.Serve(ctx, a.Org, a.Cluster, a.TokenID, conn)
	stopHold()
	<-held
	conn.Close()
}

// ---- preview resolver ----

// AuthenticateKey implements preview.Resolver.
func (s *Server) AuthenticateKey(ctx context.Context, key string) (string, bool, error) {
	now := time.Now()
	h := HashSecret(key)
	if p, ok := s.keyCache.get(h, now); ok {
		return p.Org, p.Admin, nil
	}
	p, err := s.Authenticate(ctx, key)
	if err != nil {
		return "", false, err
	}
	s.keyCache.put(h, p, now)
	return p.Org, p.Admin, nil
}

// ResolvePreview implements preview.Resolver: only endpoints declared by the
// org's own sandboxes and route groups resolve.
func (s *Server) ResolvePreview(ctx context.Context, org, name, endpoint string) (preview.Target, error) {
	now := time.Now()
	ck := org + "/" + name + "/" + endpoint
	if t, ok := s.targetCache.get(ck, now); ok {
		return t, nil
	}
	t, err := s.resolvePreview(ctx, org, name, endpoint)
	if err == nil {
		s.targetCache.put(ck, t, now)
	}
	return t, err
}

func (s *Server) resolvePreview(ctx context.Context, org, name, endpoint string) (preview.Target, error) {
	var (
		obj  store.Object
		err  error
		eps  []v1alpha1.Endpoint
		kind = store.KindSandbox
	)
	obj, err = s.st.Get(ctx, store.KindSandbox, org, name)
	if errors.Is(err, store.ErrNotFound) {
		kind = store.KindRouteGroup
		obj, err = s.st.Get(ctx, store.KindRouteGroup, org, name)
	}
	if errors.Is(err, store.ErrNotFound) {
		return preview.Target{}, fmt.Errorf("%s/%s: %w", org, name, preview.ErrNotFound)
	}
	if err != nil {
		return preview.Target{}, err
	}
	eps, _ = specEndpoints(kind, obj.Spec)
	var ep *v1alpha1.Endpoint
	for i := range eps {
		if eps[i].Name == endpoint {
			ep = &eps[i]
		}
	}
	if ep == nil {
		return preview.Target{}, fmt.Errorf("%s/%s endpoint %s: %w", org, name, endpoint, preview.ErrNotFound)
	}
	addr, err := endpointAddress(*ep, obj)
	if err != nil {
		return preview.Target{}, err
	}
	t := preview.Target{Org: org, Cluster: obj.Cluster, Kind: string(kind), Name: name, RoutingKey: obj.RoutingKey, Address: addr}
	if err := s.checkAddressPolicy(ctx, t); err != nil {
		return preview.Target{}, err
	}
	return t, nil
}

// endpointAddress is the in-cluster host:port of an endpoint: the operator's
// resolution when the agent reported one, else the target itself for .svc targets.
func endpointAddress(ep v1alpha1.Endpoint, o store.Object) (string, error) {
	if st, ok := observed(o); ok {
		for _, r := range st.Endpoints {
			if r.Name != ep.Name {
				continue
			}
			if r.URL != "" {
				if u, err := url.Parse(r.URL); err == nil && u.Host != "" {
					if u.Port() == "" && r.Port != 0 {
						return net.JoinHostPort(u.Hostname(), strconv.Itoa(int(r.Port))), nil
					}
					return u.Host, nil
				}
			}
			if r.Host != "" {
				if _, _, err := net.SplitHostPort(r.Host); err == nil {
					return r.Host, nil
				}
				if r.Port != 0 {
					return net.JoinHostPort(r.Host, strconv.Itoa(int(r.Port))), nil
				}
			}
		}
	}
	u, err := url.Parse(ep.Target)
	if err != nil || !strings.HasSuffix(u.Hostname(), ".svc") {
		return "", fmt.Errorf("endpoint %s (%s): %w", ep.Name, ep.Target, preview.ErrUnresolved)
	}
	return u.Host, nil
}

// specEndpoints returns the preview endpoints of a sandbox's or route
// group's spec, and the spec field that holds them.
func specEndpoints(k store.Kind, raw []byte) ([]v1alpha1.Endpoint, string) {
	if k == store.KindRouteGroup {
		var spec v1alpha1.RouteGroupSpec
		_ = json.Unmarshal(raw, &spec)
		return spec.Endpoints, "spec.endpoints"
	}
	var spec v1alpha1.SandboxSpec
	_ = json.Unmarshal(raw, &spec)
	if spec.DefaultRouteGroup == nil {
		return nil, "spec.defaultRouteGroup.endpoints"
	}
	return spec.DefaultRouteGroup.Endpoints, "spec.defaultRouteGroup.endpoints"
}

// previewLink makes a browser login link of an endpoint of a sandbox or a
// route group (k): POST .../sandboxes/{name}/preview-link?endpoint=E,
// POST .../routegroups/{name}/preview-link?endpoint=E ("" = the first). The
// link is used once, within loginLinkTTL, and opens a preview session bound
// to the object's incarnation and to the API key or session that made it.
func (s *Server) previewLink(k store.Kind) gin.HandlerFunc {
	return func(c *gin.Context) {
		name, ok := s.validName(c, "name", "name")
		if !ok {
			return
		}
		org, what := c.Param("org"), fmt.Sprintf("%s %q", k.Noun(), name)
		o, err := s.st.Get(c.Request.Context(), k, org, name)
		if err != nil {
			s.failErr(c, what, err)
			return
		}
		eps, field := specEndpoints(k, o.Spec)
		if len(eps) == 0 {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, fmt.Sprintf("the %s has no endpoints (%s)", k.Noun(), field))
			return
		}
		ep := c.Query("endpoint")
		found := false
		for _, e := range eps {
			if ep == "" {
				ep = e.Name
			}
			found = found || e.Name == ep
		}
		if !found {
			s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, fmt.Sprintf("%s has no endpoint %q", what, ep))
			return
		}
		tok := NewSecret(preview.TokenPrefix)
		exp := time.Now().Add(loginLinkTTL)
		if err := s.st.CreatePreviewSession(c.Request.Context(), store.PreviewSessionRecord{Hash: HashSecret(tok), Kind: store.PreviewLogin, Org: org,
			ObjectKind: k, Name: name, Endpoint: ep, RoutingKey: o.RoutingKey, KeyID: principal(c).KeyID, ExpiresAt: exp}); err != nil {
			s.failErr(c, what, err)
			return
		}
		c.JSON(http.StatusOK, apitypes.PreviewLink{URL: s.previewBase(c).LoginURL(org, ep, name, tok), ExpiresAt: ts(exp)})
	}
}

// ---- preview URLs ----

// previewBase returns where the preview URLs of answers to c point: the
// configured base, or for the request-relative path form, the address c's
// client used to reach the API.
func (s *Server) previewBase(c *gin.Context) preview.Base {
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return s.preview.Base.For(scheme, c.Request.Host)
}

// reportedWorkloads reads the workloads cluster name of org last reported,
// answering the error (unknown cluster, no report yet) itself when ok is false.
func (s *Server) reportedWorkloads(c *gin.Context, org, name string) (store.Workloads, apitypes.WorkloadReport, bool) {
	ctx := c.Request.Context()
	var rep apitypes.WorkloadReport
	if _, err := s.st.GetCluster(ctx, org, name); err != nil {
		s.failErr(c, fmt.Sprintf("cluster %q", name), err)
		return store.Workloads{}, rep, false
	}
	w, err := s.st.GetWorkloads(ctx, org, name)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(c, http.StatusNotFound, apitypes.ReasonNotFound, fmt.Sprintf("the agent of cluster %q has not reported its workloads yet; is it running and connected (GET .../clusters/%s shows lastSeenAt)?", name, name))
		return w, rep, false
	}
	if err != nil {
		s.failErr(c, "workloads", err)
		return w, rep, false
	}
	if err := json.Unmarshal(w.Data, &rep); err != nil {
		s.failErr(c, "workloads", err)
		return w, rep, false
	}
	return w, rep, true
}
