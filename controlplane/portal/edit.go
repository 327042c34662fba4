package portal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

// editData is the edit form of a sandbox: the create form's data (its
// fields, pre-filled from the current spec, and F.YAML, the current spec's
// YAML) with the sandbox as loaded.
type editData struct {
	createData
	S apitypes.Sandbox
	// Version is the version the form was loaded at (sent as If-Match).
	Version string
	// FieldsOK says the fields show the whole spec; otherwise only its YAML
	// can change it (the fields would drop what they cannot show).
	FieldsOK bool
	// Source is the form that was sent: "fields" or "yaml".
	Source string
	// FieldErrs are the errors shown at the fields (those of the fields' form).
	FieldErrs []apitypes.FieldError
}

// formOf is the create form that describes sb, and whether it describes
// all of it: formSandbox builds exactly sb's spec from it (one fork with
// one image and plain env values, labels, the form's preview endpoint).
func formOf(sb apitypes.Sandbox, workloads []apitypes.Workload) (createForm, bool) {
	f := createForm{Name: sb.Name, Cluster: sb.Spec.Cluster, Team: sb.Team, Endpoint: sb.Spec.DefaultRouteGroup != nil}
	labels := make([]string, 0, len(sb.Spec.Labels))
	for k, v := range sb.Spec.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	f.Labels = strings.Join(labels, ", ")
	if len(sb.Spec.Forks) > 0 {
		fk := sb.Spec.Forks[0]
		f.Workload = string(fk.ForkOf.Kind) + "/" + fk.ForkOf.Namespace + "/" + fk.ForkOf.Name
		if c := fk.Customizations; c != nil {
			if len(c.Images) > 0 {
				f.Image, f.Container = c.Images[0].Image, c.Images[0].Container
			}
			var env []string
			for _, e := range c.Env {
				if e.Value != nil {
					env = append(env, e.Name+"="+*e.Value)
				}
			}
			if len(c.Images) == 0 && len(c.Env) > 0 { // the container the env lines name
				f.Container = c.Env[0].Container
			}
			f.Env = strings.Join(env, "\n")
		}
	}
	built, fields := formSandbox(f, workloads)
	if len(fields) > 0 {
		return f, false
	}
	want, err1 := json.Marshal(sb.Spec)
	got, err2 := json.Marshal(built.Spec)
	return f, err1 == nil && err2 == nil && bytes.Equal(want, got)
}

// loadEditData reads the sandbox and the create form's lists; ok false when
// it answered already (not found, an error).
func (p *Portal) loadEditData(w http.ResponseWriter, r *http.Request, v *view, name string) (editData, bool) {
	sb, ok := p.loadSandbox(w, r, v, name)
	if !ok {
		return editData{}, false
	}
	d := editData{S: sb, Version: strconv.FormatInt(sb.Version, 10), createData: p.loadCreateData(r, v.Org, createForm{Cluster: sb.Spec.Cluster})}
	d.F, d.FieldsOK = formOf(sb, d.Workloads)
	d.F.YAML, _ = specYAML(sb.Name, sb.Team, sb.Spec)
	d.Source = "fields"
	if !d.FieldsOK {
		d.Source = "yaml"
	}
	return d, true
}

func (p *Portal) editSandbox(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxWrite, "sandboxes")
	if !ok {
		return
	}
	d, ok := p.loadEditData(w, r, v, r.PathValue("name"))
	if !ok {
		return
	}
	v.Title, v.Data = "Edit "+d.S.Name, d
	p.render(w, http.StatusOK, "edit", v)
}

// updateSandbox previews (Show YAML) or saves the edit form: its fields
// (source=fields, built as the create form builds them) or its YAML
// (source=yaml), sent with the API's PUT and If-Match of the version the
// form was loaded at, so a change made since is refused (reload). The name
// is the page's; the API validates, checks the role and records the audit
// event (apply-sandbox).
func (p *Portal) updateSandbox(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionSandboxWrite, "sandboxes")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	name := r.PathValue("name")
	d, ok := p.loadEditData(w, r, v, name)
	if !ok {
		return
	}
	v.Title = "Edit " + name
	d.Version, d.Source = strings.TrimSpace(r.PostFormValue("version")), r.PostFormValue("source")
	cur := d.F.YAML
	if d.Source == "yaml" {
		d.F.YAML = r.PostFormValue("yaml")
	} else {
		d.Source = "fields"
		f := readCreateForm(r)
		f.Name, f.YAML = name, ""
		if f.Cluster != d.F.Cluster { // the workloads of the chosen cluster
			d.createData = p.loadCreateData(r, v.Org, f)
		}
		d.F = f
	}
	var (
		body   []byte
		fields []apitypes.FieldError
		got    string
	)
	if d.Source == "yaml" && strings.TrimSpace(d.F.YAML) == "" {
		fields = []apitypes.FieldError{{Path: "yaml", Message: "required: the sandbox's YAML (name and spec)"}}
	} else {
		got, body, fields = sandboxBody(d.F, d.Workloads)
		if d.Source == "fields" { // the YAML form keeps showing the current spec
			d.F.YAML = cur
		}
		if len(fields) == 0 && got != name {
			fields = []apitypes.FieldError{{Path: "yaml.name", Message: fmt.Sprintf("the name cannot change: it is %q (create a new sandbox for another name)", name)}}
		}
	}
	if d.Version == "" {
		fields = append(fields, apitypes.FieldError{Path: "version", Message: "missing: reload the page"})
	}
	if len(fields) == 0 {
		d.Preview = previewYAML(body)
	}
	show := func(code int) {
		if d.Source == "fields" {
			d.FieldErrs = v.Fields
		}
		v.Data = d
		p.render(w, code, "edit", v)
	}
	save := r.PostFormValue("action") == "save"
	if !save || len(fields) > 0 {
		code := http.StatusOK
		if save {
			code, v.Error, v.Fields = http.StatusBadRequest, "Fix the form: "+apitypes.FieldErrors(fields).Error(), fields
		} else if r.PostFormValue("action") != "preview" {
			code, v.Error = http.StatusBadRequest, "Unknown action: use Show YAML or Save."
		}
		show(code)
		return
	}
	res := p.callAPIHeaders(r, http.MethodPut, orgPath(v.Org, "sandboxes", name), r.PostFormValue("csrf"), body, map[string]string{"If-Match": `"` + d.Version + `"`})
	if !res.ok() {
		v.Error, v.Fields = res.err.Error, res.err.Fields
		if res.code == http.StatusPreconditionFailed || res.code == http.StatusConflict && res.err.Reason == apitypes.ReasonConflict {
			v.Error = fmt.Sprintf("Sandbox %q changed (or was deleted) since you opened it: reload the page and apply your change again.", name)
		}
		show(res.code)
		return
	}
	http.Redirect(w, r, "/o/"+url.PathEscape(v.Org)+"/sandboxes/"+url.PathEscape(name)+"?updated=1", http.StatusSeeOther)
}
