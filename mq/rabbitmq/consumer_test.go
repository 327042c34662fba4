package rabbitmq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
)

// TestSelectiveConsumption: N messages keyed for sandbox S, M without a key and K keyed for another
// sandbox that has no fork of this workload. The fork processes exactly the N, the baseline exactly the
// M+K: nothing lost, nothing processed twice, nothing misrouted.
func TestSelectiveConsumption(t *testing.T) {
	e := newEnv(t, "selective")
	const n, m, k = 100, 100, 50
	v, err := e.srv.Publish(e.ctx, []routeapi.Route{
		forkRoute("keys", "sb-s"),
		{Workload: routeapi.WorkloadRef{Namespace: "shop", Name: "other"}, RoutingKey: "keyo", Destination: routeapi.Destination{
			Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: "sb-o"}, Kind: routeapi.DestinationFork, Host: "x.shop.svc"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rb, rf := e.routes(), e.routes()
	base, err := rabbitmq.NewConsumer(e.ctx, e.config(baseline(), rb))
	if err != nil {
		t.Fatal(err)
	}
	fork, err := rabbitmq.NewConsumer(e.ctx, e.config(sandbox("sb-s", "keys"), rf))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fork.Queue(), "q-selective-sandbox-sb-s"; got != want {
		t.Errorf("fork queue %q, want %q", got, want)
	}
	for _, c := range []*routes.Client{rb, rf} {
		if err := c.WaitVersion(e.ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder(t)
	run(t, base, rec.handler("base"))
	run(t, fork, rec.handler("fork"))
	want := map[string]map[string]int{"base": {}, "fork": {}}
	for i := 0; i < n+m+k; i++ {
		id := fmt.Sprintf("m%03d", i)
		switch {
		case i%5 < 2 && len(want["fork"]) < n:
			e.publish(id, "keys")
			want["fork"][id] = 1
		case i%5 == 4 && k > 0 && countPrefix(want["base"], "o") < k:
			id = "o" + id
			e.publish(id, "keyo")
			want["base"][id] = 1
		default:
			e.publish(id, "")
			want["base"][id] = 1
		}
	}
	all := uint64(len(want["base"]) + len(want["fork"]))
	eventually(t, "both consumers to see every message", func() bool { return total(base) == all && total(fork) == all })
	for _, name := range []string{"base", "fork"} {
		got := rec.count(name)
		for id := range want[name] {
			if got[id] != 1 {
				t.Errorf("%s processed %s %d times, want once", name, id, got[id])
			}
		}
		for id := range got {
			if want[name][id] == 0 {
				t.Errorf("%s processed %s, which is not its message", name, id)
			}
		}
	}
	bs, fs := base.Stats(), fork.Stats()
	t.Logf("baseline %+v; fork %+v", bs, fs)
	if bs.SkippedRoutedAway != uint64(len(want["fork"])) || fs.SkippedNoKey == 0 || fs.SkippedNotMine == 0 {
		t.Errorf("skip counters: baseline %+v, fork %+v", bs, fs)
	}
}

func countPrefix(m map[string]int, p string) int {
	n := 0
	for k := range m {
		if strings.HasPrefix(k, p) {
			n++
		}
	}
	return n
}

// producer publishes messages m0000… in the background, every third one keyed for key, until stop; it
// returns the ids and keys published.
type producer struct {
	e     *env
	key   string
	stop  chan struct{}
	done  chan struct{}
	count atomic.Int64
	keyed map[string]bool
}

func startProducer(e *env, key string, max int) *producer {
	p := &producer{e: e, key: key, stop: make(chan struct{}), done: make(chan struct{}), keyed: map[string]bool{}}
	go func() {
		defer close(p.done)
		for i := 0; i < max; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			id := fmt.Sprintf("m%04d", i)
			if i%3 == 0 {
				p.keyed[id] = true
				e.publish(id, key)
			} else {
				p.keyed[id] = false
				e.publish(id, "")
			}
			p.count.Add(1)
			time.Sleep(500 * time.Microsecond)
		}
	}()
	return p
}

func (p *producer) waitFor(n int64) {
	eventually(p.e.t, fmt.Sprintf("%d messages published", n), func() bool { return p.count.Load() >= n })
}

func (p *producer) finish() map[string]bool {
	close(p.stop)
	<-p.done
	return p.keyed
}

// TestSandboxDeletedMidStream: while messages flow, the sandbox's route is unpublished, then the fork
// consumer is closed as soon as its route copy lost the route, and the baseline's copy learns of it 100ms
// later (a lagging poll). Every message is processed at least once; the fork's queue is gone; the
// duplicates of the transition are counted.
func TestSandboxDeletedMidStream(t *testing.T) {
	e := newEnv(t, "deleted")
	v, err := e.srv.Publish(e.ctx, []routeapi.Route{forkRoute("keyd", "sb-d")})
	if err != nil {
		t.Fatal(err)
	}
	rf := e.routes()
	if err := rf.WaitVersion(e.ctx, v); err != nil {
		t.Fatal(err)
	}
	lagging := &switchSource{}
	lagging.t.Store(rf.Table())
	base, err := rabbitmq.NewConsumer(e.ctx, e.config(baseline(), lagging))
	if err != nil {
		t.Fatal(err)
	}
	fcfg := e.config(sandbox("sb-d", "keyd"), rf)
	fcfg.DeleteGrace = 250 * time.Millisecond
	fork, err := rabbitmq.NewConsumer(e.ctx, fcfg)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(t)
	closeBase := run(t, base, rec.handler("base"))
	closeFork := run(t, fork, rec.handler("fork"))
	p := startProducer(e, "keyd", 3000)
	p.waitFor(600)
	v, err = e.srv.Publish(e.ctx, nil) // the operator removes the sandbox's routes
	if err != nil {
		t.Fatal(err)
	}
	if err := rf.WaitVersion(e.ctx, v); err != nil {
		t.Fatal(err)
	}
	// The fork pod stops as soon as its own copy lost the route, before the baseline's copy did: the grace
	// and drain in Close cover the messages the baseline still skips.
	closed := make(chan error, 1)
	go func() { closed <- closeFork() }()
	time.Sleep(100 * time.Millisecond)
	lagging.t.Store(rf.Table())
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	if !fork.Deleted() || e.queueExists(fork.Queue()) {
		t.Errorf("the fork's queue %s was not deleted (Deleted %v)", fork.Queue(), fork.Deleted())
	}
	p.waitFor(1500)
	keyed := p.finish()
	eventually(t, "the baseline to see every message", func() bool { return total(base) == uint64(len(keyed)) })
	if err := closeBase(); err != nil {
		t.Fatal(err)
	}
	b, f := rec.count("base"), rec.count("fork")
	dups := 0
	for id, isKeyed := range keyed {
		switch n := b[id] + f[id]; {
		case n == 0:
			t.Errorf("message %s (keyed %v) was lost", id, isKeyed)
		case n > 1:
			dups++
		}
		if !isKeyed && f[id] > 0 {
			t.Errorf("the fork processed unkeyed message %s", id)
		}
	}
	t.Logf("%d messages, %d processed twice in the transition; baseline %+v; fork %+v", len(keyed), dups, base.Stats(), fork.Stats())
	if e.queueExists(e.queue) == false {
		t.Error("the baseline queue is gone")
	}
}

// TestConsumerRestart: baseline and fork consumers are stopped and started again mid-stream (one stops by
// cancelling Run's context, which requeues what it had not handled, the other by Close). Every message is
// processed by its consumer at least once, and no message reaches the wrong one.
func TestConsumerRestart(t *testing.T) {
	e := newEnv(t, "restart")
	v, err := e.srv.Publish(e.ctx, []routeapi.Route{forkRoute("keyr", "sb-r")})
	if err != nil {
		t.Fatal(err)
	}
	rb, rf := e.routes(), e.routes()
	for _, c := range []*routes.Client{rb, rf} {
		if err := c.WaitVersion(e.ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder(t)
	start := func(id mq.Identity, src mq.TableSource, name string) (*rabbitmq.Consumer, func() error, context.CancelFunc) {
		c, err := rabbitmq.NewConsumer(e.ctx, e.config(id, src))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx, rec.handler(name)) }()
		closeIt := func() error {
			cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer ccancel()
			err := c.Close(cctx)
			if rerr := <-done; rerr != nil && err == nil {
				err = rerr
			}
			return err
		}
		return c, closeIt, cancel
	}
	_, closeBase, cancelBase := start(baseline(), rb, "base")
	fork, closeFork, cancelFork := start(sandbox("sb-r", "keyr"), rf, "fork")
	p := startProducer(e, "keyr", 2400)
	for round := 0; round < 2; round++ {
		p.waitFor(int64(600 * (round + 1)))
		cancelBase() // stop by context: unhandled deliveries go back to the queue
		if err := closeBase(); err != nil {
			t.Fatal(err)
		}
		if err := closeFork(); err != nil { // stop by Close: delivered messages are handled first
			t.Fatal(err)
		}
		cancelFork()
		if fork.Deleted() || !e.queueExists(fork.Queue()) {
			t.Fatal("a fork restarting while its route exists lost its queue")
		}
		time.Sleep(50 * time.Millisecond) // messages pile up in both queues meanwhile
		_, closeBase, cancelBase = start(baseline(), rb, "base")
		fork, closeFork, cancelFork = start(sandbox("sb-r", "keyr"), rf, "fork")
	}
	keyed := p.finish()
	eventually(t, "every message to be consumed", func() bool {
		b, f := rec.count("base"), rec.count("fork")
		for id, k := range keyed {
			if (k && f[id] == 0) || (!k && b[id] == 0) {
				return false
			}
		}
		return true
	})
	cancelBase()
	cancelFork()
	if err := closeBase(); err != nil {
		t.Fatal(err)
	}
	if err := closeFork(); err != nil {
		t.Fatal(err)
	}
	b, f := rec.count("base"), rec.count("fork")
	dups := 0
	for id, k := range keyed {
		if k && b[id] > 0 || !k && f[id] > 0 {
			t.Errorf("message %s (keyed %v) processed by the wrong consumer", id, k)
		}
		if b[id]+f[id] > 1 {
			dups++
		}
	}
	t.Logf("%d messages across 2 restarts of both consumers: %d processed more than once", len(keyed), dups)
}

// TestCloseDeletesOnlyAnUnroutedSandboxQueue: Close of a fork whose route is still published keeps its
// queue; of a fork whose route is gone deletes it; of the baseline never deletes. The sandbox queue has
// the configured x-expires.
func TestCloseDeletesOnlyAnUnroutedSandboxQueue(t *testing.T) {
	e := newEnv(t, "closedel")
	v, err := e.srv.Publish(e.ctx, []routeapi.Route{forkRoute("keyc", "sb-c")})
	if err != nil {
		t.Fatal(err)
	}
	src := e.routes()
	if err := src.WaitVersion(e.ctx, v); err != nil {
		t.Fatal(err)
	}
	cfg := e.config(sandbox("sb-c", "keyc"), src)
	cfg.SandboxExpiry = 90 * time.Second
	fork, err := rabbitmq.NewConsumer(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	out, err := broker.Ctl(e.ctx, "list_queues", "-q", "--no-table-headers", "name", "arguments")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fork.Queue()) || !strings.Contains(out, "x-expires") || !strings.Contains(out, "90000") {
		t.Errorf("list_queues does not show %s with x-expires 90000:\n%s", fork.Queue(), out)
	}
	if err := fork.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if fork.Deleted() || !e.queueExists(fork.Queue()) {
		t.Fatal("Close deleted the queue of a fork whose route is published")
	}

	base, err := rabbitmq.NewConsumer(e.ctx, e.config(baseline(), src))
	if err != nil {
		t.Fatal(err)
	}
	v, err = e.srv.Publish(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.WaitVersion(e.ctx, v); err != nil {
		t.Fatal(err)
	}
	cfg.DeleteGrace = time.Millisecond
	fork, err = rabbitmq.NewConsumer(e.ctx, cfg) // reopened: finds the queue the first one left
	if err != nil {
		t.Fatal(err)
	}
	if err := fork.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if !fork.Deleted() || e.queueExists(fork.Queue()) {
		t.Error("Close kept the queue of a fork whose route is gone")
	}
	if err := base.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if base.Deleted() || !e.queueExists(e.queue) {
		t.Error("Close deleted the baseline's queue")
	}
	if err := base.Run(e.ctx, func(context.Context, *amqp.Delivery) error { return nil }); !errors.Is(err, rabbitmq.ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
}

// TestHandlerErrorRequeuesOnce: a failing handler gets the message twice (the default MaxAttempts), then
// the message is rejected; MaxAttempts 1 never requeues.
func TestHandlerErrorRequeuesOnce(t *testing.T) {
	e := newEnv(t, "handlererr")
	for _, tc := range []struct {
		max, calls int
	}{{0, 2}, {1, 1}} {
		cfg := e.config(baseline(), nil)
		cfg.Routes = staticSource{}
		cfg.Queue = fmt.Sprintf("%s-%d", e.queue, tc.max)
		cfg.MaxAttempts = tc.max
		c, err := rabbitmq.NewConsumer(e.ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var calls atomic.Int64
		closeIt := run(t, c, func(context.Context, *amqp.Delivery) error {
			calls.Add(1)
			return errors.New("boom")
		})
		e.publish(fmt.Sprintf("fail-%d", tc.max), "")
		eventually(t, "the failed message to be rejected", func() bool { return c.Stats().Failed == uint64(tc.calls) })
		time.Sleep(100 * time.Millisecond)
		if err := closeIt(); err != nil {
			t.Fatal(err)
		}
		if s := c.Stats(); calls.Load() != int64(tc.calls) || s.Requeued != uint64(tc.calls-1) {
			t.Errorf("MaxAttempts %d: handler called %d times, stats %+v; want %d calls", tc.max, calls.Load(), s, tc.calls)
		}
	}
}

type staticSource struct{ t *routeapi.Table }

// switchSource is a route copy the test updates by hand.
type switchSource struct {
	t atomic.Pointer[routeapi.Table]
}

func (s *switchSource) Table() *routeapi.Table { return s.t.Load() }

func (s staticSource) Table() *routeapi.Table { return s.t }

// TestRouteSyncTimeout: a consumer whose route source never syncs fails in the constructor with a clear
// error instead of consuming without routes.
func TestRouteSyncTimeout(t *testing.T) {
	e := newEnv(t, "synctimeout")
	rc, err := routes.New(routes.Config{URL: "http://127.0.0.1:1", Workload: worker})
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(baseline(), rc) // never Run: never synced
	cfg.SyncTimeout = 200 * time.Millisecond
	_, err = rabbitmq.NewConsumer(e.ctx, cfg)
	if err == nil || !strings.Contains(err.Error(), "did not sync within 200ms") {
		t.Fatalf("err = %v, want a sync timeout", err)
	}
}

// TestConfigErrors: bad configurations are refused before connecting, naming the field.
func TestConfigErrors(t *testing.T) {
	id := baseline()
	sb := sandbox("sb", "key1")
	for _, tc := range []struct {
		cfg  rabbitmq.Config
		want string
	}{
		{rabbitmq.Config{Queue: "q", Identity: id}, "url: required"},
		{rabbitmq.Config{URL: "amqp://x", Identity: id}, "queue: required"},
		{rabbitmq.Config{URL: "amqp://x", Queue: "amq.x", Identity: id}, "queue: \"amq.x\""},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: sb}, "bindings: required for sandbox \"sb\""},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: id, Bindings: []rabbitmq.Binding{{Key: "k"}}}, "bindings[0].exchange: required"},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: id, Prefetch: -1}, "prefetch:"},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: id, SandboxExpiry: -time.Second}, "sandboxExpiry:"},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: id, DeleteGrace: -time.Second}, "deleteGrace:"},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: id, MaxAttempts: -1}, "maxAttempts:"},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: id, Contexts: 9}, "contexts: 9"},
		{rabbitmq.Config{URL: "amqp://x", Queue: "q", Identity: mq.Identity{Baseline: worker, Sandbox: "sb"}}, "identity: routingKey: required"},
		{rabbitmq.Config{URL: "amqp://x", Queue: strings.Repeat("q", 250), Identity: sb, Bindings: []rabbitmq.Binding{{Exchange: "e"}}}, "more than AMQP's 255"},
	} {
		_, err := rabbitmq.NewConsumer(context.Background(), tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewConsumer(%+v) = %v, want an error with %q", tc.cfg, err, tc.want)
		}
	}
	t.Setenv(mq.EnvBaselineNamespace, "")
	t.Setenv(mq.EnvBaselineName, "")
	if _, err := rabbitmq.NewConsumer(context.Background(), rabbitmq.Config{URL: "amqp://x", Queue: "q"}); !errors.Is(err, mq.ErrNoIdentity) {
		t.Errorf("without an identity: %v, want ErrNoIdentity", err)
	}
}

