//go:build e2e

package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cpclient "github.com/sandboxmesh/sandboxmesh/controlplane/client"
	"github.com/sandboxmesh/sandboxmesh/crds/v1alpha1"
	"github.com/sandboxmesh/sandboxmesh/examples/plugins"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/dbserver"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/demo"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/localcluster"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/testenv"
	"github.com/sandboxmesh/sandboxmesh/operator/naming"
)

// pgCatalog lists what a sandbox may add to a PostgreSQL server: databases
// and roles.
func pgCatalog(ctx context.Context, t *testing.T, pg *dbserver.Server) string {
	t.Helper()
	out, err := pg.Query(ctx, "", "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database UNION ALL SELECT string_agg(rolname, ',' ORDER BY rolname) FROM pg_roles")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// resourcePlugins is the resource plugin feature end to end: a PostgreSQL
// server on the node's bridge address (a host process; nothing leaves the
// machine), the shipped postgres-schema plugin applied over REST (the agent
// writes the ResourcePlugin CR), a sandbox whose fork of route gets
// DATABASE_URL from valueFrom.resource: the operator runs the plugin's create
// step as a pod (sandboxmesh-runner:db, real psql) before the fork, the
// database exists with the seed applied, the fork's env reads the outputs
// Secret, keyed requests write rows into the sandbox's database through the
// fork and unkeyed ones none; deleting the sandbox runs the drop step and the
// server is as it was.
func resourcePlugins(ctx context.Context, t *testing.T, e *demo.Env, cfg localcluster.Config) {
	node := cfg.NodeIP().String()
	pg, err := dbserver.StartPostgres(ctx, dbserver.Config{Listen: []string{node, "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Stop()
	t.Logf("PostgreSQL on %s:%d (init %s, ready %s)", pg.Host, pg.Port, pg.InitTime.Round(time.Millisecond), pg.ReadyTime.Round(time.Millisecond))
	before := pgCatalog(ctx, t, pg)

	ns := v1alpha1.DefaultPluginNamespace
	if _, err := e.Kube.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if _, err := e.Kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	admin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "postgres-schema-admin", Namespace: ns}, StringData: map[string]string{
		"PGHOST": node, "PGPORT": strconv.Itoa(pg.Port), "PGUSER": pg.AdminUser, "PGPASSWORD": pg.AdminPassword, "PGSSLMODE": "disable"}}
	if _, err := e.Kube.CoreV1().Secrets(ns).Create(ctx, admin, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer e.Kube.CoreV1().Secrets(ns).Delete(context.Background(), admin.Name, metav1.DeleteOptions{})

	plugin, err := plugins.Load(filepath.Join(testenv.RepoRoot(), "examples", "plugins", "postgres-schema"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.API.ApplyResourcePlugin(ctx, e.Org, &plugin); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = e.API.DeleteResourcePlugin(context.Background(), e.Org, plugin.Name) }()

	newSandbox := func(name string) *cpclient.Sandbox {
		return &cpclient.Sandbox{Name: name, Spec: v1alpha1.SandboxSpec{Cluster: e.Cluster,
			Resources: []v1alpha1.Resource{{Name: "db", Plugin: plugin.Name, Params: map[string]string{"seed-sql": "CREATE TABLE lookups (n int); INSERT INTO lookups VALUES (42);"}}},
			Forks: []v1alpha1.Fork{{ForkOf: v1alpha1.WorkloadRef{Kind: v1alpha1.KindDeployment, Namespace: demo.ExampleNamespace, Name: "route"},
				Customizations: &v1alpha1.Customizations{Env: []v1alpha1.EnvCustomization{{Name: "DATABASE_URL",
					ValueFrom: &v1alpha1.EnvValueFrom{Resource: &v1alpha1.EnvValueFromResource{Name: "db", OutputKey: "provision.url"}}}}}}}}}
	}
	// The peer: the same fork with a plain env var instead of the resource,
	// applied just before in the same run, so that the figure compares like
	// with like (PUT → Ready with the resource against without).
	plain := newSandbox("route-plain")
	plain.Spec.Resources = nil
	plain.Spec.Forks[0].Customizations.Env = []v1alpha1.EnvCustomization{{Name: "SM_E2E_PEER", Value: ptr("1")}}
	// applyTimed applies sb and waits until the API says Ready; it returns
	// that time, when the Sandbox CR became Ready (the operator's part,
	// without the agent's 2 s status interval) and when the fork Deployment
	// was created.
	applyTimed := func(sb *cpclient.Sandbox) (*cpclient.Sandbox, time.Duration, time.Duration, time.Duration) {
		t.Helper()
		clock := watchPhases(ctx, t, e, sb.Name)
		start := clock.begin()
		if _, err := e.API.ApplySandbox(ctx, e.Org, sb); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		ready, err := e.API.WaitForReady(wctx, e.Org, sb.Name, &cpclient.WaitOptions{Interval: 100 * time.Millisecond})
		if err != nil {
			t.Fatalf("sandbox %s not ready: %v (%+v)", sb.Name, err, ready)
		}
		took := time.Since(start)
		clock.stop(t, sb.Name)
		return ready, took, clock.crReady(), clock.forkCreated()
	}
	_, plainTook, plainCR, plainFork := applyTimed(plain)
	record(t, "resource_peer_put_to_ready", plainTook)
	record(t, "resource_peer_put_to_cr_ready", plainCR)
	if err := e.API.DeleteSandbox(ctx, e.Org, plain.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, time.Minute, "peer sandbox's fork gone", func() error {
		ds, err := e.Kube.AppsV1().Deployments(demo.ExampleNamespace).List(ctx, metav1.ListOptions{LabelSelector: naming.LabelSandbox + "=" + plain.Name})
		if err != nil {
			return err
		}
		pods, err := e.Kube.CoreV1().Pods(demo.ExampleNamespace).List(ctx, metav1.ListOptions{LabelSelector: naming.LabelSandbox + "=" + plain.Name})
		if err != nil {
			return err
		}
		if n := len(ds.Items) + len(pods.Items); n > 0 {
			return fmt.Errorf("%d Deployments and pods left", n)
		}
		return nil
	})

	sb := newSandbox("route-db")
	ready, took, tookCR, tookFork := applyTimed(sb)
	record(t, "resource_sandbox_put_to_ready", took)
	record(t, "resource_sandbox_put_to_cr_ready", tookCR)
	// What the resource adds: to Ready through the API (the figure of issue
	// 16; it includes the agent's status interval, 0-2 s on each side), to
	// the CR's Ready, and to the fork's creation (the resources phase alone).
	record(t, "resource_added_put_to_ready", took-plainTook)
	record(t, "resource_added_put_to_cr_ready", tookCR-plainCR)
	record(t, "resource_added_put_to_fork", tookFork-plainFork)

	// The plugin made a database for the sandbox, seeded, owned by its role.
	dbs, err := pg.Query(ctx, "", "SELECT datname FROM pg_database WHERE datname LIKE 'sm\\_%'")
	if err != nil {
		t.Fatal(err)
	}
	db := strings.TrimSpace(dbs)
	if db == "" || strings.Contains(db, "\n") {
		t.Fatalf("databases made for the sandbox: %q", dbs)
	}
	if n, err := pg.Query(ctx, db, "SELECT n FROM lookups"); err != nil || strings.TrimSpace(n) != "42" {
		t.Fatalf("seed in %s: %q %v", db, n, err)
	}
	// The fork reads DATABASE_URL from the outputs Secret; no value in its spec.
	var forkEnv *corev1.EnvVar
	waitFor(ctx, t, time.Minute, "fork Deployment with DATABASE_URL", func() error {
		ds, err := e.Kube.AppsV1().Deployments(demo.ExampleNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for _, d := range ds.Items {
			if !strings.HasPrefix(d.Name, sb.Name+"-") {
				continue
			}
			for _, c := range d.Spec.Template.Spec.Containers {
				for i := range c.Env {
					if c.Env[i].Name == "DATABASE_URL" {
						forkEnv = &c.Env[i]
						return nil
					}
				}
			}
		}
		return fmt.Errorf("no fork of %s with DATABASE_URL yet", sb.Name)
	})
	if forkEnv.Value != "" || forkEnv.ValueFrom == nil || forkEnv.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("fork env DATABASE_URL: %+v (want a secretKeyRef, no value)", forkEnv)
	}
	ref := forkEnv.ValueFrom.SecretKeyRef
	sec, err := e.Kube.CoreV1().Secrets(demo.ExampleNamespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if url := string(sec.Data[ref.Key]); !strings.Contains(url, "/"+db+"?") || !strings.Contains(url, "@"+node+":") {
		t.Fatalf("outputs Secret %s key %s: %q does not name database %s on %s", ref.Name, ref.Key, url, db, node)
	}
	// The routing still works: the fork serves the sandbox's key.
	h := &hitter{t: t, url: serviceURL(ctx, t, e, demo.ExampleNamespace, "frontend") + "/dispatch?customer=392"}
	waitFor(ctx, t, time.Minute, "route hop served by "+sb.Name, func() error {
		tree, err := h.get(ctx, "baggage", "sm-routing-key="+ready.RoutingKey)
		if err != nil {
			return err
		}
		if got := servedBy(tree)["route"]; got != sb.Name {
			return fmt.Errorf("route served by %q", got)
		}
		return nil
	})

	// The fork writes into its own database; the baseline never does.
	count := func() int {
		out, err := pg.Query(ctx, db, "SELECT count(*) FROM lookups")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n
	}
	before2 := count()
	for i := range 3 {
		tree := h.must(ctx, "baggage", "sm-routing-key="+ready.RoutingKey)
		r := tree.Find("route")
		if r == nil || r.Sandbox != sb.Name || r.Data["database"] != db || r.Data["lookups"] != strconv.Itoa(before2+i+1) {
			t.Fatalf("keyed request %d: route hop %+v; want sandbox %s writing into %s (row %d)", i, r, sb.Name, db, before2+i+1)
		}
	}
	for range 3 {
		if r := h.must(ctx, "", "").Find("route"); r == nil || r.Sandbox != "" || r.Data["database"] != "" {
			t.Fatalf("unkeyed request: route hop %+v; want the baseline, no database", r)
		}
	}
	if got := count(); got != before2+3 {
		t.Fatalf("rows in %s: %d, want %d (three keyed requests; the baseline writes none)", db, got, before2+3)
	}

	// Delete: the drop step runs before the sandbox goes; the server is as before.
	if err := e.API.DeleteSandbox(ctx, e.Org, sb.Name); err != nil {
		t.Fatal(err)
	}
	waitFor(ctx, t, 2*time.Minute, "database dropped and sandbox gone", func() error {
		if got := pgCatalog(ctx, t, pg); got != before {
			return fmt.Errorf("catalog %q, before %q", got, before)
		}
		if _, err := e.API.GetSandbox(ctx, e.Org, sb.Name); !errors.Is(err, cpclient.ErrNotFound) {
			return fmt.Errorf("sandbox %s still there (%v)", sb.Name, err)
		}
		return nil
	})
	// Step pods are deleted once their step is recorded; the kubelet removes them.
	waitFor(ctx, t, time.Minute, "no step pod left in "+ns, func() error {
		pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.LabelResource})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			p := pods.Items[0]
			return fmt.Errorf("%d step pods, e.g. %s (%s, deleting: %v)", len(pods.Items), p.Name, p.Status.Phase, p.DeletionTimestamp != nil)
		}
		return nil
	})

	// The operator killed while a create step runs, and again while a delete
	// step runs: the sandbox still becomes Ready, still goes, and nothing leaks.
	killOperator := func(t *testing.T, step string, over func() bool) {
		t.Helper()
		waitFor(ctx, t, 2*time.Minute, "a "+step+" step pod", func() error {
			pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.LabelStep + "=" + step})
			if err != nil {
				return err
			}
			if len(pods.Items) == 0 {
				if over() {
					t.Logf("the %s step ended before the operator could be killed during it", step)
					return nil
				}
				return fmt.Errorf("none yet")
			}
			return nil
		})
		if err := e.Kube.CoreV1().Pods(e.Namespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=operator"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if err := e.WaitDeployment(ctx, e.Namespace, e.Release+"-operator", 3*time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	sb2 := newSandbox("route-db2")
	if _, err := e.API.ApplySandbox(ctx, e.Org, sb2); err != nil {
		t.Fatal(err)
	}
	killOperator(t, "provision", func() bool {
		got, err := e.API.GetSandbox(ctx, e.Org, sb2.Name)
		return err == nil && got.Status.Ready
	})
	wctx2, cancel2 := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel2()
	if got, err := e.API.WaitForReady(wctx2, e.Org, sb2.Name, &cpclient.WaitOptions{Interval: 100 * time.Millisecond}); err != nil {
		t.Fatalf("sandbox %s after an operator restart during create: %v (%+v)", sb2.Name, err, got)
	}
	if dbs, err := pg.Query(ctx, "", "SELECT count(*) FROM pg_database WHERE datname LIKE 'sm\\_%'"); err != nil || strings.TrimSpace(dbs) != "1" {
		t.Fatalf("databases after a create interrupted by an operator restart: %q %v; want exactly one", dbs, err)
	}
	if err := e.API.DeleteSandbox(ctx, e.Org, sb2.Name); err != nil {
		t.Fatal(err)
	}
	killOperator(t, "drop", func() bool { return pgCatalog(ctx, t, pg) == before }) // the API forgets the sandbox at once; the drop step ends later
	waitFor(ctx, t, 3*time.Minute, "database dropped after an operator restart during delete", func() error {
		if got := pgCatalog(ctx, t, pg); got != before {
			return fmt.Errorf("catalog %q, before %q", got, before)
		}
		if _, err := e.API.GetSandbox(ctx, e.Org, sb2.Name); !errors.Is(err, cpclient.ErrNotFound) {
			return fmt.Errorf("sandbox %s still there (%v)", sb2.Name, err)
		}
		pods, err := e.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: v1alpha1.LabelResource})
		if err != nil {
			return err
		}
		if len(pods.Items) > 0 {
			return fmt.Errorf("%d step pods left", len(pods.Items))
		}
		return nil
	})
}
