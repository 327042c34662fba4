package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/controlplane/store"
	"github.com/sandboxmesh/sandboxmesh/controlplane/store/storetest"
)

// recorder is a watcher that keeps the changes it was told.
type recorder struct {
	mu  sync.Mutex
	got []store.Change
}

func (r *recorder) watch(c store.Change) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, c)
}

// count returns how many recorded changes equal c.
func (r *recorder) count(c store.Change) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, g := range r.got {
		if g == c {
			n++
		}
	}
	return n
}

// waitFor waits (generously) until c was recorded at least once.
func (r *recorder) waitFor(t *testing.T, c store.Change) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for r.count(c) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("change %+v not seen", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// replicas opens two stores (two replicas) on one new database of driver,
// each followed with cfg until the end of the test, with a recorder each.
func replicas(t *testing.T, driver string, cfg store.FollowConfig) (a, b *store.Store, ra, rb *recorder) {
	t.Helper()
	driver, dsn := storetest.DSN(t, driver)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	open := func() (*store.Store, *recorder) {
		s, err := store.Open(ctx, driver, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		r := &recorder{}
		s.Watch(r.watch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Follow(ctx, cfg); err != nil {
				t.Errorf("follow: %v", err)
			}
		}()
		return s, r
	}
	a, ra = open()
	b, rb = open()
	return a, b, ra, rb
}

// followed waits until both followers have started (a change of each is
// seen by the other), so that later changes are reported.
func followed(t *testing.T, a, b *store.Store, ra, rb *recorder) {
	t.Helper()
	ctx := context.Background()
	for i, s := range []*store.Store{a, b} {
		r := []*recorder{rb, ra}[i]
		name := fmt.Sprintf("ready-%d", i)
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := s.CreateJob(ctx, store.Job{Org: "acme", Name: fmt.Sprintf("%s-%d", name, time.Now().UnixNano()), RunnerGroup: "g", Spec: json.RawMessage(`{}`)}); err != nil {
				t.Fatal(err)
			}
			if func() bool {
				r.mu.Lock()
				defer r.mu.Unlock()
				return slices.ContainsFunc(r.got, func(c store.Change) bool { return c.Remote && c.What == store.ChangeJob })
			}() {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("followers did not start")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestFollow checks that each replica's watchers see the other's changes
// (Remote), once each, also when many writes commit concurrently, and their
// own changes once (not again from the feed).
func TestFollow(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			a, b, ra, rb := replicas(t, d, store.FollowConfig{Interval: 100 * time.Millisecond})
			seed(t, a, "acme", 0, "c1")
			followed(t, a, b, ra, rb)
			if _, err := a.CreateAPIKey(ctx, store.APIKey{ID: "k1", Org: "acme", Name: "ci", Hash: "h1", Masked: "m"}); err != nil {
				t.Fatal(err)
			}

			sb := func(what store.ChangeKind, name string, remote bool) store.Change {
				return store.Change{What: what, Org: "acme", Cluster: "c1", Name: name, Kind: store.KindSandbox, Remote: remote}
			}
			// Through A, seen by B.
			if _, _, err := apply(a, "acme", "sb", "c1", `{"cluster":"c1"}`); err != nil {
				t.Fatal(err)
			}
			rb.waitFor(t, sb(store.ChangeObject, "sb", true))
			if err := a.SetStatus(ctx, store.KindSandbox, "acme", "c1", "sb", 1, json.RawMessage(`{"ready":true}`)); err != nil {
				t.Fatal(err)
			}
			rb.waitFor(t, sb(store.ChangeStatus, "sb", true))
			if err := a.RevokeAPIKey(ctx, "acme", "k1"); err != nil {
				t.Fatal(err)
			}
			revoked := store.Change{What: store.ChangeAPIKeyRevoked, Org: "acme", Name: "k1", Remote: true}
			rb.waitFor(t, revoked)
			// Through B, seen by A.
			if err := b.Delete(ctx, store.KindSandbox, "acme", "sb"); err != nil {
				t.Fatal(err)
			}
			ra.waitFor(t, sb(store.ChangeObject, "sb", true))

			// Concurrent writes on both: transactions commit in any order.
			const n = 30
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					s := []*store.Store{a, b}[i%2]
					if _, _, err := apply(s, "acme", fmt.Sprintf("p%d", i), "c1", `{"cluster":"c1"}`); err != nil {
						t.Error(err)
					}
				}()
			}
			wg.Wait()
			for i := range n {
				r := []*recorder{rb, ra}[i%2]
				r.waitFor(t, sb(store.ChangeObject, fmt.Sprintf("p%d", i), true))
			}
			// A marker after everything, then nothing may be there twice.
			if err := a.RevokeAPIKey(ctx, "acme", "k1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("revoke again: %v", err)
			}
			if _, _, err := apply(a, "acme", "last", "c1", `{"cluster":"c1"}`); err != nil {
				t.Fatal(err)
			}
			rb.waitFor(t, sb(store.ChangeObject, "last", true))
			time.Sleep(300 * time.Millisecond) // a few more reads of the feed
			checks := []struct {
				r    *recorder
				c    store.Change
				want int
			}{
				{ra, sb(store.ChangeObject, "sb", false), 1}, // the apply, once (not again from the feed)
				{ra, sb(store.ChangeStatus, "sb", false), 1},
				{ra, sb(store.ChangeStatus, "sb", true), 0},
				{rb, sb(store.ChangeStatus, "sb", true), 1},
				{rb, revoked, 1},
				{rb, sb(store.ChangeObject, "sb", true), 1},  // A's apply
				{rb, sb(store.ChangeObject, "sb", false), 1}, // its own delete
				{ra, sb(store.ChangeObject, "sb", true), 1},  // B's delete
			}
			for i := range n {
				name := fmt.Sprintf("p%d", i)
				mine, theirs := ra, rb
				if i%2 == 1 {
					mine, theirs = rb, ra
				}
				checks = append(checks,
					struct {
						r    *recorder
						c    store.Change
						want int
					}{mine, sb(store.ChangeObject, name, false), 1},
					struct {
						r    *recorder
						c    store.Change
						want int
					}{mine, sb(store.ChangeObject, name, true), 0},
					struct {
						r    *recorder
						c    store.Change
						want int
					}{theirs, sb(store.ChangeObject, name, true), 1})
			}
			for _, c := range checks {
				if got := c.r.count(c.c); got != c.want {
					who := "A"
					if c.r == rb {
						who = "B"
					}
					t.Errorf("%s saw %+v %d times, want %d", who, c.c, got, c.want)
				}
			}
		})
	}
}

