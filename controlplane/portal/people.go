package portal

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

// registerPeople registers the pages of members, invitations and clusters.
func (p *Portal) registerPeople(m *http.ServeMux) {
	m.HandleFunc("GET /o/{org}/members", p.members)
	m.HandleFunc("POST /o/{org}/invitations", p.invite)
	m.HandleFunc("POST /o/{org}/invitations/{id}/revoke", p.revokeInvitation)
	m.HandleFunc("POST /o/{org}/members/{user}/role", p.setRole)
	m.HandleFunc("GET /o/{org}/members/{user}/remove", p.confirmRemove)
	m.HandleFunc("POST /o/{org}/members/{user}/remove", p.removeMember)
	m.HandleFunc("GET /invite", p.acceptPage)
	m.HandleFunc("POST /invite", p.acceptPost)
	m.HandleFunc("GET /o/{org}/clusters", p.clusters)
	m.HandleFunc("POST /o/{org}/clusters", p.registerCluster)
	m.HandleFunc("POST /o/{org}/clusters/{cluster}/tokens", p.createToken)
	m.HandleFunc("GET /o/{org}/clusters/{cluster}", p.clusterWorkloads)
}

// ---- members and invitations ----

type membersData struct {
	Members     []apitypes.Member
	Invitations []apitypes.Invitation
	Roles       []identity.Role
	// NewInvitation is the invitation just made: its link is shown once.
	NewInvitation *apitypes.Invitation
	InviteURL     string
	Me            string
}

func (p *Portal) membersData(r *http.Request, v *view) (membersData, error) {
	d := membersData{Roles: identity.Roles, Me: v.userID()}
	res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "members"), "", nil)
	if !res.ok() || res.decode(&d.Members) != nil {
		return d, errors.New(res.err.Error)
	}
	if v.Can[string(identity.ActionMemberManage)] {
		if res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "invitations"), "", nil); res.ok() {
			var all []apitypes.Invitation
			_ = res.decode(&all)
			for _, i := range all {
				if i.AcceptedAt == "" && i.RevokedAt == "" {
					d.Invitations = append(d.Invitations, i)
				}
			}
		}
	}
	return d, nil
}

func (p *Portal) members(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionMemberRead, "members")
	if !ok {
		return
	}
	d, err := p.membersData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "members", err)
		return
	}
	v.Title, v.Data = "Members", d
	p.render(w, http.StatusOK, "members", v)
}

// invite makes an invitation (the API's: owners alone invite owners) and
// shows its link once.
func (p *Portal) invite(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "members")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	res := p.callAPI(r, http.MethodPost, orgPath(v.Org, "invitations"), r.PostFormValue("csrf"),
		apitypes.CreateInvitationRequest{Email: r.PostFormValue("email"), Role: r.PostFormValue("role")})
	var inv apitypes.Invitation
	code := http.StatusOK
	if !res.ok() || res.decode(&inv) != nil {
		code, v.Error, v.Fields = res.code, res.err.Error, res.err.Fields
	}
	d, err := p.membersData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "members", err)
		return
	}
	if inv.Token != "" {
		d.NewInvitation = &inv
		d.InviteURL = baseURL(r) + "/invite?token=" + url.QueryEscape(inv.Token)
	}
	v.Title, v.Data = "Members", d
	p.render(w, code, "members", v)
}

func (p *Portal) revokeInvitation(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "members")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodDelete, orgPath(v.Org, "invitations", r.PathValue("id")), nil, "/o/"+url.PathEscape(v.Org)+"/members")
}

func (p *Portal) setRole(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "members")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodPut, orgPath(v.Org, "members", r.PathValue("user")),
		apitypes.SetRoleRequest{Role: r.PostFormValue("role")}, "/o/"+url.PathEscape(v.Org)+"/members")
}

func (p *Portal) confirmRemove(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionMemberManage, "members")
	if !ok {
		return
	}
	d, err := p.membersData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "members", err)
		return
	}
	for _, m := range d.Members {
		if m.UserID == r.PathValue("user") {
			v.Title, v.Data = "Remove "+m.Email, m
			p.render(w, http.StatusOK, "remove", v)
			return
		}
	}
	p.page(w, r, identity.Principal{UserID: v.userID()}, http.StatusNotFound, "Not found", "No such member.")
}

func (p *Portal) removeMember(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "members")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodDelete, orgPath(v.Org, "members", r.PathValue("user")), nil, "/o/"+url.PathEscape(v.Org)+"/members")
}

