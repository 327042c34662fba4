// Package nats owns selective consumption and OpenTelemetry header propagation for NATS apps
// (github.com/nats-io/nats.go): producer helpers that write the trace context, baggage and routing key of a
// context into nats.Header, a case-insensitive header carrier, and consumers that let the baseline of a
// workload and its sandbox forks share a subject, each processing only its own messages (the rules are in
// package mq).
//
// # JetStream
//
// [JetStreamConsumer] is the durable, at-least-once case used for work queues. The baseline consumes with
// durable consumer D of stream S (created with the app's [jetstream.ConsumerConfig] when it does not exist).
// A sandbox fork consumes with its own durable consumer [mq.Identity.ScopedName](D), e.g.
// "orders-sandbox-feature-x", on the same stream with the same filter subjects, created by the constructor
// with DeliverPolicy "new" (nothing older is replayed, nothing published after the constructor returned is
// missed), AckExplicit and an InactiveThreshold (default 15 minutes) so that the server removes the
// consumer of a fork that crashed. Every message is delivered to both consumers; each acknowledges what it
// skips, so a skipped message is never redelivered to it. Close deletes the sandbox consumer once the
// sandbox's routing key, having been routed to it, is no longer (the sandbox is being deleted), after
// processing what the consumer still had pending; it never deletes the baseline's consumer.
//
// The stream's retention decides whether this works: with Limits retention (the default) messages stay
// until the stream's limits drop them; with Interest retention a message stays until every consumer,
// the baseline's and each sandbox's, acknowledged it (skipping acknowledges); WorkQueue retention allows
// one consumer per subject, so a sandbox consumer is refused: [NewJetStreamConsumer] reports it.
//
// Guarantee: at-least-once per consumer (a message whose handler failed or did not return within the ack
// wait is redelivered); across baseline and sandbox each message is processed by exactly one of them in a
// steady state, and at least once while a route appears or goes.
//
// # Core NATS
//
// [QueueConsumer] uses a core NATS queue subscription: the baseline joins queue group Q, a sandbox joins
// queue group ScopedName(Q). Every queue group receives each message and each side filters. Core NATS keeps
// nothing: delivery is at-most-once, and a sandbox receives only what is published after its constructor
// subscribed; there is no broker object to expire or delete.
package nats