// TestFollowPrune checks that followers delete the feed's old rows and
// keep following after it was emptied. (The retention must outlast the
// followers' reads: a row pruned before a follower read it is lost to it.)
func TestFollowPrune(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			a, b, ra, rb := replicas(t, d, store.FollowConfig{Interval: 50 * time.Millisecond, Retention: time.Second, PruneInterval: 50 * time.Millisecond})
			seed(t, a, "acme", 0, "c1")
			followed(t, a, b, ra, rb)
			for i := range 10 {
				if _, _, err := apply(a, "acme", fmt.Sprintf("s%d", i), "c1", `{"cluster":"c1"}`); err != nil {
					t.Fatal(err)
				}
			}
			keep := int64(0)
			if d == store.DriverSQLite {
				keep = 1 // the newest row: the base of the next tx
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				n, err := a.FeedRows(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n <= keep {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("feed still holds %d rows", n)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, _, err := apply(a, "acme", "after", "c1", `{"cluster":"c1"}`); err != nil {
				t.Fatal(err)
			}
			rb.waitFor(t, store.Change{What: store.ChangeObject, Org: "acme", Cluster: "c1", Name: "after", Kind: store.KindSandbox, Remote: true})
		})
	}
}

// TestFollowSurvivesErrors checks that a follower whose reads fail (the
// feed's table is gone for a while) reports the errors, retries and then
// reports the changes made after the database came back.
func TestFollowSurvivesErrors(t *testing.T) {
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			ctx := context.Background()
			var errs atomic.Int64
			a, b, ra, rb := replicas(t, d, store.FollowConfig{Interval: 50 * time.Millisecond, OnError: func(error) { errs.Add(1) }})
			seed(t, a, "acme", 0, "c1")
			followed(t, a, b, ra, rb)
			if err := a.Exec(ctx, `ALTER TABLE changes RENAME TO changes_away`); err != nil {
				t.Fatal(err)
			}
			if _, _, err := apply(a, "acme", "lost", "c1", `{"cluster":"c1"}`); err == nil {
				t.Fatal("a write without its change feed succeeded")
			}
			deadline := time.Now().Add(20 * time.Second)
			for errs.Load() < 2 {
				if time.Now().After(deadline) {
					t.Fatal("no follower errors reported")
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := a.Exec(ctx, `ALTER TABLE changes_away RENAME TO changes`); err != nil {
				t.Fatal(err)
			}
			if _, _, err := apply(a, "acme", "back", "c1", `{"cluster":"c1"}`); err != nil {
				t.Fatal(err)
			}
			rb.waitFor(t, store.Change{What: store.ChangeObject, Org: "acme", Cluster: "c1", Name: "back", Kind: store.KindSandbox, Remote: true})
			if n := ra.count(store.Change{What: store.ChangeObject, Org: "acme", Cluster: "c1", Name: "lost", Kind: store.KindSandbox}); n != 0 {
				t.Fatalf("the failed write was reported %d times", n)
			}
		})
	}
}

