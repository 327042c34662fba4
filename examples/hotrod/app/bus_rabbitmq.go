package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/sandboxmesh/sandboxmesh/mq/rabbitmq"
)

func init() { busOpeners["rabbitmq"] = openRabbitMQBus }

// rabbitBus is the dispatch queue on RabbitMQ: topic exchange DispatchExchange, routing key
// DispatchRoutingKey, queue WorkerGroup (a fork: WorkerGroup-sandbox-<sandbox>, same binding) consumed by
// mq/rabbitmq.
type rabbitBus struct {
	conn *amqp.Connection
	mu   sync.Mutex // serialises publishes on ch
	ch   *amqp.Channel
	cons *rabbitmq.Consumer
}

func openRabbitMQBus(ctx context.Context, rawURL string, consumer bool, log *slog.Logger) (bus, error) {
	conn, err := amqp.DialConfig(rawURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second), Properties: amqp.Table{"connection_name": "hotrod"}})
	if err != nil {
		return nil, fmt.Errorf("amqp dial: %w", err)
	}
	b := &rabbitBus{conn: conn}
	if b.ch, err = conn.Channel(); err == nil {
		err = b.ch.ExchangeDeclare(DispatchExchange, "topic", true, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("amqp exchange %s: %w", DispatchExchange, err)
	}
	if consumer {
		b.cons, err = rabbitmq.NewConsumer(ctx, rabbitmq.Config{
			Conn:     conn,
			Queue:    WorkerGroup,
			Durable:  true,
			Bindings: []rabbitmq.Binding{{Exchange: DispatchExchange, Key: DispatchRoutingKey}},
			Logger:   log,
		})
		if err != nil {
			conn.Close()
			return nil, err
		}
	}
	return b, nil
}

func (b *rabbitBus) Kind() string { return "rabbitmq" }

func (b *rabbitBus) Publish(ctx context.Context, ev Event) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch.PublishWithContext(ctx, DispatchExchange, DispatchRoutingKey, false, false, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		Body:         encodeEvent(ev),
		Headers:      rabbitmq.Inject(ctx, nil),
	})
}

func (b *rabbitBus) Consume(ctx context.Context, handle func(context.Context, Delivery) error) error {
	return b.cons.Run(ctx, func(ctx context.Context, d *amqp.Delivery) error {
		ev, err := decodeEvent(d.Body)
		if err != nil {
			return err // rejected after Config.MaxAttempts
		}
		return handle(ctx, Delivery{Event: ev, Header: rabbitmq.HeaderCarrier(d.Headers).Values})
	})
}

func (b *rabbitBus) Close(ctx context.Context) error {
	var errs []error
	if b.cons != nil {
		errs = append(errs, b.cons.Close(ctx))
	}
	if err := b.conn.Close(); err != nil && !errors.Is(err, amqp.ErrClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
