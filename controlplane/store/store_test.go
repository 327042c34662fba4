package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

var keySeq atomic.Int64

func newKey() (string, error) { return fmt.Sprintf("key%08d", keySeq.Add(1)), nil }

func forEachDriver(t *testing.T, f func(t *testing.T, s *store.Store)) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			f(t, storetest.Open(t, d))
		})
	}
}

func seed(t *testing.T, s *store.Store, org string, max int64, clusters ...string) {
	t.Helper()
	ctx := context.Background()
	if _, err := s.CreateOrg(ctx, org, max); err != nil {
		t.Fatal(err)
	}
	for _, c := range clusters {
		if _, err := s.CreateCluster(ctx, org, c); err != nil {
			t.Fatal(err)
		}
	}
}

func apply(s *store.Store, org, name, cluster, spec string) (store.Object, bool, error) {
	return s.Apply(context.Background(), store.ApplyRequest{Kind: store.KindSandbox, Org: org, Name: name, Cluster: cluster,
		Spec: json.RawMessage(spec), NewRoutingKey: newKey})
}

func TestOrgsAndKeys(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0)
		if _, err := s.CreateOrg(ctx, "acme", 0); !errors.Is(err, store.ErrAlreadyExists) {
			t.Fatalf("duplicate org: got %v", err)
		}
		if _, err := s.GetOrg(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown org: got %v", err)
		}
		if err := s.SetQuota(ctx, "acme", 3); err != nil {
			t.Fatal(err)
		}
		if o, _ := s.GetOrg(ctx, "acme"); o.MaxSandboxes != 3 {
			t.Fatalf("quota = %d", o.MaxSandboxes)
		}
		k, err := s.CreateAPIKey(ctx, store.APIKey{ID: "k1", Org: "acme", Name: "ci", Hash: "h1", Masked: "m"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.LookupAPIKey(ctx, "h1")
		if err != nil || got.ID != k.ID || got.Org != "acme" {
			t.Fatalf("lookup: %+v %v", got, err)
		}
		if err := s.RevokeAPIKey(ctx, "other", "k1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoke across orgs: %v", err)
		}
		if err := s.RevokeAPIKey(ctx, "acme", "k1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupAPIKey(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked key still valid: %v", err)
		}
		keys, _ := s.ListAPIKeys(ctx, "acme", store.PageRequest{})
		if len(keys.Items) != 1 || keys.Items[0].RevokedAt.IsZero() {
			t.Fatalf("keys: %+v", keys)
		}
		sec1, err := s.Secret(ctx, "preview")
		if err != nil {
			t.Fatal(err)
		}
		sec2, _ := s.Secret(ctx, "preview")
		if len(sec1) != 32 || string(sec1) != string(sec2) {
			t.Fatal("secret not stable")
		}
	})
}

func TestClustersAndTokens(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		if _, err := s.CreateCluster(ctx, "acme", "c1"); err != nil {
			t.Fatalf("re-register: %v", err)
		}
		if _, err := s.CreateClusterToken(ctx, store.ClusterToken{ID: "t0", Org: "acme", Cluster: "nope", Hash: "x"}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token for unknown cluster: %v", err)
		}
		if _, err := s.CreateClusterToken(ctx, store.ClusterToken{ID: "t1", Org: "acme", Cluster: "c1", Hash: "th", Masked: "m"}); err != nil {
			t.Fatal(err)
		}
		tok, err := s.LookupClusterToken(ctx, "th")
		if err != nil || tok.Cluster != "c1" {
			t.Fatalf("lookup token: %+v %v", tok, err)
		}
		if err := s.TouchClusterToken(ctx, "t1", "10.0.0.1", "v1"); err != nil {
			t.Fatal(err)
		}
		c, _ := s.GetCluster(ctx, "acme", "c1")
		if c.OperatorVersion != "v1" || c.LastSeenAt.IsZero() {
			t.Fatalf("cluster: %+v", c)
		}
		if _, _, err := apply(s, "acme", "sb", "c1", `{"cluster":"c1"}`); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCluster(ctx, "acme", "c1"); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("delete used cluster: %v", err)
		}
		if err := s.Delete(ctx, store.KindSandbox, "acme", "sb"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteCluster(ctx, "acme", "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.LookupClusterToken(ctx, "th"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token survived its cluster: %v", err)
		}
	})
}

