package kafka_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sandboxmesh/sandboxmesh/mq/kafka"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Example shows a producer that carries the routing key of an HTTP request into the records it publishes,
// and a consumer that processes only the records the route table gives it. In a pod the identity
// (SANDBOXMESH_BASELINE_*, SANDBOXMESH_SANDBOX_NAME, SANDBOXMESH_ROUTING_KEY) and the route lookup URL
// (SANDBOXMESH_ROUTES_URL) come from the environment the operator sets.
func Example() {
	ctx := context.Background()
	brokers := []string{"kafka.shop.svc:9092"}

	// Producer: the app keeps its kgo client; Inject adds traceparent, tracestate and baggage headers.
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		log.Fatal(err)
	}
	defer prod.Close()
	http.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
		rec := &kgo.Record{Topic: "orders", Value: []byte("order")}
		kafka.InjectFromHTTP(r, rec)
		if err := prod.ProduceSync(r.Context(), rec).FirstErr(); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})

	// Consumer: group "orders-worker" for the baseline, "orders-worker-sandbox-<name>" in a sandbox.
	c, err := kafka.NewConsumer(ctx, kafka.Config{
		Brokers: brokers,
		Topics:  []string{"orders"},
		Group:   "orders-worker",
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = c.Close(cctx) // deletes a sandbox group once the sandbox's route is gone
	}()
	err = c.Run(ctx, func(ctx context.Context, r *kgo.Record) error {
		key, _ := routingkey.FromContext(ctx) // calls made with ctx carry the key on
		log.Printf("order at offset %d, routing key %q", r.Offset, key)
		return nil
	})
	if err != nil {
		log.Print(err)
	}
}
