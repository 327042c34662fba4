package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sandboxmesh/sandboxmesh/mq/kafka"
)

func init() { busOpeners["kafka"] = openKafkaBus }

// kafkaBus is the dispatch queue on Kafka: topic DispatchTopic, consumer group WorkerGroup (a fork:
// WorkerGroup-sandbox-<sandbox>) consumed by mq/kafka.
type kafkaBus struct {
	cl   *kgo.Client
	cons *kafka.Consumer
}

func openKafkaBus(ctx context.Context, rawURL string, consumer bool, log *slog.Logger) (bus, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(u.Host), kgo.DialTimeout(5*time.Second), kgo.ProduceRequestTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("kafka client: %w", err)
	}
	b := &kafkaBus{cl: cl}
	if err := ensureTopic(ctx, cl); err != nil {
		cl.Close()
		return nil, err
	}
	if consumer {
		b.cons, err = kafka.NewConsumer(ctx, kafka.Config{
			Brokers: []string{u.Host},
			Topics:  []string{DispatchTopic},
			Group:   WorkerGroup,
			Logger:  log,
		})
		if err != nil {
			cl.Close()
			return nil, err
		}
	}
	return b, nil
}

// ensureTopic creates DispatchTopic (one partition) unless it exists.
func ensureTopic(ctx context.Context, cl *kgo.Client) error {
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, DispatchTopic)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("kafka topic %s: %w", DispatchTopic, err)
	}
	return nil
}

func (b *kafkaBus) Kind() string { return "kafka" }

func (b *kafkaBus) Publish(ctx context.Context, ev Event) error {
	r := &kgo.Record{Topic: DispatchTopic, Key: []byte(ev.ID), Value: encodeEvent(ev)}
	kafka.Inject(ctx, r)
	return b.cl.ProduceSync(ctx, r).FirstErr()
}

func (b *kafkaBus) Consume(ctx context.Context, handle func(context.Context, Delivery) error) error {
	return b.cons.Run(ctx, func(ctx context.Context, r *kgo.Record) error {
		ev, err := decodeEvent(r.Value)
		if err != nil {
			return nil // a record that can never be processed is skipped (committed), not retried forever
		}
		return handle(ctx, Delivery{Event: ev, Header: kafka.Carrier(r).Values})
	})
}

func (b *kafkaBus) Close(ctx context.Context) error {
	var err error
	if b.cons != nil {
		err = b.cons.Close(ctx)
	}
	b.cl.Close()
	return err
}
