// Package rabbitmq owns SandboxMesh's selective consumption for RabbitMQ (github.com/rabbitmq/amqp091-go):
// producer helpers that put the OpenTelemetry context and the routing key of a context.Context or an
// incoming HTTP request into AMQP message headers (Inject, InjectRequest, HeaderCarrier), and a Consumer that
// processes only the messages mq.Selector gives it.
//
// The baseline consumer consumes its queue Q, declared and bound as the app configures. A sandbox consumer
// (a fork of the baseline workload) declares its own queue Identity.ScopedName(Q), "Q-sandbox-<sandbox>",
// with the same bindings (given in Config.Bindings: RabbitMQ has no AMQP method to read a queue's bindings)
// and x-expires (Config.SandboxExpiry, 15 min by default), so that the broker deletes the queue of a fork
// that crashed and never came back. The queue is declared in NewConsumer, before the fork is Ready and its
// routes are published: no message is lost in between. Both queues get a copy of every message; each
// consumer applies mq.Selector.Decide and acks the messages it skips, so they are never redelivered to it.
//
// Deliveries are acked after the handler returns. A handler error nacks the message: it is requeued while
// its attempt is below Config.MaxAttempts (default 2: one retry), then rejected without requeue (dead-lettered
// when the queue has an x-dead-letter-exchange). The guarantee is at-least-once per queue: a consumer that
// stops or crashes before acking gets the message again (or another consumer of the same queue does); there
// is no exactly-once. While a route appears or goes the baseline and the fork may both process a message
// (see package mq).
//
// Close deletes the sandbox queue when the sandbox's routing key is no longer routed to the sandbox (the
// operator removed its routes: the sandbox is being deleted). It first keeps consuming for
// Config.DeleteGrace (2 s), because the baseline's route copy may learn of the removal a little later and
// skips the sandbox's messages until then, then until the queue has no ready message; it never deletes the
// baseline's queue. A fork restarting while its routes exist keeps its queue.
//
// Not done here: reconnection (Run returns the channel's or connection's error; make a new Consumer, the
// queue keeps the messages meanwhile), parallel handlers (one Consumer handles one delivery at a time; run
// several Consumers of the same queue for more), and acking by the handler (the Consumer acks: a handler
// must not call d.Ack, d.Nack or d.Reject).
package rabbitmq
