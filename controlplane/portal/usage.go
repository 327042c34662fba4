package portal

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

// registerUsage registers the page of quotas and usage.
func (p *Portal) registerUsage(m *http.ServeMux) {
	m.HandleFunc("GET /o/{org}/usage", p.usage)
}

type usageData struct {
	U apitypes.Usage
	// Month is the month asked for (refills the form after an error).
	Month string
	// Prev and Next are the neighbouring months' page URLs (Next: none past the current month).
	Prev, Next string
	// CSV is the API's CSV download of the month (the browser sends the session cookie).
	CSV string
	// Empty: no sandbox in the month and none live: the page teaches how to make one.
	Empty bool
}

func usageURL(org, month string) string {
	return "/o/" + url.PathEscape(org) + "/usage?month=" + url.QueryEscape(month)
}

// usage shows the org's quotas (the org's, each team's with its live sandboxes) and the sandbox usage of a
// month per team: the API's GET /usage?month=, which also serves the CSV download the page links to.
func (p *Portal) usage(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionUsageRead, "usage")
	if !ok {
		return
	}
	d := usageData{Month: r.URL.Query().Get("month")}
	path := orgPath(v.Org, "usage")
	if d.Month != "" {
		path += "?" + url.Values{"month": {d.Month}}.Encode()
	}
	res := p.callAPI(r, http.MethodGet, path, "", nil)
	if !res.ok() || res.decode(&d.U) != nil {
		if res.code == http.StatusBadRequest { // a bad month: the form shows the field's error
			v.Title, v.Data, v.Error, v.Fields = "Quotas and usage", d, res.err.Error, res.err.Fields
			p.render(w, res.code, "usage", v)
			return
		}
		p.fail(w, r, res.code, "usage", errors.New(res.err.Error))
		return
	}
	d.Month = d.U.Month
	if from, err := time.Parse(time.RFC3339, d.U.From); err == nil {
		d.Prev = usageURL(v.Org, from.AddDate(0, -1, 0).Format("2006-01"))
		if asOf, err := time.Parse(time.RFC3339, d.U.AsOf); err == nil && !from.AddDate(0, 1, 0).After(asOf) {
			d.Next = usageURL(v.Org, from.AddDate(0, 1, 0).Format("2006-01"))
		}
	}
	d.CSV = orgPath(v.Org, "usage") + "?" + url.Values{"month": {d.U.Month}, "format": {"csv"}}.Encode()
	d.Empty = d.U.Total.Sandboxes == 0 && d.U.OrgQuota.Sandboxes == 0
	v.Title, v.Data = "Quotas and usage", d
	p.render(w, http.StatusOK, "usage", v)
}
