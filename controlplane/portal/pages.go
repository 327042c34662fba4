package portal

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

func (p *Portal) routes() {
	m := http.NewServeMux()
	static := http.FileServerFS(assets)
	m.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") { // files only, no listings
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=3600")
		static.ServeHTTP(w, r)
	}))
	m.HandleFunc("GET /{$}", p.home)
	m.HandleFunc("GET /login", p.loginPage)
	m.HandleFunc("POST /login", p.loginPost)
	m.HandleFunc("GET /signup", p.signupPage)
	m.HandleFunc("POST /signup", p.signupPost)
	m.HandleFunc("POST /logout", p.logout)
	m.HandleFunc("GET /orgs", p.orgPicker)
	m.HandleFunc("GET /o/{org}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/o/"+url.PathEscape(r.PathValue("org"))+"/sandboxes", http.StatusSeeOther)
	})
	m.HandleFunc("GET /o/{org}/sandboxes", p.sandboxes)
	m.HandleFunc("GET /o/{org}/events", p.events)
	m.HandleFunc("GET /o/{org}/new", p.newSandbox)
	m.HandleFunc("POST /o/{org}/new", p.createSandbox)
	m.HandleFunc("GET /o/{org}/sandboxes/{name}", p.sandboxDetail)
	m.HandleFunc("POST /o/{org}/sandboxes/{name}/preview", p.openPreview("sandboxes"))
	m.HandleFunc("GET /o/{org}/sandboxes/{name}/edit", p.editSandbox)
	m.HandleFunc("POST /o/{org}/sandboxes/{name}/edit", p.updateSandbox)
	m.HandleFunc("GET /o/{org}/sandboxes/{name}/delete", p.confirmDelete)
	m.HandleFunc("POST /o/{org}/sandboxes/{name}/delete", p.deleteSandbox)
	p.registerPeople(m)
	p.registerAccess(m)
	p.registerUsage(m)
	p.registerServiceAccounts(m)
	p.registerRouteGroups(m)
	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		pr, _ := p.optionalSession(r)
		p.page(w, r, pr, http.StatusNotFound, "Not found", "There is no page at "+r.URL.Path+".")
	})
	p.mux = m
}

// optionalSession returns the visitor's session when there is one.
func (p *Portal) optionalSession(r *http.Request) (identity.Principal, bool) {
	ck, err := r.Cookie(apitypes.SessionCookie)
	if err != nil || ck.Value == "" {
		return identity.Principal{}, false
	}
	pr, err := p.ids.Session(r.Context(), ck.Value)
	return pr, err == nil
}

// home sends a visitor to the login page, the org picker, or the only org's sandboxes.
func (p *Portal) home(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.session(w, r)
	if !ok {
		return
	}
	v, ok := p.baseView(w, r, pr)
	if !ok {
		return
	}
	if len(v.Orgs) == 1 {
		http.Redirect(w, r, "/o/"+url.PathEscape(v.Orgs[0].Org)+"/sandboxes", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/orgs", http.StatusSeeOther)
}

// ---- login, sign-up, logout ----

type loginData struct {
	Email, Next, DisplayName, OrgName string
	// SSO: offer single sign-on (Config.SSO).
	SSO bool
}

func (p *Portal) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.optionalSession(r); ok {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	p.render(w, http.StatusOK, "login", &view{Title: "Log in", Signup: p.ids.AllowSignup(), Data: loginData{Next: r.URL.Query().Get("next"), SSO: p.cfg.SSO}, Can: map[string]bool{}, Request: r})
}

// loginPost logs in through the API's login route (its rate limits, its
// same-site check and its cookie).
func (p *Portal) loginPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	d := loginData{Email: r.PostFormValue("email"), Next: r.PostFormValue("next"), SSO: p.cfg.SSO}
	res := p.callAPI(r, http.MethodPost, "/api/v2/auth/login", "", apitypes.LoginRequest{Email: d.Email, Password: r.PostFormValue("password")})
	if !res.ok() {
		if ra := res.hdr.Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		p.render(w, res.code, "login", &view{Title: "Log in", Signup: p.ids.AllowSignup(), Error: res.err.Error, Data: d, Can: map[string]bool{}, Request: r})
		return
	}
	copyCookies(w, res)
	http.Redirect(w, r, safeNext(d.Next), http.StatusSeeOther)
}

func (p *Portal) signupPage(w http.ResponseWriter, r *http.Request) {
	if !p.ids.AllowSignup() {
		p.page(w, r, identity.Principal{}, http.StatusNotFound, "Sign-up is off", "This control plane does not let anyone sign up. Ask an owner of your org for an invitation.")
		return
	}
	p.render(w, http.StatusOK, "signup", &view{Title: "Sign up", Signup: true, Data: loginData{}, Can: map[string]bool{}, Request: r})
}

func (p *Portal) signupPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	d := loginData{Email: r.PostFormValue("email"), DisplayName: r.PostFormValue("displayName"), OrgName: r.PostFormValue("org")}
	res := p.callAPI(r, http.MethodPost, "/api/v2/auth/signup", "", apitypes.SignUpRequest{Email: d.Email, Password: r.PostFormValue("password"), DisplayName: d.DisplayName, Org: d.OrgName})
	if !res.ok() {
		p.render(w, res.code, "signup", &view{Title: "Sign up", Signup: true, Error: res.err.Error, Fields: res.err.Fields, Data: d, Can: map[string]bool{}, Request: r})
		return
	}
	copyCookies(w, res)
	http.Redirect(w, r, "/o/"+url.PathEscape(d.OrgName)+"/sandboxes", http.StatusSeeOther)
}

