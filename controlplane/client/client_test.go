package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/apitypes"

	"github.com/sandboxmesh/sandboxmesh/controlplane/api"
	"github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/controlplane/identity"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs"
	"github.com/sandboxmesh/sandboxmesh/controlplane/jobs/artifacts"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
)

// TestSDKCoversOpenAPI drives every SDK method against a real server and checks
// that together they use every documented user operation, each as documented.
func TestSDKCoversOpenAPI(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.DriverSQLite)
	arts, err := artifacts.NewFS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(ctx, api.Config{Store: st, Jobs: jobs.Config{Artifacts: arts},
		Identity: identity.Config{Params: identity.Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32}, AllowSignup: true}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	h := srv.Handler()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.Method+" "+r.URL.Path] = true
		mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	defer hs.Close()
	key, _, _ := api.Bootstrap(ctx, st, "", "")
	c, err := client.New(hs.URL, key)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err = c.CreateOrg(ctx, "acme", 5)
	must(err)
	_, err = c.GetOrg(ctx, "acme")
	must(err)
	_, err = c.SetQuota(ctx, "acme", 6)
	must(err)
	q, err := c.GetQuota(ctx, "acme")
	must(err)
	if q.MaxSandboxes != 6 {
		t.Fatalf("quota %+v", q)
	}
	_, err = c.RegisterCluster(ctx, "acme", "c1")
	must(err)
	_, err = c.GetCluster(ctx, "acme", "c1")
	must(err)
	_, err = c.ListClusters(ctx, "acme")
	must(err)
	tok, err := c.CreateClusterToken(ctx, "acme", "c1")
	must(err)
	_, err = c.ListClusterTokens(ctx, "acme", "c1")
	must(err)
	_, err = c.GetClusterToken(ctx, "acme", "c1", tok.ID)
	must(err)
	must(c.DeleteClusterToken(ctx, "acme", "c1", tok.ID))
	k, err := c.CreateAPIKey(ctx, "acme", "ci")
	must(err)
	_, err = c.ListAPIKeys(ctx, "acme")
	must(err)
	must(c.RevokeAPIKey(ctx, "acme", k.ID))
	sb := &client.Sandbox{Name: "s", Spec: v1alpha1.SandboxSpec{Cluster: "c1",
		Forks:             []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Namespace: "a", Name: "b"}}},
		DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://a.b.svc:80"}}}}}
	var created bool
	_, err = c.ApplySandbox(ctx, "acme", sb, client.Created(&created))
	must(err)
	if !created {
		t.Error("first apply: Created reported false")
	}
	_, err = c.ApplySandbox(ctx, "acme", sb, client.Created(&created))
	must(err)
	if created {
		t.Error("second apply: Created reported true")
	}
	_, err = c.GetSandbox(ctx, "acme", "s")
	must(err)
	if x, err := c.ExplainSandbox(ctx, "acme", "s"); err != nil || x.Explanation == "" || len(x.Context) == 0 {
		t.Errorf("explain: %+v %v", x, err)
	}
	_, err = c.ListSandboxes(ctx, "acme", map[string]string{"x": "y"})
	must(err)
	_, err = c.PreviewLink(ctx, "acme", "s", "")
	must(err)
	rg := &client.RouteGroup{Name: "r", Spec: v1alpha1.RouteGroupSpec{Cluster: "c1", Match: v1alpha1.RouteGroupMatch{Label: &v1alpha1.LabelMatch{Key: "a", Value: "*"}}}}
	_, err = c.ApplyRouteGroup(ctx, "acme", rg)
	must(err)
	_, err = c.GetRouteGroup(ctx, "acme", "r")
	must(err)
	_, err = c.ListRouteGroups(ctx, "acme")
	must(err)
	if _, err := c.RouteGroupPreviewLink(ctx, "acme", "r", ""); err == nil || !strings.Contains(err.Error(), "spec.endpoints") {
		t.Errorf("preview link of a route group without endpoints: %v", err)
	}
	must(c.DeleteRouteGroup(ctx, "acme", "r"))
	must(c.DeleteSandbox(ctx, "acme", "s"))
	_, err = c.SetPreviewPolicy(ctx, "acme", "c1", client.PreviewPolicy{AllowedNamespaces: []string{"shop"}})
	must(err)
	_, err = c.GetPreviewPolicy(ctx, "acme", "c1")
	must(err)
	_, err = c.ListWorkloads(ctx, "acme", "c1", "")
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("workloads before any report: %v", err)
	}
	_, err = c.AnalyzeDevmesh(ctx, "acme", "c1", "shop", "missing")
	if !errors.Is(err, client.ErrNotFound) {
		t.Errorf("devmesh analysis before any report: %v", err)
	}
	if orgs, err := c.ListOrgs(ctx); err != nil || len(orgs.Orgs) == 0 {
		t.Errorf("orgs: %v %v", orgs, err)
	}
	jobCalls(ctx, t, c, hs.URL)
	pluginCalls(ctx, t, c)
	smartTestCalls(ctx, t, c)
	peopleCalls(ctx, t, c, hs.URL)
	must(c.DeleteCluster(ctx, "acme", "c1"))
	ak, err := c.CreateAdminKey(ctx, "second")
	must(err)
	_, err = c.ListAdminKeys(ctx)
	must(err)
	ak, err = c.RotateAdminKey(ctx, ak.ID)
	must(err)
	must(c.RevokeAdminKey(ctx, ak.ID))

	// Each documented user operation was called through the SDK.
	for _, op := range api.Operations {
		if op.Agent || op.Public || op.Alias {
			continue // agent protocol, the document itself, Signadot's second paths
		}
		found := false
		for s := range seen {
			m, p, _ := strings.Cut(s, " ")
			if m == op.Method && matchPath(op.Path, p) {
				found = true
			}
		}
		if !found {
			t.Errorf("the SDK has no call for %s %s", op.Method, op.Path)
		}
	}
}

