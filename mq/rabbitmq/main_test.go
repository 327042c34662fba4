package rabbitmq_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	devrabbit "github.com/sandboxmesh/sandboxmesh/internal/devenv/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/mq"
	"github.com/sandboxmesh/sandboxmesh/mq/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/mq/routes"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// broker is the one RabbitMQ of this test binary (a cold start takes about 7 s); each test uses its own
// exchange and queue names. nil when it could not be started (brokerErr says why).
var (
	broker    *devrabbit.Server
	brokerErr error
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if needsBroker() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		broker, brokerErr = startBroker(ctx)
		cancel()
		if broker != nil {
			defer broker.Stop()
		}
	}
	return m.Run()
}

// needsBroker is false when -run selects only tests that need none (the fuzz and config tests) and no
// benchmark runs, and for -fuzz runs.
func needsBroker() bool {
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.bench=") {
			return true
		}
	}
	for _, a := range os.Args[1:] {
		if strings.HasPrefix(a, "-test.fuzz=") {
			return false
		}
		if v, ok := strings.CutPrefix(a, "-test.run="); ok && (v == "Fuzz.*" || v == "^$" || strings.HasPrefix(v, "^Fuzz") || strings.HasPrefix(v, "^TestConfig")) {
			return false
		}
	}
	return true
}

func startBroker(ctx context.Context) (*devrabbit.Server, error) {
	if !devrabbit.Installed() {
		if os.Geteuid() != 0 {
			return nil, fmt.Errorf("rabbitmq-server is not installed and installing it needs root")
		}
		if _, err := devrabbit.EnsurePackages(ctx); err != nil {
			return nil, fmt.Errorf("rabbitmq-server cannot be installed: %w", err)
		}
	}
	return devrabbit.Start(ctx, devrabbit.Config{Listen: "127.0.0.1:0"})
}

func needBroker(tb testing.TB) *devrabbit.Server {
	tb.Helper()
	if broker == nil {
		if brokerErr == nil {
			brokerErr = fmt.Errorf("not started")
		}
		tb.Skipf("no RabbitMQ broker: %v", brokerErr)
	}
	return broker
}

var worker = routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}

func forkRoute(key, sandbox string) routeapi.Route {
	return routeapi.Route{Workload: worker, RoutingKey: key, Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: sandbox}, Kind: routeapi.DestinationFork, Host: sandbox + "-worker.shop.svc"}}
}

// env is one test's world: the broker, a real route server with its lookup API, an exchange, a base queue
// name, and a publishing channel.
type env struct {
	t        testing.TB
	ctx      context.Context
	srv      *routeapi.Server
	hs       *httptest.Server
	url      string
	exchange string
	queue    string
	conn     *amqp.Connection
	pub      *amqp.Channel
	pubMu    sync.Mutex
}

func newEnv(tb testing.TB, name string) *env {
	b := needBroker(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	e := &env{t: tb, ctx: ctx, srv: routeapi.NewServer(routeapi.ServerConfig{}), url: b.URL(),
		exchange: "ex-" + name, queue: "q-" + name}
	e.hs = httptest.NewServer(e.srv.LookupHandler())
	tb.Cleanup(e.hs.Close)
	conn, err := amqp.Dial(e.url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close() })
	e.conn = conn
	if e.pub, err = conn.Channel(); err != nil {
		tb.Fatal(err)
	}
	if err := e.pub.ExchangeDeclare(e.exchange, "topic", false, true, false, false, nil); err != nil {
		tb.Fatal(err)
	}
	return e
}

// routes returns a running route client of the env's lookup API (each consumer has its own, as pods do).
func (e *env) routes() *routes.Client {
	c, err := routes.New(routes.Config{URL: e.hs.URL, Workload: worker, MinInterval: 20 * time.Millisecond})
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	e.t.Cleanup(func() { cancel(); <-done })
	return c
}

func (e *env) config(id mq.Identity, src mq.TableSource) rabbitmq.Config {
	return rabbitmq.Config{
		URL: e.url, Queue: e.queue, Identity: id, Routes: src,
		Bindings: []rabbitmq.Binding{{Exchange: e.exchange, Key: "orders.#"}},
	}
}

func baseline() mq.Identity { return mq.Identity{Baseline: worker} }

func sandbox(name, key string) mq.Identity {
	return mq.Identity{Baseline: worker, Sandbox: name, RoutingKey: key}
}

// publish sends message id with routing key key ("" for none) in its baggage, through the producer helper.
func (e *env) publish(id, key string) {
	ctx := context.Background()
	if key != "" {
		ctx = routingkey.WithKey(ctx, key)
	}
	p := amqp.Publishing{MessageId: id, Body: []byte(id), Headers: rabbitmq.Inject(ctx, nil)}
	e.pubMu.Lock()
	defer e.pubMu.Unlock()
	if err := e.pub.PublishWithContext(e.ctx, e.exchange, "orders.created", false, false, p); err != nil {
		e.t.Error(err)
	}
}

// recorder records which consumer processed which message id, and checks the handler's context carries
// the message's routing key.
type recorder struct {
	mu   sync.Mutex
	t    testing.TB
	seen map[string]map[string]int // consumer -> id -> count
}

func newRecorder(t testing.TB) *recorder {
	return &recorder{t: t, seen: map[string]map[string]int{}}
}

func (r *recorder) handler(name string) rabbitmq.Handler {
	return func(ctx context.Context, d *amqp.Delivery) error {
		key, _ := routingkey.FromContext(ctx)
		_, want := rabbitmq.Extract(context.Background(), d.Headers)
		if key != want {
			r.t.Errorf("%s: message %s: handler ctx key %q, header key %q", name, d.MessageId, key, want)
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.seen[name] == nil {
			r.seen[name] = map[string]int{}
		}
		r.seen[name][d.MessageId]++
		return nil
	}
}

func (r *recorder) count(name string) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.seen[name] {
		out[k] = v
	}
	return out
}

// run runs c in the background; the returned func stops it (Close) and returns Run's error.
func run(t testing.TB, c *rabbitmq.Consumer, h rabbitmq.Handler) (closeIt func() error) {
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background(), h) }()
	var once sync.Once
	var err error
	closeIt = func() error {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = c.Close(ctx)
			if rerr := <-done; rerr != nil && err == nil {
				err = rerr
			}
		})
		return err
	}
	t.Cleanup(func() { _ = closeIt() })
	return closeIt
}

// eventually polls cond until it holds or 20 s passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func total(c *rabbitmq.Consumer) uint64 { s := c.Stats(); return s.Processed + s.Skipped() }

// queueExists declares name passively on a channel of its own (a missing queue closes the channel).
func (e *env) queueExists(name string) bool {
	ch, err := e.conn.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	defer ch.Close()
	_, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
	return err == nil
}