// writeThenRedirect sends a write to the API and redirects, or shows its error.
func (p *Portal) writeThenRedirect(w http.ResponseWriter, r *http.Request, pr identity.Principal, method, path string, body any, to string) {
	res := p.callAPI(r, method, path, r.PostFormValue("csrf"), body)
	if !res.ok() {
		p.page(w, r, pr, res.code, "Not done", res.err.Error)
		return
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// acceptPage is the invitation link's page: set a password (or give the
// account's) and join.
func (p *Portal) acceptPage(w http.ResponseWriter, r *http.Request) {
	p.render(w, http.StatusOK, "invite", &view{Title: "Join", Data: r.URL.Query().Get("token"), Can: map[string]bool{}, Request: r})
}

func (p *Portal) acceptPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	tok := r.PostFormValue("token")
	res := p.callAPI(r, http.MethodPost, "/api/v2/auth/invitations/accept", "", apitypes.AcceptInvitationRequest{
		Token: tok, Password: r.PostFormValue("password"), DisplayName: r.PostFormValue("displayName")})
	if !res.ok() {
		p.render(w, res.code, "invite", &view{Title: "Join", Error: res.err.Error, Fields: res.err.Fields, Data: tok, Can: map[string]bool{}, Request: r})
		return
	}
	copyCookies(w, res)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// ---- clusters ----

type clusterRow struct {
	C apitypes.Cluster
	// State is connected (seen in the last 2 minutes), offline or never.
	State string
}

type clustersData struct {
	Clusters []clusterRow
	// NewToken is a token just made: shown once, with the helm command.
	NewToken   *apitypes.ClusterToken
	TokenFor   string
	ControlURL string
}

func (p *Portal) clustersData(r *http.Request, v *view) (clustersData, error) {
	d := clustersData{ControlURL: baseURL(r)}
	res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "clusters"), "", nil)
	var cs []apitypes.Cluster
	if !res.ok() || res.decode(&cs) != nil {
		return d, errors.New(res.err.Error)
	}
	for _, c := range cs {
		d.Clusters = append(d.Clusters, newClusterRow(c))
	}
	return d, nil
}

// newClusterRow is a cluster with its connection state: connected (its
// agent called in the last 2 minutes), offline or never connected.
func newClusterRow(c apitypes.Cluster) clusterRow {
	row := clusterRow{C: c, State: "never connected"}
	if t, err := time.Parse(time.RFC3339, c.LastSeenAt); err == nil {
		row.State = "offline"
		if time.Since(t) < 2*time.Minute {
			row.State = "connected"
		}
	}
	return row
}

func (p *Portal) clusters(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionClusterRead, "clusters")
	if !ok {
		return
	}
	d, err := p.clustersData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "clusters", err)
		return
	}
	v.Title, v.Data = "Clusters", d
	p.render(w, http.StatusOK, "clusters", v)
}

func (p *Portal) registerCluster(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionClusterWrite, "clusters")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	name := r.PostFormValue("name")
	res := p.callAPI(r, http.MethodPut, orgPath(v.Org, "clusters", name), r.PostFormValue("csrf"), nil)
	if !res.ok() {
		d, _ := p.clustersData(r, v)
		v.Title, v.Data, v.Error, v.Fields = "Clusters", d, res.err.Error, res.err.Fields
		p.render(w, res.code, "clusters", v)
		return
	}
	// A new cluster needs a token for its agent: make one at once.
	p.tokenPage(w, r, v, name)
}

func (p *Portal) createToken(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionClusterWrite, "clusters")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.tokenPage(w, r, v, r.PathValue("cluster"))
}

// tokenPage makes a cluster token and shows it once, with the helm command
// that installs the agent with it.
func (p *Portal) tokenPage(w http.ResponseWriter, r *http.Request, v *view, cluster string) {
	res := p.callAPI(r, http.MethodPost, orgPath(v.Org, "clusters", cluster, "tokens"), r.PostFormValue("csrf"), nil)
	var tok apitypes.ClusterToken
	code := http.StatusOK
	if !res.ok() || res.decode(&tok) != nil {
		code, v.Error = res.code, res.err.Error
	}
	d, err := p.clustersData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "clusters", err)
		return
	}
	if tok.Token != "" {
		d.NewToken, d.TokenFor = &tok, cluster
	}
	w.Header().Set("Cache-Control", "no-store")
	v.Title, v.Data = "Clusters", d
	p.render(w, code, "clusters", v)
}

// baseURL is the control plane's address as the browser sees it.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
