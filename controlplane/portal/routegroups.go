package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// registerRouteGroups registers the route group pages: list, detail (with
// Open preview), the YAML form (create, update, Show YAML) and delete with
// confirmation. The
// API guards route groups with the sandbox actions (read, write, delete).
func (p *Portal) registerRouteGroups(m *http.ServeMux) {
	m.HandleFunc("GET /o/{org}/routegroups", p.routeGroups)
	m.HandleFunc("POST /o/{org}/routegroups", p.postRouteGroup)
	m.HandleFunc("GET /o/{org}/routegroups/{name}", p.routeGroupDetail)
	m.HandleFunc("POST /o/{org}/routegroups/{name}/preview", p.openPreview("routegroups"))
	m.HandleFunc("GET /o/{org}/routegroups/{name}/delete", p.confirmDeleteRouteGroup)
	m.HandleFunc("POST /o/{org}/routegroups/{name}/delete", p.deleteRouteGroup)
}

func routeGroupsURL(org string) string { return "/o/" + url.PathEscape(org) + "/routegroups" }

// rgForm is the YAML form: pasted YAML, and for an update the route
// group's name and the version it was loaded at (If-Match).
type rgForm struct {
	YAML    string
	Name    string
	Version string
	// Preview is the YAML the form sends (Show YAML).
	Preview string
}

type rgRow struct {
	Org   string
	RG    apitypes.RouteGroup
	Match []string
	Mode  string
}

type routeGroupsData struct {
	Rows     []rgRow
	Clusters []apitypes.Cluster
	F        rgForm
}

type routeGroupData struct {
	R    rgRow
	YAML string
	F    rgForm
}

// matchText renders a route group's match criteria readably: the mode
// ("label", "any of", "all of") and key=value globs.
func matchText(m v1alpha1.RouteGroupMatch) (mode string, crit []string) {
	switch {
	case m.Label != nil:
		return "label", []string{m.Label.Key + "=" + m.Label.Value}
	case m.Any != nil:
		mode = "any of"
		for _, c := range m.Any {
			crit = append(crit, c.Label.Key+"="+c.Label.Value)
		}
	case m.All != nil:
		mode = "all of"
		for _, c := range m.All {
			crit = append(crit, c.Label.Key+"="+c.Label.Value)
		}
	}
	return mode, crit
}

func newRGRow(org string, rg apitypes.RouteGroup) rgRow {
	row := rgRow{Org: org, RG: rg}
	row.Mode, row.Match = matchText(rg.Spec.Match)
	return row
}

// wireRouteGroup is the body the API takes (name and spec).
type wireRouteGroup struct {
	Name string                  `json:"name"`
	Spec v1alpha1.RouteGroupSpec `json:"spec"`
}

// rgYAML is the YAML of a route group as the API takes it.
func rgYAML(rg apitypes.RouteGroup) string {
	b, err := yaml.Marshal(wireRouteGroup{Name: rg.Name, Spec: rg.Spec})
	if err != nil {
		return ""
	}
	return string(b)
}

// rgExample is the create form's starting YAML.
const rgExample = `name: feature-x
spec:
  cluster: %s
  match:
    label:
      key: feature
      value: x
  endpoints:
    - name: web
      target: http://frontend.shop.svc:8080
`

// rgBody reads the pasted YAML: its name and the JSON the API gets. The
// API validates the route group (no second copy of its rules).
func rgBody(src string) (name string, body []byte, fields []apitypes.FieldError) {
	if strings.TrimSpace(src) == "" {
		return "", nil, []apitypes.FieldError{{Path: "yaml", Message: "required: paste a route group (name and spec)"}}
	}
	if len(src) > maxYAML {
		return "", nil, []apitypes.FieldError{{Path: "yaml", Message: fmt.Sprintf("longer than %d bytes", maxYAML)}}
	}
	j, err := yaml.YAMLToJSON([]byte(src))
	if err != nil {
		return "", nil, []apitypes.FieldError{{Path: "yaml", Message: "not valid YAML: " + err.Error()}}
	}
	var head struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return "", nil, []apitypes.FieldError{{Path: "yaml", Message: "want a route group: a mapping with name and spec (" + err.Error() + ")"}}
	}
	if head.Name == "" {
		return "", nil, []apitypes.FieldError{{Path: "yaml.name", Message: "required"}}
	}
	return head.Name, j, nil
}

func (p *Portal) routeGroupsData(r *http.Request, org string) (routeGroupsData, *apiResult) {
	var d routeGroupsData
	res := p.callAPI(r, http.MethodGet, orgPath(org, "routegroups"), "", nil)
	var list []apitypes.RouteGroup
	if !res.ok() || res.decode(&list) != nil {
		return d, res
	}
	for _, rg := range list {
		d.Rows = append(d.Rows, newRGRow(org, rg))
	}
	if cres := p.callAPI(r, http.MethodGet, orgPath(org, "clusters"), "", nil); cres.ok() {
		_ = cres.decode(&d.Clusters)
	}
	return d, nil
}

func (p *Portal) routeGroups(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxRead, "routegroups")
	if !ok {
		return
	}
	d, fres := p.routeGroupsData(r, v.Org)
	if fres != nil {
		p.fail(w, r, fres.code, "route groups", errors.New(fres.err.Error))
		return
	}
	cluster := "my-cluster"
	if len(d.Clusters) > 0 {
		cluster = d.Clusters[0].Name
	}
	d.F.YAML = fmt.Sprintf(rgExample, cluster)
	v.Title, v.Data = "Route groups", d
	p.render(w, http.StatusOK, "routegroups", v)
}

