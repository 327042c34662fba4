package rabbitmq_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"os"
	"os/signal"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sandboxmesh/sandboxmesh/mq/rabbitmq"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Example shows both sides. The producer is an HTTP handler that publishes an order with the trace context
// and routing key of the request it serves; the consumer processes the orders meant for it: in the baseline
// pod, every order except those of keys routed to a sandbox; in a fork (the operator sets
// SANDBOXMESH_SANDBOX_NAME and SANDBOXMESH_ROUTING_KEY), only its sandbox's orders, from its own queue
// "orders-sandbox-<sandbox>" bound like "orders".
func Example() {
	conn, err := amqp.Dial(os.Getenv("AMQP_URL"))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	// Producer: keep using amqp091-go; only the headers come from rabbitmq.InjectRequest.
	pub, err := conn.Channel()
	if err != nil {
		log.Fatal(err)
	}
	http.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		err := pub.PublishWithContext(r.Context(), "shop", "orders.created", false, false, amqp.Publishing{
			ContentType: "application/json",
			Body:        []byte(`{"id":42}`),
			Headers:     rabbitmq.InjectRequest(r, nil),
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})

	// Consumer: identity and route lookup URL from the environment the operator sets.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	c, err := rabbitmq.NewConsumer(ctx, rabbitmq.Config{
		Conn:     conn,
		Queue:    "orders",
		Durable:  true,
		Bindings: []rabbitmq.Binding{{Exchange: "shop", Key: "orders.*"}},
		Logger:   slog.Default(),
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close(context.Background())
	err = c.Run(ctx, func(ctx context.Context, d *amqp.Delivery) error {
		key, _ := routingkey.FromContext(ctx) // and an HTTP client with routingkey.Default.Transport propagates it
		log.Printf("order %s (routing key %q)", d.Body, key)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
}
