#!/usr/bin/env bash
# run.sh runs the selective message-queue consumers beside the plain clients of NATS JetStream, Kafka (kfake)
# and RabbitMQ, SANDBOXMESH_MQBENCH_PAIRS (default 10) interleaved rounds of each, and prints min / median /
# max of the per-round ratios (bench/mq/pairs). Raw output goes to $1 (default: a new temp dir).
# BROKERS selects brokers (default "nats kafka rabbitmq"); NATS_MSGS, KAFKA_MSGS, RABBITMQ_MSGS the messages
# per round.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-$(mktemp -d)}
mkdir -p "$out"
declare -A pkg=([nats]=./mq/nats [kafka]=./mq/kafka [rabbitmq]=./mq/rabbitmq)
declare -A bench=([nats]='BenchmarkJetStreamConsume$' [kafka]='BenchmarkConsume$' [rabbitmq]='BenchmarkConsume$')
declare -A msgs=([nats]=${NATS_MSGS:-50000} [kafka]=${KAFKA_MSGS:-200000} [rabbitmq]=${RABBITMQ_MSGS:-20000})
for b in ${BROKERS:-nats kafka rabbitmq}; do
	echo "== $b: ${msgs[$b]} messages per round, raw output in $out/$b.txt" >&2
	go test -run '^$' -bench "${bench[$b]}" -benchtime "${msgs[$b]}x" -timeout 60m "${pkg[$b]}" >"$out/$b.txt"
	go run ./bench/mq/pairs <"$out/$b.txt"
done
