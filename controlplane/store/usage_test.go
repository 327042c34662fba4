package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// testClock is a settable clock for store.SetNow.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// wantUsage is a team's expected figures in a report.
type wantUsage struct {
	hours              float64
	sandboxes, peak    int
	live, maxSandboxes int64
	exists             bool
}

func checkUsage(t *testing.T, r store.UsageReport, want map[string]wantUsage, total wantUsage) {
	t.Helper()
	if len(r.Teams) != len(want) {
		t.Fatalf("%s: teams %+v, want %d", r.From.Format("2006-01"), r.Teams, len(want))
	}
	if r.Teams[0].Team != "" {
		t.Fatalf("the no-team row is not first: %+v", r.Teams)
	}
	got := func(u store.TeamUsage) wantUsage {
		return wantUsage{math.Round(u.SandboxHours*1000) / 1000, u.Sandboxes, u.Peak, u.Live, u.MaxSandboxes, u.Exists}
	}
	for _, u := range r.Teams {
		if w, ok := want[u.Team]; !ok || got(u) != w {
			t.Errorf("%s team %q: got %+v, want %+v", r.From.Format("2006-01"), u.Team, got(u), w)
		}
	}
	if g := got(r.Total); g != total {
		t.Errorf("%s total: got %+v, want %+v", r.From.Format("2006-01"), g, total)
	}
}

// TestUsage: creates, moves between teams, updates, deletes and re-creates write intervals in the same
// transaction as the write, and a month's report sums their overlap with it (open intervals up to now),
// counts distinct sandboxes (a re-created name is a new one), the peak and the live sandboxes, per team.
func TestUsage(t *testing.T) {
	forEachDriver(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		clk := &testClock{}
		s.SetNow(clk.now)
		at := func(day, hour, min int) time.Time { return time.Date(2026, 11, day, hour, min, 0, 0, time.UTC) }
		dec1 := func(hour, min int) time.Time { return time.Date(2026, 12, 1, hour, min, 0, 0, time.UTC) }
		clk.set(at(1, 0, 0))
		seed(t, s, "acme", 10, "c1")
		for _, tm := range []store.Team{{Org: "acme", Name: "pay", MaxSandboxes: 3}, {Org: "acme", Name: "web"}} {
			if _, _, err := s.PutTeam(ctx, tm); err != nil {
				t.Fatal(err)
			}
		}
		put := func(name, team, spec string) {
			t.Helper()
			if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: name, Cluster: "c1", Spec: json.RawMessage(spec), Team: team, NewRoutingKey: newKey}); err != nil {
				t.Fatal(err)
			}
		}
		del := func(name string) {
			t.Helper()
			if err := s.Delete(ctx, store.KindSandbox, "acme", name); err != nil {
				t.Fatal(err)
			}
		}
		clk.set(at(30, 22, 0)) // Nov 30 22:00
		put("a", "", `{}`)
		put("b", "pay", `{}`)
		// A route group is no sandbox: no usage.
		if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindRouteGroup, Org: "acme", Name: "rg", Cluster: "c1", Spec: json.RawMessage(`{}`), NewRoutingKey: newKey}); err != nil {
			t.Fatal(err)
		}
		clk.set(dec1(1, 0))
		put("b", "web", `{}`)   // moved
		put("a", "", `{"d":1}`) // updated in its team: the same interval
		clk.set(dec1(3, 0))
		del("a")
		put("c", "pay", `{}`)
		clk.set(dec1(4, 0))
		del("b")
		clk.set(dec1(4, 30))
		put("b", "", `{}`) // a new sandbox of the same name
		// A failed write records nothing: an unknown team, a full org's refused create.
		if _, _, err := s.Apply(ctx, store.ApplyRequest{Kind: store.KindSandbox, Org: "acme", Name: "x", Cluster: "c1", Spec: json.RawMessage(`{}`), Team: "nope", NewRoutingKey: newKey}); !errors.Is(err, store.ErrTeamNotFound) {
			t.Fatalf("unknown team: %v", err)
		}
		clk.set(dec1(5, 0))

		dec, err := s.Usage(ctx, "acme", dec1(12, 0))
		if err != nil {
			t.Fatal(err)
		}
		if !dec.From.Equal(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)) || !dec.To.Equal(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || !dec.AsOf.Equal(dec1(5, 0)) {
			t.Fatalf("range %v–%v as of %v", dec.From, dec.To, dec.AsOf)
		}
		if dec.OrgMaxSandboxes != 10 || dec.OrgLive != 2 {
			t.Fatalf("org quota %d live %d, want 10 and 2", dec.OrgMaxSandboxes, dec.OrgLive)
		}
		checkUsage(t, dec, map[string]wantUsage{
			"":    {hours: 3.5, sandboxes: 2, peak: 1, live: 1},                              // a 00–03, b again 04:30–05
			"pay": {hours: 3, sandboxes: 2, peak: 1, live: 1, maxSandboxes: 3, exists: true}, // b 00–01, c 03–05
			"web": {hours: 3, sandboxes: 1, peak: 1, exists: true},                           // b 01–04
		}, wantUsage{hours: 9.5, sandboxes: 4, peak: 2, live: 2, maxSandboxes: 10, exists: true})

		nov, err := s.Usage(ctx, "acme", at(1, 0, 0))
		if err != nil {
			t.Fatal(err)
		}
		checkUsage(t, nov, map[string]wantUsage{
			"":    {hours: 2, sandboxes: 1, peak: 1, live: 1},
			"pay": {hours: 2, sandboxes: 1, peak: 1, live: 1, maxSandboxes: 3, exists: true},
			"web": {exists: true},
		}, wantUsage{hours: 4, sandboxes: 2, peak: 2, live: 2, maxSandboxes: 10, exists: true})

		// A month to come has no usage yet; a deleted team keeps its usage (and loses its quota).
		jan, err := s.Usage(ctx, "acme", time.Date(2027, 1, 31, 23, 59, 59, 0, time.UTC))
		if err != nil || jan.Total.SandboxHours != 0 || jan.Total.Sandboxes != 0 || len(jan.Teams) != 3 {
			t.Fatalf("january: %+v %v", jan, err)
		}
		if err := s.DeleteTeam(ctx, "acme", "web"); err != nil {
			t.Fatal(err)
		}
		dec, err = s.Usage(ctx, "acme", dec1(0, 0))
		if err != nil || len(dec.Teams) != 3 || dec.Teams[2].Team != "web" || dec.Teams[2].Exists || dec.Teams[2].SandboxHours != 3 {
			t.Fatalf("a deleted team's usage: %+v %v", dec.Teams, err)
		}
		if _, err := s.Usage(ctx, "nope", dec1(0, 0)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown org: %v", err)
		}
	})
}

