package nats_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

func newQueue(t *testing.T, nc *nats.Conn, id mq.Identity, src mq.TableSource) *natsmq.QueueConsumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := natsmq.NewQueueConsumer(ctx, natsmq.QueueConfig{
		Common: natsmq.Common{Identity: id, Routes: src, SyncTimeout: 5 * time.Second},
		Conn:   nc, Subject: "orders.>", Queue: "worker",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func runQueue(t *testing.T, c *natsmq.QueueConsumer, h natsmq.MsgHandler) {
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background(), h) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Error(err)
		}
		if err := <-errc; err != nil {
			t.Error(err)
		}
	})
}

// TestQueueSelective: with core NATS queue groups, two baseline replicas share queue group "worker", the
// fork has "worker-sandbox-sb-a": the fork processes exactly its keyed messages, the baseline replicas
// together exactly the others.
func TestQueueSelective(t *testing.T) {
	nc := startNATS(t)
	env := startRoutes(t)
	bc, fc := env.client(t), env.client(t)
	base1, base2 := newQueue(t, nc, baseID, bc), newQueue(t, nc, baseID, bc)
	fork := newQueue(t, nc, forkID, fc)
	if fork.Queue() != "worker-sandbox-sb-a" || base1.Queue() != "worker" {
		t.Fatalf("queue groups: %q, %q", base1.Queue(), fork.Queue())
	}
	env.publish(t, []routeapi.Route{forkRte, otherRte}, bc, fc)
	br, fr := newRecorder(t), newRecorder(t)
	runQueue(t, base1, br.core)
	runQueue(t, base2, br.core)
	runQueue(t, fork, fr.core)
	const total = 400
	for i := range total {
		ctx := context.Background()
		if k := keyOf(i, total); k != "" {
			ctx = routingkey.WithKey(ctx, k)
		}
		if err := nc.PublishMsg(natsmq.NewMsg(ctx, "orders.created", []byte(strconv.Itoa(i)))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every message seen by one baseline replica and the fork", func() bool {
		b1, b2, f := base1.Stats(), base2.Stats(), fork.Stats()
		return b1.Processed+b1.Skipped()+b2.Processed+b2.Skipped() == total && f.Processed+f.Skipped() == total
	})
	bs, fs := br.snapshot(), fr.snapshot()
	var bad int
	for i := range total {
		want := keyOf(i, total) == "keya"
		if want && (fs[i] != 1 || bs[i] != 0) || !want && (bs[i] != 1 || fs[i] != 0) {
			bad++
		}
	}
	t.Logf("baseline replicas %+v, %+v; fork %+v; wrong %d", base1.Stats(), base2.Stats(), fork.Stats(), bad)
	if bad != 0 {
		t.Fatalf("%d messages lost, twice or misrouted", bad)
	}
}

func TestQueueRefusals(t *testing.T) {
	nc := startNATS(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		cfg  natsmq.QueueConfig
		want string
	}{
		"no conn":    {natsmq.QueueConfig{Subject: "a", Queue: "q"}, "conn: required"},
		"no subject": {natsmq.QueueConfig{Conn: nc, Queue: "q"}, "subject: required"},
		"no queue":   {natsmq.QueueConfig{Conn: nc, Subject: "a"}, "queue: required"},
		"bad queue":  {natsmq.QueueConfig{Conn: nc, Subject: "a", Queue: "q w"}, "queue: \"q w\""},
		"bad contexts": {natsmq.QueueConfig{Common: natsmq.Common{Identity: mq.Identity{Baseline: worker}, Contexts: 9},
			Conn: nc, Subject: "a", Queue: "q"}, "contexts: 9"},
	} {
		if _, err := natsmq.NewQueueConsumer(ctx, tc.cfg); err == nil || !contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want it to mention %q", name, err, tc.want)
		}
	}
}
