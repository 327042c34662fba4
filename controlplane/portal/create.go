package portal

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// createForm is the create-sandbox form: fields that build a sandbox with
// one fork, or pasted YAML that replaces them.
type createForm struct {
	Name      string
	Cluster   string
	Workload  string // kind/namespace/name
	Container string
	Image     string
	Env       string // NAME=value lines
	Labels    string // key=value, comma separated
	Team      string // the team the sandbox belongs to ("" for none)
	Endpoint  bool   // a preview endpoint to the fork's first port
	YAML      string // pasted YAML, used instead of the fields
}

type createData struct {
	F         createForm
	Clusters  []apitypes.Cluster
	Teams     []apitypes.Team
	Workloads []apitypes.Workload
	// WorkloadsNote explains an empty workload list (no agent report yet).
	WorkloadsNote string
	// Preview is the YAML the form sends.
	Preview string
}

// maxYAML bounds pasted YAML (the API bounds the body again).
const maxYAML = 256 << 10

// readCreateForm reads the form's fields.
func readCreateForm(r *http.Request) createForm {
	v := r.PostFormValue
	return createForm{Name: strings.TrimSpace(v("name")), Cluster: strings.TrimSpace(v("cluster")), Workload: v("workload"),
		Container: strings.TrimSpace(v("container")), Image: strings.TrimSpace(v("image")), Env: v("env"), Labels: v("labels"), Team: strings.TrimSpace(v("team")),
		Endpoint: v("endpoint") != "", YAML: v("yaml")}
}

// sandboxBody builds the API body of a form: the pasted YAML as JSON, or
// the sandbox the fields describe. Field errors name the form's fields;
// the API validates the sandbox itself (no second copy of its rules).
func sandboxBody(f createForm, workloads []apitypes.Workload) (name string, body []byte, fields []apitypes.FieldError) {
	if strings.TrimSpace(f.YAML) != "" {
		if len(f.YAML) > maxYAML {
			return "", nil, []apitypes.FieldError{{Path: "yaml", Message: fmt.Sprintf("longer than %d bytes", maxYAML)}}
		}
		j, err := yaml.YAMLToJSON([]byte(f.YAML))
		if err != nil {
			return "", nil, []apitypes.FieldError{{Path: "yaml", Message: "not valid YAML: " + err.Error()}}
		}
		var head struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(j, &head); err != nil {
			return "", nil, []apitypes.FieldError{{Path: "yaml", Message: "want a sandbox: a mapping with name and spec (" + err.Error() + ")"}}
		}
		if head.Name == "" {
			return "", nil, []apitypes.FieldError{{Path: "yaml.name", Message: "required"}}
		}
		return head.Name, j, nil
	}
	sb, fields := formSandbox(f, workloads)
	if len(fields) > 0 {
		return "", nil, fields
	}
	b, err := json.Marshal(sb)
	if err != nil {
		return "", nil, []apitypes.FieldError{{Path: "", Message: err.Error()}}
	}
	return sb.Name, b, nil
}

// wireSandbox is the body the form sends (the API's shape, name and spec).
type wireSandbox struct {
	Name string               `json:"name"`
	Team string               `json:"team,omitempty"`
	Spec v1alpha1.SandboxSpec `json:"spec"`
}

// formSandbox builds the sandbox of the form's fields.
func formSandbox(f createForm, workloads []apitypes.Workload) (wireSandbox, []apitypes.FieldError) {
	var errs []apitypes.FieldError
	sb := wireSandbox{Name: f.Name, Team: f.Team, Spec: v1alpha1.SandboxSpec{Cluster: f.Cluster}}
	if f.Name == "" {
		errs = append(errs, apitypes.FieldError{Path: "name", Message: "required"})
	}
	if f.Cluster == "" {
		errs = append(errs, apitypes.FieldError{Path: "cluster", Message: "required: register a cluster first"})
	}
	labels, err := parseLabels(f.Labels)
	if err != nil {
		errs = append(errs, apitypes.FieldError{Path: "labels", Message: err.Error()})
	}
	if len(labels) > 0 {
		sb.Spec.Labels = labels
	}
	if f.Workload == "" {
		errs = append(errs, apitypes.FieldError{Path: "workload", Message: "pick the workload to fork"})
		return sb, errs
	}
	parts := strings.Split(f.Workload, "/")
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return sb, append(errs, apitypes.FieldError{Path: "workload", Message: "want kind/namespace/name"})
	}
	fork := v1alpha1.Fork{ForkOf: v1alpha1.WorkloadRef{Kind: v1alpha1.WorkloadKind(parts[0]), Namespace: parts[1], Name: parts[2]}}
	cust := &v1alpha1.Customizations{}
	if f.Image != "" {
		cust.Images = []v1alpha1.ImageCustomization{{Image: f.Image, Container: f.Container}}
	}
	env, fe := parseEnv(f.Env, f.Container)
	errs = append(errs, fe...)
	cust.Env = env
	if len(cust.Images) > 0 || len(cust.Env) > 0 {
		fork.Customizations = cust
	}
	sb.Spec.Forks = []v1alpha1.Fork{fork}
	if f.Endpoint {
		for _, w := range workloads {
			if w.Kind == parts[0] && w.Namespace == parts[1] && w.Name == parts[2] && len(w.Services) > 0 && len(w.Services[0].Ports) > 0 {
				sb.Spec.DefaultRouteGroup = &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{
					Name: "web", Target: fmt.Sprintf("http://%s.%s.deploy:%d", w.Name, w.Namespace, w.Services[0].Ports[0])}}}
			}
		}
	}
	return sb, errs
}