// TestFollowOnce checks that a Store is followed once at a time (Follow
// returning when its context ends is checked by every test's clean-up).
func TestFollowOnce(t *testing.T) {
	a, b, ra, rb := replicas(t, store.DriverSQLite, store.FollowConfig{Interval: 50 * time.Millisecond})
	seed(t, a, "acme", 0)
	followed(t, a, b, ra, rb)
	if err := a.Follow(context.Background(), store.FollowConfig{}); !errors.Is(err, store.ErrFollowing) {
		t.Fatalf("second Follow: %v, want ErrFollowing", err)
	}
}

// TestFollowLatency measures how long a change through one replica takes to
// reach the other's watchers with the default configuration (median of
// 50); set SANDBOXMESH_FEED_LATENCY=1 to run it (docs/controlplane.md).
func TestFollowLatency(t *testing.T) {
	if os.Getenv("SANDBOXMESH_FEED_LATENCY") == "" {
		t.Skip("set SANDBOXMESH_FEED_LATENCY=1 to measure")
	}
	for _, d := range storetest.Drivers {
		t.Run(d, func(t *testing.T) {
			a, b, ra, rb := replicas(t, d, store.FollowConfig{})
			seed(t, a, "acme", 0, "c1")
			followed(t, a, b, ra, rb)
			var lat []time.Duration
			for i := range 50 {
				c := store.Change{What: store.ChangeObject, Org: "acme", Cluster: "c1", Name: fmt.Sprintf("m%d", i), Kind: store.KindSandbox, Remote: true}
				start := time.Now()
				if _, _, err := apply(a, "acme", c.Name, "c1", `{"cluster":"c1"}`); err != nil {
					t.Fatal(err)
				}
				for rb.count(c) == 0 {
					time.Sleep(200 * time.Microsecond)
				}
				lat = append(lat, time.Since(start))
				time.Sleep(time.Duration(37*i%50) * 20 * time.Millisecond) // not in step with the poll
			}
			slices.Sort(lat)
			t.Logf("%s: follow latency (write to the other replica's watcher, 50 changes): median %v, p90 %v, max %v", d, lat[25], lat[45], lat[49])
		})
	}
}
