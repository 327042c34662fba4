package kafka_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/trace"

	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/kafka"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

func TestConfigErrorsNameTheField(t *testing.T) {
	ok := kafka.Config{Identity: baseID, Brokers: []string{"127.0.0.1:9"}, Topics: []string{"t"}, Group: "g",
		Routes: staticSource{}}
	for _, tc := range []struct {
		field string
		edit  func(*kafka.Config)
	}{
		{"brokers:", func(c *kafka.Config) { c.Brokers = nil }},
		{"brokers[1]:", func(c *kafka.Config) { c.Brokers = append(c.Brokers, "nohost") }},
		{"topics:", func(c *kafka.Config) { c.Topics = nil }},
		{"topics[0]:", func(c *kafka.Config) { c.Topics = []string{"bad topic"} }},
		{"group:", func(c *kafka.Config) { c.Group = "" }},
		{"group:", func(c *kafka.Config) { c.Group = strings.Repeat("g", 1025) }},
		{"syncTimeout", func(c *kafka.Config) { c.SyncTimeout = -1 }},
		{"contexts:", func(c *kafka.Config) { c.Contexts = 7 }},
		{"identity: routingKey:", func(c *kafka.Config) { c.Identity = mq.Identity{Baseline: worker, Sandbox: "s"} }},
		{"identity: baseline.namespace:", func(c *kafka.Config) {
			c.Identity = mq.Identity{Baseline: forkA.Baseline, Sandbox: "s", RoutingKey: "k"}
			c.Identity.Baseline.Namespace = ""
		}},
	} {
		cfg := ok
		tc.edit(&cfg)
		_, err := kafka.NewConsumer(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %v", tc.field, err)
		}
	}
}

func TestIdentityFromEnvWhenZero(t *testing.T) {
	t.Setenv(mq.EnvBaselineNamespace, "")
	t.Setenv(mq.EnvBaselineName, "")
	_, err := kafka.NewConsumer(context.Background(), kafka.Config{Brokers: []string{"127.0.0.1:9"}, Topics: []string{"t"}, Group: "g"})
	if !errors.Is(err, mq.ErrNoIdentity) {
		t.Fatalf("err = %v, want ErrNoIdentity", err)
	}
}

// TestNoConsumingBeforeRoutesSync: a lookup API that never answers makes NewConsumer fail after
// SyncTimeout with an error that says so, and no group is created.
func TestNoConsumingBeforeRoutesSync(t *testing.T) {
	e := newEnv(t, 1, topic)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "starting", http.StatusServiceUnavailable)
	}))
	defer down.Close()
	t.Setenv(mq.EnvRoutesURL, down.URL)
	start := time.Now()
	_, err := kafka.NewConsumer(context.Background(), kafka.Config{
		Identity: forkA, Brokers: e.brokers, Topics: []string{topic}, Group: "orders-worker",
		SyncTimeout: 300 * time.Millisecond,
	})
	if err == nil || !strings.Contains(err.Error(), "no route table within syncTimeout 300ms") {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("NewConsumer took %s", d)
	}
	if e.groupExists(context.Background(), forkA.ScopedName("orders-worker")) {
		t.Error("a sandbox group was created without a route table")
	}
}

// TestEnvConfiguredConsumer: identity and route lookup URL from the environment, as the operator sets them
// on a fork; the consumer runs its own routes.Client.
func TestEnvConfiguredConsumer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e := newEnv(t, 2, topic)
	e.publish(forkRoute(worker, "keya", "sb-a"))
	t.Setenv(mq.EnvRoutesURL, e.url)
	t.Setenv(mq.EnvBaselineNamespace, worker.Namespace)
	t.Setenv(mq.EnvBaselineName, worker.Name)
	t.Setenv(mq.EnvBaselineKind, "")
	t.Setenv(mq.EnvSandboxName, "sb-a")
	t.Setenv(mq.EnvRoutingKey, "keya")
	rc := newRecorder()
	c := e.start(ctx, mq.Identity{}, nil, rc)
	if c.Identity() != forkA || c.Group() != "orders-worker-sandbox-sb-a" {
		t.Fatalf("identity %+v group %s", c.Identity(), c.Group())
	}
	e.produce(ctx, 1, "keya")
	e.produce(ctx, 2, "")
	waitHandled(t, ctx, 2, c)
	check(t, "fork", rc, map[int]bool{1: true})
	c.stop(t)
}

