// Package mq owns what the message-queue libraries of SandboxMesh share: who a consumer is ([Identity], read
// from the environment the operator gives pods), which messages it processes ([Selector], selective
// consumption against the route table), how per-sandbox groups, queues and consumers are named
// ([Identity.ScopedName]), and how the OpenTelemetry context (W3C traceparent, tracestate and baggage
// carrying the routing key) travels in message headers ([Propagation]); a consumer goroutine reads keys and
// builds its handlers' contexts with per-consumer caches ([KeyCache], [HandlerContexts]).
//
// The broker packages (mq/kafka, mq/rabbitmq, mq/nats) adapt these to their clients; mq/routes keeps the
// route table fresh. The contract they implement, for apps in any language, is docs/message-queues.md.
//
// # Selective consumption
//
// For a baseline workload W and a message carrying routing key K:
//   - the baseline consumer of W processes the message unless K is routed away from W (a fork or a local
//     workload of some sandbox);
//   - the consumer of a sandbox S that forks W processes the message only when K is S's own routing key or K
//     is routed to S for W (route groups);
//   - a message without a key is processed by the baseline only.
//
// In a steady state every message is processed by exactly one of them. While a route appears or goes, the
// consumers learn of it at slightly different times; the rules above then err towards processing a message
// twice rather than losing it (a sandbox consumer keeps its own key until it stops).
package mq
