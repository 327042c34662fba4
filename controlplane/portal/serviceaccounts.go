package portal

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
)

// registerServiceAccounts registers the page of service accounts and the
// org's API keys (admins and owners: the API's apikey.manage).
func (p *Portal) registerServiceAccounts(m *http.ServeMux) {
	m.HandleFunc("GET /o/{org}/service-accounts", p.serviceAccounts)
	m.HandleFunc("POST /o/{org}/service-accounts", p.createServiceAccount)
	m.HandleFunc("POST /o/{org}/service-accounts/{name}/keys", p.createServiceAccountKey)
	m.HandleFunc("GET /o/{org}/service-accounts/{name}/delete", p.confirmDeleteServiceAccount)
	m.HandleFunc("POST /o/{org}/service-accounts/{name}/delete", p.deleteServiceAccount)
	m.HandleFunc("POST /o/{org}/apikeys/{id}/revoke", p.revokeKey)
}

type keyRow struct {
	K apitypes.APIKey
	// Owner says whose key it is: a member's email, a service account, or the org.
	Owner string
}

type serviceAccountsData struct {
	Accounts []apitypes.ServiceAccount
	Keys     []keyRow
	Roles    []identity.Role
	// NewKey is a key just made: its secret is shown only on this answer.
	NewKey *apitypes.APIKey
	// Name, Description and Role refill the create form after an error.
	Name, Description, Role string
}

// saRoles are the roles a service account may have (the API's rule: not owner).
func saRoles() []identity.Role {
	var out []identity.Role
	for _, r := range identity.Roles {
		if r != identity.RoleOwner {
			out = append(out, r)
		}
	}
	return out
}

func (p *Portal) serviceAccountsData(r *http.Request, v *view) (serviceAccountsData, error) {
	d := serviceAccountsData{Roles: saRoles(), Role: string(identity.RoleMember)}
	res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "service-accounts"), "", nil)
	if !res.ok() || res.decode(&d.Accounts) != nil {
		return d, errors.New(res.err.Error)
	}
	var keys []apitypes.APIKey
	res = p.callAPI(r, http.MethodGet, orgPath(v.Org, "apikeys"), "", nil)
	if !res.ok() || res.decode(&keys) != nil {
		return d, errors.New(res.err.Error)
	}
	emails := map[string]string{}
	var members []apitypes.Member
	if res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "members"), "", nil); res.ok() && res.decode(&members) == nil {
		for _, m := range members {
			emails[m.UserID] = m.Email
		}
	}
	for _, k := range keys {
		if k.RevokedAt != "" {
			continue
		}
		row := keyRow{K: k, Owner: "the org"}
		switch {
		case k.ServiceAccount != "":
			row.Owner = "service account " + k.ServiceAccount
		case k.OwnerUser != "":
			row.Owner = emails[k.OwnerUser]
			if row.Owner == "" {
				row.Owner = "user " + k.OwnerUser
			}
		}
		d.Keys = append(d.Keys, row)
	}
	return d, nil
}

func (p *Portal) serviceAccounts(w http.ResponseWriter, r *http.Request) {
	_, v, ok := p.orgView(w, r, identity.ActionAPIKeyManage, "service-accounts")
	if !ok {
		return
	}
	d, err := p.serviceAccountsData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "service accounts", err)
		return
	}
	v.Title, v.Data = "Service accounts", d
	p.render(w, http.StatusOK, "serviceaccounts", v)
}

func serviceAccountsURL(org string) string { return "/o/" + url.PathEscape(org) + "/service-accounts" }

// createServiceAccount creates a service account and its first key through
// the API, and shows the key once.
func (p *Portal) createServiceAccount(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionAPIKeyManage, "service-accounts")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	req := apitypes.CreateServiceAccountRequest{Name: strings.TrimSpace(r.PostFormValue("name")),
		Description: strings.TrimSpace(r.PostFormValue("description")), Role: r.PostFormValue("role")}
	res := p.callAPI(r, http.MethodPost, orgPath(v.Org, "service-accounts"), r.PostFormValue("csrf"), req)
	if !res.ok() {
		d, err := p.serviceAccountsData(r, v)
		if err != nil {
			p.fail(w, r, http.StatusInternalServerError, "service accounts", err)
			return
		}
		d.Name, d.Description, d.Role = req.Name, req.Description, req.Role
		v.Title, v.Data, v.Error, v.Fields = "Service accounts", d, res.err.Error, res.err.Fields
		p.render(w, res.code, "serviceaccounts", v)
		return
	}
	p.keyPage(w, r, v, req.Name)
}

func (p *Portal) createServiceAccountKey(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionAPIKeyManage, "service-accounts")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.keyPage(w, r, v, r.PathValue("name"))
}

// keyPage makes an API key of a service account and shows its secret
// once (the control plane keeps its hash).
func (p *Portal) keyPage(w http.ResponseWriter, r *http.Request, v *view, account string) {
	res := p.callAPI(r, http.MethodPost, orgPath(v.Org, "service-accounts", account, "keys"), r.PostFormValue("csrf"),
		apitypes.CreateAPIKeyRequest{Name: account})
	var k apitypes.APIKey
	code := http.StatusOK
	if !res.ok() || res.decode(&k) != nil {
		code, v.Error = res.code, "No key made for "+account+": "+res.err.Error
	}
	d, err := p.serviceAccountsData(r, v)
	if err != nil {
		p.fail(w, r, http.StatusInternalServerError, "service accounts", err)
		return
	}
	if k.Key != "" {
		d.NewKey = &k
	}
	w.Header().Set("Cache-Control", "no-store")
	v.Title, v.Data = "Service accounts", d
	p.render(w, code, "serviceaccounts", v)
}

func (p *Portal) confirmDeleteServiceAccount(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionAPIKeyManage, "service-accounts")
	if !ok {
		return
	}
	name := r.PathValue("name")
	if res := p.callAPI(r, http.MethodGet, orgPath(v.Org, "service-accounts", name), "", nil); !res.ok() {
		p.page(w, r, pr, res.code, "Not found", res.err.Error)
		return
	}
	v.Title, v.Data = "Delete service account "+name, confirmData{
		Heading: "Delete service account " + name + "?",
		Text:    "Its API keys are revoked at once: whatever uses them (CI jobs, scripts) gets 401 from then on. This cannot be undone.",
		Action:  serviceAccountsURL(v.Org) + "/" + url.PathEscape(name) + "/delete", Button: "Delete " + name, ButtonID: "confirm-delete-sa", Cancel: serviceAccountsURL(v.Org)}
	p.render(w, http.StatusOK, "confirm", v)
}

func (p *Portal) deleteServiceAccount(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionAPIKeyManage, "service-accounts")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodDelete, orgPath(v.Org, "service-accounts", r.PathValue("name")), nil, serviceAccountsURL(v.Org))
}

func (p *Portal) revokeKey(w http.ResponseWriter, r *http.Request) {
	pr, v, ok := p.orgView(w, r, identity.ActionAPIKeyManage, "service-accounts")
	if !ok || !p.checkForm(w, r, pr) {
		return
	}
	p.writeThenRedirect(w, r, pr, http.MethodDelete, orgPath(v.Org, "apikeys", r.PathValue("id")), nil, serviceAccountsURL(v.Org))
}
