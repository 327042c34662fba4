package app

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// The asynchronous hop: frontend publishes a dispatch Event on each queue of
// Config.QueueURLs; a worker consumes the events of its queue selectively (a
// fork of the worker in a sandbox gets exactly the events that carry the
// sandbox's routing key, the baseline worker the others) and calls customer
// with the event's context, so the routing key travels on to the next hop.
//
// A queue URL names the broker and how to reach it:
//
//	nats://host:4222          JetStream stream HOTROD_DISPATCH, subject hotrod.dispatch, durable consumer "worker"
//	amqp://user:pass@host:5672/vhost   exchange hotrod (topic), routing key dispatch, queue "worker"
//	kafka://host:9092         topic hotrod-dispatch, consumer group "worker"
//
// The names are fixed (DispatchSubject, DispatchExchange, …) so that producer
// and consumer agree without more configuration.
const (
	DispatchStream     = "HOTROD_DISPATCH"
	DispatchSubject    = "hotrod.dispatch"
	DispatchExchange   = "hotrod"
	DispatchRoutingKey = "dispatch"
	DispatchTopic      = "hotrod-dispatch"
	// WorkerGroup is the durable consumer, queue and consumer group of the baseline worker; forks
	// use mq.Identity.ScopedName(WorkerGroup).
	WorkerGroup = "worker"
)

// Event is a dispatch event: frontend publishes one per /dispatch when queues are configured.
type Event struct {
	// ID identifies the event (query parameter event of /dispatch, or generated).
	ID string `json:"id"`
	// Customer is the customer of the dispatch.
	Customer string `json:"customer"`
}

// Delivery is an event as a worker receives it.
type Delivery struct {
	// Event is the decoded message body.
	Event Event
	// Header reads the message's headers by lower-case name (for the Node's propagation headers).
	Header func(string) []string
}

// bus publishes and consumes dispatch events on one broker.
type bus interface {
	// Kind is nats, rabbitmq or kafka.
	Kind() string
	// Publish sends ev with the OpenTelemetry context (and routing key) of ctx in its headers.
	Publish(ctx context.Context, ev Event) error
	// Consume calls handle for each event this worker is meant to process (selective consumption), with a
	// context carrying the event's trace context and routing key, until ctx ends.
	Consume(ctx context.Context, handle func(context.Context, Delivery) error) error
	// Close releases the connection (and, for a fork whose sandbox is gone, its sandbox-scoped queue).
	Close(ctx context.Context) error
}

// queueKind returns the broker of a queue URL.
func queueKind(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("queue url %q: %w", redactURL(raw), err)
	}
	if u.Host == "" {
		return "", fmt.Errorf("queue url %q: want scheme://host:port", redactURL(raw))
	}
	switch u.Scheme {
	case "nats":
		return "nats", nil
	case "amqp", "amqps":
		return "rabbitmq", nil
	case "kafka":
		return "kafka", nil
	}
	return "", fmt.Errorf("queue url %q: scheme %q: want nats, amqp or kafka", redactURL(raw), u.Scheme)
}

// redactURL hides a URL's password for messages and logs.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.LastIndexByte(raw, '@'); i >= 0 {
			return "…" + raw[i:]
		}
		return raw
	}
	return u.Redacted()
}

// busOpener opens a bus for a queue URL; consumer says whether the bus will Consume (which creates the
// consumer's group, queue or durable consumer at once). The broker files register theirs.
type busOpener func(ctx context.Context, rawURL string, consumer bool, log *slog.Logger) (bus, error)

var busOpeners = map[string]busOpener{}

// openBus opens the bus of a queue URL.
func openBus(ctx context.Context, rawURL string, consumer bool, log *slog.Logger) (bus, error) {
	kind, err := queueKind(rawURL)
	if err != nil {
		return nil, err
	}
	open, ok := busOpeners[kind]
	if !ok {
		return nil, fmt.Errorf("queue url %q: %s is not built into this binary", redactURL(rawURL), kind)
	}
	// The broker may start after the service (one kubectl apply): retry for a while before giving up.
	deadline := time.Now().Add(queueOpenTimeout)
	for {
		b, err := open(ctx, rawURL, consumer, log)
		if err == nil {
			return b, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("queue %s: %w", redactURL(rawURL), err)
		}
		log.Warn("queue not reachable yet, retrying", "queue", redactURL(rawURL), "error", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("queue %s: %w (%w)", redactURL(rawURL), ctx.Err(), err)
		case <-time.After(time.Second):
		}
	}
}

// queueOpenTimeout bounds how long openBus retries a broker that is not reachable yet.
const queueOpenTimeout = 30 * time.Second

func encodeEvent(ev Event) []byte {
	b, _ := json.Marshal(ev)
	return b
}

func decodeEvent(b []byte) (Event, error) {
	var ev Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	if ev.ID == "" || len(ev.ID) > 128 {
		return Event{}, fmt.Errorf("event: id: want 1 to 128 characters")
	}
	if !validCustomerID(ev.Customer) {
		return Event{}, fmt.Errorf("event %s: customer %q: want 1 to 9 digits", ev.ID, ev.Customer)
	}
	return ev, nil
}
