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

// auditPageSize is the number of audit events per page.
const auditPageSize = 50

type auditRow struct {
	E apitypes.AuditEvent
	// Who is the actor as people read it (a member's email for user:<id>).
	Who string
}

type auditData struct {
	Events []auditRow
	// Action and Actor are the filters (exact values, as the API's).
	Action, Actor string
	// Next is the URL of the next (older) page; First is set past the first page.
	Next, First string
}

// audit shows the org's audit trail, newest first, 50 a page, filtered by
// action or actor: the API's GET /events?order=newest (admins and owners
// alone read it, audit.read).
func (p *Portal) audit(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionAuditRead, "audit")
	if !ok {
		return
	}
	q := r.URL.Query()
	d := auditData{Action: strings.TrimSpace(q.Get("action")), Actor: strings.TrimSpace(q.Get("actor"))}
	aq := url.Values{"order": {"newest"}, apitypes.QueryLimit: {strconv.Itoa(auditPageSize)}}
	filters := url.Values{}
	if d.Action != "" {
		aq.Set("action", d.Action)
		filters.Set("action", d.Action)
	}
	if d.Actor != "" {
		aq.Set("actor", d.Actor)
		filters.Set("actor", d.Actor)
	}
	if c := q.Get(apitypes.QueryContinue); c != "" {
		aq.Set(apitypes.QueryContinue, c)
		d.First = auditURL(v.Org, filters)
	}
	res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "events")+"?"+aq.Encode(), "", nil)
	var evs []apitypes.AuditEvent
	if !res.ok() || res.decode(&evs) != nil {
		if res.code == http.StatusBadRequest { // a stale or foreign continue token
			d.First = auditURL(v.Org, filters)
			v.Title, v.Data, v.Error = "Audit trail", d, res.err.Error
			p.render(w, res.code, "audit", v)
			return
		}
		p.fail(w, r, res.code, "audit trail", errors.New(res.err.Error))
		return
	}
	if c := res.hdr.Get(apitypes.HeaderContinue); c != "" {
		next := url.Values{apitypes.QueryContinue: {c}}
		for k, vs := range filters {
			next[k] = vs
		}
		d.Next = auditURL(v.Org, next)
	}
	emails := map[string]string{}
	var members []apitypes.Member
	if res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "members"), "", nil); res.ok() && res.decode(&members) == nil {
		for _, m := range members {
			emails["user:"+m.UserID] = m.Email
		}
	}
	for _, e := range evs {
		row := auditRow{E: e, Who: e.Actor}
		if em, ok := emails[e.Actor]; ok {
			row.Who = em
		}
		d.Events = append(d.Events, row)
	}
	v.Title, v.Data = "Audit trail", d
	p.render(w, http.StatusOK, "audit", v)
}

// auditURL is the audit page with query q.
func auditURL(org string, q url.Values) string {
	u := "/o/" + url.PathEscape(org) + "/audit"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}
