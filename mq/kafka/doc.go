// Package kafka owns selective consumption and OpenTelemetry header propagation for Kafka, on the
// franz-go client (github.com/twmb/franz-go/pkg/kgo): apps import it next to the kgo client they already use.
//
// Producer side: Inject (or InjectFromHTTP inside an HTTP handler) writes the W3C traceparent, tracestate and
// baggage of a context, the routing key being a baggage member, into a record's headers before
// kgo.Client.Produce. HeaderCarrier adapts record headers for any mq.Propagation or OTel propagator; keys
// match case-insensitively and repeated headers are all read.
//
// Consumer side: a Consumer consumes the app's topics in a consumer group and passes to a Handler only the
// records the rules of package mq give it; skipped records are committed like processed ones (a commit marks
// "handled by this group"). The baseline consumes in the app's group G; the consumer of a sandbox S consumes
// the same topics in its own group Identity.ScopedName(G) = "G-sandbox-S" (dots of S turned into dashes).
//
// A new sandbox group starts exactly where the topics end when NewConsumer runs: NewConsumer commits the end
// offsets of every partition for the group, synchronously, when the group has no commits. Nothing produced
// after NewConsumer returns is missed (a fork that becomes Ready has its group before its routes are
// published) and nothing older is replayed. A restarted fork finds its commits and resumes from them.
//
// Kafka has no group expiry a client can set: an empty group's offsets disappear after the broker's
// offsets.retention.minutes (7 days by default), which is what cleans up after a fork that crashed for good.
// Close deletes the sandbox group when the route table no longer routes the sandbox's key to it (the
// sandbox is being deleted), after it kept consuming for Config.DeleteGrace (2s: the baseline's route copy
// may lag) and drained the group to the end offsets seen then, so the key's records the baseline skipped
// are handled; it never deletes the baseline's group, nor a sandbox group that still has
// members (other replicas) or whose route is still there (a restart).
//
// Delivery guarantee: at-least-once per group. A record is committed only after its handler returned nil
// (or it was skipped); duplicates happen only after a crash between handling and commit (commits are sent
// every AutoCommitInterval, 5s by default, before every rebalance and by Close), or in the window where a
// route appears or goes and the baseline and the sandbox learn of it at slightly different times (package
// mq). Kafka gives no exactly-once across a handler's side effects; graceful restarts (Close, then a new
// Consumer) produce no duplicates.
//
// Tests run against kfake (github.com/twmb/franz-go/pkg/kfake), an in-process implementation of the Kafka
// wire protocol (consumer groups, offsets, transactions), because no Kafka distribution is packaged here.
// kfake does not cover throttling, rack-aware fetch, tiered storage or share groups; none of them is used by
// this package.
package kafka
