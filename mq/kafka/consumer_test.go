package kafka_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
)

var (
	baseID = mq.Identity{Baseline: worker}
	forkA  = mq.Identity{Baseline: worker, Sandbox: "sb-a", RoutingKey: "keya"}
	other  = routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "other"}
)

// TestSelectiveConsumption: records keyed for sandbox sb-a go to its fork's group, all others (unkeyed,
// keyed for sb-z that forks another workload, and sb-a's records from before its fork existed) to the
// baseline: 0 lost, 0 processed twice, 0 misrouted.
func TestSelectiveConsumption(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := newEnv(t, 3, topic)
	e.publish(forkRoute(other, "keyz", "sb-z"))
	baseRoutes := e.routesClient()
	baseRec := newRecorder()
	base := e.start(ctx, baseID, baseRoutes, baseRec)

	// Before sb-a's fork exists its key belongs to the baseline.
	const pre = 20
	id := 0
	for ; id < pre; id++ {
		e.produce(ctx, id, "keya")
	}
	waitHandled(t, ctx, pre, base)

	// The fork starts (its group at the end of the topic), then its route is published.
	forkRec := newRecorder()
	fork := e.start(ctx, forkA, e.routesClient(), forkRec)
	v := e.publish(forkRoute(worker, "keya", "sb-a"), forkRoute(other, "keyz", "sb-z"))
	if err := baseRoutes.WaitVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	const n, m, z = 300, 300, 100
	wantFork, wantBase := map[int]bool{}, map[int]bool{}
	for i := 0; i < pre; i++ {
		wantBase[i] = true
	}
	for i := 0; i < n+m+z; i++ {
		key := ""
		switch {
		case i%7 == 0 && len(wantFork) < n || len(wantBase)-pre >= m+z:
			key = "keya"
			wantFork[id] = true
		case i%3 == 0 && z > 0:
			key = "keyz"
			wantBase[id] = true
		default:
			wantBase[id] = true
		}
		e.produce(ctx, id, key)
		id++
	}
	total := uint64(id)
	waitHandled(t, ctx, total, base)
	waitHandled(t, ctx, total-pre, fork)
	check(t, "fork", forkRec, wantFork)
	check(t, "baseline", baseRec, wantBase)
	fs, bs := fork.Stats(), base.Stats()
	t.Logf("fork %+v; baseline %+v", fs, bs)
	if fs.Processed != uint64(len(wantFork)) || fs.SkippedNoKey == 0 || fs.SkippedNotMine == 0 {
		t.Errorf("fork stats %+v", fs)
	}
	if bs.Processed != uint64(len(wantBase)) || bs.SkippedRoutedAway != uint64(len(wantFork)) {
		t.Errorf("baseline stats %+v", bs)
	}
	if fork.Group() != "orders-worker-sandbox-sb-a" || base.Group() != "orders-worker" {
		t.Errorf("groups %q, %q", fork.Group(), base.Group())
	}
}

// check asserts rc processed exactly the ids of want, each once.
func check(t *testing.T, who string, rc *recorder, want map[int]bool) {
	t.Helper()
	got := rc.snapshot()
	lost, dup, wrong := 0, 0, 0
	for id := range want {
		if got[id] == 0 {
			lost++
		}
	}
	for id, c := range got {
		if !want[id] {
			wrong++
		}
		if c > 1 {
			dup += c - 1
		}
	}
	t.Logf("%s: processed %d distinct, lost %d, duplicates %d, misrouted %d", who, len(got), lost, dup, wrong)
	if lost+dup+wrong > 0 {
		t.Errorf("%s: lost %d, duplicates %d, misrouted %d", who, lost, dup, wrong)
	}
	if len(rc.bad) > 0 {
		t.Errorf("%s: %v", who, rc.bad[:min(3, len(rc.bad))])
	}
}

// producer produces records keyed for sb-a (even ids) and unkeyed (odd ids) every step until stopped.
type producer struct {
	mu   sync.Mutex
	next int
	stop chan struct{}
	done chan struct{}
}

func (e *env) startProducer(ctx context.Context, step time.Duration) *producer {
	p := &producer{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(step):
			}
			p.mu.Lock()
			id := p.next
			p.next++
			p.mu.Unlock()
			key := ""
			if id%2 == 0 {
				key = "keya"
			}
			e.produce(ctx, id, key)
		}
	}()
	return p
}

func (p *producer) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.next
}