func matchPath(pattern, path string) bool {
	ps, xs := strings.Split(pattern, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i := range ps {
		if !strings.HasPrefix(ps[i], ":") && ps[i] != xs[i] {
			return false
		}
	}
	return true
}

func TestErrorsAndWait(t *testing.T) {
	ctx := context.Background()
	st := storetest.Open(t, store.DriverSQLite)
	srv, _ := api.New(ctx, api.Config{Store: st})
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	key, _, _ := api.Bootstrap(ctx, st, "acme", "")
	c, _ := client.New(hs.URL, key)
	tests := []struct {
		name   string
		call   func() error
		target error
		status int
	}{
		{"not found", func() error { _, err := c.GetSandbox(ctx, "acme", "nope"); return err }, client.ErrNotFound, 404},
		{"invalid", func() error { _, err := c.ApplySandbox(ctx, "acme", &client.Sandbox{Name: "x"}); return err }, client.ErrInvalid, 400},
		{"unauthorized", func() error {
			bad, _ := client.New(hs.URL, "smk_wrong")
			_, err := bad.ListClusters(ctx, "acme")
			return err
		}, client.ErrUnauthorized, 401},
		{"forbidden", func() error {
			k, _ := c.CreateAPIKey(ctx, "acme", "k")
			org, _ := client.New(hs.URL, k.Key)
			_, err := org.SetQuota(ctx, "acme", 1)
			return err
		}, client.ErrForbidden, 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var ae *client.APIError
			if !errors.As(err, &ae) || ae.Status != tc.status || ae.Code != tc.status || ae.RequestID == "" || !errors.Is(err, tc.target) {
				t.Fatalf("got %#v", err)
			}
		})
	}
	// Context cancellation is honoured.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.ListClusters(cctx, "acme"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
	// Server down: a transport error, not an APIError.
	down, _ := client.New("http://127.0.0.1:1", key)
	var ae *client.APIError
	if _, err := down.ListClusters(ctx, "acme"); err == nil || errors.As(err, &ae) {
		t.Fatalf("server down: %v", err)
	}
	if _, err := client.New("ftp://x", key); err == nil {
		t.Fatal("bad base URL accepted")
	}
	// WaitForReady on a missing sandbox fails fast with ErrNotFound.
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
	defer wcancel()
	if _, err := c.WaitForReady(wctx, "acme", "ghost", nil); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("wait for missing: %v", err)
	}
}