func TestApply(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1", "c2")
		seed(t, s, "other", 0, "c1")
		o, created, err := apply(s, "acme", "sb", "c1", `{"cluster":"c1","description":"a"}`)
		if err != nil || !created || o.Version != 1 || o.RoutingKey == "" {
			t.Fatalf("create: %+v %v %v", o, created, err)
		}
		same, created, err := apply(s, "acme", "sb", "c1", `{"description":"a", "cluster":"c1"}`)
		if err != nil || created || same.Version != 1 || same.Revision != o.Revision {
			t.Fatalf("no-op apply changed things: %+v %v", same, err)
		}
		upd, _, err := apply(s, "acme", "sb", "c1", `{"cluster":"c1","description":"b"}`)
		if err != nil || upd.Version != 2 || upd.RoutingKey != o.RoutingKey || upd.Revision <= o.Revision {
			t.Fatalf("update: %+v %v", upd, err)
		}
		if _, _, err := apply(s, "acme", "sb", "c2", `{"cluster":"c2"}`); !errors.Is(err, store.ErrImmutable) {
			t.Fatalf("cluster change: %v", err)
		}
		if _, _, err := apply(s, "acme", "x", "nope", `{}`); !errors.Is(err, store.ErrClusterNotFound) {
			t.Fatalf("unknown cluster: %v", err)
		}
		if _, _, err := apply(s, "ghost", "x", "c1", `{}`); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown org: %v", err)
		}
		// Same name in another org is another object.
		if _, _, err := apply(s, "other", "sb", "c1", `{"cluster":"c1"}`); err != nil {
			t.Fatal(err)
		}
		_, _, err = s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: "sb", Cluster: "c1", Spec: json.RawMessage(`{"x":1}`), IfVersion: 1, NewRoutingKey: newKey})
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale version: %v", err)
		}
		if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: "sb", Cluster: "c1", Spec: json.RawMessage(`{"x":1}`), IfVersion: 2, NewRoutingKey: newKey}); err != nil {
			t.Fatalf("matching version: %v", err)
		}
		got, err := s.Get(ctx, store.KindSandbox, "acme", "sb")
		if err != nil || got.Version != 3 {
			t.Fatalf("get: %+v %v", got, err)
		}
		if _, err := s.Get(ctx, store.KindRouteGroup, "acme", "sb"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("kinds are separate: %v", err)
		}
		if err := s.Delete(ctx, store.KindSandbox, "acme", "sb"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, store.KindSandbox, "acme", "sb"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("double delete: %v", err)
		}
		again, created, err := apply(s, "acme", "sb", "c2", `{"cluster":"c2"}`)
		if err != nil || !created || again.RoutingKey == o.RoutingKey || again.Cluster != "c2" {
			t.Fatalf("recreate: %+v %v", again, err)
		}
	})
}

func TestListLabels(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		for i, l := range []map[string]string{{"team": "a", "env": "dev"}, {"team": "b"}, nil} {
			_, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: fmt.Sprintf("s%d", i), Cluster: "c1", Spec: json.RawMessage(`{}`), Labels: l, NewRoutingKey: newKey})
			if err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range []struct {
			sel  map[string]string
			want int
		}{{nil, 3}, {map[string]string{"team": "a"}, 1}, {map[string]string{"team": "a", "env": "prod"}, 0}, {map[string]string{"x": ""}, 0}} {
			got, err := s.List(ctx, store.KindSandbox, "acme", tc.sel)
			if err != nil || len(got) != tc.want {
				t.Errorf("list %v: %d items, %v; want %d", tc.sel, len(got), err, tc.want)
			}
		}
		if got, _ := s.List(ctx, store.KindSandbox, "other", nil); len(got) != 0 {
			t.Errorf("other org sees %d", len(got))
		}
	})
}

