package nats_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
)

// kind of message ids: 0..n-1 keyed for sb-a, then unkeyed, then keyo (sb-o forks another workload only),
// then keyz (no route at all).
func keyOf(id, n int) string {
	switch id % 4 {
	case 0:
		return "keya"
	case 1:
		return ""
	case 2:
		return "keyo"
	}
	return "keyz"
}

// TestJetStreamSelective: the fork processes exactly the messages keyed for its sandbox, the baseline
// exactly the others: none lost, none twice, none misrouted.
func TestJetStreamSelective(t *testing.T) {
	nc := startNATS(t)
	js, _ := jetstream.New(nc)
	newStream(t, js, jetstream.LimitsPolicy)
	env := startRoutes(t)
	bc, fc := env.client(t), env.client(t)
	base := newJS(t, js, baseID, bc)
	fork := newJS(t, js, forkID, fc)
	if fork.Name() != "worker-sandbox-sb-a" || base.Name() != "worker" {
		t.Fatalf("names: baseline %q, fork %q", base.Name(), fork.Name())
	}
	env.publish(t, []routeapi.Route{forkRte, otherRte}, bc, fc)

	br, fr := newRecorder(t), newRecorder(t)
	runJS(t, base, br.js)
	runJS(t, fork, fr.js)
	const total = 400
	for i := range total {
		publishMsg(t, js, i, keyOf(i, total))
	}
	waitFor(t, "both consumers to see every message", func() bool {
		b, f := base.Stats(), fork.Stats()
		return b.Processed+b.Skipped() == total && f.Processed+f.Skipped() == total
	})
	bs, fs := br.snapshot(), fr.snapshot()
	var lost, twice, misrouted int
	for i := range total {
		b, f := bs[i], fs[i]
		if b+f == 0 {
			lost++
		}
		if b > 1 || f > 1 || b+f > 1 {
			twice++
		}
		if (keyOf(i, total) == "keya") != (f == 1) {
			misrouted++
		}
	}
	t.Logf("baseline %+v; fork %+v; lost %d, twice %d, misrouted %d", base.Stats(), fork.Stats(), lost, twice, misrouted)
	if lost+twice+misrouted != 0 {
		t.Fatalf("lost %d, processed twice %d, misrouted %d", lost, twice, misrouted)
	}
	if s := fork.Stats(); s.Processed != total/4 || s.SkippedNoKey != total/4 || s.SkippedNotMine != total/2 {
		t.Errorf("fork stats %+v", s)
	}
	if s := base.Stats(); s.Processed != 3*total/4 || s.SkippedRoutedAway != total/4 {
		t.Errorf("baseline stats %+v", s)
	}
	fr.mu.Lock()
	if k := fr.keys[0]; k != "keya" {
		t.Errorf("fork handler's ctx: routingkey.FromContext = %q, want keya", k)
	}
	fr.mu.Unlock()
}