func TestPreviewHelpers(t *testing.T) {
	u, err := client.PreviewURL("https://cp.example.com/", "acme", "feat", "web", "/api/cart?id=1")
	if err != nil || u.String() != "https://cp.example.com/preview/acme/feat/web/api/cart?id=1" {
		t.Fatalf("PreviewURL: %v %v", u, err)
	}
	if _, err := client.PreviewURL("cp.example.com", "acme", "feat", "web", "/"); err == nil {
		t.Fatal("PreviewURL accepted a base without scheme")
	}
	sb := &client.Sandbox{Name: "feat", Spec: v1alpha1.SandboxSpec{DefaultRouteGroup: &v1alpha1.DefaultRouteGroup{
		Endpoints: []v1alpha1.Endpoint{{Name: "web", Target: "http://frontend.shop.svc:8080"}}}}}
	ep, err := client.FindEndpoint(sb, "http://frontend.shop.svc:8080")
	if err != nil || ep.Name != "web" {
		t.Fatalf("FindEndpoint: %+v %v", ep, err)
	}
	if _, err := client.FindEndpoint(sb, "http://other.shop.svc:80"); !errors.Is(err, client.ErrNoEndpoint) {
		t.Fatalf("FindEndpoint of an undeclared target: %v", err)
	}
	h := http.Header{}
	client.AuthorizePreview(h, "smk_x", "rk1")
	if h.Get(apitypes.HeaderAPIKey) != "smk_x" || !strings.Contains(h.Get("baggage"), "sm-routing-key=rk1") {
		t.Fatalf("AuthorizePreview: %v", h)
	}
}

// smartTestCalls drives the SDK's smart test methods (docs/smart-tests.md).
func smartTestCalls(ctx context.Context, t *testing.T, c *client.Client) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.ApplyRunnerGroup(ctx, "acme", &client.RunnerGroup{Name: "strg", Spec: apitypes.RunnerGroupSpec{Cluster: "c1"}})
	must(err)
	_, err = c.ApplyTest(ctx, "acme", &client.SmartTest{Name: "st", Spec: apitypes.SmartTestSpec{Script: "x = 1\n", RunnerGroup: "strg"}})
	must(err)
	_, err = c.GetTest(ctx, "acme", "st")
	must(err)
	if ts, err := c.ListTests(ctx, "acme"); err != nil || len(ts) != 1 {
		t.Fatalf("tests: %+v %v", ts, err)
	}
	_, err = c.ApplySandbox(ctx, "acme", &client.Sandbox{Name: "stsb", Spec: v1alpha1.SandboxSpec{Cluster: "c1",
		Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Namespace: "shop", Name: "cart"}}}}})
	must(err)
	ex, err := c.CreateTestExecution(ctx, "acme", "st", apitypes.TestExecutionSpec{
		ExecutionContext: apitypes.TestExecutionContext{Routing: &apitypes.TestExecutionRouting{Sandbox: "stsb"}}})
	must(err)
	_, err = c.GetTestExecution(ctx, "acme", ex.ID)
	must(err)
	if _, err := c.GetTrafficDiff(ctx, "acme", ex.ID); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("diff of a pending execution: %v", err)
	}
	if ex, err = c.CancelTestExecution(ctx, "acme", ex.ID); err != nil || ex.Status.Phase != apitypes.TestPhaseCanceled {
		t.Fatalf("cancel: %+v %v", ex, err)
	}
	if _, err := c.GetTrafficDiffFindings(ctx, "acme", ex.ID, "red", 3); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("findings of a canceled execution: %v", err)
	}
	if l, err := c.ListTestExecutions(ctx, "acme", client.TestExecutionFilter{Test: "st"}); err != nil || len(l) != 1 {
		t.Fatalf("executions: %+v %v", l, err)
	}
	_, err = c.ListTestExecutionsOf(ctx, "acme", "st")
	must(err)
	must(c.DeleteTest(ctx, "acme", "st"))
	must(c.DeleteRunnerGroup(ctx, "acme", "strg"))
	must(c.DeleteSandbox(ctx, "acme", "stsb"))
}

