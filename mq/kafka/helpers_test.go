package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/kafka"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

const topic = "orders"

var worker = routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}

// env is one test's world: a real Kafka-protocol broker (kfake, in process, on 127.0.0.1) and a real route
// server's lookup API.
type env struct {
	t       testing.TB
	brokers []string
	srv     *routeapi.Server
	url     string
	prod    *kgo.Client
	adm     *kadm.Client
	routes  []routeapi.Route
}

func newEnv(t testing.TB, partitions int32, topics ...string) *env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, topics...))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return newEnvAt(t, c.ListenAddrs())
}

// newEnvAt is newEnv for the broker at brokers.
func newEnvAt(t testing.TB, brokers []string) *env {
	t.Helper()
	srv := routeapi.NewServer(routeapi.ServerConfig{})
	hs := httptest.NewServer(srv.LookupHandler())
	t.Cleanup(hs.Close)
	e := &env{t: t, brokers: brokers, srv: srv, url: hs.URL}
	var err error
	e.prod, err = kgo.NewClient(kgo.SeedBrokers(e.brokers...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.prod.Close)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(e.brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(admCl.Close)
	e.adm = kadm.NewClient(admCl)
	return e
}

func forkRoute(w routeapi.WorkloadRef, key, sandbox string) routeapi.Route {
	return routeapi.Route{Workload: w, RoutingKey: key, Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: w.Namespace, Name: sandbox},
		Kind:    routeapi.DestinationFork, Host: sandbox + "-" + w.Name + "." + w.Namespace + ".svc",
	}}
}

// publish makes rs the route table and returns its version.
func (e *env) publish(rs ...routeapi.Route) uint64 {
	e.t.Helper()
	v, err := e.srv.Publish(context.Background(), rs)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// routesClient runs a real lookup client against the route server until the test ends.
func (e *env) routesClient() *routes.Client {
	e.t.Helper()
	c, err := routes.New(routes.Config{URL: e.url, Workload: worker, MinInterval: 20 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return c
}

// produce sends one record with id id, keyed with key when key != "", synchronously.
func (e *env) produce(ctx context.Context, id int, key string) {
	e.t.Helper()
	r := &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(id)), Value: []byte(strconv.Itoa(id))}
	pctx := ctx
	if key != "" {
		pctx = routingkey.WithKey(ctx, key)
	}
	kafka.Inject(pctx, r)
	if err := e.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		e.t.Fatalf("produce %d: %v", id, err)
	}
}

// recorder is a handler that records which ids it processed, how often, and checks the handler's context
// carries the record's key.
type recorder struct {
	slow time.Duration // each processed record takes this long (a fork that lags)
	mu   sync.Mutex
	seen map[int]int
	bad  []string
}

func newRecorder() *recorder { return &recorder{seen: map[int]int{}} }

func (rc *recorder) handle(ctx context.Context, r *kgo.Record) error {
	id, err := strconv.Atoi(string(r.Value))
	if err != nil {
		return fmt.Errorf("bad value %q", r.Value)
	}
	_, want := kafka.Extract(context.Background(), r)
	got, _ := routingkey.FromContext(ctx)
	if rc.slow > 0 {
		time.Sleep(rc.slow)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if got != want {
		rc.bad = append(rc.bad, fmt.Sprintf("record %d: handler ctx key %q, header key %q", id, got, want))
	}
	rc.seen[id]++
	return nil
}

func (rc *recorder) snapshot() map[int]int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	m := make(map[int]int, len(rc.seen))
	for k, v := range rc.seen {
		m[k] = v
	}
	return m
}

// running is a Consumer with its Run goroutine.
type running struct {
	*kafka.Consumer
	done chan error
}

func (e *env) start(ctx context.Context, id mq.Identity, src mq.TableSource, rc *recorder) *running {
	e.t.Helper()
	c, err := kafka.NewConsumer(ctx, kafka.Config{
		Identity: id, Routes: src, Brokers: e.brokers, Topics: []string{topic}, Group: "orders-worker",
		SyncTimeout:   5 * time.Second,
		ClientOptions: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	r := &running{Consumer: c, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx, rc.handle) }()
	e.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return r
}

func (r *running) stop(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatalf("close %s: %v", r.Group(), err)
	}
	if err := <-r.done; err != nil && !errors.Is(err, kafka.ErrClosed) {
		t.Fatalf("run %s: %v", r.Group(), err)
	}
}

// waitHandled waits until the consumers together have handled (processed or skipped) n records each.
func waitHandled(t testing.TB, ctx context.Context, n uint64, cs ...*running) {
	t.Helper()
	for {
		all := true
		for _, c := range cs {
			s := c.Stats()
			if s.Processed+s.Skipped() < n {
				all = false
			}
		}
		if all {
			return
		}
		select {
		case <-ctx.Done():
			for _, c := range cs {
				t.Logf("%s: %+v", c.Group(), c.Stats())
			}
			t.Fatalf("waiting for %d handled records: %v", n, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// groupExists reports whether group has committed offsets or members on the broker.
func (e *env) groupExists(ctx context.Context, group string) bool {
	e.t.Helper()
	gs, err := e.adm.ListGroups(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, g := range gs.Groups() {
		if g == group {
			return true
		}
	}
	return false
}

type staticSource struct{ t *routeapi.Table }

func (s staticSource) Table() *routeapi.Table { return s.t }