// TestJetStreamSandboxDeletedMidStream removes the sandbox's route while messages flow, then closes the
// fork consumer: every message is processed at least once and the fork's consumer is deleted.
func TestJetStreamSandboxDeletedMidStream(t *testing.T) {
	nc := startNATS(t)
	js, _ := jetstream.New(nc)
	newStream(t, js, jetstream.LimitsPolicy)
	env := startRoutes(t)
	bc, fc := env.client(t), env.client(t)
	base := newJS(t, js, baseID, bc)
	fork := newJS(t, js, forkID, fc)
	env.publish(t, []routeapi.Route{forkRte}, bc, fc)
	br, fr := newRecorder(t), newRecorder(t)
	runJS(t, base, br.js)
	closeFork := runJS(t, fork, fr.js)

	const total = 1200
	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			publishMsg(t, js, i, keyOf(i, total))
			published.Add(1)
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	waitFor(t, "a third of the messages", func() bool { return published.Load() > total/3 })
	env.publish(t, nil, bc, fc) // the sandbox is being deleted: its route goes first
	if err := closeFork(); err != nil {
		t.Fatalf("closing the fork: %v", err)
	}
	closedAt := published.Load()
	wg.Wait()
	waitFor(t, "the baseline to see every message", func() bool {
		b := base.Stats()
		return b.Processed+b.Skipped() == total
	})
	bs, fs := br.snapshot(), fr.snapshot()
	var lost, dup int
	for i := range total {
		switch bs[i] + fs[i] {
		case 0:
			lost++
		case 1:
		default:
			dup++
		}
	}
	t.Logf("fork closed after %d of %d messages; baseline %+v, fork %+v; lost %d, duplicates %d", closedAt, total, base.Stats(), fork.Stats(), lost, dup)
	if lost != 0 {
		t.Fatalf("%d messages lost", lost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := js.Consumer(ctx, stream, fork.Name()); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("fork consumer after Close: %v, want ErrConsumerNotFound", err)
	}
	if _, err := js.Consumer(ctx, stream, "worker"); err != nil {
		t.Errorf("baseline consumer: %v", err)
	}
}

// TestJetStreamRestart closes and reopens the baseline and fork consumers while messages flow: every
// message is processed by its consumer at least once (JetStream gives at-least-once, not exactly-once).
func TestJetStreamRestart(t *testing.T) {
	nc := startNATS(t)
	js, _ := jetstream.New(nc)
	newStream(t, js, jetstream.LimitsPolicy)
	env := startRoutes(t)
	bc, fc := env.client(t), env.client(t)
	base := newJS(t, js, baseID, bc)
	fork := newJS(t, js, forkID, fc)
	env.publish(t, []routeapi.Route{forkRte}, bc, fc)
	br, fr := newRecorder(t), newRecorder(t)
	closeBase := runJS(t, base, br.js)
	closeFork := runJS(t, fork, fr.js)

	const total = 1200
	var published atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			publishMsg(t, js, i, keyOf(i, total))
			published.Add(1)
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	waitFor(t, "a third of the messages", func() bool { return published.Load() > total/3 })
	if err := closeBase(); err != nil {
		t.Fatal(err)
	}
	if err := closeFork(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // messages keep coming while both are down
	base2 := newJS(t, js, baseID, bc)
	fork2 := newJS(t, js, forkID, fc)
	runJS(t, base2, br.js)
	runJS(t, fork2, fr.js)
	wg.Wait()
	waitFor(t, "every message to be processed", func() bool {
		bs, fs := br.snapshot(), fr.snapshot()
		for i := range total {
			if keyOf(i, total) == "keya" && fs[i] == 0 || keyOf(i, total) != "keya" && bs[i] == 0 {
				return false
			}
		}
		return true
	})
	bs, fs := br.snapshot(), fr.snapshot()
	var dup, misrouted int
	for i := range total {
		if bs[i]+fs[i] > 1 {
			dup++
		}
		if (keyOf(i, total) == "keya") != (fs[i] > 0) {
			misrouted++
		}
	}
	t.Logf("baseline %+v then %+v; fork %+v then %+v; duplicates %d, misrouted %d",
		base.Stats(), base2.Stats(), fork.Stats(), fork2.Stats(), dup, misrouted)
	if misrouted != 0 {
		t.Fatalf("%d messages misrouted", misrouted)
	}
}

// TestJetStreamCloseDeletesOnlyAGoneSandbox: Close keeps the baseline's consumer always and a sandbox's
// consumer while its route exists, and deletes the sandbox's once its route went.
func TestJetStreamCloseDeletesOnlyAGoneSandbox(t *testing.T) {
	nc := startNATS(t)
	js, _ := jetstream.New(nc)
	newStream(t, js, jetstream.LimitsPolicy)
	env := startRoutes(t)
	bc, fc := env.client(t), env.client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	base := newJS(t, js, baseID, bc)
	fork := newJS(t, js, forkID, fc)
	info, err := js.Consumer(ctx, stream, fork.Name())
	if err != nil {
		t.Fatal(err)
	}
	if c := info.CachedInfo().Config; c.DeliverPolicy != jetstream.DeliverNewPolicy || c.AckPolicy != jetstream.AckExplicitPolicy ||
		c.InactiveThreshold != natsmq.DefaultInactiveThreshold || c.FilterSubject != "orders.>" || c.Metadata["sandboxmesh.io/sandbox"] != "sb-a" {
		t.Errorf("sandbox consumer config: %+v", c)
	}
	env.publish(t, []routeapi.Route{forkRte}, bc, fc)
	closeBase := runJS(t, base, func(context.Context, jetstream.Msg) error { return nil })
	closeFork := runJS(t, fork, func(context.Context, jetstream.Msg) error { return nil })
	if err := closeFork(); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, stream, fork.Name()); err != nil {
		t.Fatalf("fork consumer deleted while its route exists: %v", err)
	}
	// Reopened after a restart, it resumes the same consumer; then the route goes.
	fork = newJS(t, js, forkID, fc)
	closeFork = runJS(t, fork, func(context.Context, jetstream.Msg) error { return nil })
	time.Sleep(300 * time.Millisecond) // the route watcher notes the route
	env.publish(t, nil, bc, fc)
	if err := closeBase(); err != nil {
		t.Fatal(err)
	}
	if err := closeFork(); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Consumer(ctx, stream, "worker"); err != nil {
		t.Errorf("baseline consumer after Close: %v", err)
	}
	if _, err := js.Consumer(ctx, stream, fork.Name()); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("fork consumer after its route went and Close: %v, want ErrConsumerNotFound", err)
	}
	if err := fork.Run(ctx, func(context.Context, jetstream.Msg) error { return nil }); !errors.Is(err, natsmq.ErrClosed) {
		t.Errorf("Run after Close: %v", err)
	}
}