// jobCalls drives the SDK's job methods and the RunnerClient.
func jobCalls(ctx context.Context, t *testing.T, c *client.Client, base string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.ApplyRunnerGroup(ctx, "acme", &client.RunnerGroup{Name: "rg", Spec: apitypes.RunnerGroupSpec{Cluster: "c1"}})
	must(err)
	_, err = c.GetRunnerGroup(ctx, "acme", "rg")
	must(err)
	_, err = c.ListRunnerGroups(ctx, "acme")
	must(err)
	job, err := c.SubmitJob(ctx, "acme", apitypes.JobSpec{RunnerGroup: "rg", Command: []string{"true"}, UploadArtifact: []apitypes.ArtifactToUpload{{Path: "a.txt"}}})
	must(err)
	_, err = c.GetJob(ctx, "acme", job.Name)
	must(err)
	_, err = c.ListJobs(ctx, "acme", client.JobFilter{RunnerGroup: "rg"})
	must(err)

	ctok, err := c.CreateClusterToken(ctx, "acme", "c1")
	must(err)
	req, _ := http.NewRequest(http.MethodGet, base+"/api/v2/agent/state?wait=0s", nil)
	req.Header.Set(apitypes.HeaderClusterToken, ctok.Token)
	resp, err := http.DefaultClient.Do(req)
	must(err)
	var state apitypes.AgentState
	must(json.NewDecoder(resp.Body).Decode(&state))
	resp.Body.Close()
	var token string
	for _, o := range state.Objects {
		if o.Kind == "runnergroup" {
			token = o.RunnerToken
		}
	}
	rc, err := client.NewRunnerClient(base, "acme", "rg", token, "ns", "pod-1", nil)
	must(err)
	rj, err := rc.Claim(ctx, time.Second)
	if err != nil || rj == nil || rj.Name != job.Name {
		t.Fatalf("claim: %+v %v", rj, err)
	}
	_, err = rc.Events(ctx, job.Name, 0, []apitypes.LogChunk{{Stream: "stdout", Data: []byte("hi\n")}})
	must(err)
	_, err = rc.UploadArtifact(ctx, job.Name, 0, "a.txt", "text/plain", strings.NewReader("abc"), 3)
	must(err)
	_, err = rc.Finish(ctx, job.Name, 0, apitypes.RunnerFinish{ExitCode: 0})
	must(err)
	var lines []string
	must(c.StreamJobLogs(ctx, "acme", job.Name, client.LogStreamOptions{}, func(m client.JobLogMessage) error {
		lines = append(lines, m.Message)
		return nil
	}))
	if strings.Join(lines, "") != "hi\n" {
		t.Fatalf("logs: %q", lines)
	}
	_, err = c.ListArtifacts(ctx, "acme", job.Name, 0, "")
	must(err)
	_, err = c.ArtifactInfo(ctx, "acme", job.Name, 0, "", "a.txt")
	must(err)
	var b strings.Builder
	if _, err := c.DownloadArtifact(ctx, "acme", job.Name, 0, "", "a.txt", &b); err != nil || b.String() != "abc" {
		t.Fatalf("download: %q %v", b.String(), err)
	}
	_, err = c.CancelJob(ctx, "acme", job.Name)
	must(err)
	must(c.DeleteJob(ctx, "acme", job.Name))
	must(c.DeleteRunnerGroup(ctx, "acme", "rg"))
}