// concurrentCreates runs create(0..n-1) at once and counts the successes and the ErrQuotaExceeded
// refusals; any other error fails the test.
func concurrentCreates(t *testing.T, n int, create func(i int) error) (ok, quota int64) {
	t.Helper()
	var wg sync.WaitGroup
	var okN, quotaN atomic.Int64
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch err := create(i); {
			case err == nil:
				okN.Add(1)
			case errors.Is(err, store.ErrQuotaExceeded):
				quotaN.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	return okN.Load(), quotaN.Load()
}

func TestQuota(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		seed(t, s, "acme", 5, "c1")
		if ok, quota := concurrentCreates(t, 20, func(i int) error {
			_, _, err := apply(s, "acme", fmt.Sprintf("s%d", i), "c1", `{}`)
			return err
		}); ok != 5 || quota != 15 {
			t.Fatalf("ok=%d quota=%d, want 5/15", ok, quota)
		}
		// Updates of existing sandboxes are not limited.
		if _, _, err := apply(s, "acme", "s0", "c1", `{"d":1}`); err != nil && !errors.Is(err, store.ErrNotFound) {
			if n, _ := s.CountSandboxes(context.Background(), "acme"); n != 5 {
				t.Fatal(err)
			}
		}
	})
}

// TestTeamQuota: a sandbox belongs to a team of its org; concurrent creates into a team with quota 3 admit
// exactly 3; an update without a team keeps the sandbox's team; moving into a full team is refused; an unknown
// team is ErrTeamNotFound; a team with sandboxes cannot be deleted; deleting a sandbox frees its place.
func TestTeamQuota(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		for _, tm := range []store.Team{{Org: "acme", Name: "pay", MaxSandboxes: 3}, {Org: "acme", Name: "web", MaxSandboxes: 1}} {
			if _, _, err := s.PutTeam(ctx, tm); err != nil {
				t.Fatal(err)
			}
		}
		put := func(name, team, spec string) (store.Object, error) {
			o, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: name, Cluster: "c1", Spec: json.RawMessage(spec), Team: team, NewRoutingKey: newKey})
			return o, err
		}
		if ok, quota := concurrentCreates(t, 8, func(i int) error {
			_, err := put(fmt.Sprintf("p%d", i), "pay", `{}`)
			return err
		}); ok != 3 || quota != 5 {
			t.Fatalf("ok=%d quota=%d, want 3/5", ok, quota)
		}
		list, err := s.List(ctx, store.KindSandbox, "acme", nil)
		if err != nil || len(list) != 3 {
			t.Fatalf("list: %d %v", len(list), err)
		}
		first := list[0].Name
		if o, err := put(first, "", `{"d":1}`); err != nil || o.Team != "pay" {
			t.Fatalf("update without a team: %+v %v", o, err)
		}
		if got, _ := s.Get(ctx, store.KindSandbox, "acme", first); got.Team != "pay" {
			t.Fatalf("stored team %q", got.Team)
		}
		if _, err := put("w1", "web", `{}`); err != nil {
			t.Fatal(err)
		}
		if _, err := put(first, "web", `{"d":1}`); !errors.Is(err, store.ErrQuotaExceeded) {
			t.Fatalf("move into a full team: %v", err)
		}
		if _, err := put("x", "nope", `{}`); !errors.Is(err, store.ErrTeamNotFound) {
			t.Fatalf("unknown team: %v", err)
		}
		if err := s.DeleteTeam(ctx, "acme", "web"); !errors.Is(err, store.ErrInUse) {
			t.Fatalf("delete a team with sandboxes: %v", err)
		}
		if err := s.Delete(ctx, store.KindSandbox, "acme", "w1"); err != nil {
			t.Fatal(err)
		}
		if o, err := put(first, "web", `{"d":1}`); err != nil || o.Team != "web" {
			t.Fatalf("move into the freed team: %+v %v", o, err)
		}
	})
}