// TestHandlerErrorRedelivers: a handler error stops Run without committing the record; the next consumer
// of the group gets it again (at-least-once).
func TestHandlerErrorRedelivers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	e := newEnv(t, 1, topic)
	src := e.routesClient()
	for i := 1; i <= 3; i++ {
		e.produce(ctx, i, "")
	}
	failOn := errors.New("boom")
	c, err := kafka.NewConsumer(ctx, kafka.Config{Identity: baseID, Routes: src, Brokers: e.brokers,
		Topics: []string{topic}, Group: "orders-worker"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = c.Run(ctx, func(_ context.Context, r *kgo.Record) error {
		got = append(got, string(r.Value))
		if string(r.Value) == "2" {
			return failOn
		}
		return nil
	})
	if !errors.Is(err, failOn) || !strings.Contains(err.Error(), "offset 1") {
		t.Fatalf("Run = %v", err)
	}
	if s := c.Stats(); s.Processed != 1 || s.Failed != 1 {
		t.Errorf("stats %+v", s)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	rc := newRecorder()
	c2 := e.start(ctx, baseID, src, rc)
	waitHandled(t, ctx, 2, c2)
	check(t, "second consumer", rc, map[int]bool{2: true, 3: true})
	if strings.Join(got, ",") != "1,2" {
		t.Errorf("first consumer saw %v", got)
	}
}

// TestSandboxOnMissingTopic: a sandbox group cannot start "at the end" of a topic that does not exist;
// NewConsumer says which.
func TestSandboxOnMissingTopic(t *testing.T) {
	e := newEnv(t, 1, topic)
	e.publish()
	_, err := kafka.NewConsumer(context.Background(), kafka.Config{Identity: forkA, Routes: e.routesClient(),
		Brokers: e.brokers, Topics: []string{topic, "nope"}, Group: "g", AdminTimeout: 3 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
	t.Log(err)
}

// TestKeyContexts: with mq.KeyContexts the handler's context carries the record's routing key and baggage
// and no trace context, and the records of one key share one context; with the default, each record's
// context carries its own span context.
func TestKeyContexts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	e := newEnv(t, 1, topic)
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	const n = 6
	for i := range n {
		sid := trace.SpanID{byte(i + 1)}
		pctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
		if i%2 == 0 {
			pctx = routingkey.WithKey(pctx, "keyz")
		}
		r := &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))}
		kafka.Inject(pctx, r)
		if err := e.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	for _, mode := range []mq.Contexts{mq.TraceContexts, mq.KeyContexts} {
		t.Run(mode.String(), func(t *testing.T) {
			c, err := kafka.NewConsumer(ctx, kafka.Config{Identity: baseID, Routes: staticSource{}, Brokers: e.brokers,
				Topics: []string{topic}, Group: "g-" + mode.String(), Contexts: mode,
				ClientOptions: []kgo.Opt{kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			var mu sync.Mutex
			keyed := map[context.Context]bool{}
			seen := 0
			rctx, stop := context.WithCancel(ctx)
			defer stop()
			err = c.Run(rctx, func(hctx context.Context, r *kgo.Record) error {
				mu.Lock()
				defer mu.Unlock()
				i, _ := strconv.Atoi(string(r.Value))
				key, _ := routingkey.FromContext(hctx)
				if want := map[bool]string{true: "keyz"}[i%2 == 0]; key != want {
					t.Errorf("record %d: key %q, want %q", i, key, want)
				}
				if bk := baggage.FromContext(hctx).Member("sm-routing-key").Value(); bk != key {
					t.Errorf("record %d: baggage member %q, key %q", i, bk, key)
				}
				sc := trace.SpanContextFromContext(hctx)
				switch mode {
				case mq.TraceContexts:
					if !sc.IsValid() || sc.SpanID() != (trace.SpanID{byte(i + 1)}) {
						t.Errorf("record %d: span context %v", i, sc)
					}
				case mq.KeyContexts:
					if sc.IsValid() {
						t.Errorf("record %d: span context %v with key contexts", i, sc)
					}
					if key != "" {
						keyed[hctx] = true
					}
				}
				if seen++; seen == n {
					stop()
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if seen != n {
				t.Errorf("handled %d records, want %d", seen, n)
			}
			if mode == mq.KeyContexts && len(keyed) != 1 {
				t.Errorf("%d distinct contexts for the records of one key, want 1", len(keyed))
			}
		})
	}
}