// loadRouteGroup reads a route group; ok false when it answered already.
func (p *Portal) loadRouteGroup(w http.ResponseWriter, r *http.Request, v *view, name string) (apitypes.RouteGroup, bool) {
	var rg apitypes.RouteGroup
	return rg, p.load(w, r, v, "route group", name, orgPath(v.Org, "routegroups", name), &rg)
}

func (p *Portal) routeGroupDetail(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxRead, "routegroups")
	if !ok {
		return
	}
	rg, ok := p.loadRouteGroup(w, r, v, r.PathValue("name"))
	if !ok {
		return
	}
	d := routeGroupData{R: newRGRow(v.Org, rg), YAML: rgYAML(rg)}
	d.F = rgForm{YAML: d.YAML, Name: rg.Name, Version: strconv.FormatInt(rg.Version, 10)}
	v.Title, v.Data = "Route group "+rg.Name, d
	p.render(w, http.StatusOK, "routegroup", v)
}

// postRouteGroup is the YAML form: Show YAML (action=preview), create
// (action=create: an existing name is refused, If-None-Match: *) or update
// (action=update, from the detail page: a PUT to the edited route group
// with If-Match of the version the page showed). The API validates, checks
// the role and records the audit event.
func (p *Portal) postRouteGroup(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionSandboxWrite, "routegroups")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	action := r.PostFormValue("action")
	f := rgForm{YAML: r.PostFormValue("yaml"), Name: strings.TrimSpace(r.PostFormValue("name")), Version: strings.TrimSpace(r.PostFormValue("version"))}
	update := f.Name != "" // the detail page's form edits one route group
	name, body, fields := rgBody(f.YAML)
	if len(fields) == 0 {
		if b, err := yaml.JSONToYAML(body); err == nil {
			f.Preview = string(b)
		}
	}
	// rerender shows the form again, on the page it came from.
	rerender := func(code int) {
		if !update {
			d, fres := p.routeGroupsData(r, v.Org)
			if fres != nil {
				p.fail(w, r, fres.code, "route groups", errors.New(fres.err.Error))
				return
			}
			d.F = f
			v.Title, v.Data = "Route groups", d
			p.render(w, code, "routegroups", v)
			return
		}
		rg, ok := p.loadRouteGroup(w, r, v, f.Name)
		if !ok {
			return
		}
		v.Title, v.Data = "Route group "+rg.Name, routeGroupData{R: newRGRow(v.Org, rg), YAML: rgYAML(rg), F: f}
		p.render(w, code, "routegroup", v)
	}
	write := (action == "create" && !update) || (action == "update" && update)
	if !write || len(fields) > 0 {
		code := http.StatusOK
		if len(fields) > 0 && write {
			code, v.Error, v.Fields = http.StatusBadRequest, "Fix the YAML: "+apitypes.FieldErrors(fields).Error(), fields
		} else if !write && action != "preview" {
			code, v.Error = http.StatusBadRequest, "Unknown action: use Show YAML, Create or Update."
		}
		rerender(code)
		return
	}
	var res *apiResult
	if update {
		var hdr map[string]string
		if f.Version != "" {
			hdr = map[string]string{"If-Match": `"` + f.Version + `"`}
		}
		res = p.callAPIHeaders(r, http.MethodPut, orgPath(v.Org, "routegroups", f.Name), r.PostFormValue("csrf"), body, hdr)
	} else {
		res = p.callAPIIfNew(r, orgPath(v.Org, "routegroups", name), r.PostFormValue("csrf"), body)
	}
	if !res.ok() {
		v.Error, v.Fields = res.err.Error, res.err.Fields
		if res.code == http.StatusConflict && res.err.Reason == apitypes.ReasonConflict {
			switch {
			case !update && strings.Contains(res.err.Error, "exists"):
				v.Error = fmt.Sprintf("A route group %q exists already in %s: open it to update it, or choose another name.", name, v.Org)
				v.Fields = []apitypes.FieldError{{Path: "name", Message: "taken"}}
			case update:
				v.Error = fmt.Sprintf("Route group %q changed (or was deleted) since you opened it: reload the page and apply your change again.", f.Name)
			}
		}
		rerender(res.code)
		return
	}
	to := name
	if update {
		to = f.Name
	}
	flag := "created"
	if update {
		flag = "updated"
	}
	http.Redirect(w, r, routeGroupsURL(v.Org)+"/"+url.PathEscape(to)+"?"+flag+"=1", http.StatusSeeOther)
}

func (p *Portal) confirmDeleteRouteGroup(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxDelete, "routegroups")
	if !ok {
		return
	}
	name := r.PathValue("name")
	if _, ok := p.loadRouteGroup(w, r, v, name); !ok {
		return
	}
	v.Title, v.Data = "Delete route group "+name, confirmData{
		Heading: "Delete route group " + name + "?",
		Text:    "Its routing key stops routing; the sandboxes it matches stay, with their own keys. This cannot be undone.",
		Action:  routeGroupsURL(v.Org) + "/" + url.PathEscape(name) + "/delete", Button: "Delete route group " + name, ButtonID: "confirm-delete-rg",
		Cancel: routeGroupsURL(v.Org) + "/" + url.PathEscape(name)}
	p.render(w, http.StatusOK, "confirm", v)
}

func (p *Portal) deleteRouteGroup(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionSandboxDelete, "routegroups")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	name := r.PathValue("name")
	p.writeThenRedirect(w, r, pr, http.MethodDelete, orgPath(v.Org, "routegroups", name), nil, routeGroupsURL(v.Org)+"?deleted="+url.QueryEscape(name))
}