func TestConcurrentApplySameObject(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		seed(t, s, "acme", 0, "c1")
		const n = 20
		var wg sync.WaitGroup
		keys := make(chan string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o, _, err := apply(s, "acme", "same", "c1", fmt.Sprintf(`{"description":"%d"}`, i))
				if err != nil {
					t.Error(err)
					return
				}
				keys <- o.RoutingKey
			}()
		}
		wg.Wait()
		close(keys)
		first := ""
		for k := range keys {
			if first == "" {
				first = k
			}
			if k != first {
				t.Fatalf("two routing keys for one sandbox: %s, %s", first, k)
			}
		}
		o, err := s.Get(context.Background(), store.KindSandbox, "acme", "same")
		if err != nil {
			t.Fatal(err)
		}
		if o.Version < 2 || o.Version > n {
			t.Fatalf("version %d after %d applies", o.Version, n)
		}
		// Optimistic concurrency: of n writers with the same expected version exactly one wins.
		var wins atomic.Int64
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := s.Apply(context.Background(), store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: "same", Cluster: "c1",
					Spec: json.RawMessage(fmt.Sprintf(`{"labels":{"w":"%d"}}`, i)), IfVersion: o.Version, NewRoutingKey: newKey})
				if err == nil {
					wins.Add(1)
				} else if !errors.Is(err, store.ErrConflict) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d writers won with the same expected version", wins.Load())
		}
	})
}

func TestClusterStateAndStatus(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1", "c2")
		seed(t, s, "other", 0, "c1")
		a, _, _ := apply(s, "acme", "a", "c1", `{}`)
		apply(s, "acme", "b", "c1", `{}`)
		apply(s, "acme", "z", "c2", `{}`)
		apply(s, "other", "a", "c1", `{}`)
		full, err := s.ClusterState(ctx, "acme", "c1", 0)
		if err != nil || !full.Full || len(full.Objects) != 2 {
			t.Fatalf("full state: %+v %v", full, err)
		}
		apply(s, "acme", "a", "c1", `{"d":1}`)
		if err := s.Delete(ctx, store.KindSandbox, "acme", "b"); err != nil {
			t.Fatal(err)
		}
		apply(s, "acme", "z", "c2", `{"d":1}`)
		ch, err := s.ClusterState(ctx, "acme", "c1", full.Revision)
		if err != nil || ch.Full || len(ch.Objects) != 2 {
			t.Fatalf("changes: %+v %v", ch, err)
		}
		if ch.Objects[0].Name != "a" || ch.Objects[1].Name != "b" || !ch.Objects[1].Deleted {
			t.Fatalf("changes: %+v", ch.Objects)
		}
		none, _ := s.ClusterState(ctx, "acme", "c1", ch.Revision)
		if len(none.Objects) != 0 {
			t.Fatalf("no changes expected, got %+v", none.Objects)
		}
		future, _ := s.ClusterState(ctx, "acme", "c1", ch.Revision+1000)
		if !future.Full || len(future.Objects) != 1 {
			t.Fatalf("revision from the future must give full state: %+v", future)
		}
		// Status: only the owning cluster, only the current version.
		st := json.RawMessage(`{"ready":true}`)
		if err := s.SetStatus(ctx, store.KindSandbox, "acme", "c2", "a", 2, st); !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("status from another cluster: %v", err)
		}
		if err := s.SetStatus(ctx, store.KindSandbox, "acme", "c1", "a", a.Version, st); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("stale status: %v", err)
		}
		if err := s.SetStatus(ctx, store.KindSandbox, "acme", "c1", "a", 2, st); err != nil {
			t.Fatal(err)
		}
		got, _ := s.Get(ctx, store.KindSandbox, "acme", "a")
		if string(got.Status) != string(st) {
			t.Fatalf("status = %s", got.Status)
		}
		if n, err := s.PurgeTombstones(ctx, time.Now().Add(time.Hour)); err != nil || n != 1 {
			t.Fatalf("purge: %d %v", n, err)
		}
		old, _ := s.ClusterState(ctx, "acme", "c1", full.Revision)
		if !old.Full {
			t.Fatal("agent behind purged tombstones must get the full state")
		}
	})
}

