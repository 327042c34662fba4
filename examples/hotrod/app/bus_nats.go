package app

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	natsmq "github.com/sandboxmesh/sandboxmesh/mq/nats"
)

func init() { busOpeners["nats"] = openNATSBus }

// natsBus is the dispatch queue on NATS JetStream: stream DispatchStream on subject DispatchSubject, consumed
// with durable WorkerGroup (a fork: WorkerGroup-sandbox-<sandbox>) by mq/nats.
type natsBus struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	cons *natsmq.JetStreamConsumer
}

func openNATSBus(ctx context.Context, rawURL string, consumer bool, log *slog.Logger) (bus, error) {
	nc, err := nats.Connect(rawURL, nats.Name("hotrod"), nats.Timeout(5*time.Second), nats.MaxReconnects(-1))
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	b := &natsBus{nc: nc}
	if b.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats jetstream: %w", err)
	}
	// Producer and consumer both make sure the stream exists, whichever starts first.
	_, err = b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: DispatchStream, Subjects: []string{DispatchSubject}, MaxAge: time.Hour,
	})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("nats stream %s: %w", DispatchStream, err)
	}
	if consumer {
		b.cons, err = natsmq.NewJetStreamConsumer(ctx, natsmq.JetStreamConfig{
			Common:    natsmq.Common{Logger: log},
			JetStream: b.js,
			Stream:    DispatchStream,
			Durable:   WorkerGroup,
			Consumer:  jetstream.ConsumerConfig{FilterSubject: DispatchSubject, AckWait: 30 * time.Second},
		})
		if err != nil {
			nc.Close()
			return nil, err
		}
	}
	return b, nil
}

func (b *natsBus) Kind() string { return "nats" }

func (b *natsBus) Publish(ctx context.Context, ev Event) error {
	_, err := b.js.PublishMsg(ctx, natsmq.NewMsg(ctx, DispatchSubject, encodeEvent(ev)))
	return err
}

func (b *natsBus) Consume(ctx context.Context, handle func(context.Context, Delivery) error) error {
	return b.cons.Run(ctx, func(ctx context.Context, m jetstream.Msg) error {
		ev, err := decodeEvent(m.Data())
		if err != nil {
			return jetstreamTerm(m, err)
		}
		h := natsmq.HeaderCarrier(m.Headers())
		return handle(ctx, Delivery{Event: ev, Header: h.Values})
	})
}

// jetstreamTerm drops a message that can never be processed (it would be redelivered forever).
func jetstreamTerm(m jetstream.Msg, err error) error {
	if terr := m.Term(); terr != nil {
		return fmt.Errorf("%w (term: %v)", err, terr)
	}
	return nil
}

func (b *natsBus) Close(ctx context.Context) error {
	var err error
	if b.cons != nil {
		err = b.cons.Close(ctx)
	}
	b.nc.Close()
	return err
}
