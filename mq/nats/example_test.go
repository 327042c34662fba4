package nats_test

import (
	"context"
	"log"
	"log/slog"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
	"github.com/sandboxmesh/sandboxmesh/routingkey"
)

// Example shows a producer that passes the routing key of an HTTP request on in the message headers, and a
// JetStream consumer that processes only the messages of its sandbox (or, for the baseline, the messages
// not routed to a sandbox). The identity and the route lookup URL come from the environment the operator
// and the injection webhook set on pods.
func Example() {
	nc, err := nats.Connect(nats.DefaultURL)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}

	// Producer: an HTTP handler publishes with the request's trace context, baggage and routing key.
	http.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
		msg := &nats.Msg{Subject: "orders.created", Data: []byte(`{"id":1}`)}
		natsmq.InjectFromHTTP(r, msg)
		if _, err := js.PublishMsg(r.Context(), msg); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})

	// Consumer: baseline pods consume with durable "worker", a sandbox's fork with
	// "worker-sandbox-<sandbox>", created here.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{
		Common:    natsmq.Common{Logger: slog.Default()},
		JetStream: js,
		Stream:    "ORDERS",
		Durable:   "worker",
		Consumer:  jetstream.ConsumerConfig{FilterSubject: "orders.>", AckWait: 30 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		err := c.Run(context.Background(), func(ctx context.Context, msg jetstream.Msg) error {
			key, _ := routingkey.FromContext(ctx) // outgoing calls made with ctx carry it on
			slog.InfoContext(ctx, "order", "routingKey", key, "bytes", len(msg.Data()))
			return nil // acknowledged; an error would have it redelivered
		})
		if err != nil {
			log.Print(err)
		}
	}()
	// ... on shutdown:
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer closeCancel()
	if err := c.Close(closeCtx); err != nil {
		log.Print(err)
	}
}