func TestWorkloads(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		if _, err := s.GetWorkloads(ctx, "acme", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("before any report: %v", err)
		}
		if err := s.SetWorkloads(ctx, "acme", "nope", "h", json.RawMessage(`[]`)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown cluster: %v", err)
		}
		for i, data := range []string{`[{"name":"a"}]`, `[{"name":"a"},{"name":"b"}]`} {
			if err := s.SetWorkloads(ctx, "acme", "c1", fmt.Sprint("h", i), json.RawMessage(data)); err != nil {
				t.Fatal(err)
			}
			w, err := s.GetWorkloads(ctx, "acme", "c1")
			if err != nil || w.Hash != fmt.Sprint("h", i) || string(w.Data) != data || w.ReportedAt.IsZero() {
				t.Fatalf("report %d: %+v %v", i, w, err)
			}
		}
		// Another org's cluster of the same name sees nothing.
		seed(t, s, "other", 0, "c1")
		if _, err := s.GetWorkloads(ctx, "other", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("other org: %v", err)
		}
		// Deleting the cluster deletes its report.
		if err := s.DeleteCluster(ctx, "acme", "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateCluster(ctx, "acme", "c1"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetWorkloads(ctx, "acme", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
	})
}

func TestTunnelOwners(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		if _, err := s.GetTunnelOwner(ctx, "acme", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("no claim: %v", err)
		}
		if err := s.ClaimTunnel(ctx, "acme", "c1", "a", "http://10.0.0.1:8080", time.Minute); err != nil {
			t.Fatal(err)
		}
		if o, err := s.GetTunnelOwner(ctx, "acme", "c1"); err != nil || o.ReplicaID != "a" || o.URL != "http://10.0.0.1:8080" {
			t.Fatalf("owner: %+v %v", o, err)
		}
		// The agent reconnects to replica b: b's claim wins; a's release does not remove it.
		if err := s.ClaimTunnel(ctx, "acme", "c1", "b", "http://10.0.0.2:8080", time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := s.ReleaseTunnel(ctx, "acme", "c1", "a"); err != nil {
			t.Fatal(err)
		}
		if o, _ := s.GetTunnelOwner(ctx, "acme", "c1"); o.ReplicaID != "b" {
			t.Fatalf("owner after a's release: %+v", o)
		}
		// a still holds a half-dead tunnel and renews: b's newer claim stays.
		if held, err := s.RenewTunnel(ctx, "acme", "c1", "a", "http://10.0.0.1:8080", time.Minute); err != nil || held {
			t.Fatalf("a's renewal over b's live claim: held=%v %v", held, err)
		}
		if o, _ := s.GetTunnelOwner(ctx, "acme", "c1"); o.ReplicaID != "b" {
			t.Fatalf("owner after a's renewal: %+v", o)
		}
		// b renews its own claim.
		if held, err := s.RenewTunnel(ctx, "acme", "c1", "b", "http://10.0.0.2:8080", time.Minute); err != nil || !held {
			t.Fatalf("b's renewal: held=%v %v", held, err)
		}
		// b's claim expires (b died without releasing): a, whose tunnel is alive, takes it over.
		if err := s.ClaimTunnel(ctx, "acme", "c1", "b", "http://10.0.0.2:8080", -time.Second); err != nil {
			t.Fatal(err)
		}
		if held, err := s.RenewTunnel(ctx, "acme", "c1", "a", "http://10.0.0.1:8080", time.Minute); err != nil || !held {
			t.Fatalf("a's renewal over b's expired claim: held=%v %v", held, err)
		}
		if o, _ := s.GetTunnelOwner(ctx, "acme", "c1"); o.ReplicaID != "a" {
			t.Fatalf("owner after the take-over: %+v", o)
		}
		// With no claim at all, a renewal claims.
		if err := s.ReleaseTunnel(ctx, "acme", "c1", "a"); err != nil {
			t.Fatal(err)
		}
		if held, err := s.RenewTunnel(ctx, "acme", "c2", "a", "http://10.0.0.1:8080", time.Minute); err != nil || !held {
			t.Fatalf("renewal without a claim: held=%v %v", held, err)
		}
		// Expired claims do not count.
		if err := s.ClaimTunnel(ctx, "acme", "c1", "b", "http://10.0.0.2:8080", -time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTunnelOwner(ctx, "acme", "c1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("expired claim: %v", err)
		}
	})
}