// TestJetStreamRefusals: bad configs, a WorkQueue stream for a sandbox and a route API that never answers
// give clear errors.
func TestJetStreamRefusals(t *testing.T) {
	nc := startNATS(t)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "WQ", Subjects: []string{"jobs.>"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		t.Fatal(err)
	}
	env := startRoutes(t)
	src := env.client(t)
	common := natsmq.Common{Identity: forkID, Routes: src}
	for name, tc := range map[string]struct {
		cfg  natsmq.JetStreamConfig
		want string
	}{
		"no jetstream":            {natsmq.JetStreamConfig{Common: common, Stream: "WQ", Durable: "d"}, "jetStream: required"},
		"no stream":               {natsmq.JetStreamConfig{Common: common, JetStream: js, Durable: "d"}, "stream: required"},
		"no durable":              {natsmq.JetStreamConfig{Common: common, JetStream: js, Stream: "WQ"}, "durable: required"},
		"dotted":                  {natsmq.JetStreamConfig{Common: common, JetStream: js, Stream: "WQ", Durable: "a.b"}, "durable: \"a.b\""},
		"work queue":              {natsmq.JetStreamConfig{Common: common, JetStream: js, Stream: "WQ", Durable: "d"}, "WorkQueue retention"},
		"no stream on the server": {natsmq.JetStreamConfig{Common: common, JetStream: js, Stream: "NOPE", Durable: "d"}, "stream \"NOPE\""},
		"bad identity":            {natsmq.JetStreamConfig{Common: natsmq.Common{Identity: routeapiIdentity()}, JetStream: js, Stream: "WQ", Durable: "d"}, "routingKey: required"},
	} {
		_, err := natsmq.NewJetStreamConsumer(ctx, tc.cfg)
		if err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
	// A route API that is down: the constructor gives up after SyncTimeout and consumes nothing.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"orders.>"}}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SANDBOXMESH_ROUTES_URL", "http://127.0.0.1:1")
	_, err := natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{
		Common:    natsmq.Common{Identity: baseID, SyncTimeout: 200 * time.Millisecond},
		JetStream: js, Stream: stream, Durable: "worker",
	})
	if err == nil || !contains(err.Error(), "no route table within 200ms") {
		t.Errorf("routes down: err = %v", err)
	}
}

// TestJetStreamRoutesAndIdentityFromEnv: with no Routes and no Identity, the consumer reads both from the
// environment the operator sets, polls the lookup API itself and stops polling at Close.
func TestJetStreamRoutesAndIdentityFromEnv(t *testing.T) {
	nc := startNATS(t)
	js, _ := jetstream.New(nc)
	newStream(t, js, jetstream.LimitsPolicy)
	env := startRoutes(t)
	t.Setenv("SANDBOXMESH_ROUTES_URL", env.url)
	t.Setenv("SANDBOXMESH_BASELINE_NAMESPACE", "shop")
	t.Setenv("SANDBOXMESH_BASELINE_NAME", "worker")
	t.Setenv("SANDBOXMESH_BASELINE_KIND", "")
	t.Setenv("SANDBOXMESH_SANDBOX_NAME", "sb-a")
	t.Setenv("SANDBOXMESH_ROUTING_KEY", "keya")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{JetStream: js, Stream: stream, Durable: "worker"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "worker-sandbox-sb-a" {
		t.Errorf("name %q", c.Name())
	}
	fr := newRecorder(t)
	closeFn := runJS(t, c, fr.js)
	publishMsg(t, js, 1, "keya")
	publishMsg(t, js, 2, "")
	waitFor(t, "both messages", func() bool { s := c.Stats(); return s.Processed+s.Skipped() == 2 })
	if s := c.Stats(); s.Processed != 1 || s.SkippedNoKey != 1 {
		t.Errorf("stats %+v", s)
	}
	if err := closeFn(); err != nil {
		t.Fatal(err)
	}
}

// TestJetStreamCrashedForkExpires: a sandbox consumer nobody pulls from (its fork crashed) is deleted by
// the server after InactiveThreshold.
func TestJetStreamCrashedForkExpires(t *testing.T) {
	nc := startNATS(t)
	js, _ := jetstream.New(nc)
	newStream(t, js, jetstream.LimitsPolicy)
	env := startRoutes(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{
		Common:    natsmq.Common{Identity: forkID, Routes: env.client(t)},
		JetStream: js, Stream: stream, Durable: "worker", InactiveThreshold: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = c // crashed: never runs, never closes
	waitFor(t, "the server to delete the inactive sandbox consumer", func() bool {
		_, err := js.Consumer(ctx, stream, "worker-sandbox-sb-a")
		return errors.Is(err, jetstream.ErrConsumerNotFound)
	})
}