// TestMigrationUsageBackfill writes sandboxes at schema 00012 (live ones in and out of teams, a tombstone,
// a route group), migrates to the latest and checks that every live sandbox got an open interval from its
// creation, and that it closes on delete.
func TestMigrationUsageBackfill(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			old := atVersion(t, d, 12)
			created := time.Date(2026, 10, 31, 12, 0, 0, 0, time.UTC).UnixNano()
			old.exec(`INSERT INTO orgs (name, max_sandboxes, created_at) VALUES (?, ?, ?)`, "acme", 5, 1)
			old.exec(`INSERT INTO clusters (org, name, created_at) VALUES (?, ?, ?)`, "acme", "c1", 1)
			old.exec(`INSERT INTO teams (org, name, max_sandboxes, created_at) VALUES (?, ?, ?, ?)`, "acme", "pay", 2, 1)
			obj := `INSERT INTO objects (kind, org, name, cluster, spec, labels, routing_key, version, revision, status, created_at, updated_at, deleted_at, team) VALUES (?, ?, ?, 'c1', '{}', '{}', ?, 1, ?, '', ?, ?, ?, ?)`
			old.exec(obj, "sandbox", "acme", "s1", "k1", 1, created, created, 0, "")
			old.exec(obj, "sandbox", "acme", "s2", "k2", 2, created, created, 0, "pay")
			old.exec(obj, "sandbox", "acme", "gone", "k3", 3, created, created, created+1, "")
			old.exec(obj, "routegroup", "acme", "rg", "k4", 4, created, created, 0, "")
			old.exec(`UPDATE counters SET value = 4 WHERE name = 'revision'`)
			s := old.open()
			clk := &testClock{t: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}
			s.SetNow(clk.now)
			oct, err := s.Usage(ctx, "acme", time.Unix(0, created))
			if err != nil {
				t.Fatal(err)
			}
			checkUsage(t, oct, map[string]wantUsage{
				"":    {hours: 12, sandboxes: 1, peak: 1, live: 1},
				"pay": {hours: 12, sandboxes: 1, peak: 1, live: 1, maxSandboxes: 2, exists: true},
			}, wantUsage{hours: 24, sandboxes: 2, peak: 2, live: 2, maxSandboxes: 5, exists: true})
			if l, err := s.List(ctx, store.KindSandbox, "acme", nil); err != nil || len(l) != 2 {
				t.Fatalf("sandboxes kept: %d %v", len(l), err)
			}
			if err := s.Delete(ctx, store.KindSandbox, "acme", "s2"); err != nil {
				t.Fatal(err)
			}
			clk.set(time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC))
			nov, err := s.Usage(ctx, "acme", clk.now())
			if err != nil {
				t.Fatal(err)
			}
			checkUsage(t, nov, map[string]wantUsage{
				"":    {hours: 48, sandboxes: 1, peak: 1, live: 1},
				"pay": {hours: 24, sandboxes: 1, peak: 1, maxSandboxes: 2, exists: true}, // closed at the delete, Nov 2 00:00
			}, wantUsage{hours: 72, sandboxes: 2, peak: 2, live: 1, maxSandboxes: 5, exists: true})
		})
	}
}
