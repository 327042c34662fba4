package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

// registerAccess registers the pages of teams, service accounts and API
// keys, and the audit trail.
func (p *Portal) registerAccess(m *http.ServeMux) {
	m.HandleFunc("GET /o/{org}/teams", p.teams)
	m.HandleFunc("POST /o/{org}/teams", p.putTeam)
	m.HandleFunc("POST /o/{org}/teams/{team}/members", p.addTeamMember)
	m.HandleFunc("POST /o/{org}/teams/{team}/members/{user}/remove", p.removeTeamMember)
	m.HandleFunc("GET /o/{org}/teams/{team}/delete", p.confirmDeleteTeam)
	m.HandleFunc("POST /o/{org}/teams/{team}/delete", p.deleteTeam)
	m.HandleFunc("GET /o/{org}/audit", p.audit)
}

// confirmData is the confirm page's: a question, what follows, and the
// form that does it.
type confirmData struct {
	Heading, Text, Action, Button, ButtonID, Cancel string
}

// ---- teams ----

type teamRow struct {
	T       apitypes.Team
	Members []apitypes.Member
	// Others are the org's members not in the team (the add form's choices).
	Others []apitypes.Member
}

type teamsData struct {
	Teams []teamRow
	// OrgQuota is the org's concurrent-sandbox quota (0: unlimited).
	OrgQuota int64
	// Name and Max refill the create form after an error.
	Name, Max string
}

func (p *Portal) teamsData(r *http.Request, v *view) (teamsData, error) {
	var d teamsData
	res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "teams"), "", nil)
	var ts []apitypes.Team
	if !res.ok() || res.decode(&ts) != nil {
		return d, errors.New(res.err.Error)
	}
	var org apitypes.Org
	if res := p.callAPI(r, http.MethodGet, orgPath(v.Org), "", nil); res.ok() && res.decode(&org) == nil {
		d.OrgQuota = org.Quota.MaxSandboxes
	}
	var all []apitypes.Member
	if v.Can[string(identity.ActionMemberManage)] {
		if res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "members"), "", nil); res.ok() {
			_ = res.decode(&all)
		}
	}
	for _, t := range ts {
		row := teamRow{T: t}
		res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "teams", t.Name, "members"), "", nil)
		if !res.ok() || res.decode(&row.Members) != nil {
			return d, errors.New(res.err.Error)
		}
		in := map[string]bool{}
		for _, m := range row.Members {
			in[m.UserID] = true
		}
		for _, m := range all {
			if !in[m.UserID] {
				row.Others = append(row.Others, m)
			}
		}
		d.Teams = append(d.Teams, row)
	}
	return d, nil
}

func (p *Portal) teams(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionMemberRead, "teams")
	if !ok {
		return
	}
	d, err := p.teamsData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "teams", err)
		return
	}
	v.Title, v.Data = "Teams", d
	p.render(w, http.StatusOK, "teams", v)
}

func teamsURL(org string) string { return "/o/" + url.PathEscape(org) + "/teams" }

// putTeam creates a team or sets its quota (the API's PUT: its name and
// quota rules).
func (p *Portal) putTeam(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "teams")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	name, maxS := strings.TrimSpace(r.PostFormValue("name")), strings.TrimSpace(r.PostFormValue("maxSandboxes"))
	var req apitypes.PutTeamRequest
	res := &apiResult{}
	if n, err := strconv.ParseInt(maxS, 10, 64); maxS != "" && (err != nil || n < 0) {
		res.code, res.err = http.StatusBadRequest, apitypes.ErrorResponse{Error: "the quota is a whole number, 0 or more",
			Fields: []apitypes.FieldError{{Path: "maxSandboxes", Message: "a whole number, 0 or more (0: only the org's quota applies)"}}}
	} else {
		req.MaxSandboxes = n
		res = p.callAPI(r, http.MethodPut, orgPath(v.Org, "teams", name), r.PostFormValue("csrf"), req)
	}
	if !res.ok() {
		d, err := p.teamsData(r, v)
		if err != nil {
			p.fail(w, r, http.StatusInternalServerError, "teams", err)
			return
		}
		d.Name, d.Max = name, maxS
		v.Title, v.Data, v.Error, v.Fields = "Teams", d, res.err.Error, res.err.Fields
		p.render(w, res.code, "teams", v)
		return
	}
	http.Redirect(w, r, teamsURL(v.Org), http.StatusSeeOther)
}

func (p *Portal) addTeamMember(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "teams")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodPut, orgPath(v.Org, "teams", r.PathValue("team"), "members", r.PostFormValue("user")), nil, teamsURL(v.Org))
}

func (p *Portal) removeTeamMember(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "teams")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodDelete, orgPath(v.Org, "teams", r.PathValue("team"), "members", r.PathValue("user")), nil, teamsURL(v.Org))
}

func (p *Portal) confirmDeleteTeam(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "teams")
	if !ok {
		return
	}
	team := r.PathValue("team")
	if res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "teams", team), "", nil); !res.ok() {
		p.page(w, r, pr, res.code, "Not found", res.err.Error)
		return
	}
	v.Title, v.Data = "Delete team "+team, confirmData{
		Heading: "Delete team " + team + "?",
		Text:    "Its members stay in the org; the team's quota stops applying to them. This cannot be undone.",
		Action:  teamsURL(v.Org) + "/" + url.PathEscape(team) + "/delete", Button: "Delete team " + team, ButtonID: "confirm-delete-team", Cancel: teamsURL(v.Org)}
	p.render(w, http.StatusOK, "confirm", v)
}

func (p *Portal) deleteTeam(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionMemberManage, "teams")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodDelete, orgPath(v.Org, "teams", r.PathValue("team")), nil, teamsURL(v.Org))
}