// peopleCalls drives the SDK's people-and-access methods: with the admin
// key (an owner of every org), and with a user's session.
func peopleCalls(ctx context.Context, t *testing.T, c *client.Client, base string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	resp, err := http.Post(base+"/api/v2/auth/signup", "application/json", strings.NewReader(`{"email":"ann@example.com","password":"anns long passphrase","org":"shop"}`))
	must(err)
	var info apitypes.AuthInfo
	must(json.NewDecoder(resp.Body).Decode(&info))
	resp.Body.Close()
	var cookie string
	for _, ck := range resp.Cookies() {
		if ck.Name == apitypes.SessionCookie {
			cookie = ck.Name + "=" + ck.Value
		}
	}
	ann, err := client.New(base, "", client.WithHeader("Cookie", cookie), client.WithHeader(apitypes.HeaderCSRFToken, info.CSRFToken))
	must(err)
	me, err := ann.GetMe(ctx)
	if err != nil || me.User == nil || me.User.Email != "ann@example.com" || len(me.Orgs) != 1 {
		t.Fatalf("me: %+v %v", me, err)
	}
	inv, err := c.CreateInvitation(ctx, "shop", "vic@example.com", "viewer")
	must(err)
	if inv.Token == "" {
		t.Fatal("invitation without its token")
	}
	_, err = c.ListInvitations(ctx, "shop")
	must(err)
	must(c.RevokeInvitation(ctx, "shop", inv.ID))
	ms, err := c.ListMembers(ctx, "shop")
	must(err)
	if len(ms) != 1 {
		t.Fatalf("members: %+v", ms)
	}
	_, err = c.ApplyTeam(ctx, "shop", "web", 3)
	must(err)
	_, err = c.GetTeam(ctx, "shop", "web")
	must(err)
	_, err = c.ListTeams(ctx, "shop")
	must(err)
	_, err = c.AddTeamMember(ctx, "shop", "web", ms[0].UserID)
	must(err)
	_, err = c.ListTeamMembers(ctx, "shop", "web")
	must(err)
	must(c.RemoveTeamMember(ctx, "shop", "web", ms[0].UserID))
	must(c.DeleteTeam(ctx, "shop", "web"))
	if _, err := c.SetMemberRole(ctx, "shop", ms[0].UserID, "admin"); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("demote the last owner: %v", err)
	}
	if err := c.RemoveMember(ctx, "shop", ms[0].UserID); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("remove the last owner: %v", err)
	}
	_, err = c.CreateServiceAccount(ctx, "shop", "ci", "CI", "member")
	must(err)
	_, err = c.GetServiceAccount(ctx, "shop", "ci")
	must(err)
	_, err = c.ListServiceAccounts(ctx, "shop")
	must(err)
	k, err := c.CreateServiceAccountKey(ctx, "shop", "ci", "gha")
	must(err)
	_, err = c.ListServiceAccountKeys(ctx, "shop", "ci")
	must(err)
	must(c.RevokeServiceAccountKey(ctx, "shop", "ci", k.ID))
	must(c.DeleteServiceAccount(ctx, "shop", "ci"))
	own, err := ann.CreateOwnAPIKey(ctx, "shop", "laptop")
	must(err)
	_, err = ann.ListOwnAPIKeys(ctx, "shop")
	must(err)
	must(ann.RevokeOwnAPIKey(ctx, "shop", own.ID))
	if _, err := c.ListOwnAPIKeys(ctx, "shop"); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("own keys of the admin key: %v", err)
	}
	if u, err := c.GetUsage(ctx, "shop", ""); err != nil || u.Month == "" {
		t.Fatalf("usage: %+v %v", u, err)
	}
	if _, err := c.GetUsage(ctx, "shop", "2026-13"); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("usage of a bad month: %v", err)
	}
	ev, err := c.ListEvents(ctx, "shop")
	must(err)
	if len(ev) == 0 {
		t.Fatal("no audit events")
	}
	_, err = c.ListEventsPage(ctx, "shop", client.PageOptions{Limit: 1})
	must(err)
	if err := ann.ChangePassword(ctx, "wrong passphrase!", "anns new passphrase"); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("change password with a wrong one: %v", err)
	}
	must(ann.ChangePassword(ctx, "anns long passphrase", "anns new passphrase"))
	must(ann.Logout(ctx))
	if _, err := ann.GetMe(ctx); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("after logout: %v", err)
	}
	if _, err := c.LogoutAll(ctx); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("logout-all with an API key: %v", err)
	}
}

// pluginCalls drives the SDK's resource plugin methods.
func pluginCalls(ctx context.Context, t *testing.T, c *client.Client) {
	t.Helper()
	rp := &client.ResourcePlugin{Name: "pg", Spec: v1alpha1.ResourcePluginSpec{Runner: v1alpha1.PluginRunner{Image: "example.com/db"},
		Create: []v1alpha1.PluginStep{{Name: "provision", Script: "#!/bin/sh\necho", Outputs: []v1alpha1.StepOutput{{Name: "host", ValueFromPath: "/tmp/host"}}}}}}
	if _, err := c.ApplyResourcePlugin(ctx, "acme", rp); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetResourcePlugin(ctx, "acme", "pg"); err != nil || got.Spec.Runner.Namespace != v1alpha1.DefaultPluginNamespace {
		t.Fatalf("get plugin: %+v %v", got, err)
	}
	if l, err := c.ListResourcePlugins(ctx, "acme"); err != nil || len(l) != 1 {
		t.Fatalf("list plugins: %+v %v", l, err)
	}
	if err := c.DeleteResourcePlugin(ctx, "acme", "pg"); err != nil {
		t.Fatal(err)
	}
}
