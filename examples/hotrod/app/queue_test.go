package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sandboxmesh/sandboxmesh/devmesh/routeapi"
	"github.com/sandboxmesh/sandboxmesh/internal/devenv/natsserver"
	"github.com/sandboxmesh/sandboxmesh/mq"
)

// TestQueueSelectiveConsumption runs frontend, a baseline worker and a fork of it (sandbox sb1, key k1) on a
// real NATS JetStream server and on a Kafka-protocol broker (kfake), with a real routes API: the event of a
// request keyed k1 reaches only the fork, which calls customer with the key; the unkeyed event only the
// baseline. (RabbitMQ runs in the local-cluster e2e, with all three brokers.)
func TestQueueSelectiveConsumption(t *testing.T) {
	ns, err := natsserver.Start(natsserver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Stop)
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(kc.Close)

	rs := routeapi.NewServer(routeapi.ServerConfig{})
	hs := httptest.NewServer(rs.LookupHandler())
	t.Cleanup(hs.Close)
	worker := routeapi.WorkloadRef{Namespace: "shop", Kind: routeapi.KindDeployment, Name: "worker"}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := rs.Publish(ctx, []routeapi.Route{{Workload: worker, RoutingKey: "k1", Destination: routeapi.Destination{
		Sandbox: routeapi.SandboxRef{Namespace: "shop", Name: "sb1"}, Kind: routeapi.DestinationFork, Host: "sb1-worker.shop.svc",
	}}}); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := func(c Config) *Server {
		t.Helper()
		c.Logger = log
		c.CallTimeout = 30 * time.Second
		c.HTTPAddr = "127.0.0.1:0"
		s, err := Start(t.Context(), c)
		if err != nil {
			t.Fatalf("start %s: %v", c.Service, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("shutdown %s: %v", c.Service, err)
			}
		})
		return s
	}
	queues := []string{ns.URL(), "kafka://" + kc.ListenAddrs()[0]}
	customer := start(Config{Service: Customer})
	route := start(Config{Service: Route})
	driver := start(Config{Service: Driver, GRPCAddr: "127.0.0.1:0", CustomerURL: "http://" + customer.HTTPAddr()})
	frontend := start(Config{Service: Frontend, RouteURL: "http://" + route.HTTPAddr(), DriverAddr: driver.GRPCAddr(), QueueURLs: queues})

	// The workers read their identity from the environment the operator and the webhook set, when their
	// consumer is made: the baseline's first, then the fork's.
	t.Setenv(mq.EnvBaselineNamespace, "shop")
	t.Setenv(mq.EnvBaselineName, "worker")
	t.Setenv(mq.EnvRoutesURL, hs.URL)
	type pair struct{ base, fork *Server }
	workers := map[string]pair{}
	for _, q := range queues {
		kind, _ := queueKind(q)
		t.Setenv(mq.EnvSandboxName, "")
		t.Setenv(mq.EnvRoutingKey, "")
		base := start(Config{Service: Worker, QueueURLs: []string{q}, CustomerURL: "http://" + customer.HTTPAddr()})
		t.Setenv(mq.EnvSandboxName, "sb1")
		t.Setenv(mq.EnvRoutingKey, "k1")
		fork := start(Config{Service: Worker, QueueURLs: []string{q}, CustomerURL: "http://" + customer.HTTPAddr(),
			Identity: Identity{Sandbox: "sb1", SandboxRoutingKey: "k1"}})
		workers[kind] = pair{base, fork}
	}

	fe := "http://" + frontend.HTTPAddr()
	if code, body := get(t, fe+"/dispatch?customer=123&event=keyed", http.Header{"Baggage": {"sm-routing-key=k1"}}); code != http.StatusOK {
		t.Fatalf("keyed dispatch: %d %s", code, body)
	}
	if code, body := get(t, fe+"/dispatch?customer=392&event=plain", nil); code != http.StatusOK {
		t.Fatalf("plain dispatch: %d %s", code, body)
	}
	if code, body := get(t, fe+"/dispatch?customer=123&event=bad%20id", nil); code != http.StatusBadRequest {
		t.Fatalf("bad event id: %d %s, want 400", code, body)
	}
	for kind, p := range workers {
		for _, tc := range []struct {
			event      string
			want, skip *Server
			key        string
		}{{"keyed", p.fork, p.base, "k1"}, {"plain", p.base, p.fork, ""}} {
			n := waitEvent(t, tc.want, tc.event)
			if n.RoutingKey != tc.key || n.Data["queue"] != kind {
				t.Errorf("%s: event %s: routing key %q queue %q, want %q %q", kind, tc.event, n.RoutingKey, n.Data["queue"], tc.key, kind)
			}
			if len(n.Calls) != 1 || n.Calls[0].RoutingKey != tc.key || n.Calls[0].Error != "" {
				t.Errorf("%s: event %s: customer call %+v, want the key %q passed on", kind, tc.event, n.Calls, tc.key)
			}
			if got := events(t, tc.skip, tc.event); len(got) != 0 {
				t.Errorf("%s: event %s was processed by the other worker too: %+v", kind, tc.event, got)
			}
		}
	}
}

func events(t *testing.T, s *Server, id string) []Node {
	t.Helper()
	code, body := get(t, fmt.Sprintf("http://%s/events?event=%s", s.HTTPAddr(), id), nil)
	if code != http.StatusOK {
		t.Fatalf("GET /events: %d %s", code, body)
	}
	var resp struct{ Events []Node }
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatal(err)
	}
	return resp.Events
}

func waitEvent(t *testing.T, s *Server, id string) Node {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got := events(t, s, id); len(got) > 0 {
			if len(got) > 1 {
				t.Errorf("event %s processed %d times by one worker", id, len(got))
			}
			return got[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("event %s not processed by the worker at %s within 30s", id, s.HTTPAddr())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
