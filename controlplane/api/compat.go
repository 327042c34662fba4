package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// Routes that Signadot clients call early (docs/signadot-compat.md): the
// orgs of a key, the why-not-ready of a sandbox and the devmesh analysis of
// a cluster. The OpenAPI alias /api/v2/meta/openapi.json is in register.

// agentStale is how long an agent may stay silent before explain says so
// (its long polls return every LongPollTimeout at the latest).
const agentStale = 2 * time.Minute

func (s *Server) listOrgs(c *gin.Context) {
	p := principal(c)
	out := apitypes.OrgList{Orgs: []apitypes.OrgRef{}}
	if p.UserID != "" && p.KeyID == "" { // a session: the user's orgs
		ms, err := s.st.ListMemberships(c.Request.Context(), p.UserID)
		if err != nil {
			s.failErr(c, "orgs", err)
			return
		}
		for _, m := range ms {
			out.Orgs = append(out.Orgs, apitypes.OrgRef{Name: m.Org, DisplayName: m.Org})
		}
		c.JSON(http.StatusOK, out)
		return
	}
	if !p.Admin {
		out.Orgs = append(out.Orgs, apitypes.OrgRef{Name: p.Org, DisplayName: p.Org})
		c.JSON(http.StatusOK, out)
		return
	}
	req := store.PageRequest{Limit: store.MaxPageSize}
	for {
		pg, err := s.st.ListOrgs(c.Request.Context(), req)
		if err != nil {
			s.failErr(c, "orgs", err)
			return
		}
		for _, o := range pg.Items {
			out.Orgs = append(out.Orgs, apitypes.OrgRef{Name: o.Name, DisplayName: o.Name})
		}
		if pg.Continue == "" {
			break
		}
		req.Continue = pg.Continue
	}
	c.JSON(http.StatusOK, out)
}

// explainSandbox answers GET .../sandboxes/{name}/status/explain.
func (s *Server) explainSandbox(c *gin.Context) {
	name, ok := s.validName(c, "name", "name")
	if !ok {
		return
	}
	ctx, org := c.Request.Context(), c.Param("org")
	o, err := s.st.Get(ctx, store.KindSandbox, org, name)
	if err != nil {
		s.failErr(c, fmt.Sprintf("sandbox %q", name), err)
		return
	}
	view := s.sandboxView(s.previewBase(c), o)
	var spec v1alpha1.SandboxSpec
	_ = json.Unmarshal(o.Spec, &spec) // stored validated
	cl, err := s.st.GetCluster(ctx, org, o.Cluster)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.failErr(c, fmt.Sprintf("cluster %q", o.Cluster), err)
		return
	}
	var rep *apitypes.WorkloadReport
	if w, err := s.st.GetWorkloads(ctx, org, o.Cluster); err == nil {
		var r apitypes.WorkloadReport
		if json.Unmarshal(w.Data, &r) == nil {
			rep = &r
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		s.failErr(c, "workloads", err)
		return
	}
	_, reported := observed(o)
	lines := explain(name, o, spec, view.Status, reported, cl, rep, time.Now())
	c.JSON(http.StatusOK, apitypes.SandboxExplanation{Status: view.Status, Explanation: strings.Join(lines, "\n"), Context: lines})
}