// parseEnv reads NAME=value lines (blank lines and # comments skipped).
func parseEnv(s, container string) ([]v1alpha1.EnvCustomization, []apitypes.FieldError) {
	var out []v1alpha1.EnvCustomization
	var errs []apitypes.FieldError
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			errs = append(errs, apitypes.FieldError{Path: "env", Message: fmt.Sprintf("line %d: want NAME=value", i+1)})
			continue
		}
		val := v
		out = append(out, v1alpha1.EnvCustomization{Name: strings.TrimSpace(k), Value: &val, Container: container})
	}
	return out, errs
}

// parseLabels reads key=value pairs separated by commas.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%q: want key=value", part)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

// previewYAML is the YAML of the body a form sends (Show YAML): its name,
// team and spec; "" when it is not a sandbox.
func previewYAML(body []byte) string {
	var sb wireSandbox
	if err := json.Unmarshal(body, &sb); err != nil {
		return ""
	}
	y, _ := specYAML(sb.Name, sb.Team, sb.Spec)
	return y
}

// specYAML is the YAML of a sandbox as the API takes it.
func specYAML(name, team string, spec v1alpha1.SandboxSpec) (string, error) {
	b, err := yaml.Marshal(wireSandbox{Name: name, Team: team, Spec: spec})
	return string(b), err
}

// createData loads the clusters and the chosen cluster's reported workloads.
func (p *Portal) loadCreateData(r *http.Request, org string, f createForm) createData {
	d := createData{F: f}
	if res := p.callAPI(r, http.MethodGet, orgPath(org, "clusters"), "", nil); res.ok() {
		_ = res.decode(&d.Clusters)
	}
	if res := p.callAPI(r, http.MethodGet, orgPath(org, "teams"), "", nil); res.ok() {
		_ = res.decode(&d.Teams)
	}
	if d.F.Cluster == "" && len(d.Clusters) > 0 {
		d.F.Cluster = d.Clusters[0].Name
	}
	if d.F.Cluster == "" {
		return d
	}
	res := p.callAPI(r, http.MethodGet, orgPath(org, "clusters", d.F.Cluster, "workloads"), "", nil)
	var wl apitypes.WorkloadList
	switch {
	case res.ok() && res.decode(&wl) == nil:
		d.Workloads = wl.Workloads
		if len(wl.Workloads) == 0 {
			d.WorkloadsNote = "The agent of " + d.F.Cluster + " reports no workloads: deploy your app in the cluster, or paste YAML below."
		}
	default:
		d.WorkloadsNote = res.err.Error
	}
	return d
}

func (p *Portal) newSandbox(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxWrite, "new")
	if !ok {
		return
	}
	q := r.URL.Query() // a cluster's page links here with its cluster and a workload
	f := createForm{Cluster: q.Get("cluster"), Workload: q.Get("workload"), Endpoint: true}
	d := p.loadCreateData(r, v.Org, f)
	v.Title, v.Data = "New sandbox", d
	p.render(w, http.StatusOK, "new", v)
}

// createSandbox previews the YAML of the form or creates the sandbox with
// the API's PUT (its validation, quota, audit). An existing name is refused
// (If-None-Match: *): the form creates, it does not overwrite.
func (p *Portal) createSandbox(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionSandboxWrite, "new")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	v.Title = "New sandbox"
	f := readCreateForm(r)
	d := p.loadCreateData(r, v.Org, f)
	name, body, fields := sandboxBody(d.F, d.Workloads)
	if len(fields) == 0 {
		d.Preview = previewYAML(body)
	}
	v.Data = d
	if r.PostFormValue("action") != "create" || len(fields) > 0 {
		code := http.StatusOK
		if len(fields) > 0 && r.PostFormValue("action") == "create" {
			code, v.Error, v.Fields = http.StatusBadRequest, "Fix the form: "+apitypes.FieldErrors(fields).Error(), fields
		}
		p.render(w, code, "new", v)
		return
	}
	res := p.callAPIIfNew(r, orgPath(v.Org, "sandboxes", name), r.PostFormValue("csrf"), body)
	if !res.ok() {
		v.Error, v.Fields = res.err.Error, res.err.Fields
		if res.code == http.StatusPreconditionFailed || res.code == http.StatusConflict && res.err.Reason == apitypes.ReasonConflict && strings.Contains(res.err.Error, "exists") {
			v.Error = fmt.Sprintf("A sandbox %q exists already in %s: choose another name.", name, v.Org)
			v.Fields = []apitypes.FieldError{{Path: "name", Message: "taken"}}
		}
		p.render(w, res.code, "new", v)
		return
	}
	http.Redirect(w, r, "/o/"+url.PathEscape(v.Org)+"/sandboxes/"+url.PathEscape(name)+"?created=1", http.StatusSeeOther)
}

// callAPIIfNew is a PUT with If-None-Match: * (create only).
func (p *Portal) callAPIIfNew(r *http.Request, path, csrf string, body []byte) *apiResult {
	return p.callAPIHeaders(r, http.MethodPut, path, csrf, body, map[string]string{"If-None-Match": "*"})
}

// fieldMsg returns the message of the field error at path (templates).
func fieldMsg(fields []apitypes.FieldError, path string) string {
	for _, f := range fields {
		if f.Path == path || strings.HasPrefix(f.Path, path+".") || strings.HasPrefix(f.Path, path+"[") {
			return f.Message
		}
	}
	return ""
}
