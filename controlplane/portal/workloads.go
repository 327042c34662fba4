package portal

import (
	"errors"
	"net/http"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

// clusterData is a cluster's page: its connection state and the workloads
// its agent reported (GET …/clusters/{c}/workloads).
type clusterData struct {
	R clusterRow
	// List is the agent's report; NotReported says there is none yet.
	List        apitypes.WorkloadList
	NotReported bool
}

// clusterWorkloads is a cluster's page: connection state, operator version
// and the workloads its agent reported, each with a link to fork it in a
// new sandbox (the new-sandbox form with the workload chosen).
func (p *Portal) clusterWorkloads(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionClusterRead, "clusters")
	if !ok {
		return
	}
	name := r.PathValue("cluster")
	var c apitypes.Cluster
	if !p.load(w, r, v, "cluster", name, orgPath(v.Org, "clusters", name), &c) {
		return
	}
	d := clusterData{R: newClusterRow(c)}
	res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "clusters", name, "workloads"), "", nil)
	switch {
	case res.code == http.StatusNotFound: // the agent has not reported yet
		d.NotReported = true
	case !res.ok() || res.decode(&d.List) != nil:
		p.fail(w, r, res.code, "workloads of "+name, errors.New(res.err.Error))
		return
	}
	v.Title, v.Data = "Cluster "+c.Name, d
	p.render(w, http.StatusOK, "cluster", v)
}