// explain lists, most important first, why a sandbox is or is not ready.
func explain(name string, o store.Object, spec v1alpha1.SandboxSpec, st apitypes.Readiness, reported bool, cl store.Cluster,
	rep *apitypes.WorkloadReport, now time.Time) []string {
	var out []string
	if st.Ready {
		out = append(out, fmt.Sprintf("Sandbox %q is ready: its forks run and requests with its routing key reach them.", name))
	} else {
		out = append(out, fmt.Sprintf("Sandbox %q is not ready (%s).", name, strings.TrimSpace(st.Reason+": "+st.Message)))
	}
	switch {
	case cl.Name == "":
		out = append(out, fmt.Sprintf("Cluster %q is not registered any more: nothing applies the sandbox.", o.Cluster))
	case cl.LastSeenAt.IsZero():
		out = append(out, fmt.Sprintf("The agent of cluster %q has never connected: create a cluster token (POST .../clusters/%s/tokens) and install the agent with it.", o.Cluster, o.Cluster))
	case now.Sub(cl.LastSeenAt) > agentStale:
		out = append(out, fmt.Sprintf("The agent of cluster %q was last seen at %s (%s ago): is it running and can it reach the control plane?", o.Cluster, ts(cl.LastSeenAt), now.Sub(cl.LastSeenAt).Round(time.Second)))
	case !reported:
		out = append(out, fmt.Sprintf("The agent of cluster %q is connected but has not reported version %d of the sandbox yet; it applies changes within seconds.", o.Cluster, o.Version))
	}
	for _, f := range st.Forks {
		if !f.Ready {
			msg := f.Message
			if msg == "" {
				msg = "not available yet"
			}
			out = append(out, fmt.Sprintf("Fork of %s: %s.", f.Baseline, strings.TrimSuffix(msg, ".")))
		}
	}
	if rep != nil {
		known := map[string]apitypes.Workload{}
		for _, w := range rep.Workloads {
			known[w.Kind+"/"+w.Namespace+"/"+w.Name] = w
		}
		for i, f := range spec.Forks {
			kind := string(f.ForkOf.Kind)
			if kind == "" {
				kind = string(v1alpha1.KindDeployment)
			}
			w, ok := known[kind+"/"+f.ForkOf.Namespace+"/"+f.ForkOf.Name]
			switch {
			case !ok && !rep.Truncated:
				out = append(out, fmt.Sprintf("spec.forks[%d].forkOf: the agent reports no %s %s/%s in the cluster (check the namespace and name; GET .../clusters/%s/workloads lists them).", i, kind, f.ForkOf.Namespace, f.ForkOf.Name, o.Cluster))
			case ok && w.ReadyReplicas == 0:
				out = append(out, fmt.Sprintf("spec.forks[%d].forkOf: the baseline %s/%s has no ready replica; a fork of a broken baseline rarely starts.", i, w.Namespace, w.Name))
			case ok && !w.DevmeshInjected:
				out = append(out, fmt.Sprintf("spec.forks[%d].forkOf: the baseline %s/%s does not run the devmesh sidecar; with the devmesh backend its requests are not routed to the fork (GET .../clusters/%s/devmesh/analyze).", i, w.Namespace, w.Name, o.Cluster))
			}
		}
	}
	if st.ScheduledDeleteTime != "" {
		out = append(out, "The TTL deletes the sandbox at "+st.ScheduledDeleteTime+".")
	}
	return out
}

// devmeshAnalyze answers GET .../clusters/{cluster}/devmesh/analyze.
func (s *Server) devmeshAnalyze(c *gin.Context) {
	name, ok := s.validDNS(c, "cluster", "clusterName")
	if !ok {
		return
	}
	q := c.Request.URL.Query()
	ns, status := q.Get("namespace"), q.Get("status")
	if ns != "" {
		if fe := apitypes.ValidateDNSName("namespace", ns); fe != nil {
			s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid namespace: "+fe.Error(), *fe)
			return
		}
	}
	if status != "" && status != apitypes.DevMeshOK && status != apitypes.DevMeshMissing {
		s.fail(c, http.StatusBadRequest, apitypes.ReasonValidation, "invalid status: want ok or missing",
			apitypes.FieldError{Path: "status", Message: fmt.Sprintf("want %s or %s (got %q)", apitypes.DevMeshOK, apitypes.DevMeshMissing, status)})
		return
	}
	w, rep, ok := s.reportedWorkloads(c, c.Param("org"), name)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, analyzeDevmesh(name, w.ReportedAt, rep, ns, status))
}

// analyzeDevmesh builds a DevMeshAnalysis from a workload report, keeping the
// workloads of namespace ns and sidecar status (empty: all).
func analyzeDevmesh(cluster string, at time.Time, rep apitypes.WorkloadReport, ns, status string) apitypes.DevMeshAnalysis {
	out := apitypes.DevMeshAnalysis{Cluster: cluster, ReportedAt: ts(at), Truncated: rep.Truncated, Workloads: []apitypes.DevMeshWorkload{}}
	counts := map[string]int64{}
	for _, wl := range rep.Workloads {
		st := apitypes.DevMeshMissing
		if wl.DevmeshInjected {
			st = apitypes.DevMeshOK
		}
		if (ns != "" && wl.Namespace != ns) || (status != "" && st != status) {
			continue
		}
		counts[st]++
		svcs := slices.Clone(wl.Services)
		if svcs == nil {
			svcs = []apitypes.WorkloadService{}
		}
		out.Workloads = append(out.Workloads, apitypes.DevMeshWorkload{
			Workload:         v1alpha1.WorkloadRef{Kind: v1alpha1.WorkloadKind(wl.Kind), Namespace: wl.Namespace, Name: wl.Name},
			StatusCounts:     []apitypes.DevMeshStatusCount{{Status: st, Count: int64(wl.Replicas)}},
			Status:           st,
			ForkableServices: svcs,
		})
	}
	out.Summary = []apitypes.DevMeshStatusCount{{Status: apitypes.DevMeshOK, Count: counts[apitypes.DevMeshOK]}, {Status: apitypes.DevMeshMissing, Count: counts[apitypes.DevMeshMissing]}}
	return out
}