// logout revokes the session through the API (a copied cookie stops working too).
func (p *Portal) logout(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.session(w, r)
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	path := "/api/v2/auth/logout"
	if r.PostFormValue("everywhere") != "" {
		path = "/api/v2/auth/logout-all"
	}
	res := p.callAPI(r, http.MethodPost, path, r.PostFormValue("csrf"), nil)
	if !res.ok() {
		p.fail(w, r, res.code, "logout", errors.New(res.err.Error))
		return
	}
	copyCookies(w, res) // the API's cookie that clears the session's
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (p *Portal) orgPicker(w http.ResponseWriter, r *http.Request) {
	pr, ok := p.session(w, r)
	if !ok {
		return
	}
	v, ok := p.baseView(w, r, pr)
	if !ok {
		return
	}
	v.Title = "Your orgs"
	p.render(w, http.StatusOK, "orgs", v)
}

// ---- sandboxes ----

// filter is the list's filter: a cluster, a team and labels (key=value, comma separated).
type filter struct {
	Cluster string
	Team    string
	Label   string
	labels  map[string]string
}

func parseFilter(r *http.Request) (filter, error) {
	q := r.URL.Query()
	f := filter{Cluster: strings.TrimSpace(q.Get("cluster")), Team: strings.TrimSpace(q.Get("team")), Label: strings.TrimSpace(q.Get("label")), labels: map[string]string{}}
	for _, part := range strings.Split(f.Label, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return f, fmt.Errorf("label filter %q: want key=value[,key=value]", part)
		}
		f.labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return f, nil
}

// query is the filter as the API's labelSelector and the page's query.
func (f filter) selector() string {
	parts := make([]string, 0, len(f.labels))
	for k, v := range f.labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f filter) match(sb *listSandbox) bool {
	if f.Cluster != "" && sb.Spec.Cluster != f.Cluster {
		return false
	}
	if f.Team != "" && sb.Team != f.Team {
		return false
	}
	for k, v := range f.labels {
		if sb.Spec.Labels[k] != v {
			return false
		}
	}
	return true
}

// Query is the filter as a URL query (for the event stream).
func (f filter) Query() string {
	q := url.Values{}
	if f.Cluster != "" {
		q.Set("cluster", f.Cluster)
	}
	if f.Team != "" {
		q.Set("team", f.Team)
	}
	if s := f.selector(); s != "" {
		q.Set("label", s)
	}
	return q.Encode()
}

// listSandbox is the part of the API's sandbox a list row shows (decoding
// only these fields keeps a page of 1,000 sandboxes cheap).
type listSandbox struct {
	Name string `json:"name"`
	Team string `json:"team"`
	Spec struct {
		Cluster string            `json:"cluster"`
		Labels  map[string]string `json:"labels"`
		Forks   []struct {
			ForkOf struct {
				Namespace string `json:"namespace"`
				Name      string `json:"name"`
			} `json:"forkOf"`
		} `json:"forks"`
	} `json:"spec"`
	Status struct {
		Ready   bool   `json:"ready"`
		Reason  string `json:"reason"`
		Message string `json:"message"`
	} `json:"status"`
	UpdatedAt string `json:"updatedAt"`
}

type rowView struct {
	Org string
	S   *listSandbox
}

// pageSize is how many rows the list shows at once.
const pageSize = 100

type listData struct {
	Filter   filter
	Rows     []rowView
	Clusters []apitypes.Cluster
	Teams    []apitypes.Team
	// Total counts the sandboxes of the org (with the label filter), Matched
	// those the whole filter matches; Offset is the first row shown.
	Total, Matched, Offset int
	Prev, Next             string
}

func (p *Portal) sandboxes(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxRead, "sandboxes")
	if !ok {
		return
	}
	v.Title = "Sandboxes"
	f, err := parseFilter(r)
	if err != nil {
		v.Error = err.Error()
	}
	path := orgPath(v.Org, "sandboxes")
	if s := f.selector(); s != "" {
		path += "?labelSelector=" + url.QueryEscape(s)
	}
	res := p.callAPI(r, http.MethodGet, path, "", nil)
	var list []listSandbox
	if !res.ok() || res.decode(&list) != nil {
		p.fail(w, r, res.code, "sandboxes", errors.New(res.err.Error))
		return
	}
	d := listData{Filter: f, Total: len(list)}
	d.Offset, _ = strconv.Atoi(r.URL.Query().Get("offset"))
	d.Offset = max(d.Offset, 0)
	for i := range list {
		if f.match(&list[i]) {
			if d.Matched >= d.Offset && d.Matched < d.Offset+pageSize {
				d.Rows = append(d.Rows, rowView{Org: v.Org, S: &list[i]})
			}
			d.Matched++
		}
	}
	link := func(off int) string {
		q := r.URL.Query()
		q.Set("offset", strconv.Itoa(off))
		return "?" + q.Encode()
	}
	if d.Offset > 0 {
		d.Prev = link(max(d.Offset-pageSize, 0))
	}
	if d.Offset+pageSize < d.Matched {
		d.Next = link(d.Offset + pageSize)
	}
	cres := p.callAPI(r, http.MethodGet, orgPath(v.Org, "clusters"), "", nil)
	if cres.ok() {
		_ = cres.decode(&d.Clusters)
	}
	if tres := p.callAPI(r, http.MethodGet, orgPath(v.Org, "teams"), "", nil); tres.ok() {
		_ = tres.decode(&d.Teams)
	}
	v.Data = d
	p.render(w, http.StatusOK, "sandboxes", v)
}