// TestResourcePluginsReachEveryCluster: a resource plugin is stored with
// the empty cluster name (no cluster need exist) and is in the full and incremental state of
// every cluster of its org, tombstone included, and of no other org's cluster.
func TestResourcePluginsReachEveryCluster(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1", "c2")
		seed(t, s, "other", 0, "c1")
		applyRP := func(org, name, spec string) store.Object {
			t.Helper()
			o, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindResourcePlugin, Org: org, Name: name, Spec: json.RawMessage(spec),
				NewRoutingKey: func() (string, error) { return "", nil }})
			if err != nil {
				t.Fatalf("apply plugin %s/%s: %v", org, name, err)
			}
			return o
		}
		apply(s, "acme", "sb", "c1", `{}`)
		applyRP("acme", "db", `{"runner":{"image":"x"}}`)
		applyRP("other", "cache", `{"runner":{"image":"y"}}`)
		names := func(os []store.Object) map[string]bool {
			m := map[string]bool{}
			for _, o := range os {
				m[string(o.Kind)+"/"+o.Name] = !o.Deleted
			}
			return m
		}
		for _, c := range []string{"c1", "c2"} {
			full, err := s.ClusterState(ctx, "acme", c, 0)
			if err != nil || !full.Full {
				t.Fatalf("full state of %s: %+v %v", c, full, err)
			}
			got := names(full.Objects)
			if !got["resourceplugin/db"] || len(got) != map[string]int{"c1": 2, "c2": 1}[c] {
				t.Fatalf("full state of %s: %v", c, got)
			}
		}
		o1, _ := s.ClusterState(ctx, "other", "c1", 0)
		if got := names(o1.Objects); len(got) != 1 || !got["resourceplugin/cache"] {
			t.Fatalf("other org's state: %v", got)
		}
		before, _ := s.ClusterState(ctx, "acme", "c2", 0)
		applyRP("acme", "mq", `{"runner":{"image":"z"}}`)
		if err := s.Delete(ctx, store.KindResourcePlugin, "acme", "db"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{"c1", "c2"} {
			ch, err := s.ClusterState(ctx, "acme", c, before.Revision)
			if err != nil || ch.Full {
				t.Fatalf("changes of %s: %+v %v", c, ch, err)
			}
			got := names(ch.Objects)
			if len(got) != 2 || !got["resourceplugin/mq"] || got["resourceplugin/db"] {
				t.Fatalf("changes of %s: %v (want mq live, db deleted)", c, got)
			}
			if _, ok := got["resourceplugin/db"]; !ok {
				t.Fatalf("changes of %s lack the tombstone of db: %v", c, got)
			}
		}
		// Clusters come and go; the org-wide rows stay.
		if err := s.DeleteCluster(ctx, "acme", "c2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Get(ctx, store.KindResourcePlugin, "acme", "mq"); err != nil {
			t.Fatalf("plugin after cluster deletion: %v", err)
		}
	})
}

// TestSandboxAndRouteGroupNamesDiffer: preview URLs name an object without
// its kind, so a sandbox and a live route group of an org cannot share a
// name (either way round); a deleted one frees the name, other orgs and
// other kinds are unaffected.
func TestSandboxAndRouteGroupNamesDiffer(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		seed(t, s, "acme", 0, "c1")
		seed(t, s, "other", 0, "c1")
		rg := func(org, name string) error {
			_, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindRouteGroup, Org: org, Name: name, Cluster: "c1", Spec: []byte(`{}`), NewRoutingKey: newKey})
			return err
		}
		if _, _, err := apply(s, "acme", "web", "c1", `{}`); err != nil {
			t.Fatal(err)
		}
		if err := rg("acme", "web"); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "taken by sandbox web") {
			t.Fatalf("route group named like a sandbox: %v", err)
		}
		if err := rg("other", "web"); err != nil {
			t.Fatalf("another org: %v", err)
		}
		if err := rg("acme", "api"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := apply(s, "acme", "api", "c1", `{}`); !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "taken by route group api") {
			t.Fatalf("sandbox named like a route group: %v", err)
		}
		if _, _, err := apply(s, "acme", "web", "c1", `{"description":"an update"}`); err != nil {
			t.Fatalf("updating the sandbox: %v", err)
		}
		if err := s.Delete(ctx, store.KindRouteGroup, "acme", "api"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := apply(s, "acme", "api", "c1", `{}`); err != nil {
			t.Fatalf("the name after the route group's delete: %v", err)
		}
	})
}
