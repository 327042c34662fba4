package portal_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// screenshotDir is where the browser test saves its screenshots:
// $SANDBOXMESH_TEST_OUTPUT/portal when set (make test keeps them), else a
// temporary directory of the test.
func screenshotDir(t *testing.T) string {
	d := os.Getenv("SANDBOXMESH_TEST_OUTPUT")
	if d == "" {
		return t.TempDir()
	}
	d = filepath.Join(d, "portal")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// needChromium skips without Debian's chromium, except on CI (CI=true),
// where a missing browser is a broken machine: the test fails.
func needChromium(t *testing.T) string {
	path, err := exec.LookPath("chromium")
	if err == nil {
		return path
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("%s needs headless Chromium (apt-get install -y --no-install-recommends chromium); CI=%s, so it fails instead of skipping: %v", t.Name(), os.Getenv("CI"), err)
	}
	t.Skipf("no chromium on PATH (apt-get install -y --no-install-recommends chromium): %v", err)
	return ""
}

// TestBrowser drives headless Chromium against a real control plane: log
// in, create a sandbox from the form (workload picked from the agent's
// report), watch its status turn Ready live when the agent test double
// reports it (Server-Sent Events, no reload), see a list row change live,
// delete after confirmation, register a cluster (token and helm command),
// log in as a viewer who gets no write controls, check every form field
// has a label, and save screenshots of the main pages (laptop and phone).
func TestBrowser(t *testing.T) {
	chrome := needChromium(t)
	e := newEnv(t)
	ctx := context.Background()
	for i, n := range []string{"checkout-fix", "search-v2", "payments-flag"} {
		sb := &client.Sandbox{Name: n, Spec: v1alpha1.SandboxSpec{Cluster: "c1", Labels: map[string]string{"team": []string{"cart", "search", "payments"}[i]},
			Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: "Deployment", Namespace: "shop", Name: "cart"}}}}}
		got, err := e.admin.ApplySandbox(ctx, "shop", sb)
		if err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			e.report(n, got.Version, apitypes.ObservedStatus{Ready: true, Reason: "Available", Message: "all forks ready"})
		}
	}
	cr := startChromium(t, chrome, 60*time.Second)
	tctx, shot, do, waitJS, unlabelled := cr.ctx, cr.shot, cr.do, cr.waitJS, cr.unlabelled

	do("login page", chromedp.Navigate(e.http.URL+"/"), chromedp.WaitVisible(chromedp.ID("email")))
	unlabelled("login")
	shot("login")
	do("log in",
		chromedp.SendKeys(chromedp.ID("email"), "ann@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), annPass),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("sandboxes")))
	waitJS("list live", `document.body.getAttribute("data-live") === "1"`)
	unlabelled("sandboxes")
	shot("sandboxes")

	// A list row changes live.
	sb, err := e.admin.GetSandbox(ctx, "shop", "payments-flag")
	if err != nil {
		t.Fatal(err)
	}
	e.report("payments-flag", sb.Version, apitypes.ObservedStatus{Reason: "ForksNotReady", Message: "fork payments-flag-cart: 0/1 ready"})
	waitJS("row updated live", `(document.querySelector("#sb-payments-flag .badge")||{}).textContent === "ForksNotReady"`)

	// Create a sandbox from the form.
	do("new sandbox form", chromedp.Click(chromedp.ID("new-sandbox")), chromedp.WaitVisible(chromedp.ID("create-form")))
	do("fill the form",
		chromedp.SendKeys(chromedp.ID("name"), "cart-pr42"),
		chromedp.SetValue(chromedp.ID("workload"), "Deployment/shop/cart"),
		chromedp.SendKeys(chromedp.ID("image"), "registry.example.com/cart:pr-42"),
		chromedp.SendKeys(chromedp.ID("env"), "FEATURE_NEW_CHECKOUT=true"),
		chromedp.SendKeys(chromedp.ID("labels"), "team=cart"),
		chromedp.Click(chromedp.ID("show-yaml")),
		chromedp.WaitVisible(chromedp.ID("preview")))
	unlabelled("new sandbox")
	shot("create")
	do("create", chromedp.Click(chromedp.ID("create")), chromedp.WaitVisible(chromedp.ID("status-card")))
	waitJS("detail live", `document.body.getAttribute("data-live") === "1"`)
	badge, err := chromedp.Run(tctx, chromedp.Text(chromedp.ID("badge")))
	if err != nil || badge != "Pending" {
		t.Fatalf("badge before the agent reports: %q %v", badge, err)
	}
	created, err := e.admin.GetSandbox(ctx, "shop", "cart-pr42")
	if err != nil || created.Spec.Forks[0].Customizations.Images[0].Image != "registry.example.com/cart:pr-42" {
		t.Fatalf("created: %+v %v", created, err)
	}
	// The agent test double marks it ready: the page changes without a reload.
	e.report("cart-pr42", created.Version, apitypes.ObservedStatus{Ready: true, Reason: "Available", Message: "all forks ready",
		Forks: []v1alpha1.ForkStatus{{Name: "cart-pr42-cart", Baseline: "cart", Ready: true}}})
	waitJS("status live", `document.getElementById("badge").textContent === "Ready"`)
	if msg, _ := chromedp.Run(tctx, chromedp.Text(chromedp.ID("status-msg"))); msg != "all forks ready" {
		t.Fatalf("status message: %q", msg)
	}
	do("reload detail", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("status-card")))
	shot("sandbox")

	// Edit it: the form opens with its spec; a new image, shown then saved.
	do("edit form", chromedp.Click(chromedp.ID("edit")), chromedp.WaitVisible(chromedp.ID("edit-form")),
		chromedp.SetValue(chromedp.ID("image"), "registry.example.com/cart:pr-43"), chromedp.Click(chromedp.ID("show-yaml")), chromedp.WaitVisible(chromedp.ID("preview")))
	unlabelled("edit sandbox")
	shot("edit")
	do("save", chromedp.Click(chromedp.ID("save")), chromedp.WaitVisible(chromedp.ID("status-card")))
	if sb, err := e.admin.GetSandbox(ctx, "shop", "cart-pr42"); err != nil || sb.Spec.Forks[0].Customizations.Images[0].Image != "registry.example.com/cart:pr-43" {
		t.Fatalf("edited: %+v %v", sb, err)
	}

	// Delete another sandbox after the confirmation page; its row is gone.
	do("delete", chromedp.Navigate(e.http.URL+"/o/shop/sandboxes/search-v2"), chromedp.Click(chromedp.ID("delete")),
		chromedp.WaitVisible(chromedp.ID("confirm-delete")), chromedp.Click(chromedp.ID("confirm-delete")), chromedp.WaitVisible(chromedp.ID("sandboxes")))
	waitJS("row gone", `!document.getElementById("sb-search-v2") && document.body.textContent.includes("Sandbox search-v2 deleted")`)
	if _, err := e.admin.GetSandbox(ctx, "shop", "search-v2"); err == nil {
		t.Fatal("search-v2 not deleted")
	}
	do("members", chromedp.Navigate(e.http.URL+"/o/shop/members"), chromedp.WaitVisible(chromedp.ID("members")))
	unlabelled("members")
	shot("members")

	// Register a cluster: its token is shown once, with the helm command.
	do("register a cluster", chromedp.Navigate(e.http.URL+"/o/shop/clusters"), chromedp.WaitVisible(chromedp.ID("cl-name")),
		chromedp.SendKeys(chromedp.ID("cl-name"), "prod-eu"), chromedp.Click(chromedp.ID("register")), chromedp.WaitVisible(chromedp.ID("helm")))
	unlabelled("clusters")
	shot("clusters-token")
	do("a cluster's workloads", chromedp.Navigate(e.http.URL+"/o/shop/clusters/c1"), chromedp.WaitVisible(chromedp.ID("workloads")))
	shot("cluster")

	// A team, a service account (its key shown once), the audit trail.
	do("create a team", chromedp.Navigate(e.http.URL+"/o/shop/teams"), chromedp.WaitVisible(chromedp.ID("team-name")),
		chromedp.SendKeys(chromedp.ID("team-name"), "payments"), chromedp.SetValue(chromedp.ID("team-max"), "3"),
		chromedp.Click(chromedp.ID("create-team")), chromedp.WaitVisible(chromedp.ID("team-payments")))
	unlabelled("teams")
	shot("teams")
	do("create a service account", chromedp.Navigate(e.http.URL+"/o/shop/service-accounts"), chromedp.WaitVisible(chromedp.ID("sa-name")),
		chromedp.SendKeys(chromedp.ID("sa-name"), "ci"), chromedp.SendKeys(chromedp.ID("sa-desc"), "GitHub Actions"),
		chromedp.Click(chromedp.ID("create-sa")), chromedp.WaitVisible(chromedp.ID("apikey")))
	unlabelled("service accounts")
	shot("service-accounts-key")
	do("audit", chromedp.Navigate(e.http.URL+"/o/shop/audit"), chromedp.WaitVisible(chromedp.ID("audit")))
	unlabelled("audit")
	shot("audit")
	do("usage", chromedp.Navigate(e.http.URL+"/o/shop/usage"), chromedp.WaitVisible(chromedp.ID("usage")), chromedp.WaitVisible(chromedp.ID("download-csv")))
	unlabelled("usage")
	shot("usage")
	do("usage on a phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(e.http.URL+"/o/shop/usage"), chromedp.WaitVisible(chromedp.ID("usage")))
	if d, err := chromedp.Run(tctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("#usage tbody tr")).display`)); err != nil || d != "block" {
		t.Errorf("usage rows on a phone: display %q (%v), want stacked (block)", d, err)
	}
	shot("usage-phone")
	do("back to a laptop", chromedp.EmulateViewport(1280, 800))

	// A viewer: no delete button, no new-sandbox link.
	do("log out", chromedp.Click(chromedp.CSS(`form[action="/logout"] button`)), chromedp.WaitVisible(chromedp.ID("email")))
	do("viewer logs in",
		chromedp.SendKeys(chromedp.ID("email"), "vic@example.com"),
		chromedp.SendKeys(chromedp.ID("password"), vicPass),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("sandboxes")),
		chromedp.Navigate(e.http.URL+"/o/shop/sandboxes/cart-pr42"),
		chromedp.WaitVisible(chromedp.ID("status-card")))
	if n, err := chromedp.Run(tctx, chromedp.Evaluate[int](`document.querySelectorAll("#delete, #edit, #new-sandbox, a[href$='/new']").length`)); err != nil || n != 0 {
		t.Fatalf("viewer sees %d write controls (%v)", n, err)
	}

	// Phone: the list stacks its cells.
	do("phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile), chromedp.Navigate(e.http.URL+"/o/shop/sandboxes"), chromedp.WaitVisible(chromedp.ID("sandboxes")))
	shot("sandboxes-phone")
	do("teams on a phone", chromedp.Navigate(e.http.URL+"/o/shop/teams"), chromedp.WaitVisible(chromedp.ID("teams")))
	shot("teams-phone")
	t.Logf("screenshots in %s", cr.out)
}

// chromium is a headless Chromium (1280×800) driven by one test, with the
// steps the browser tests share.
type chromium struct {
	t   *testing.T
	ctx context.Context
	out string // where shot saves screenshots
}

// startChromium starts Chromium at path for at most timeout; it stops with
// the test.
func startChromium(t *testing.T, path string, timeout time.Duration) *chromium {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 800))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(acancel)
	bctx, bcancel := chromedp.NewContext(actx)
	t.Cleanup(bcancel)
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	tctx, tcancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(tcancel)
	return &chromium{t: t, ctx: tctx, out: screenshotDir(t)}
}

// shot saves a full-page screenshot as name.png.
func (c *chromium) shot(name string) {
	c.t.Helper()
	b, err := chromedp.Run(c.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(c.out, name+".png"), b, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// do runs steps, failing the test with what when one fails.
func (c *chromium) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, steps...); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// waitJS polls a JavaScript condition (in the page: no polling by the app).
func (c *chromium) waitJS(what, expr string) {
	c.t.Helper()
	if _, err := chromedp.Run(c.ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		c.t.Fatalf("%s: %v", what, err)
	}
}

// unlabelled fails the test for the page's form fields that have no label
// (every one must).
func (c *chromium) unlabelled(page string) {
	c.t.Helper()
	bad, err := chromedp.Run(c.ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("input:not([type=hidden]),select,textarea")]
		.filter(el => !(el.labels && el.labels.length) && !el.getAttribute("aria-label")).map(el => el.id || el.name)`))
	if err != nil || len(bad) > 0 {
		c.t.Errorf("%s: fields without a label: %v %v", page, bad, err)
	}
}

// value reads the value of the input with id.
func (c *chromium) value(id string) string {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, chromedp.Value(chromedp.ID(id)))
	if err != nil {
		c.t.Fatalf("value of #%s: %v", id, err)
	}
	return v
}