func (p *producer) waitCount(t *testing.T, ctx context.Context, n int) {
	t.Helper()
	for p.count() < n {
		select {
		case <-ctx.Done():
			t.Fatalf("producer at %d of %d: %v", p.count(), n, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (p *producer) finish() int {
	close(p.stop)
	<-p.done
	return p.count()
}

// TestSandboxDeletedMidStream: the route of sb-a goes away while records flow, then its fork is closed
// (which deletes its group). Every record is processed at least once by one of them; the test reports the
// duplicates of the route-change window.
func TestSandboxDeletedMidStream(t *testing.T) { sandboxDeletedMidStream(t, 0) }

// TestSandboxDeletedWhileForkLags: the same with a fork that handles its records slower than they come,
// so it has a backlog of its key's records (which the baseline skipped) when its route goes: Close drains
// the backlog before it deletes the group.
func TestSandboxDeletedWhileForkLags(t *testing.T) { sandboxDeletedMidStream(t, 5*time.Millisecond) }

func sandboxDeletedMidStream(t *testing.T, forkSlow time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := newEnv(t, 3, topic)
	e.publish(forkRoute(worker, "keya", "sb-a"))
	baseRoutes := e.routesClient()
	baseRec, forkRec := newRecorder(), newRecorder()
	forkRec.slow = forkSlow
	base := e.start(ctx, baseID, baseRoutes, baseRec)
	fork := e.start(ctx, forkA, e.routesClient(), forkRec)

	p := e.startProducer(ctx, time.Millisecond)
	p.waitCount(t, ctx, 200)
	v := e.publish() // sb-a is being deleted: its route goes
	if err := baseRoutes.WaitVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	if err := fork.Routes().(interface {
		WaitVersion(context.Context, uint64) error
	}).WaitVersion(ctx, v); err != nil {
		t.Fatal(err)
	}
	fork.stop(t)
	if e.groupExists(ctx, fork.Group()) {
		t.Errorf("group %s still exists after its sandbox's fork closed without a route", fork.Group())
	}
	p.waitCount(t, ctx, p.count()+100)
	total := p.finish()
	waitHandled(t, ctx, uint64(total), base)

	fs, bs := forkRec.snapshot(), baseRec.snapshot()
	lost, dup := 0, 0
	for id := 0; id < total; id++ {
		c := fs[id] + bs[id]
		if c == 0 {
			lost++
		}
		dup += max(0, c-1)
		if id%2 == 1 && fs[id] > 0 {
			t.Errorf("unkeyed record %d processed by the fork", id)
		}
	}
	t.Logf("records %d: fork processed %d, baseline %d; lost %d, duplicates %d (route-change window)",
		total, len(fs), len(bs), lost, dup)
	if lost > 0 {
		t.Errorf("%d records lost", lost)
	}
	if !e.groupExists(ctx, base.Group()) {
		t.Error("the baseline's group is gone")
	}
}

// TestRestartKeepsTheGuarantee closes and reopens the baseline and the fork consumers while records flow:
// every record is processed by its consumer, none lost; graceful restarts commit first, so no duplicates.
// The fork's group survives the restart (its route is still there) and resumes from its commits.
func TestRestartKeepsTheGuarantee(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	e := newEnv(t, 3, topic)
	e.publish(forkRoute(worker, "keya", "sb-a"))
	baseRoutes, forkRoutes := e.routesClient(), e.routesClient()
	baseRec, forkRec := newRecorder(), newRecorder()
	base := e.start(ctx, baseID, baseRoutes, baseRec)
	fork := e.start(ctx, forkA, forkRoutes, forkRec)
	p := e.startProducer(ctx, time.Millisecond)
	for round := 0; round < 2; round++ {
		p.waitCount(t, ctx, p.count()+150)
		base.stop(t)
		fork.stop(t)
		if !e.groupExists(ctx, fork.Group()) || !e.groupExists(ctx, base.Group()) {
			t.Fatalf("round %d: a group was deleted on a restart", round)
		}
		p.waitCount(t, ctx, p.count()+50) // produced while both are down
		base = e.start(ctx, baseID, baseRoutes, baseRec)
		fork = e.start(ctx, forkA, forkRoutes, forkRec)
	}
	p.waitCount(t, ctx, p.count()+150)
	total := p.finish()
	wantFork, wantBase := map[int]bool{}, map[int]bool{}
	for id := 0; id < total; id++ {
		if id%2 == 0 {
			wantFork[id] = true
		} else {
			wantBase[id] = true
		}
	}
	waitDistinct(t, ctx, forkRec, len(wantFork))
	waitDistinct(t, ctx, baseRec, len(wantBase))
	check(t, "fork", forkRec, wantFork)
	check(t, "baseline", baseRec, wantBase)
}

func waitDistinct(t *testing.T, ctx context.Context, rc *recorder, n int) {
	t.Helper()
	for len(rc.snapshot()) < n {
		select {
		case <-ctx.Done():
			t.Fatalf("processed %d distinct of %d: %v", len(rc.snapshot()), n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// TestCloseDeletesOnlyAGoneSandboxGroup: closing the baseline never deletes its group, even with no route
// at all; closing a fork keeps its group while its route is there and deletes it once it is gone.
func TestCloseDeletesOnlyAGoneSandboxGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := newEnv(t, 2, topic)
	e.publish(forkRoute(worker, "keya", "sb-a"))
	src := e.routesClient()
	base := e.start(ctx, baseID, src, newRecorder())
	e.produce(ctx, 1, "")
	waitHandled(t, ctx, 1, base)
	fork := e.start(ctx, forkA, src, newRecorder())
	if !e.groupExists(ctx, fork.Group()) {
		t.Fatalf("NewConsumer did not create %s", fork.Group())
	}
	fork.stop(t)
	if !e.groupExists(ctx, fork.Group()) {
		t.Fatal("a fork whose route is still published lost its group on Close")
	}
	if err := src.WaitVersion(ctx, e.publish()); err != nil {
		t.Fatal(err)
	}
	base.stop(t)
	if !e.groupExists(ctx, base.Group()) {
		t.Fatal("Close deleted the baseline's group")
	}
	fork = e.start(ctx, forkA, src, newRecorder())
	fork.stop(t)
	if e.groupExists(ctx, fork.Group()) {
		t.Fatal("Close kept the group of a fork whose route is gone")
	}
}
