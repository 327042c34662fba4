package portal_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestBrowserOnboarding drives headless Chromium through a new org's first
// steps: sign up (which creates the org), invite a member as a viewer from
// the Members page and read the link it shows once, register a cluster and
// copy its token (an agent then authenticates with the copied token), log
// out, join through the invitation link as the viewer, who sees the org's
// sandbox but no control to change it; the same delete sent directly is
// refused.
func TestBrowserOnboarding(t *testing.T) {
	chrome := needChromium(t)
	e := newEnv(t)
	cr := startChromium(t, chrome, 60*time.Second)
	base := e.http.URL

	cr.do("sign up",
		chromedp.Navigate(base+"/signup"), chromedp.WaitVisible(chromedp.ID("org")),
		chromedp.SendKeys(chromedp.ID("email"), "olga@example.com"),
		chromedp.SendKeys(chromedp.ID("displayName"), "Olga"),
		chromedp.SendKeys(chromedp.ID("org"), "labs"),
		chromedp.SendKeys(chromedp.ID("password"), "olgas long passphrase"),
		chromedp.Click(chromedp.CSS(`form[action="/signup"] button[type=submit]`)),
		chromedp.WaitReady(chromedp.ID("sandboxes"))) // the empty list's (hidden) table, filled live
	cr.waitJS("the new org's sandboxes", `location.pathname === "/o/labs/sandboxes" && document.body.textContent.includes("No sandboxes")`)
	cr.shot("onboarding-empty")

	// Invite a viewer; the link is shown once.
	cr.do("invite a viewer",
		chromedp.Navigate(base+"/o/labs/members"), chromedp.WaitVisible(chromedp.ID("inv-email")),
		chromedp.SendKeys(chromedp.ID("inv-email"), "val@example.com"),
		chromedp.SetValue(chromedp.ID("inv-role"), "viewer"),
		chromedp.Click(chromedp.ID("invite")),
		chromedp.WaitVisible(chromedp.ID("invite-link")))
	link := cr.value("invite-link")
	lu, err := url.Parse(link)
	if err != nil || lu.Path != "/invite" || lu.Query().Get("token") == "" {
		t.Fatalf("invitation link %q: %v", link, err)
	}
	cr.shot("onboarding-invite")

	// Register a cluster and copy its token: an agent authenticates with it.
	cr.do("register a cluster",
		chromedp.Navigate(base+"/o/labs/clusters"), chromedp.WaitVisible(chromedp.ID("cl-name")),
		chromedp.SendKeys(chromedp.ID("cl-name"), "dev"),
		chromedp.Click(chromedp.ID("register")),
		chromedp.WaitVisible(chromedp.ID("token")))
	token := cr.value("token")
	if !strings.HasPrefix(token, "smc_") {
		t.Fatalf("cluster token %q", token)
	}
	e.apiCall(http.MethodPut, "/api/v2/agent/workloads", apitypes.HeaderClusterToken, token, `{"workloads":[]}`, nil, 200)

	// A sandbox of the org (with the admin key) for the viewer to look at.
	ctx := context.Background()
	if _, err := e.admin.ApplySandbox(ctx, "labs", &client.Sandbox{Name: "api-v2", Spec: v1alpha1.SandboxSpec{Cluster: "dev",
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "labs", Name: "api"}}}}}); err != nil {
		t.Fatal(err)
	}

	// Log out; join through the link as the viewer.
	cr.do("log out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.ID("email")))
	cr.do("join",
		chromedp.Navigate(link), chromedp.WaitVisible(chromedp.ID("join")),
		chromedp.SendKeys(chromedp.ID("displayName"), "Val"),
		chromedp.SendKeys(chromedp.ID("password"), "vals long passphrase"),
		chromedp.Click(chromedp.ID("join")),
		chromedp.WaitVisible(chromedp.ID("sandboxes")))
	cr.unlabelled("sandboxes as a viewer")
	cr.do("the sandbox as a viewer", chromedp.Navigate(base+"/o/labs/sandboxes/api-v2"), chromedp.WaitVisible(chromedp.ID("status-card")))
	if n, err := chromedp.Run(cr.ctx, chromedp.Evaluate[int](`document.querySelectorAll("#delete, #new-sandbox, a[href$='/new']").length`)); err != nil || n != 0 {
		t.Fatalf("the viewer sees %d write controls (%v)", n, err)
	}
	// The browser bypassed: the viewer's own session and CSRF token, sent directly.
	val := e.login("val@example.com", "vals long passphrase")
	csrf := val.csrf("/o/labs/sandboxes/api-v2")
	if resp, _ := val.postForm("/o/labs/sandboxes/api-v2/delete", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a viewer's direct delete: %d", resp.StatusCode)
	}
	if _, err := e.admin.GetSandbox(ctx, "labs", "api-v2"); err != nil {
		t.Fatalf("the sandbox after the refused delete: %v", err)
	}
}
