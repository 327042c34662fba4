package nats_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/mq"
	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

var (
	worker  = routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}
	other   = routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "other"}
	baseID  = mq.Identity{Baseline: worker}
	forkID  = mq.Identity{Baseline: worker, Sandbox: "sb-a", RoutingKey: "keya"}
	forkRte = route(worker, "keya", "sb-a")
	// keyo is the key of sandbox sb-o, which forks another workload only.
	otherRte = route(other, "keyo", "sb-o")
)

func route(w routeapi.WorkloadRef, key, sandbox string) routeapi.Route {
	return routeapi.Route{Workload: w, RoutingKey: key, Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: sandbox}, Kind: routeapi.DestinationFork,
		Host: sandbox + "-" + w.Name + ".shop.svc",
	}}
}

// startNATS runs a real nats-server with JetStream in this process, listening on 127.0.0.1 only.
func startNATS(t testing.TB) *nats.Conn {
	t.Helper()
	s, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server not ready within 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect(s.ClientURL(), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// routeEnv is a real route server's lookup API.
type routeEnv struct {
	srv *routeapi.Server
	url string
}

func startRoutes(t testing.TB) *routeEnv {
	t.Helper()
	srv := routeapi.NewServer(routeapi.ServerConfig{})
	hs := httptest.NewServer(srv.LookupHandler())
	t.Cleanup(hs.Close)
	return &routeEnv{srv: srv, url: hs.URL}
}

// client runs a routes.Client for worker until the test ends.
func (e *routeEnv) client(t testing.TB) *routes.Client {
	t.Helper()
	c, err := routes.New(routes.Config{URL: e.url, Workload: worker, MinInterval: 20 * time.Millisecond, Wait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// publish publishes rs and waits until every client has the new table.
func (e *routeEnv) publish(t testing.TB, rs []routeapi.Route, clients ...*routes.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := e.srv.Publish(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if err := c.WaitVersion(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
}

const stream = "ORDERS"

func newStream(t testing.TB, js jetstream.JetStream, retention jetstream.RetentionPolicy) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: stream, Subjects: []string{"orders.>"}, Retention: retention}); err != nil {
		t.Fatal(err)
	}
}

// publishMsg publishes message id on orders.created with routing key key ("" for none) through JetStream.
func publishMsg(t testing.TB, js jetstream.JetStream, id int, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kctx := context.Background()
	if key != "" {
		kctx = routingkey.WithKey(kctx, key)
	}
	if _, err := js.PublishMsg(ctx, natsmq.NewMsg(kctx, "orders.created", []byte(strconv.Itoa(id)))); err != nil {
		t.Fatalf("publish %d: %v", id, err)
	}
}

// recorder counts how often each message id was processed, and checks the handler's context.
type recorder struct {
	t    testing.TB
	mu   sync.Mutex
	seen map[int]int
	keys map[int]string
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, seen: map[int]int{}, keys: map[int]string{}}
}

func (r *recorder) handle(ctx context.Context, data []byte) error {
	id, err := strconv.Atoi(string(data))
	if err != nil {
		r.t.Errorf("message body %q: %v", data, err)
		return nil
	}
	key, _ := routingkey.FromContext(ctx)
	r.mu.Lock()
	r.seen[id]++
	r.keys[id] = key
	r.mu.Unlock()
	return nil
}

func (r *recorder) js(ctx context.Context, m jetstream.Msg) error { return r.handle(ctx, m.Data()) }
func (r *recorder) core(ctx context.Context, m *nats.Msg) error   { return r.handle(ctx, m.Data) }

func (r *recorder) snapshot() map[int]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[int]int, len(r.seen))
	for k, v := range r.seen {
		out[k] = v
	}
	return out
}

// waitFor polls cond until it holds or 15s passed.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// runJS starts Run in the background; the returned func closes the consumer and returns Close's or Run's
// error.
func runJS(t testing.TB, c *natsmq.JetStreamConsumer, h natsmq.Handler) (closeFn func() error) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- c.Run(context.Background(), h) }()
	var once sync.Once
	var cerr error
	closeFn = func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			cerr = c.Close(ctx)
			if err := <-errc; err != nil && !errors.Is(err, natsmq.ErrClosed) && cerr == nil {
				cerr = err
			}
		})
		return cerr
	}
	t.Cleanup(func() { _ = closeFn() })
	return closeFn
}

func newJS(t testing.TB, js jetstream.JetStream, id mq.Identity, src mq.TableSource) *natsmq.JetStreamConsumer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	c, err := natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{
		Common:    natsmq.Common{Identity: id, Routes: src, SyncTimeout: 5 * time.Second},
		JetStream: js,
		Stream:    stream,
		Durable:   "worker",
		Consumer:  jetstream.ConsumerConfig{FilterSubject: "orders.>", AckWait: 5 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func routeapiIdentity() mq.Identity { return mq.Identity{Baseline: worker, Sandbox: "sb-x"} }