type detailData struct {
	S      apitypes.Sandbox
	Labels []string
	YAML   string
}

func (p *Portal) sandboxDetail(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxRead, "sandboxes")
	if !ok {
		return
	}
	sb, ok := p.loadSandbox(w, r, v, r.PathValue("name"))
	if !ok {
		return
	}
	d := detailData{S: sb}
	for k, val := range sb.Spec.Labels {
		d.Labels = append(d.Labels, k+"="+val)
	}
	sort.Strings(d.Labels)
	d.YAML, _ = specYAML(sb.Name, sb.Team, sb.Spec)
	v.Title, v.Data = sb.Name, d
	p.render(w, http.StatusOK, "sandbox", v)
}

// loadSandbox reads a sandbox through the API; ok false when it answered
// already (not found, an error).
func (p *Portal) loadSandbox(w http.ResponseWriter, r *http.Request, v *view, name string) (apitypes.Sandbox, bool) {
	var sb apitypes.Sandbox
	return sb, p.load(w, r, v, "sandbox", name, orgPath(v.Org, "sandboxes", name), &sb)
}

// load reads one object of the org (what: "sandbox", "cluster"…) from the
// API path into out. It answers itself when it returns false: the not-found
// page, or the failure.
func (p *Portal) load(w http.ResponseWriter, r *http.Request, v *view, what, name, path string, out any) bool {
	res := p.callAPI(r, http.MethodGet, path, "", nil)
	if res.ok() && res.decode(out) == nil {
		return true
	}
	if res.code == http.StatusNotFound {
		p.page(w, r, identity.Principal{UserID: v.userID()}, http.StatusNotFound, "Not found", fmt.Sprintf("There is no %s %q in %s.", what, name, v.Org))
		return false
	}
	p.fail(w, r, res.code, what+" "+name, errors.New(res.err.Error))
	return false
}

func (v *view) userID() string {
	if v.User == nil {
		return ""
	}
	return v.User.ID
}

func (p *Portal) confirmDelete(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionSandboxDelete, "sandboxes")
	if !ok {
		return
	}
	v.Title, v.Data = "Delete "+r.PathValue("name"), r.PathValue("name")
	p.render(w, http.StatusOK, "delete", v)
}

// deleteSandbox deletes through the API's DELETE (its role check and audit).
func (p *Portal) deleteSandbox(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionSandboxDelete, "sandboxes")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	name := r.PathValue("name")
	res := p.callAPI(r, http.MethodDelete, orgPath(v.Org, "sandboxes", name), r.PostFormValue("csrf"), nil)
	if !res.ok() {
		p.page(w, r, pr, res.code, "Not deleted", res.err.Error)
		return
	}
	http.Redirect(w, r, "/o/"+url.PathEscape(v.Org)+"/sandboxes?deleted="+url.QueryEscape(name), http.StatusSeeOther)
}

// openPreview asks the API for a preview login link of an endpoint of a
// sandbox or a route group (coll: "sandboxes", "routegroups"; POST
// …/{coll}/{name}/preview-link: a short-lived token that starts a preview
// session on the preview origin) and sends the browser there.
func (p *Portal) openPreview(coll string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pr, v, ok := p.orgView(w, r, identity.ActionSandboxRead, coll)
		if !ok || !p.checkForm(w, r, pr) {
			return
		}
		path := orgPath(v.Org, coll, r.PathValue("name"), "preview-link") + "?endpoint=" + url.QueryEscape(r.PostFormValue("endpoint"))
		res := p.callAPI(r, http.MethodPost, path, r.PostFormValue("csrf"), nil)
		var link apitypes.PreviewLink
		if !res.ok() || res.decode(&link) != nil {
			p.page(w, r, pr, res.code, "No preview", res.err.Error)
			return
		}
		http.Redirect(w, r, link.URL, http.StatusSeeOther)
	}
}