// TestConsumerCrashRedelivers: a consumer whose connection dies while its handler runs (a crash) never
// acks that message; the broker redelivers it to the next consumer of the queue: at-least-once, the
// message in flight is processed twice.
func TestConsumerCrashRedelivers(t *testing.T) {
	e := newEnv(t, "crash")
	cfg := e.config(baseline(), staticSource{})
	conn, err := amqp.Dial(e.url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Conn = conn
	c, err := rabbitmq.NewConsumer(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	for i := 0; i < n; i++ {
		e.publish(fmt.Sprintf("c%03d", i), "")
	}
	rec := newRecorder(t)
	h := rec.handler("base")
	runErr := c.Run(e.ctx, func(ctx context.Context, d *amqp.Delivery) error {
		err := h(ctx, d)
		if d.MessageId == "c050" {
			conn.Close() // the pod dies before the ack
		}
		return err
	})
	if runErr == nil {
		t.Fatal("Run returned nil after its connection died")
	}
	t.Logf("Run: %v", runErr)
	_ = c.Close(e.ctx)
	cfg.Conn = nil
	c2, err := rabbitmq.NewConsumer(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	run(t, c2, h)
	eventually(t, "every message processed", func() bool { return len(rec.count("base")) == n })
	got := rec.count("base")
	var twice []string
	for id, k := range got {
		if k > 1 {
			twice = append(twice, id)
		}
	}
	if got["c050"] != 2 || len(twice) != 1 {
		t.Errorf("processed twice: %v (c050 %d times), want only the message in flight, c050", twice, got["c050"])
	}
}

// TestIdentityAndRoutesFromEnv: with a zero Identity and nil Routes the consumer reads who it is and where
// the lookup API is from the environment the operator sets, and follows the published routes.
func TestIdentityAndRoutesFromEnv(t *testing.T) {
	e := newEnv(t, "fromenv")
	if _, err := e.srv.Publish(e.ctx, []routeapi.Route{forkRoute("keye", "sb-e"), forkRoute("grpe", "sb-e")}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(mq.EnvRoutesURL, e.hs.URL)
	t.Setenv(mq.EnvBaselineNamespace, worker.Namespace)
	t.Setenv(mq.EnvBaselineName, worker.Name)
	t.Setenv(mq.EnvSandboxName, "sb-e")
	t.Setenv(mq.EnvRoutingKey, "keye")
	cfg := e.config(mq.Identity{}, nil)
	c, err := rabbitmq.NewConsumer(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Identity(); got != sandbox("sb-e", "keye") {
		t.Fatalf("identity %+v", got)
	}
	rec := newRecorder(t)
	closeIt := run(t, c, rec.handler("fork"))
	e.publish("own", "keye")
	e.publish("group", "grpe") // a route-group key: processed only through the synced table
	e.publish("none", "")
	eventually(t, "three messages", func() bool { return total(c) == 3 })
	if got := rec.count("fork"); got["own"] != 1 || got["group"] != 1 || got["none"] != 0 {
		t.Errorf("processed %v", got)
	}
	if err := closeIt(); err != nil {
		t.Fatal(err)
	}
	if c.Deleted() {
		t.Error("deleted the queue of a routed fork")
	}
}

// TestNoDeclareAndSharedConn: with NoDeclare the baseline only checks that the app's queue exists, and
// Close leaves a connection the app passed in open.
func TestNoDeclareAndSharedConn(t *testing.T) {
	e := newEnv(t, "nodeclare")
	cfg := e.config(baseline(), staticSource{})
	cfg.NoDeclare = true
	cfg.Conn = e.conn
	if _, err := rabbitmq.NewConsumer(e.ctx, cfg); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("NoDeclare of a missing queue: %v", err)
	}
	if _, err := e.pub.QueueDeclare(e.queue, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	c, err := rabbitmq.NewConsumer(e.ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(e.ctx); err != nil {
		t.Fatal(err)
	}
	if e.conn.IsClosed() {
		t.Error("Close closed the app's connection")
	}
}
